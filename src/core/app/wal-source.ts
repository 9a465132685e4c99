/**
 * Attaching a WAL source to a timeline: the PostgreSQL whose WAL continues this timeline (a primary started
 * on an export of the timeline, typically). The source must belong to the same cluster (its system
 * identifier equals the one in the timeline's pg_control) and a physical replication slot is created (or
 * reused) so the source keeps every WAL byte the page server has not yet made durable.
 */
import { ConflictError } from '../lib/errors.js'
import { formatLsn } from '../pg/lsn.js'
import { decodeControlFile } from '../pg/controlfile.js'
import { controlFileKey } from '../datadir/mapping.js'
import { parseConnString } from '../protocol/conn-string.js'
import { ReplicationConnection } from '../walreceiver/replication-connection.js'
import type { Timeline } from '../repository/timeline.js'
import type { WalSource } from '../repository/metadata.js'
import { defaultSlotName } from './import.js'
import { createPhysicalSlot } from '../walreceiver/replication-slots.js'

export async function attachWalSource(tl: Timeline, o: { connString: string; slotName?: string }): Promise<WalSource> {
  const params = parseConnString(o.connString)
  const slot = o.slotName ?? defaultSlotName(tl.timelineId)
  const control = tl.getImage(controlFileKey(), tl.lastRecordLsn)
  const expected = control ? decodeControlFile(control).system_identifier : null
  const conn = await ReplicationConnection.connect(params, { applicationName: 'pageserver attach' })
  try {
    const sys = await conn.identifySystem()
    if (expected !== null && sys.systemId !== expected) {
      throw new ConflictError('WAL_SYSTEM_ID_MISMATCH', `the server at ${o.connString} belongs to cluster ${sys.systemId}, the timeline to ${expected}`, {
        hint: 'Attach a PostgreSQL started from an export of this timeline (or of its ancestors).',
      })
    }
    if (sys.xlogPos < tl.lastRecordLsn) {
      throw new ConflictError('WAL_SOURCE_BEHIND', `the server's WAL ends at ${formatLsn(sys.xlogPos)}, before the timeline's last record ${formatLsn(tl.lastRecordLsn)}`, {
        hint: 'This PostgreSQL did not continue this timeline; export the timeline and start PostgreSQL on the export.',
      })
    }
    await createPhysicalSlot(conn, slot)
    const src: WalSource = { connString: o.connString, slotName: slot, systemId: String(sys.systemId), pgTimeline: sys.timeline }
    await tl.updateMetadata({ walSource: src })
    return src
  } finally {
    await conn.close()
  }
}
