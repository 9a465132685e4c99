/**
 * PageServer: what `pageserver serve` runs. The composition root of the daemon:
 *   - holds the workdir lock for its whole life (offline mutations then fail, naming this server);
 *   - loads every tenant and timeline of the workdir (server-load.ts); what fails to load is left out and
 *     reported as Broken, and the others are served (the served set: server-timelines.ts);
 *   - serves them over the libpq page service (pagestream, basebackup, fullbackup);
 *   - streams WAL into every timeline that has a WAL source, resuming from disk_consistent_lsn and reporting
 *     only durable LSNs to the replication slot;
 *   - runs the flush policy on a 1-second clock (checkpoint_timeout, and the memory ceiling across all
 *     timelines: the one holding the oldest unflushed WAL is frozen first);
 *   - answers the management API: its tenant and timeline operations are in server-management.ts, which
 *     adds what they create to the served set without a restart and drops what they delete;
 *   - with NeonJWT auth, holds one set of validation keys for the page service and the HTTP API, read at
 *     start and again by `reloadAuthKeys` (SIGHUP, POST /v1/reload_auth_validation_keys).
 * `stop()` stops the clocks, then shuts down gracefully within a deadline (server-shutdown.ts).
 * PageServer owns the state (the served set, the listeners, the lock, the lifecycle) and hands each of those
 * modules only what it uses.
 */
import { nativeCrc32cSource } from '../lib/crc32c-native.js'
import { messageOf, PageserverError, UsageError } from '../lib/errors.js'
import type { JwtAuth } from '../page-service/auth.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import { formatHostPort, splitHostPort } from '../config/index.js'
import { PageServiceServer } from '../page-service/server.js'
import { loadJwtAuth } from '../page-service/auth-keys.js'
import type { PageServiceBackend } from '../page-service/backend.js'
import { Repository } from '../repository/repository.js'
import type { DeleteTimelineOptions, Tenant } from '../repository/tenant.js'
import type { Timeline } from '../repository/timeline.js'
import { WorkdirLock } from '../storage/workdir-lock.js'
import { mkdir } from 'node:fs/promises'
import { basename } from 'node:path'
import { applyCacheSizes, redoBudgetOf, slabPoolOf, tenantOptions, type AppContext } from './context.js'
import { SLAB_TRIM_PERIOD_MS } from '../layer/value-slabs.js'
import { TimelineService, type BackupProducer } from './timeline-service.js'
import { createManagementServer, type CreateTimelineRequest, type ManagementOps } from '../http/management-api.js'
import type { JsonHttpServer } from '../http/http-server.js'
import type { ListedTenant } from './timelines.js'
import { readImportSlots } from './import-slot-records.js'
import { ServerSlotChecks } from './server-slot-checks.js'
import { ServedTimelines } from './server-timelines.js'
import { loadServedTimelines } from './server-load.js'
import { ServerManagement } from './server-management.js'
import { shutDownServer } from './server-shutdown.js'
import type { SyncResult } from './sync.js'
import type { Lsn } from '../pg/lsn.js'
import { renderMetrics } from './metrics.js'
import { removeAbandonedScratch } from '../postgres/initdb.js'
import { tmpdir } from 'node:os'
import { setMaxListeners } from 'node:events'

/** The flush clock: checkpoint_timeout and the memory ceiling are checked this often. */
export const FLUSH_TICK_MS = 1000

export interface ServerAddresses {
  pg: { host: string; port: number }
  http: { host: string; port: number }
}

export interface PageServerOptions {
  backups?: BackupProducer | null
  /** IMPORT_SLOT_RETRY_MS (server-slot-checks.ts) unless given (tests). */
  importSlotRetryMs?: number
}

