/**
 * `timeline sync`: stream WAL from the timeline's source (a PostgreSQL 15 primary, through its replication
 * slot) into the repository until caught up with the primary's flush position at the start (or `until`),
 * flush, report the durable LSN to the slot, and stop.
 *
 * Resumes at last_record_lsn (= disk_consistent_lsn after a restart: what was in memory when a previous run
 * died is simply streamed again; the slot kept it because only durable LSNs are ever reported).
 * The source's password comes from the context (app/source-password.ts): it is not in the metadata.
 */
import { InterruptedError, UsageError } from '../lib/errors.js'
import { parseTimelineId, type TenantId, type TimelineId } from '../model/ids.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { ReplicationConnection } from '../walreceiver/replication-connection.js'
import { WalReceiver } from '../walreceiver/wal-receiver.js'
import { DatadirReader } from '../datadir/read.js'
import type { Repository } from '../repository/repository.js'
import type { Tenant } from '../repository/tenant.js'
import type { Timeline } from '../repository/timeline.js'
import type { ConnParams } from '../protocol/conn-string.js'
import type { WalSource } from '../repository/metadata.js'
import { withRepository, type AppContext } from './context.js'
import { TimelineIngestDriver } from './ingest-driver.js'
import { explainPasswordError, sourceConnection } from './source-password.js'

export interface SyncOptions {
  tenantId: TenantId
  timelineId: TimelineId
  until?: Lsn
  signal?: AbortSignal
  onProgress?: (p: { lastRecordLsn: Lsn; targetLsn: Lsn; records: number }) => void
}

export interface SyncResult {
  tenantId: string
  timelineId: string
  lastRecordLsn: string
  diskConsistentLsn: string
  records: number
}

/** The error for streaming WAL on a timeline that has no WAL source (offline or in `serve`): says how to attach one. */
export function noWalSource(tenantId: TenantId, timelineId: TimelineId): UsageError {
  return new UsageError('NO_WAL_SOURCE', `timeline ${timelineId} has no WAL source`, {
    hint: `Attach the PostgreSQL whose WAL continues it: \`pageserver timeline source --tenant ${tenantId} --timeline ${timelineId} --from CONNSTR\`.`,
  })
}

export async function syncTimeline(ctx: AppContext, o: SyncOptions): Promise<SyncResult> {
  return withRepository(ctx, (repo) => syncTimelineIn(repo, ctx, o), { lockFor: 'timeline sync' })
}

/** `syncTimeline` in a repository the caller holds (and has locked for mutation). */
export async function syncTimelineIn(repo: Repository, ctx: AppContext, o: SyncOptions): Promise<SyncResult> {
  const tenant = await repo.tenant(o.tenantId)
  const tl = await tenant.timeline(parseTimelineId(o.timelineId))
  const src = tl.metadata.walSource
  if (src === null) {
    throw noWalSource(tenant.id, tl.timelineId)
  }
  const source = sourceConnection(ctx, src.connString)
  try {
    return await stream(tenant, tl, src, source.params, ctx, o)
  } catch (e) {
    throw explainPasswordError(e, source)
  }
}

/** Streams from the source with `params` (its password found) until the target; the caller explains auth failures. */
async function stream(tenant: Tenant, tl: Timeline, src: WalSource, params: ConnParams, ctx: AppContext, o: SyncOptions): Promise<SyncResult> {
  let target = o.until
  if (target === undefined) {
    const conn = await ReplicationConnection.connect(params, { applicationName: 'pageserver sync', signal: o.signal })
    try {
      target = (await conn.identifySystem()).xlogPos
    } finally {
      await conn.close()
    }
  }
  const reader = new DatadirReader(tl, tenant.redoManager(tl.metadata.hintBitsLogged), { dataChecksums: tl.metadata.dataChecksums })
  const driver = new TimelineIngestDriver(tl, reader, {
    checkpointDistanceBytes: ctx.config.checkpointDistanceBytes,
    checkpointTimeoutMs: ctx.config.checkpointTimeoutMs,
    maxInMemoryLayersBytes: ctx.config.maxInMemoryLayersBytes,
  })
  let records = 0
  if (tl.lastRecordLsn < target) {
    const receiver = new WalReceiver({
      conn: params,
      slotName: src.slotName ?? undefined,
      slotMustExist: true,
      startLsn: tl.lastRecordLsn,
      prevRecordLsn: tl.prevRecordLsn ?? undefined,
      resumesIngest: true,
      expectedSystemId: BigInt(src.systemId),
      durableLsn: tl.diskConsistentLsn,
      signal: o.signal,
    })
    tl.onDurable = (l) => receiver.markDurable(l)
    try {
      let reported = false
      for await (const batch of receiver.batches()) {
        await driver.ingestRecordsOrFlush(batch)
        records += batch.length
        o.onProgress?.({ lastRecordLsn: tl.lastRecordLsn, targetLsn: target, records })
        if (tl.lastRecordLsn >= target) {
          // Flushed and declared while the stream is open: leaving the loop ends the stream, whose last
          // status update then carries it to the slot (declared after, it would reach no connection).
          await driver.checkpoint()
          receiver.markDurable(tl.diskConsistentLsn)
          reported = true
          break
        }
      }
      if (!reported) {
        // The receiver ends before the target only when stopped (the signal): what arrived is kept durable,
        // but this is no sync to the target, and must not answer as one (a script would take it for done).
        await driver.checkpoint()
        receiver.markDurable(tl.diskConsistentLsn)
        throw syncInterrupted(tl, target)
      }
    } finally {
      await receiver.close()
      tl.onDurable = null
    }
  } else {
    await driver.checkpoint()
  }
  return { tenantId: o.tenantId, timelineId: o.timelineId, lastRecordLsn: formatLsn(tl.lastRecordLsn), diskConsistentLsn: formatLsn(tl.diskConsistentLsn), records }
}

/** A sync stopped by its signal before its target: where it got to (durable), and what to do. */
function syncInterrupted(tl: Timeline, target: Lsn): InterruptedError {
  return new InterruptedError(
    'SYNC_INTERRUPTED',
    `timeline sync was interrupted at ${formatLsn(tl.lastRecordLsn)}, before its target ${formatLsn(target)}; the WAL ingested up to ${formatLsn(tl.diskConsistentLsn)} is durable`,
    {
      hint: 'Run the sync again: it resumes from there (the replication slot kept the rest).',
      details: { lastRecordLsn: formatLsn(tl.lastRecordLsn), diskConsistentLsn: formatLsn(tl.diskConsistentLsn), targetLsn: formatLsn(target) },
    },
  )
}
