/**
 * The replication slots of deleted timelines.
 *
 * A timeline that streams from a primary (`timeline import`, `timeline source`) holds a physical slot
 * there, and a slot keeps the primary's WAL until it is dropped: a deleted timeline's slot would fill the
 * primary's disk. So deleting a timeline (or a tenant) drops the slots of what it deletes, just before its
 * files go (so that a killed delete never leaves a slot no metadata names; the delete itself does not depend
 * on the primary). A primary that cannot be reached in time, or a slot still in use, leaves the slot: the
 * result names it, with the reason and the SQL that drops it by hand.
 * A timeline whose metadata cannot be read may hold a slot nobody can name: the result says so
 * (`slotsUnknown`, with the default slot name to look for).
 * The primary's password is found as for streaming (app/source-password.ts): recorded sources have none.
 */
import { join } from 'node:path'
import { messageOf, PageserverError } from '../lib/errors.js'
import { describeConnParams, parseConnString } from '../protocol/conn-string.js'
import { readMetadata } from '../repository/metadata.js'
import type { Tenant } from '../repository/tenant.js'
import { METADATA_FILE } from '../repository/timeline.js'
import type { TimelineId } from '../model/ids.js'
import { dropSlot } from '../walreceiver/replication-slots.js'
import type { AppContext } from './context.js'
import { connectToSource } from './source-password.js'

/** The prefix of the slots page servers name (`slot list` shows only these unless asked for all). */
export const PAGESERVER_SLOT_PREFIX = 'pageserver_'

/** A slot name from a timeline id: lower-case letters, digits and underscores, at most 63 characters. */
export function defaultSlotName(timelineId: TimelineId): string {
  return `${PAGESERVER_SLOT_PREFIX}${timelineId.slice(0, 24)}`
}

/** How long a delete waits for each primary before leaving its slot. */
const SLOT_DROP_CONNECT_TIMEOUT_MS = 5_000
/** A slot still in use is asked again this many times, this far apart (2 s in all). */
const SLOT_ACTIVE_RETRIES = 10
const SLOT_ACTIVE_RETRY_DELAY_MS = 200

export interface SlotRef {
  readonly connString: string
  readonly slotName: string
}

export interface SlotLeft {
  readonly slotName: string
  /** user@host:port of the primary (no password). */
  readonly server: string
  readonly reason: string
  /** Run on the primary to drop it. */
  readonly dropWith: string
}

/** A deleted timeline whose metadata could not be read: whether it held a slot, and where, is unknown. */
export interface SlotUnknown {
  readonly timelineId: string
  readonly reason: string
  /** The name its slot has unless another was chosen (`--slot`): look for it on the primaries. */
  readonly defaultSlotName: string
}

export interface SlotsDropped {
  /** Slots dropped (or already gone), by name. */
  readonly slotsDropped: string[]
  readonly slotsLeft: SlotLeft[]
  readonly slotsUnknown: SlotUnknown[]
}

export interface SlotsFound {
  readonly refs: SlotRef[]
  readonly unknown: SlotUnknown[]
}

/** The slots the timelines `ids` of `tenant` stream through (read from their metadata, before deleting). */
export function slotsOfTimelines(tenant: Tenant, ids: readonly TimelineId[]): SlotsFound {
  const refs: SlotRef[] = []
  const unknown: SlotUnknown[] = []
  for (const id of ids) {
    let src
    try {
      src = readMetadata(join(tenant.timelineDir(id), METADATA_FILE)).walSource
    } catch (e) {
      unknown.push({ timelineId: id, reason: messageOf(e), defaultSlotName: defaultSlotName(id) })
      continue
    }
    if (src?.slotName) refs.push({ connString: src.connString, slotName: src.slotName })
  }
  return { refs, unknown }
}

/** Why a slot could not be dropped: a missing password is worth its hint (how to give one); others speak for themselves. */
export function slotDropFailure(e: unknown): string {
  return e instanceof PageserverError && e.code === 'PG_PASSWORD_REQUIRED' && e.hint ? `${e.message}. ${e.hint}` : messageOf(e)
}

/** The SQL that drops `slotName`, run on its primary by hand. */
export function dropSlotSql(slotName: string): string {
  return `SELECT pg_drop_replication_slot('${slotName}');`
}

export async function dropSlots(ctx: AppContext, found: SlotsFound): Promise<SlotsDropped> {
  const slotsDropped: string[] = []
  const slotsLeft: SlotLeft[] = []
  for (const ref of found.refs) {
    let server = '(unparsable connection string)'
    try {
      server = describeConnParams(parseConnString(ref.connString))
      const { conn } = await connectToSource(ctx, ref.connString, { applicationName: 'pageserver delete', connectTimeoutMs: SLOT_DROP_CONNECT_TIMEOUT_MS })
      try {
        // The deleted timeline's walsender may still be on its way out (the server stopped its receiver just
        // before): a slot in use is retried for a moment.
        for (let attempt = 1; ; attempt++) {
          try {
            await dropSlot(conn, ref.slotName)
            break
          } catch (e) {
            if (!(e instanceof PageserverError && e.code === 'PG_SLOT_ACTIVE') || attempt >= SLOT_ACTIVE_RETRIES) throw e
            await new Promise((r) => setTimeout(r, SLOT_ACTIVE_RETRY_DELAY_MS))
          }
        }
        slotsDropped.push(ref.slotName)
      } finally {
        await conn.close()
      }
    } catch (e) {
      slotsLeft.push({ slotName: ref.slotName, server, reason: slotDropFailure(e), dropWith: dropSlotSql(ref.slotName) })
    }
  }
  return { slotsDropped, slotsLeft, slotsUnknown: [...found.unknown] }
}
