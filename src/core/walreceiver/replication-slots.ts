/**
 * Physical replication slots on a primary, through a replication connection: create (reusing an existing
 * one), read, drop. A slot keeps the primary's WAL from its restart_lsn on; the receiver advances it only to
 * what the owner declared durable (replication-connection.ts), and whoever deletes the timeline drops it.
 */
import { PageserverError } from '../lib/errors.js'
import { parseSlotRow, validateSlotName, type SlotInfo } from './replication-commands.js'
import type { ReplicationConnection } from './replication-connection.js'

/** CREATE_REPLICATION_SLOT name PHYSICAL RESERVE_WAL; an existing slot is reused (created = false). */
export async function createPhysicalSlot(conn: ReplicationConnection, name: string, options: { temporary?: boolean } = {}): Promise<{ created: boolean }> {
  validateSlotName(name)
  try {
    await conn.query(`CREATE_REPLICATION_SLOT ${name}${options.temporary ? ' TEMPORARY' : ''} PHYSICAL RESERVE_WAL`, 'CREATE_REPLICATION_SLOT')
    return { created: true }
  } catch (e) {
    if (e instanceof PageserverError && e.code === 'PG_DUPLICATE_OBJECT') return { created: false }
    throw e
  }
}

/**
 * DROP_REPLICATION_SLOT name (without WAIT: a slot a walsender is using is refused, PG_SLOT_ACTIVE).
 * `dropped` is false when there was no such slot.
 */
export async function dropSlot(conn: ReplicationConnection, name: string): Promise<{ dropped: boolean }> {
  validateSlotName(name)
  try {
    await conn.query(`DROP_REPLICATION_SLOT ${name}`, 'DROP_REPLICATION_SLOT')
    return { dropped: true }
  } catch (e) {
    if (e instanceof PageserverError && e.code === 'PG_SLOT_NOT_FOUND') return { dropped: false }
    throw e
  }
}

/** READ_REPLICATION_SLOT name; null when there is no such slot. */
export async function readReplicationSlot(conn: ReplicationConnection, name: string): Promise<SlotInfo | null> {
  validateSlotName(name)
  return parseSlotRow(await conn.query(`READ_REPLICATION_SLOT ${name}`, 'READ_REPLICATION_SLOT'))
}
