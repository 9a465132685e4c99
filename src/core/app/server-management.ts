/**
 * The tenant and timeline operations of a running server's management API (PageServer answers ManagementOps
 * with these): list, create (bootstrap, branch, import), delete, checkpoint, sync, wal_source.
 *   - A timeline created here is served at once, without a restart; an import answers once its pages are
 *     readable (see importedAndReadable).
 *   - A deleted timeline or tenant leaves service first (its WAL receivers stopped, in-flight flushes
 *     finished), then its files go; a timeline that failed to load can still be deleted.
 *   - Operations that must not overlap (a branch and its ancestor's delete, say) are refused by one
 *     MutationGuard, held here because nothing else takes it.
 *   - During a shutdown: a bootstrap is stopped when the grace for management requests ends (`shutdownAbort`),
 *     an import stops waiting for its first WAL as the stop begins (`stopBegun`) and answers that it is done, a
 *     sync stops waiting and answers 503 SERVER_SHUTTING_DOWN with the position reached, and nothing restarts
 *     streaming.
 * A class of its own, given what it needs explicitly, so that PageServer stays the owner of the served set
 * and of the lifecycle, and these operations read as the API's contract.
 */
import { errorOfKind, NotFoundError, PageserverError, UnavailableError } from '../lib/errors.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import type { Repository } from '../repository/repository.js'
import type { DeleteTimelineOptions, Tenant } from '../repository/tenant.js'
import type { Timeline } from '../repository/timeline.js'
import type { CreateTimelineRequest } from '../http/management-api.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import type { AppContext } from './context.js'
import type { TimelineService } from './timeline-service.js'
import { timelineBroken, type ServedTimelines } from './server-timelines.js'
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
import { attachWalSource } from './wal-source.js'
import { noWalSource, type SyncResult } from './sync.js'
import { connectToSource } from './source-password.js'
import { walSourceSet } from './timelines-source.js'
import { MutationGuard } from './mutation-guard.js'

/** What the operations need of the server that owns them. */
export interface ManagementDeps {
  readonly ctx: AppContext
  readonly repo: Repository
  readonly served: ServedTimelines
  /** Serves a timeline just created (PageServer.addTimeline): its WAL starts streaming unless stopping. */
  addTimeline(tenant: Tenant, tl: Timeline): Promise<TimelineService>
  /** True once stop() was called: no WAL receiver is (re)started then. */
  stopping(): boolean
  /** Aborted as stop() begins: ends waits that only a running server could satisfy (an import's first WAL). */
  readonly stopBegun: AbortSignal
  /** Aborted when the shutdown's grace for management requests ends: stops what can be stopped (initdb). */
  readonly shutdownAbort: AbortSignal
}

export class ServerManagement {
  /** Management operations that must not overlap (a branch and its ancestor's delete, say). */
  private readonly guard = new MutationGuard()

  constructor(private readonly deps: ManagementDeps) {}

  async listTenants(): Promise<ListedTenant[]> {
    return listTenantsIn(this.deps.repo)
  }

  async getTenant(t: TenantId): Promise<{ tenantId: string; timelines: number }> {
    return tenantInfoIn(this.deps.repo, t)
  }

  async createTenant(id?: TenantId): Promise<{ tenantId: string }> {
    return createTenantIn(this.deps.repo, id)
  }

  async deleteTenant(t: TenantId): Promise<{ tenantId: string; deleted: true }> {
    const done = this.guard.beginDeleteTenant(t)
    try {
      await this.deps.repo.tenant(t) // NotFoundError before anything is stopped
      await this.deps.served.dropTenant(t)
      // Closes the tenant's timelines (waiting for their in-flight flushes) and redo workers, then deletes.
      return await deleteTenantIn(this.deps.repo, this.deps.ctx, t)
    } finally {
      done()
    }
  }

  async listTimelines(t: TenantId): Promise<unknown[]> {
    const { served } = this.deps
    const list = await listTimelinesIn(this.deps.repo, t, (id) => served.find(t, id)?.timeline ?? served.loadError(t, id) ?? null)
    // The served ones say how their WAL arrives (a receiver stopped for good shows there, not as Broken).
    return list.map((e) => {
      const s = e.state === 'Active' ? served.find(t, e.timelineId as TimelineId) : undefined
      return s === undefined ? e : { ...e, walReceiverStatus: s.walReceiverStatus() }
    })
  }

