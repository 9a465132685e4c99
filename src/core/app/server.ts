/**
 * PageServer: what `pageserver serve` runs. The composition root of the daemon:
 *   - holds the workdir lock for its whole life (offline mutations then fail, naming this server);
 *   - loads every tenant and timeline of the workdir; a timeline that fails to load (damaged metadata or
 *     layer file, a broken ancestor) is left out and reported as Broken, and the others are served;
 *   - serves them over the libpq page service (pagestream, basebackup, fullbackup);
 *   - streams WAL into every timeline that has a WAL source, resuming from disk_consistent_lsn and reporting
 *     only durable LSNs to the replication slot;
 *   - runs the flush policy on a 1-second clock (checkpoint_timeout, and the memory ceiling across all
 *     timelines: the one holding the oldest unflushed WAL is frozen first);
 *   - adds tenants and timelines created through its management API without a restart, and drops deleted
 *     ones (their WAL receivers stopped, in-flight flushes finished) before their files go;
 *   - with NeonJWT auth, holds one set of validation keys for the page service and the HTTP API, read at
 *     start and again by `reloadAuthKeys` (SIGHUP, POST /v1/reload_auth_validation_keys).
 * `stop()` shuts down gracefully: stop accepting, stop WAL receivers, flush every timeline, stop the redo
 * workers, release the lock.
 */
import { errorOfKind, messageOf, NotFoundError, PageserverError, UsageError } from '../lib/errors.js'
import type { JwtAuth } from '../page-service/auth.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import { formatHostPort, splitHostPort } from '../config/index.js'
import { PageServiceServer } from '../page-service/server.js'
import { loadJwtAuth } from '../page-service/auth-keys.js'
import type { PageServiceBackend } from '../page-service/backend.js'
import { Repository, type IgnoredTenantEntry } from '../repository/repository.js'
import { FUTURE_LAYERS_DIR } from '../repository/future-layers.js'
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
import {
  activeTimeline,
  bootstrapTimelineIn,
  branchTimelineIn,
  brokenTimeline,
  createTenantIn,
  deleteTenantIn,
  deleteTimelineIn,
  listTenantsIn,
  listTimelinesIn,
  tenantInfoIn,
  timelineInfo,
  type ListedTenant,
} from './timelines.js'
import { importTimelineIn, type ImportResult } from './import.js'
import { readImportSlots } from './import-slot-records.js'
import { ServerSlotChecks } from './server-slot-checks.js'
import { attachWalSource } from './wal-source.js'
import { noWalSource, type SyncResult } from './sync.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { connectToSource } from './source-password.js'
import { walSourceSet } from './timelines-source.js'
import { renderMetrics } from './metrics.js'
import { MutationGuard } from './mutation-guard.js'
import { removeAbandonedScratch } from '../postgres/initdb.js'
import { tmpdir } from 'node:os'
import { setMaxListeners } from 'node:events'

/** The flush clock: checkpoint_timeout and the memory ceiling are checked this often. */
export const FLUSH_TICK_MS = 1000
/**
 * At shutdown, how long management requests in progress may take to finish and be answered (at most a third
 * of the shutdown deadline): a bootstrap (a few seconds) completes and is answered; a longer import is
 * answered 503 and the process exits under it (see stop()).
 */