export class PageServer implements PageServiceBackend, ManagementOps {
  /** The served timelines, and those (and the tenants) that failed to load at start. */
  private readonly served = new ServedTimelines()
  /** The tenant and timeline operations of the management API (server-management.ts). */
  private readonly management: ServerManagement
  private ticker: NodeJS.Timeout | null = null
  /** Addresses not yet written into the workdir lock (a full disk refused the write; retried each tick). */
  private pendingLockInfo: { pgAddr: string; httpAddr: string } | null = null
  private lockInfoFailed = false
  /** When the slab pool last gave back the free slabs it had not needed (tick). */
  private lastSlabTrimMs = Date.now()
  private stopping: Promise<void> | null = null
  /** Aborted when the shutdown's grace for management requests ends: stops what can be stopped (initdb). */
  private readonly shutdownAbort = new AbortController()
  /** Aborted as stop() begins: ends waits that only a running server could satisfy (an import's first WAL). */
  private readonly stopBegun = new AbortController()
  /**
   * Set when stop() returns: management requests still running then (an import, a wal_source change)
   * outlived the deadline, so the workdir lock was kept (see server-shutdown.ts). The process must exit now.
   */
  exitRequired = false
  private http: JsonHttpServer | null = null
  /** Reloads run one after another, so the last one asked for reads the files last. */
  private reloading: Promise<unknown> = Promise.resolve()
  /** Replication-slot housekeeping in the background (server-slot-checks.ts). */
  private readonly slotChecks: ServerSlotChecks

  private constructor(
    private readonly ctx: AppContext,
    private readonly lock: WorkdirLock,
    readonly repo: Repository,
    private readonly pageService: PageServiceServer,
    private readonly opts: PageServerOptions,
    /** The validation keys of the page service and the HTTP API (whichever use NeonJWT); null if neither. */
    private readonly jwt: JwtAuth | null,
  ) {
    const walSources = () => [...this.served.values()].flatMap((s) => (s.timeline.metadata.walSource === null ? [] : [s.timeline.metadata.walSource.connString]))
    this.slotChecks = new ServerSlotChecks(ctx, repo, walSources, opts.importSlotRetryMs)
    this.management = new ServerManagement({
      ctx,
      repo,
      served: this.served,
      addTimeline: (tenant, tl) => this.addTimeline(tenant, tl),
      stopping: () => this.stopping !== null,
      stopBegun: this.stopBegun.signal,
      shutdownAbort: this.shutdownAbort.signal,
    })
    // Every bootstrap and import wait in progress listens on these: no "possible leak" warning past 10.
    setMaxListeners(0, this.shutdownAbort.signal, this.stopBegun.signal)
  }

