/**
 * Attaching a WAL source to a timeline: the PostgreSQL whose WAL continues this timeline (a primary started
 * on an export of the timeline, typically). The source must belong to the same cluster (its system
 * identifier equals the one in the timeline's pg_control), have WAL up to the timeline's last record, and,
 * when it has WAL beyond it, continue this timeline's history there: its first record after the timeline's
 * last one must link back to it (xl_prev). A PostgreSQL of the same cluster whose history went another way
 * (started on an export of a sibling branch, say) is refused at once, instead of failing later in the
 * streaming. A physical replication slot is created (or reused) so the source keeps every WAL byte the
 * page server has not yet made durable. The source is recorded without its password (app/source-password.ts).
 */
import { ConflictError, errorOfKind, PageserverError } from '../lib/errors.js'
import { PG_WAL_REMOVED } from '../walreceiver/pg-errors.js'
import { formatLsn } from '../pg/lsn.js'
import { decodeControlFile } from '../pg/controlfile.js'
import { controlFileKey } from '../datadir/mapping.js'
import type { ConnParams } from '../protocol/conn-string.js'
import { redactConnString } from '../protocol/conn-string-redact.js'
import { WalReceiver } from '../walreceiver/wal-receiver.js'
import { ReplicationConnection } from '../walreceiver/replication-connection.js'
import type { Timeline } from '../repository/timeline.js'
import type { WalSource } from '../repository/metadata.js'
import { defaultSlotName } from './slots.js'
import { createPhysicalSlot } from '../walreceiver/replication-slots.js'
import type { AppContext } from './context.js'
import type { Repository } from '../repository/repository.js'
import { claimSlot, readSlotClaimsIn, slotOwnership } from './slot-owners.js'
import { explainPasswordError, recordSourceConnString, sourceConnection } from './source-password.js'

/** The source as recorded, and the notes for the user (a password that was not stored). */
export interface AttachedWalSource {
  readonly walSource: WalSource
  readonly passwordOmitted: boolean
  readonly notes: string[]
}

export async function attachWalSource(ctx: AppContext, repo: Repository, tl: Timeline, o: { connString: string; slotName?: string }): Promise<AttachedWalSource> {
  const source = sourceConnection(ctx, o.connString)
  try {
    return await attach(ctx, repo, tl, source.params, o)
  } catch (e) {
    throw explainPasswordError(e, source)
  }
}

async function attach(ctx: AppContext, repo: Repository, tl: Timeline, params: ConnParams, o: { connString: string; slotName?: string }): Promise<AttachedWalSource> {
  const slot = o.slotName ?? defaultSlotName(tl.timelineId)
  const control = tl.getImage(controlFileKey(), tl.lastRecordLsn)
  const expected = control ? decodeControlFile(control).system_identifier : null
  const conn = await ReplicationConnection.connect(params, { applicationName: 'pageserver attach' })
  let releaseSlot: (() => void) | null = null
  try {
    const sys = await conn.identifySystem()
    if (expected !== null && sys.systemId !== expected) {
      throw new ConflictError('WAL_SYSTEM_ID_MISMATCH', `the server at ${redactConnString(o.connString)} belongs to cluster ${sys.systemId}, the timeline to ${expected}`, {
        hint: 'Attach a PostgreSQL started from an export of this timeline (or of its ancestors).',
      })
    }
    if (sys.xlogPos < tl.lastRecordLsn) {
      throw new ConflictError('WAL_SOURCE_BEHIND', `the server's WAL ends at ${formatLsn(sys.xlogPos)}, before the timeline's last record ${formatLsn(tl.lastRecordLsn)}`, {
        hint: 'This PostgreSQL did not continue this timeline; export the timeline and start PostgreSQL on the export.',
      })
    }
    // A slot another timeline streams through is not to be shared (as for an import): only one receiver can
    // stream through it, and whichever does advances it past WAL the other still needs.
    const owner = slotOwnership(slot, sys.systemId, await readSlotClaimsIn(repo, null)).owner
    if (owner !== null && (owner.tenantId !== tl.tenantId || owner.timelineId !== tl.timelineId)) {
      throw new ConflictError('SLOT_IN_USE', `replication slot ${slot} on the source belongs to another timeline: timeline ${owner.timelineId} of tenant ${owner.tenantId} streams through it`, {
        hint: 'Give another --slot name, or none (the timeline gets a slot of its own).',
        details: { slotName: slot, owner },
      })
    }
    releaseSlot = claimSlot(slot, sys.systemId, { tenantId: tl.tenantId, timelineId: tl.timelineId })
    if (sys.xlogPos > tl.lastRecordLsn) await checkContinues(tl, params, o.connString, sys.systemId)
    await createPhysicalSlot(conn, slot)
    const recorded = recordSourceConnString(ctx, o.connString)
    const src: WalSource = { connString: recorded.connString, slotName: slot, systemId: String(sys.systemId), pgTimeline: sys.timeline }
    await tl.updateMetadata({ walSource: src })
    return { walSource: src, passwordOmitted: recorded.passwordOmitted, notes: recorded.notes }
  } finally {
    releaseSlot?.()
    await conn.close()
  }
}