const HTTP_SHUTDOWN_GRACE_MS = 10_000


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
  private readonly services = new Map<string, TimelineService>()
  /** Timelines that failed to load at start, by key: not served; requests for them get TIMELINE_BROKEN. */
  private readonly broken = new Map<string, PageserverError>()
  /** Tenants whose timelines could not even be listed at start (their directory unreadable): none served. */
  private readonly brokenTenants = new Map<TenantId, PageserverError>()
  /** Management operations that must not overlap (a branch and its ancestor's delete, say). */
  private readonly guard = new MutationGuard()
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
   * outlived the deadline, so the workdir lock was kept (see stop). The process must exit now.
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
    const walSources = () => [...this.services.values()].flatMap((s) => (s.timeline.metadata.walSource === null ? [] : [s.timeline.metadata.walSource.connString]))
    this.slotChecks = new ServerSlotChecks(ctx, repo, walSources, opts.importSlotRetryMs)
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
      await server.loadAll()
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
      for (const s of server.services.values()) s.startWal()
      server.ticker = setInterval(() => server!.tick(), FLUSH_TICK_MS)
      server.ticker.unref()
      ctx.log?.('info', 'page server started', { pg: pageService.address, http: server.http.address, timelines: server.services.size, brokenTimelines: server.broken.size, brokenTenants: server.brokenTenants.size })
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

  // --- management operations (HTTP API) ---

  async listTenants(): Promise<ListedTenant[]> {
    return listTenantsIn(this.repo)
  }

  async getTenant(t: TenantId): Promise<{ tenantId: string; timelines: number }> {
    return tenantInfoIn(this.repo, t)
  }

  async createTenant(id?: TenantId): Promise<{ tenantId: string }> {
    return createTenantIn(this.repo, id)
  }

  async deleteTenant(t: TenantId): Promise<{ tenantId: string; deleted: true }> {
    const done = this.guard.beginDeleteTenant(t)
    try {
      await this.repo.tenant(t) // NotFoundError before anything is stopped
      await this.dropTenant(t)
      // Closes the tenant's timelines (waiting for their in-flight flushes) and redo workers, then deletes.
      return await deleteTenantIn(this.repo, this.ctx, t)
    } finally {
      done()
    }
  }

  async listTimelines(t: TenantId): Promise<unknown[]> {
    const list = await listTimelinesIn(this.repo, t, (id) => this.services.get(this.key(t, id))?.timeline ?? this.broken.get(this.key(t, id)) ?? null)
    // The served ones say how their WAL arrives (a receiver stopped for good shows there, not as Broken).
    return list.map((e) => {
      const s = e.state === 'Active' ? this.services.get(this.key(t, e.timelineId as TimelineId)) : undefined
      return s === undefined ? e : { ...e, walReceiverStatus: s.walReceiverStatus() }
    })
  }

  async getTimeline(t: TenantId, tl: TimelineId): Promise<unknown> {
    const broken = this.broken.get(this.key(t, tl))
    if (broken) return brokenTimeline(t, tl, broken)
    const s = this.service(t, tl)
    return { ...activeTimeline(timelineInfo(t, tl, s.timeline.metadata, s.timeline)), walReceiverStatus: s.walReceiverStatus() }
  }

  async createTimeline(t: TenantId, req: CreateTimelineRequest): Promise<unknown> {
    // Until the new timeline is served, its tenant (and a branch's ancestor) must not be deleted under it.
    const done = this.guard.beginCreate(t, req.ancestorTimelineId, req.newTimelineId)
    try {
      return await this.createTimelineGuarded(t, req)
    } finally {
      done()
    }
  }

  private async createTimelineGuarded(t: TenantId, req: CreateTimelineRequest): Promise<unknown> {
    const tenant = await this.repo.tenant(t)
    let info
    if (req.importFrom) {
      const imported = await importTimelineIn(this.repo, this.ctx, { tenantId: t, timelineId: req.newTimelineId, connString: req.importFrom.connString, slotName: req.importFrom.slotName })
      const s = await this.addTimeline(tenant, await tenant.timeline(imported.timelineId as TimelineId))
      return this.importedAndReadable(t, s, imported)
    } else if (req.ancestorTimelineId) {
      const broken = this.broken.get(this.key(t, req.ancestorTimelineId))
      if (broken) throw timelineBroken(t, req.ancestorTimelineId, broken)
      info = await branchTimelineIn(this.repo, this.ctx, { tenantId: t, ancestorTimelineId: req.ancestorTimelineId, lsn: req.ancestorStartLsn, timelineId: req.newTimelineId })
    } else {
      info = await bootstrapTimelineIn(this.repo, this.ctx, { tenantId: t, timelineId: req.newTimelineId, dataChecksums: req.dataChecksums, signal: this.shutdownAbort.signal })
    }
    const tl = await tenant.timeline(info.timelineId as TimelineId)
    await this.addTimeline(tenant, tl)
    return info
  }

  /**
   * An import's answer once its pages are readable: the base backup ends past its start (minReadableLsn), and
   * the offline import streams the WAL up to there before it answers; so does the receiver here, and the
   * answer gives the position reached. Otherwise a script would branch at the returned lastRecordLsn, below
   * the readable start, and be refused.
   */
  private async importedAndReadable(t: TenantId, s: TimelineService, info: ImportResult): Promise<ImportResult> {
    const tl = s.timeline
    const readableFrom = tl.metadata.minReadableLsn
    // Once stopping, no receiver starts and a wait only runs into the shutdown: the import is done, and says so.
    const stopping = (): ImportResult => ({
      ...info,
      ...timelineInfo(t, tl.timelineId, tl.metadata, tl),
      notes: [...info.notes, `The page server is stopping: its WAL up to the end of the base backup (${formatLsn(readableFrom)}) streams at its next start, and its pages are readable from then on.`],
    })
    if (tl.lastRecordLsn < readableFrom && this.stopping !== null) return stopping()
    if (tl.lastRecordLsn < readableFrom) {
      try {
        await s.waitForLsn(readableFrom, this.ctx.config.waitLsnTimeoutMs, this.stopBegun.signal)
      } catch (e) {
        if (this.stopBegun.signal.aborted) return stopping()
        if (!(e instanceof PageserverError)) throw e
        throw errorOfKind(e.kind, e.code, `timeline ${tl.timelineId} was imported, but its WAL up to the end of the base backup (${formatLsn(readableFrom)}) did not arrive: ${e.message}`, {
          hint: `${e.hint ? `${e.hint} ` : ''}The timeline exists and is served; \`timeline list\` shows its WAL receiver.`,
          cause: e,
          details: { ...e.details, tenantId: t, timelineId: tl.timelineId },
        })
      }
    }
    return { ...info, ...timelineInfo(t, tl.timelineId, tl.metadata, tl) }
  }

  async deleteTimeline(t: TenantId, tl: TimelineId, opts: DeleteTimelineOptions = {}): Promise<unknown> {
    const done = this.guard.beginDeleteTimeline(t, tl)
    try {
      const k = this.key(t, tl)
      if (this.broken.has(k)) {
        const r = await deleteTimelineIn(this.repo, this.ctx, t, tl, undefined, opts)
        this.broken.delete(k)
        return r
      }
      // The refusals (a branch of it on disk, served or not) come before the timeline leaves service.
      return await deleteTimelineIn(this.repo, this.ctx, t, tl, () => this.dropTimeline(t, tl), opts)
    } finally {
      done()
    }
  }

  async checkpoint(t: TenantId, tl: TimelineId): Promise<unknown> {
    const s = this.service(t, tl)
    const lsn = await s.driver.checkpoint()
    return { tenantId: t, timelineId: tl, diskConsistentLsn: formatLsn(lsn), layers: s.timeline.layerFiles().length }
  }

  async setWalSource(t: TenantId, tl: TimelineId, src: { connString: string; slotName?: string }): Promise<unknown> {
    const s = this.service(t, tl)
    // While it runs, the timeline and its tenant cannot be deleted (which would leave streaming restarted
    // into a timeline that is gone, re-creating its slot on the primary).
    const done = this.guard.beginChange(t, tl)
    try {
      await s.stopWal()
      let attached: Awaited<ReturnType<typeof attachWalSource>>
      try {
        attached = await attachWalSource(this.ctx, s.timeline, src)
      } finally {
        // Refused or failed, the timeline keeps streaming from the source it had (the metadata still names it);
        // not once the server is stopping (its receivers are being stopped).
        if (this.stopping === null) s.startWal()
      }
      return walSourceSet(t, tl, attached)
    } finally {
      done()
    }
  }

  async syncTimeline(t: TenantId, tl: TimelineId, until: Lsn | undefined): Promise<SyncResult> {
    const s = this.service(t, tl)
    const src = s.timeline.metadata.walSource
    if (src === null) {
      throw noWalSource(t, tl)
    }
    let target = until
    if (target === undefined) {
      const { conn } = await connectToSource(this.ctx, src.connString, { applicationName: 'pageserver sync' })
      try {
        target = (await conn.identifySystem()).xlogPos
      } finally {
        await conn.close()
      }
    }
    // The server's receiver does the streaming; `records` counts what it ingested while this request waited.
    const before = s.driver.ingest.stats.records
    // Through the service: a receiver stopped for good fails this at once instead of at the timeout.
    await s.waitForLsn(target, this.ctx.config.waitLsnTimeoutMs, new AbortController().signal)
    await s.driver.checkpoint()
    return {
      tenantId: t,
      timelineId: tl,
      lastRecordLsn: formatLsn(s.timeline.lastRecordLsn),
      diskConsistentLsn: formatLsn(s.timeline.diskConsistentLsn),
      records: s.driver.ingest.stats.records - before,
    }
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
    return renderMetrics(this.servedTimelines(), this.pageService, { brokenTimelines: this.broken.size, brokenTenants: this.brokenTenants.size, slabs: slabPoolOf(this.ctx), redoBudget: redoBudgetOf(this.ctx) })
  }

  private key(t: TenantId, tl: TimelineId): string {
    return `${t}/${tl}`
  }

  /**
   * Loads and serves every timeline. One that fails to load is logged and kept as Broken (listed with its
   * error, requests for it refused with TIMELINE_BROKEN) so that one damaged file does not keep every other
   * tenant from being served.
   */
  private async loadAll(): Promise<void> {
    const ignored: IgnoredTenantEntry[] = []
    const tenantIds = await this.repo.tenantIds(ignored)
    for (const { path, reason, configMissing, unreadable } of ignored) {
      this.ctx.log?.(unreadable === undefined ? 'warn' : 'error', `${path}: ${reason}; ignored`, { path })
      // A tenant whose config.toml is gone, or whose directory cannot be read: its requests say why.
      const why = configMissing ?? unreadable
      if (why !== undefined) this.brokenTenants.set(basename(path) as TenantId, why)
    }
    for (const tid of tenantIds) {
      let tenant: Tenant
      let timelineIds: TimelineId[]
      try {
        tenant = await this.repo.tenant(tid)
        timelineIds = await tenant.timelineIds()
      } catch (e) {
        // One tenant whose directory cannot be read does not keep the others from being served.
        const err = e instanceof PageserverError ? e : new PageserverError('internal', 'TENANT_LOAD_FAILED', `loading failed: ${messageOf(e)}`, { cause: e })
        this.brokenTenants.set(tid, err)
        this.ctx.log?.('error', 'tenant failed to load; none of its timelines is served', { tenant: tid, code: err.code, message: err.message, hint: err.hint })
        continue
      }
      for (const tlid of timelineIds) {
        let tl: Timeline
        try {
          tl = await tenant.timeline(tlid)
        } catch (e) {
          const err = e instanceof PageserverError ? e : new PageserverError('internal', 'TIMELINE_LOAD_FAILED', `loading failed: ${messageOf(e)}`, { cause: e })
          this.broken.set(this.key(tid, tlid), err)
          this.ctx.log?.('error', 'timeline failed to load; it is not served', { tenant: tid, timeline: tlid, code: err.code, message: err.message, hint: err.hint })
          continue
        }
        if (tl.leftoversRemoved.length > 0) {
          this.ctx.log?.('info', 'removed files a crash left half-written', { tenant: tid, timeline: tlid, files: tl.leftoversRemoved })
        }
        if (tl.layersMovedAside.length > 0) {
          // One line for all (an audit's restore moved 114): the files, and what they are.
          this.ctx.log?.('warn', 'layer files above disk_consistent_lsn moved aside', {
            tenant: tid,
            timeline: tlid,
            files: tl.layersMovedAside,
            diskConsistentLsn: formatLsn(tl.diskConsistentLsn),
            hint: `Left by a flush a crash cut short, their WAL is streamed again, and they are deleted once flushed past. If the metadata was restored from an older backup, they may be the only copy of that WAL: they are in ${FUTURE_LAYERS_DIR}/ of the timeline directory.`,
          })
        }
        await this.addTimeline(tenant, tl)
      }
    }
  }

  /** Starts serving (and streaming WAL into) a timeline loaded from the repository. */
  async addTimeline(tenant: Tenant, tl: Timeline): Promise<TimelineService> {
    const k = this.key(tenant.id, tl.timelineId)
    const existing = this.services.get(k)
    if (existing) return existing
    const c = this.ctx.config
    const s = new TimelineService(
      this.ctx,
      tenant,
      tl,
      { checkpointDistanceBytes: c.checkpointDistanceBytes, checkpointTimeoutMs: c.checkpointTimeoutMs, maxInMemoryLayersBytes: c.maxInMemoryLayersBytes },
      this.opts.backups ?? null,
    )
    this.services.set(k, s)
    // Not before the server runs (start() starts them all), nor once it is stopping: a create or import that
    // ends during the shutdown must not start streaming into a workdir about to be unlocked.
    if (this.ticker !== null && this.stopping === null) s.startWal()
    return s
  }

  /** The service of a served timeline; TIMELINE_BROKEN for one that failed to load, NotFoundError otherwise. */
  service(t: TenantId, tl: TimelineId): TimelineService {
    const s = this.services.get(this.key(t, tl))
    if (!s) {
      const brokenTenant = this.brokenTenants.get(t)
      if (brokenTenant) throw tenantBroken(t, brokenTenant)
      const broken = this.broken.get(this.key(t, tl))
      if (broken) throw timelineBroken(t, tl, broken)
      throw new NotFoundError('TIMELINE_NOT_FOUND', `timeline ${tl} of tenant ${t} is not served here`, {
        hint: 'Check the ids with `pageserver timeline list --tenant <id>`.',
      })
    }
    return s
  }

  timeline(t: TenantId, tl: TimelineId): TimelineService {
    return this.service(t, tl)
  }

  servedTimelines(): TimelineService[] {
    return [...this.services.values()]
  }

  /**
   * Removes a timeline from service, once its delete is past the refusals (Tenant.deleteTimeline checks every
   * timeline's metadata on disk for branches of it, which include the served ones).
   */
  private async dropTimeline(t: TenantId, tl: TimelineId): Promise<void> {
    const s = this.service(t, tl)
    await s.stopWal()
    this.services.delete(this.key(t, tl))
    s.retire()
  }

  /**
   * Removes every timeline of a tenant from service (before deleting the tenant): out of the served set
   * first, so the flush clock and new page service sessions no longer find them, then their WAL receivers
   * are stopped. No final flush: the data is about to be deleted.
   */
  private async dropTenant(t: TenantId): Promise<void> {
    this.brokenTenants.delete(t)
    for (const k of this.broken.keys()) if (k.startsWith(`${t}/`)) this.broken.delete(k)
    const dropped: TimelineService[] = []
    for (const [k, s] of this.services) {
      if (s.tenant.id !== t) continue
      this.services.delete(k)
      dropped.push(s)
    }
    await Promise.all(dropped.map((s) => s.stopWal()))
    for (const s of dropped) s.retire()
  }

  /** The flush clock: timeouts per timeline, then the global memory ceiling. */
  private tick(): void {
    if (this.pendingLockInfo !== null) this.publishAddresses()
    this.slotChecks.tick()
    this.trimSlabs()
    for (const s of this.services.values()) {
      try {
        s.driver.tick()
      } catch (e) {
        this.ctx.log?.('error', 'flush tick failed', { timeline: s.timeline.timelineId, message: e instanceof Error ? e.message : String(e) })
      }
    }
    let total = 0
    for (const s of this.services.values()) total += s.timeline.inMemoryBytes
    if (total < this.ctx.config.maxInMemoryLayersBytes) return
    // Freeze the timeline holding the oldest unflushed WAL (its data has waited longest).
    let oldest: TimelineService | null = null
    for (const s of this.services.values()) {
      const l = s.timeline.oldestUnflushedLsn
      if (l === null || s.timeline.openLayerWalBytes === 0n) continue
      if (oldest === null || l < oldest.timeline.oldestUnflushedLsn!) oldest = s
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

  /** Graceful shutdown within `deadlineMs` (whatever is not flushed by then is re-streamed at the next start). */
  stop(deadlineMs = 30_000): Promise<void> {
    this.stopping ??= (async () => {
      this.stopBegun.abort()
      await this.slotChecks.stop()
      if (this.ticker) clearInterval(this.ticker)
      this.ticker = null
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref())
      const work = (async () => {
        // Management requests in progress get a share of the deadline to finish and be answered.
        await this.http?.close(Math.min(HTTP_SHUTDOWN_GRACE_MS, deadlineMs / 3))
        this.shutdownAbort.abort()
        await this.pageService.close()
        await Promise.all([...this.services.values()].map((s) => s.stopWal()))
        for (const s of this.services.values()) {
          try {
            await s.driver.checkpoint()
          } catch (e) {
            // Nothing is lost: the slot keeps the WAL above disk_consistent_lsn, streamed again at the next start.
            this.ctx.log?.('error', 'flush at shutdown failed; the WAL not flushed streams again from the replication slot at the next start', {
              tenant: s.tenant.id,
              timeline: s.timeline.timelineId,
              code: e instanceof PageserverError ? e.code : 'INTERNAL',
              message: messageOf(e),
              notFlushedFrom: formatLsn(s.timeline.diskConsistentLsn),
              notFlushedTo: formatLsn(s.timeline.lastRecordLsn),
            })
          }
        }
      })()
      const finished = await Promise.race([work.then(() => true), deadline.then(() => false)])
      // Past the deadline the repository is not closed: its close waits for the flush still running (a slow
      // or hung disk), which the deadline is there to cut short. The process exits under it (below).
      if (finished) await this.repo.close().catch(() => {})
      const running = this.http?.handlersRunning ?? 0
      if (running > 0 || !finished) {
        // Work still going on (a handler: an import's base backup, a wal_source change; or the shutdown's own
        // flush past the deadline) would go on writing into the workdir: keep the lock, so nothing else takes
        // the workdir, and have the process exit (serve does; the lock goes with the process). The next start
        // cleans up what it left (a half-made timeline directory, an import's slot, a half-written layer), as
        // after a crash.
        this.exitRequired = true
        this.ctx.log?.(
          'warn',
          running > 0
            ? 'page server stopped with management requests still running: exiting under them, with the workdir lock held to the end'
            : 'page server stopped at the shutdown deadline with its flush still running: exiting under it, with the workdir lock held to the end',
          { requests: running },
        )
      } else {
        this.lock.release()
      }
      this.ctx.log?.('info', 'page server stopped', {})
    })()
    return this.stopping
  }
}