  static async start(ctx: AppContext, opts: PageServerOptions = {}): Promise<PageServer> {
    const c = ctx.config
    const pgAddr = splitHostPort(c.listenPgAddr)
    if (!pgAddr) throw new UsageError('BAD_LISTEN_ADDR', `listen_pg_addr "${c.listenPgAddr}" is not host:port`, { hint: 'Set listen_pg_addr = "127.0.0.1:64000".' })
    const httpAddr = splitHostPort(c.listenHttpAddr)
    if (!httpAddr) throw new UsageError('BAD_LISTEN_ADDR', `listen_http_addr "${c.listenHttpAddr}" is not host:port`, { hint: 'Set listen_http_addr = "127.0.0.1:9898".' })
    await mkdir(c.workdir, { recursive: true })
    const lock = WorkdirLock.acquire(c.workdir, 'serve')
    let repo: Repository | null = null
    let pageService: PageServiceServer | null = null
    let server: PageServer | null = null
    try {
      applyCacheSizes(ctx)
      repo = await Repository.open(c.workdir, tenantOptions(ctx))
      // One JwtAuth for both, so that a reload reaches both.
      const jwt = c.pgAuthType === 'NeonJWT' || c.httpAuthType === 'NeonJWT' ? await loadJwtAuth(c.authValidationPublicKeyPath!) : null
      if (jwt) ctx.log?.('info', 'JWT validation keys loaded', keysLogFields(c.authValidationPublicKeyPath!, jwt))
      pageService = new PageServiceServer(
        { timeline: (t, tl) => server!.timeline(t, tl) },
        {
          ...(c.pgAuthType === 'NeonJWT' ? { authType: 'jwt', jwtAuth: jwt! } : { authType: 'trust' }),
          waitLsnTimeoutMs: c.waitLsnTimeoutMs,
          connectionsMax: c.pageServiceMaxConnections,
          idleTimeoutMs: c.pageServiceIdleTimeoutMs,
        },
      )
      server = new PageServer(ctx, lock, repo, pageService, opts, jwt)
      await loadServedTimelines(ctx, repo, server.served, (tenant, tl) => server!.addTimeline(tenant, tl))
      // initdb scratch directories of processes that died mid-bootstrap (~40 MB each; a killed serve cannot
      // remove its own): removed now rather than at the next bootstrap, which may never come.
      const scratch = removeAbandonedScratch(tmpdir())
      if (scratch.length > 0) ctx.log?.('info', 'removed initdb scratch directories of processes that are gone', { dir: tmpdir(), removed: scratch })
      // Taken before the API can start imports of its own: every record here is a dead import's.
      const importSlots = await readImportSlots(c.workdir)
      await pageService.listen(pgAddr.host, pgAddr.port)
      server.http = createManagementServer(server, c.httpAuthType === 'NeonJWT' ? jwt : null, { ...(ctx.log ? { log: ctx.log } : {}) })
      await server.http.listen(httpAddr.host, httpAddr.port)
      server.pendingLockInfo = {
        pgAddr: formatHostPort(pageService.address.host, pageService.address.port),
        httpAddr: formatHostPort(server.http.address.host, server.http.address.port),
      }
      server.publishAddresses()
      for (const s of server.served.values()) s.startWal()
      server.ticker = setInterval(() => server!.tick(), FLUSH_TICK_MS)
      server.ticker.unref()
      ctx.log?.('info', 'page server started', { pg: pageService.address, http: server.http.address, timelines: server.served.size, ...server.served.brokenCounts, crc32c: nativeCrc32cSource.name })
      server.slotChecks.start(importSlots)
      return server
    } catch (e) {
      await pageService?.close().catch(() => {})
      await server?.http?.close().catch(() => {})
      await repo?.close().catch(() => {})
      lock.release()
      throw e
    }
  }

  get addresses(): ServerAddresses {
    return { pg: this.pageService.address, http: this.http!.address }
  }

  // --- management operations (HTTP API): the tenant and timeline ones are in server-management.ts ---

  listTenants(): Promise<ListedTenant[]> {
    return this.management.listTenants()
  }

  getTenant(t: TenantId): Promise<{ tenantId: string; timelines: number }> {
    return this.management.getTenant(t)
  }

  createTenant(id?: TenantId): Promise<{ tenantId: string }> {
    return this.management.createTenant(id)
  }

  deleteTenant(t: TenantId): Promise<{ tenantId: string; deleted: true }> {
    return this.management.deleteTenant(t)
  }

  listTimelines(t: TenantId): Promise<unknown[]> {
    return this.management.listTimelines(t)
  }

  getTimeline(t: TenantId, tl: TimelineId): Promise<unknown> {
    return this.management.getTimeline(t, tl)
  }

  createTimeline(t: TenantId, req: CreateTimelineRequest): Promise<unknown> {
    return this.management.createTimeline(t, req)
  }

  deleteTimeline(t: TenantId, tl: TimelineId, opts: DeleteTimelineOptions = {}): Promise<unknown> {
    return this.management.deleteTimeline(t, tl, opts)
  }

  checkpoint(t: TenantId, tl: TimelineId): Promise<unknown> {
    return this.management.checkpoint(t, tl)
  }

  setWalSource(t: TenantId, tl: TimelineId, src: { connString: string; slotName?: string }): Promise<unknown> {
    return this.management.setWalSource(t, tl, src)
  }