/**
 * The server no longer has WAL from the timeline's last record (a standby promoted after a failover that
 * checkpointed before it was attached: it had no slot of ours). The receiver's hint (use --slot, start later)
 * is for `wal receive` and misleads here: no slot brings the WAL back.
 */
function walRemovedAtSource(e: PageserverError, tl: Timeline, connString: string): PageserverError {
  return errorOfKind(e.kind, e.code, `the server at ${redactConnString(connString)} no longer has the WAL that follows timeline ${tl.timelineId}'s last record (${formatLsn(tl.lastRecordLsn)}): ${e.message}`, {
    hint:
      'Nothing was changed. The server removed that WAL before this timeline had a slot there (a promoted standby checkpoints soon after its promotion): ' +
      'the timeline cannot continue from it unless the segments are put back into its pg_wal (from a WAL archive or the old primary). ' +
      'Otherwise import the server again as a new timeline; this one stays readable up to its last record.',
    cause: e,
    details: { ...e.details, lastRecordLsn: formatLsn(tl.lastRecordLsn) },
  })
}

/** How long the history check waits for the source's next record before leaving the check to streaming. */
const CONTINUATION_CHECK_MS = 5_000

/**
 * Streams (without a slot) the source's WAL from the timeline's last record and decodes the first record:
 * its prev-link must be the timeline's last record, and it must decode at all (in another history, the
 * bytes at that LSN are the middle of some other record). A source that sends nothing in time is let
 * through: the WAL receiver makes the same check when it streams.
 */
async function checkContinues(tl: Timeline, params: ConnParams, connString: string, systemId: bigint): Promise<void> {
  const deadline = AbortSignal.timeout(CONTINUATION_CHECK_MS)
  const receiver = new WalReceiver({
    conn: params,
    startLsn: tl.lastRecordLsn,
    prevRecordLsn: tl.prevRecordLsn ?? undefined,
    resumesIngest: true,
    expectedSystemId: systemId,
    reconnectAttemptsMax: 0,
    crcWorker: 'never',
    signal: deadline,
  })
  try {
    for await (const batch of receiver.batches()) if (batch.length > 0) return
  } catch (e) {
    if (!deadline.aborted && e instanceof PageserverError && e.code === PG_WAL_REMOVED) throw walRemovedAtSource(e, tl, connString)
    if (deadline.aborted || !(e instanceof PageserverError) || e.kind !== 'corruption') throw e
    throw new ConflictError(
      'WAL_SOURCE_DIVERGED',
      `the WAL of the server at ${redactConnString(connString)} does not continue timeline ${tl.timelineId}: after its last record (${formatLsn(tl.lastRecordLsn)}) the server has other WAL (${e.message})`,
      {
        hint: 'That PostgreSQL belongs to the same cluster but another history (a sibling branch, say). Attach the PostgreSQL started on an export of this timeline, or branch it where the histories part and attach the server to the branch.',
        cause: e,
        details: { lastRecordLsn: formatLsn(tl.lastRecordLsn), decodeError: e.code },
      },
    )
  } finally {
    await receiver.close()
  }
}
