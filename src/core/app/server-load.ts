/**
 * The loading of a workdir's tenants and timelines when `serve` starts. Whatever fails to load is logged and
 * kept as Broken (server-timelines.ts) rather than failing the start: one damaged file (metadata, a layer
 * file, a broken ancestor) or one unreadable tenant directory does not keep every other tenant from being
 * served. What a load repaired or moved aside (half-written files of a crash, layers above
 * disk_consistent_lsn) is logged here, once, at the start.
 */
import { messageOf, PageserverError } from '../lib/errors.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import type { IgnoredTenantEntry, Repository } from '../repository/repository.js'
import { FUTURE_LAYERS_DIR } from '../repository/future-layers.js'
import type { Tenant } from '../repository/tenant.js'
import type { Timeline } from '../repository/timeline.js'
import { formatLsn } from '../pg/lsn.js'
import { basename } from 'node:path'
import type { AppContext } from './context.js'
import type { ServedTimelines } from './server-timelines.js'

/** Loads every tenant and timeline of `repo`: serves those that load (`serve`), and marks the rest Broken in `served`. */
export async function loadServedTimelines(
  ctx: AppContext,
  repo: Repository,
  served: ServedTimelines,
  serve: (tenant: Tenant, tl: Timeline) => Promise<unknown>,
): Promise<void> {
  const ignored: IgnoredTenantEntry[] = []
  const tenantIds = await repo.tenantIds(ignored)
  for (const { path, reason, configMissing, unreadable } of ignored) {
    ctx.log?.(unreadable === undefined ? 'warn' : 'error', `${path}: ${reason}; ignored`, { path })
    // A tenant whose config.toml is gone, or whose directory cannot be read: its requests say why.
    const why = configMissing ?? unreadable
    if (why !== undefined) served.markTenantBroken(basename(path) as TenantId, why)
  }
  for (const tid of tenantIds) {
    let tenant: Tenant
    let timelineIds: TimelineId[]
    try {
      tenant = await repo.tenant(tid)
      timelineIds = await tenant.timelineIds()
    } catch (e) {
      // One tenant whose directory cannot be read does not keep the others from being served.
      const err = e instanceof PageserverError ? e : new PageserverError('internal', 'TENANT_LOAD_FAILED', `loading failed: ${messageOf(e)}`, { cause: e })
      served.markTenantBroken(tid, err)
      ctx.log?.('error', 'tenant failed to load; none of its timelines is served', { tenant: tid, code: err.code, message: err.message, hint: err.hint })
      continue
    }
    for (const tlid of timelineIds) {
      let tl: Timeline
      try {
        tl = await tenant.timeline(tlid)
      } catch (e) {
        const err = e instanceof PageserverError ? e : new PageserverError('internal', 'TIMELINE_LOAD_FAILED', `loading failed: ${messageOf(e)}`, { cause: e })
        served.markBroken(tid, tlid, err)
        ctx.log?.('error', 'timeline failed to load; it is not served', { tenant: tid, timeline: tlid, code: err.code, message: err.message, hint: err.hint })
        continue
      }
      logLoadRepairs(ctx, tid, tlid, tl)
      await serve(tenant, tl)
    }
  }
}

/** What loading `tl` cleaned up after a crash, for the operator. */
function logLoadRepairs(ctx: AppContext, tid: TenantId, tlid: TimelineId, tl: Timeline): void {
  if (tl.leftoversRemoved.length > 0) {
    ctx.log?.('info', 'removed files a crash left half-written', { tenant: tid, timeline: tlid, files: tl.leftoversRemoved })
  }
  if (tl.layersMovedAside.length > 0) {
    // One line for all (an audit's restore moved 114): the files, and what they are.
    ctx.log?.('warn', 'layer files above disk_consistent_lsn moved aside', {
      tenant: tid,
      timeline: tlid,
      files: tl.layersMovedAside,
      diskConsistentLsn: formatLsn(tl.diskConsistentLsn),
      hint: `Left by a flush a crash cut short, their WAL is streamed again, and they are deleted once flushed past. If the metadata was restored from an older backup, they may be the only copy of that WAL: they are in ${FUTURE_LAYERS_DIR}/ of the timeline directory.`,
    })
  }
}
