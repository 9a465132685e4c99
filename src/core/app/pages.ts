/**
 * Reading pages offline (`getpage` without `--server`) and flushing a timeline (`checkpoint`).
 */
import { UsageError } from '../lib/errors.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { formatRelFileNode, forkName, type RelTag } from '../pg/reltag.js'
import { DatadirReader } from '../datadir/read.js'
import type { Tenant } from '../repository/tenant.js'
import type { Timeline } from '../repository/timeline.js'
import { lsnBeforeStart } from '../page-service/lsn-rules.js'
import { liftToSameWal } from './wal-position.js'
import { withRepository, type AppContext } from './context.js'

export interface GetPageOptions {
  tenantId: TenantId
  timelineId: TimelineId
  rel: RelTag
  blkno: number
  /** Default: the timeline's last record LSN. */
  lsn?: Lsn
}

export interface GetPageResult {
  tenantId: string
  timelineId: string
  /** "spc/db/rel", whatever the fork (as `wal dump` and `redo replay` print it); the fork is `fork`. */
  rel: string
  /** "main", "fsm", "vm" or "init" */
  fork: string
  blk: number
  lsn: string
  nblocks: number
  pastEnd: boolean
  page: Buffer
}

/** Checks that `lsn` can be read on `tl` offline (no WAL arrives here, so nothing is waited for). */
export function checkReadableLsn(tl: Timeline, lsn: Lsn, requested: Lsn = lsn): void {
  const m = tl.metadata
  if (lsn > tl.lastRecordLsn) {
    throw new UsageError('LSN_NOT_YET_INGESTED', `LSN ${formatLsn(lsn)} is above the timeline's last record ${formatLsn(tl.lastRecordLsn)}`, {
      hint: 'Run `pageserver timeline sync` first, or ask a running `serve` (--server), which waits for WAL.',
    })
  }
  if (lsn < m.latestGcCutoffLsn) {
    throw new UsageError('LSN_GARBAGE_COLLECTED', `LSN ${formatLsn(lsn)} is below the GC cutoff ${formatLsn(m.latestGcCutoffLsn)}`, { hint: 'Ask for a later LSN.' })
  }
  // Named as asked: `lsn` may be that LSN aligned to a record boundary.
  if (lsn < m.minReadableLsn) throw lsnBeforeStart(requested < m.minReadableLsn ? requested : lsn, m.minReadableLsn, tl.lastRecordLsn)
}

export function readerFor(tenant: Tenant, tl: Timeline): DatadirReader {
  return new DatadirReader(tl, tenant.redoManager(tl.metadata.hintBitsLogged), { dataChecksums: tl.metadata.dataChecksums })
}

export async function getPage(ctx: AppContext, o: GetPageOptions): Promise<GetPageResult> {
  return withRepository(ctx, async (repo) => {
    const tenant = await repo.tenant(o.tenantId)
    const tl = await tenant.timeline(o.timelineId)
    const at = o.lsn === undefined ? tl.lastRecordLsn : liftToSameWal(tl, o.lsn, tl.metadata.minReadableLsn)
    checkReadableLsn(tl, at)
    const reader = readerFor(tenant, tl)
    const nblocks = reader.relSize(o.rel, at)
    const page = await reader.getRelPage(o.rel, o.blkno, at)
    return {
      tenantId: o.tenantId,
      timelineId: o.timelineId,
      rel: formatRelFileNode(o.rel),
      fork: forkName(o.rel.forkNum),
      blk: o.blkno,
      lsn: formatLsn(at),
      nblocks,
      pastEnd: o.blkno >= nblocks,
      page,
    }
  })
}

export async function checkpointTimeline(ctx: AppContext, tenantId: TenantId, timelineId: TimelineId): Promise<{ tenantId: string; timelineId: string; diskConsistentLsn: string; layers: number }> {
  return withRepository(
    ctx,
    async (repo) => {
      const tl = await (await repo.tenant(tenantId)).timeline(timelineId)
      await tl.checkpoint()
      return { tenantId, timelineId, diskConsistentLsn: formatLsn(tl.diskConsistentLsn), layers: tl.layerFiles().length }
    },
    { lockFor: 'checkpoint' },
  )
}