  syncTimeline(t: TenantId, tl: TimelineId, until: Lsn | undefined): Promise<SyncResult> {
    return this.management.syncTimeline(t, tl, until)
  }

  /**
   * Reads auth_validation_public_key_path again and verifies with those keys from now on. If they cannot be
   * loaded, the keys in use stay and JWT_KEYS_RELOAD_FAILED is thrown (500 on the HTTP API, as Neon's).
   * Logs the outcome either way (`reason`: what asked for it).
   */
  reloadAuthKeys(reason = 'POST /v1/reload_auth_validation_keys'): Promise<{ keys: number }> {
    const run = async (): Promise<{ keys: number }> => {
      const path = this.ctx.config.authValidationPublicKeyPath
      if (this.jwt === null || path === null) {
        this.ctx.log?.('info', 'JWT auth is not configured: no keys to reload', { reason })
        throw new UsageError('JWT_AUTH_NOT_CONFIGURED', 'there are no JWT validation keys to reload: pg_auth_type and http_auth_type are Trust', {
          hint: 'Set auth_type = "NeonJWT" and auth_validation_public_key_path in pageserver.toml, then restart.',
        })
      }
      let next: JwtAuth
      try {
        next = await loadJwtAuth(path)
      } catch (e) {
        const cause = e instanceof PageserverError ? e : null
        this.ctx.log?.('warn', 'reloading the JWT validation keys failed; the old keys stay in use', { reason, path, keys: this.jwt.keyCount, code: cause?.code, message: messageOf(e) })
        throw new PageserverError('internal', 'JWT_KEYS_RELOAD_FAILED', `reloading the JWT validation keys from ${path} failed, so the ${this.jwt.keyCount} loaded before stay in use: ${messageOf(e)}`, {
          hint: cause?.hint ?? 'Fix the key files, then reload again.',
          cause: e,
          details: { loadError: cause?.code ?? null },
        })
      }
      this.jwt.replaceKeys(next)
      this.ctx.log?.('info', 'JWT validation keys reloaded', { reason, ...keysLogFields(path, next) })
      return { keys: next.keyCount }
    }
    const done = this.reloading.then(run, run)
    this.reloading = done.catch(() => {})
    return done
  }

  metrics(): string {
    return renderMetrics(this.servedTimelines(), this.pageService, { ...this.served.brokenCounts, slabs: slabPoolOf(this.ctx), redoBudget: redoBudgetOf(this.ctx) })
  }

  /** Starts serving (and streaming WAL into) a timeline loaded from the repository. */
  async addTimeline(tenant: Tenant, tl: Timeline): Promise<TimelineService> {
    const existing = this.served.find(tenant.id, tl.timelineId)
    if (existing) return existing
    const c = this.ctx.config
    const s = new TimelineService(
      this.ctx,
      tenant,
      tl,
      { checkpointDistanceBytes: c.checkpointDistanceBytes, checkpointTimeoutMs: c.checkpointTimeoutMs, maxInMemoryLayersBytes: c.maxInMemoryLayersBytes },
      this.opts.backups ?? null,
    )
    this.served.add(s)
    // Not before the server runs (start() starts them all), nor once it is stopping: a create or import that
    // ends during the shutdown must not start streaming into a workdir about to be unlocked.
    if (this.ticker !== null && this.stopping === null) s.startWal()
    return s
  }

  /** The service of a served timeline; TIMELINE_BROKEN for one that failed to load, NotFoundError otherwise. */
  service(t: TenantId, tl: TimelineId): TimelineService {
    return this.served.service(t, tl)
  }

  timeline(t: TenantId, tl: TimelineId): TimelineService {
    return this.service(t, tl)
  }

  servedTimelines(): TimelineService[] {
    return [...this.served.values()]
  }

