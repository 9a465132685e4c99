/**
 * The physical replication slots of a server, and the WAL each keeps there, read with SQL.
 *
 * A physical walsender (replication=true) runs replication commands only, and none of them lists slots
 * (READ_REPLICATION_SLOT reads one by name). So this runs over a connection opened with
 * `replicationMode: 'database'`, a logical walsender that accepts SQL too (connection-options.ts); the same
 * connection then drops slots with DROP_REPLICATION_SLOT (replication-slots.ts).
 *
 * The WAL a slot retains is the server's current WAL position minus the slot's restart_lsn, both read in
 * the same statement: pg_current_wal_flush_lsn() on a primary, pg_last_wal_replay_lsn() on a standby (which
 * can have slots too, for cascading; there the difference can be negative for a moment, and counts as 0).
 * Worked example: flush position 0/5000000, restart_lsn 0/3000028 -> 0x5000000 - 0x3000028 = 33554392 bytes
 * (32 MiB less 40 bytes). A slot that never reserved WAL, or was invalidated (max_slot_wal_keep_size), has
 * restart_lsn NULL and retains nothing: retainedBytes null.
 *
 * Rows are bounded by the server's max_replication_slots (one row per slot), so they are read in one go.
 */
import { assert, CorruptionError } from '../lib/errors.js'
import { parseLsn, type Lsn } from '../pg/lsn.js'
import type { QueryResult } from './replication-commands.js'
import type { ReplicationConnection } from './replication-connection.js'

export interface PhysicalSlot {
  readonly slotName: string
  /** A walsender is streaming from it now (PostgreSQL refuses to drop it meanwhile). */
  readonly active: boolean
  /** The pid of that walsender on the server; null when inactive. */
  readonly activePid: number | null
  /** null when the slot reserves no WAL. */
  readonly restartLsn: Lsn | null
  /** WAL kept on the server for this slot: current WAL position minus restart_lsn, at least 0; null without restart_lsn. */
  readonly retainedBytes: bigint | null
}

/** Columns in the order parsePhysicalSlotRows reads them. */
export const PHYSICAL_SLOTS_SQL = [
  'WITH wal AS (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END AS lsn)',
  'SELECT s.slot_name, s.active, s.active_pid, s.restart_lsn, pg_wal_lsn_diff(wal.lsn, s.restart_lsn)',
  "FROM pg_replication_slots s, wal WHERE s.slot_type = 'physical' ORDER BY s.slot_name",
].join(' ')

/** Every physical slot of the server, by name. `conn` must be a 'database' connection (SQL). */
export async function listPhysicalSlots(conn: ReplicationConnection): Promise<PhysicalSlot[]> {
  assert(conn.replicationMode === 'database', 'listing replication slots needs SQL: open the connection with replicationMode "database"')
  return parsePhysicalSlotRows(await conn.query(PHYSICAL_SLOTS_SQL, 'listing replication slots'))
}

function badReply(detail: string): CorruptionError {
  return new CorruptionError('PG_BAD_REPLY', `unexpected reply listing replication slots: ${detail}`, { hint: 'Check that the server is PostgreSQL 15.' })
}

/** The rows of PHYSICAL_SLOTS_SQL (text format: booleans "t"/"f", LSNs "X/X", the byte difference as a numeric). */
export function parsePhysicalSlotRows(r: QueryResult): PhysicalSlot[] {
  if (r.fields.length !== 5) throw badReply(`${r.fields.length} columns instead of 5`)
  return r.rows.map((row) => {
    const [name, active, pid, restart, diff] = row
    if (name == null || name === '') throw badReply('a slot without a name')
    if (active !== 't' && active !== 'f') throw badReply(`active "${active}" for slot ${name}`)
    if (pid != null && !/^\d{1,10}$/.test(pid)) throw badReply(`active_pid "${pid}" for slot ${name}`)
    // pg_wal_lsn_diff returns numeric; the difference of two LSNs is a whole number of bytes.
    if (diff != null && !/^-?\d{1,20}$/.test(diff)) throw badReply(`retained bytes "${diff}" for slot ${name}`)
    const restartLsn = restart == null ? null : parseLsn(restart, `restart_lsn of slot ${name}`)
    const retained = restartLsn === null || diff == null ? null : BigInt(diff)
    return {
      slotName: name,
      active: active === 't',
      activePid: pid == null ? null : Number(pid),
      restartLsn,
      retainedBytes: retained === null ? null : retained < 0n ? 0n : retained,
    }
  })
}