/** Where the keys came from, for the log: the path and its key files' names, never key material. */
function keysLogFields(path: string, jwt: JwtAuth): Record<string, unknown> {
  return { path, keys: jwt.keyCount, files: jwt.keyNames.map((n) => basename(n)) }
}

/** What a request for a timeline that failed to load gets: the load's error, and how to get out of it. */
function tenantBroken(t: TenantId, cause: PageserverError): PageserverError {
  return errorOfKind(cause.kind === 'not_found' ? 'corruption' : cause.kind, 'TENANT_BROKEN', `tenant ${t} failed to load when the server started, so none of its timelines is served: ${cause.message}`, {
    hint: `${cause.hint ? `${cause.hint} ` : ''}Once that is repaired, restarting the server loads the tenant; \`pageserver tenant delete\` removes it instead.`,
    cause,
    details: { loadError: cause.code },
  })
}

function timelineBroken(t: TenantId, tl: TimelineId, cause: PageserverError): PageserverError {
  return errorOfKind(cause.kind === 'not_found' ? 'corruption' : cause.kind, 'TIMELINE_BROKEN', `timeline ${tl} of tenant ${t} failed to load when the server started, so it is not served: ${cause.message}`, {
    hint: `${cause.hint ? `${cause.hint} ` : ''}Once that is repaired, restarting the server loads the timeline; \`pageserver timeline delete\` removes the timeline instead.`,
    cause,
    details: { loadError: cause.code },
  })
}