  async getTimeline(t: TenantId, tl: TimelineId): Promise<unknown> {
    const broken = this.deps.served.loadError(t, tl)
    if (broken) return brokenTimeline(t, tl, broken)
    const s = this.deps.served.service(t, tl)
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
    const { ctx, repo } = this.deps
    const tenant = await repo.tenant(t)
    let info
    if (req.importFrom) {
      const imported = await importTimelineIn(repo, ctx, { tenantId: t, timelineId: req.newTimelineId, connString: req.importFrom.connString, slotName: req.importFrom.slotName })
      const s = await this.deps.addTimeline(tenant, await tenant.timeline(imported.timelineId as TimelineId))
      return this.importedAndReadable(t, s, imported)
    } else if (req.ancestorTimelineId) {
      const broken = this.deps.served.loadError(t, req.ancestorTimelineId)
      if (broken) throw timelineBroken(t, req.ancestorTimelineId, broken)
      info = await branchTimelineIn(repo, ctx, { tenantId: t, ancestorTimelineId: req.ancestorTimelineId, lsn: req.ancestorStartLsn, timelineId: req.newTimelineId })
    } else {
      info = await bootstrapTimelineIn(repo, ctx, { tenantId: t, timelineId: req.newTimelineId, dataChecksums: req.dataChecksums, signal: this.deps.shutdownAbort })
    }
    const tl = await tenant.timeline(info.timelineId as TimelineId)
    await this.deps.addTimeline(tenant, tl)
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
    if (tl.lastRecordLsn < readableFrom && this.deps.stopping()) return stopping()
    if (tl.lastRecordLsn < readableFrom) {
      try {
        await s.waitForLsn(readableFrom, this.deps.ctx.config.waitLsnTimeoutMs, this.deps.stopBegun)
      } catch (e) {
        if (this.deps.stopBegun.aborted) return stopping()
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
    const { ctx, repo, served } = this.deps
    const done = this.guard.beginDeleteTimeline(t, tl)
    try {
      if (served.loadError(t, tl) !== undefined) {
        const r = await deleteTimelineIn(repo, ctx, t, tl, undefined, opts)
        served.forgetBroken(t, tl)
        return r
      }
      // The refusals (a branch of it on disk, served or not) come before the timeline leaves service.
      return await deleteTimelineIn(repo, ctx, t, tl, () => served.dropTimeline(t, tl), opts)
    } finally {
      done()
    }
  }

  async checkpoint(t: TenantId, tl: TimelineId): Promise<unknown> {
    const s = this.deps.served.service(t, tl)
    const lsn = await s.driver.checkpoint()
    return { tenantId: t, timelineId: tl, diskConsistentLsn: formatLsn(lsn), layers: s.timeline.layerFiles().length }
  }

  async setWalSource(t: TenantId, tl: TimelineId, src: { connString: string; slotName?: string }): Promise<unknown> {
    const s = this.deps.served.service(t, tl)
    // While it runs, the timeline and its tenant cannot be deleted (which would leave streaming restarted
    // into a timeline that is gone, re-creating its slot on the primary).
    const done = this.guard.beginChange(t, tl)
    try {
      await s.stopWal()
      let attached: Awaited<ReturnType<typeof attachWalSource>>
      try {
        attached = await attachWalSource(this.deps.ctx, this.deps.repo, s.timeline, src)
      } finally {
        // Refused or failed, the timeline keeps streaming from the source it had (the metadata still names it);
        // not once the server is stopping (its receivers are being stopped).
        if (!this.deps.stopping()) s.startWal()
      }
      return walSourceSet(t, tl, attached)
    } finally {
      done()
    }
  }

  async syncTimeline(t: TenantId, tl: TimelineId, until: Lsn | undefined): Promise<SyncResult> {
    const { ctx } = this.deps
    const s = this.deps.served.service(t, tl)
    const src = s.timeline.metadata.walSource
    if (src === null) {
      throw noWalSource(t, tl)
    }
    let target = until
    if (target === undefined) {
      // Asking the source where its WAL ends stops with a shutdown too (an unreachable primary's connect
      // timeout is as long as the shutdown's grace).
      let conn
      try {
        conn = (await connectToSource(ctx, src.connString, { applicationName: 'pageserver sync', signal: this.deps.stopBegun })).conn
        target = (await conn.identifySystem()).xlogPos
      } catch (e) {
        if (this.deps.stopBegun.aborted) throw syncStopped(tl, s, null, e)
        throw e
      } finally {
        await conn?.close()
      }
    }
    // The server's receiver does the streaming; `records` counts what it ingested while this request waited.
    const before = s.driver.ingest.stats.records
    if (s.timeline.lastRecordLsn < target) {
      ctx.log?.('info', 'sync waiting for WAL', { tenant: t, timeline: tl, from: formatLsn(s.timeline.lastRecordLsn), until: formatLsn(target) })
    }
    // Through the service: a receiver stopped for good fails this at once instead of at the timeout. A
    // shutdown ends the wait at once (the receivers stop next): answered here, instead of holding the
    // shutdown for its grace and having the process exit under this request.
    try {
      await s.waitForLsn(target, ctx.config.waitLsnTimeoutMs, this.deps.stopBegun)
      await s.driver.checkpoint()
    } catch (e) {
      if (this.deps.stopBegun.aborted) throw syncStopped(tl, s, target, e)
      // Deleted meanwhile, the timeline answers TIMELINE_CLOSED ("shutting down", 503): a client retrying on 503
      // would only get the 404 next.
      if (s.deleted()) throw new NotFoundError('TIMELINE_NOT_FOUND', `timeline ${tl} of tenant ${t} was deleted while the sync waited`, { cause: e })
      throw e
    }
    return {
      tenantId: t,
      timelineId: tl,
      lastRecordLsn: formatLsn(s.timeline.lastRecordLsn),
      diskConsistentLsn: formatLsn(s.timeline.diskConsistentLsn),
      records: s.driver.ingest.stats.records - before,
    }
  }
}

/** A sync cut short by the server's shutdown: where the timeline got to, and what to do. */
function syncStopped(tl: TimelineId, s: TimelineService, target: Lsn | null, cause: unknown): UnavailableError {
  const of = target === null ? '' : ` of ${formatLsn(target)}`
  return new UnavailableError('SERVER_SHUTTING_DOWN', `the page server is stopping: timeline ${tl} synced to ${formatLsn(s.timeline.lastRecordLsn)}${of}`, {
    hint: 'Run the sync again once the server is back, or offline once it has stopped: the rest of the WAL streams again from the replication slot.',
    cause,
  })
}