  /** The flush clock: timeouts per timeline, then the global memory ceiling. */
  private tick(): void {
    if (this.pendingLockInfo !== null) this.publishAddresses()
    this.slotChecks.tick()
    this.trimSlabs()
    for (const s of this.served.values()) {
      try {
        s.driver.tick()
      } catch (e) {
        this.ctx.log?.('error', 'flush tick failed', { timeline: s.timeline.timelineId, message: e instanceof Error ? e.message : String(e) })
      }
    }
    let total = 0
    for (const s of this.served.values()) total += s.timeline.inMemoryBytes
    if (total < this.ctx.config.maxInMemoryLayersBytes) return
    // Freeze the open layer holding the oldest unflushed WAL (its data has waited longest). Compared by the
    // open layer's start, not the timeline's oldest unflushed LSN: a timeline whose older WAL is frozen already
    // (its flush under way) would otherwise win every tick, its newer open layer cut into tiny L0s each second,
    // while an older open layer of another timeline waited.
    let oldest: TimelineService | null = null
    let oldestStart: Lsn | null = null
    for (const s of this.served.values()) {
      const l = s.timeline.openLayerStartLsn
      if (l === null || s.timeline.openLayerWalBytes === 0n) continue
      if (oldestStart === null || l < oldestStart) {
        oldest = s
        oldestStart = l
      }
    }
    oldest?.driver.freezeNow()
  }

  /**
   * Writes the listen addresses into the workdir lock, where the CLI finds the running server. A server that
   * cannot (the disk is full) still serves: it says so once and tries again every tick; until then CLI commands
   * on this workdir do not know the server's addresses (mutating ones are refused by the lock as ever).
   */
  private publishAddresses(): void {
    const info = this.pendingLockInfo
    if (info === null) return
    try {
      this.lock.updateInfo(info)
      if (this.lockInfoFailed) this.ctx.log?.('info', 'listen addresses written into the workdir lock', { ...info })
      this.pendingLockInfo = null
    } catch (e) {
      if (!this.lockInfoFailed) {
        this.ctx.log?.('warn', 'cannot write the listen addresses into the workdir lock; serving anyway, retrying every second', { code: e instanceof PageserverError ? e.code : 'IO_ERROR', message: messageOf(e) })
      }
      this.lockInfoFailed = true
    }
  }

  /** Every SLAB_TRIM_PERIOD_MS, the free slabs that sat unused since the previous time go back to the system. */
  private trimSlabs(): void {
    const now = Date.now()
    if (now - this.lastSlabTrimMs < SLAB_TRIM_PERIOD_MS) return
    this.lastSlabTrimMs = now
    const pool = slabPoolOf(this.ctx)
    const n = pool.trimUnused()
    if (n > 0) this.ctx.log?.('debug', 'gave back unused in-memory layer slabs', { slabs: n, bytes: n * pool.slabBytes, pooledBytes: pool.pooledBytes })
  }

  /**
   * For a process about to exit at once (serve's second signal): stops what runs in child processes of its
   * own (a bootstrap's initdb gets SIGTERM, then removes what it wrote), which would otherwise outlive it.
   */
  abortWork(): void {
    this.shutdownAbort.abort()
  }

  /** Graceful shutdown within `deadlineMs` (whatever is not flushed by then is re-streamed at the next start). */
  stop(deadlineMs = 30_000): Promise<void> {
    this.stopping ??= (async () => {
      this.stopBegun.abort()
      await this.slotChecks.stop()
      if (this.ticker) clearInterval(this.ticker)
      this.ticker = null
      const { ctx, http, pageService, served, repo, lock, shutdownAbort } = this
      const { exitRequired } = await shutDownServer({ ctx, http, pageService, served, repo, lock, shutdownAbort }, deadlineMs)
      if (exitRequired) this.exitRequired = true
    })()
    return this.stopping
  }
}

/** Where the keys came from, for the log: the path and its key files' names, never key material. */
function keysLogFields(path: string, jwt: JwtAuth): Record<string, unknown> {
  return { path, keys: jwt.keyCount, files: jwt.keyNames.map((n) => basename(n)) }
}
