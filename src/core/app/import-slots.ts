/**
 * The replication slots of imports in progress, recorded so that a killed import's slot is dropped.
 *
 * An import creates its slot before the timeline exists: the slot must reserve WAL from before the base
 * backup starts. A process killed in between (kill -9, power loss, an OOM kill) leaves a slot that keeps the
 * primary's WAL for a timeline that never came to be, until someone drops it; the primary's disk fills.
 *
 * So before it creates the slot an import records it, durably: `<workdir>/import-slots/<slot>.json` names the
 * slot, the primary (the connection string without its password, as the timeline records it), the primary's
 * system identifier, the tenant and the timeline. The record goes once the new timeline names the slot in
 * its metadata, or once a failed import has dropped the slot; a failed import that could not drop it keeps
 * the record.
 *
 * Imports run under the workdir lock, so whoever holds the lock next and finds a record that is not its own
 * finds one left by an import that died. `sweepImportSlots` settles each one:
 *   a timeline here streams through the slot on that cluster -> the import got that far; the record goes;
 *   a timeline that cannot be read may use that name          -> kept (nothing is dropped that may be needed);
 *   otherwise                                                  -> the slot is dropped (unless a client
 *     streams through it, or the primary at that address is now another cluster), then the record goes.
 * A primary that cannot be reached keeps the record for the next time: `serve` sweeps at start, in the
 * background, and `timeline import` before it creates its own slot; each says what it dropped and what it
 * could not, with the SQL that drops a slot by hand.
 */
import { describeConnParams, parseConnString } from '../protocol/conn-string.js'
import type { Repository } from '../repository/repository.js'
import { dropSlot } from '../walreceiver/replication-slots.js'
import type { AppContext } from './context.js'
import { forgetImportSlot, type ImportSlotRecord } from './import-slot-records.js'
import { readSlotClaimsIn, slotOwnership } from './slot-owners.js'
import { dropSlotSql, slotDropFailure } from './slots.js'
import { connectToSource } from './source-password.js'

/** How long a sweep waits for each primary before keeping its record for the next time. */
const SWEEP_CONNECT_TIMEOUT_MS = 5_000

export interface ImportSlotSweep {
  /** Slots of dead imports dropped on their primary (or found gone already). */
  dropped: Array<{ slotName: string; server: string; timelineId: string }>
  /** Records of imports that had finished: the timeline streams through its slot. */
  settled: string[]
  /** Slots left in place, with why and how to drop them by hand; their records stay for the next sweep. */
  left: Array<{ slotName: string; server: string; reason: string; dropWith: string }>
  /** Records dropped without touching the slot: another cluster answers at that address now. */
  elsewhere: Array<{ slotName: string; server: string; reason: string }>
}

/** Settles `records` (left by imports that died; see the module header). Never throws for one record. */
export async function sweepImportSlots(ctx: AppContext, repo: Repository, records: readonly ImportSlotRecord[], signal?: AbortSignal): Promise<ImportSlotSweep> {
  const out: ImportSlotSweep = { dropped: [], settled: [], left: [], elsewhere: [] }
  if (records.length === 0) return out
  const claims = await readSlotClaimsIn(repo, null)
  for (const r of records) {
    if (signal?.aborted) break
    let server = '(unparsable connection string)'
    const dropWith = dropSlotSql(r.slotName)
    try {
      server = describeConnParams(parseConnString(r.connString))
      const owner = slotOwnership(r.slotName, BigInt(r.systemId), claims)
      if (owner.state === 'owned') {
        await forgetImportSlot(ctx, r.slotName)
        out.settled.push(r.slotName)
        continue
      }
      if (owner.state === 'unknown') {
        out.left.push({ slotName: r.slotName, server, reason: `it may belong to a timeline here: ${owner.reason}`, dropWith })
        continue
      }
      const { conn } = await connectToSource(ctx, r.connString, { applicationName: 'pageserver import cleanup', connectTimeoutMs: SWEEP_CONNECT_TIMEOUT_MS })
      try {
        const sys = await conn.identifySystem()
        if (String(sys.systemId) !== r.systemId) {
          // The cluster the slot was made on is not at that address any more: nothing of ours to drop there.
          await forgetImportSlot(ctx, r.slotName)
          out.elsewhere.push({ slotName: r.slotName, server, reason: `the primary there is now another cluster (system ${sys.systemId}, not ${r.systemId}): the slot, if any, is on cluster ${r.systemId}, wherever it went` })
          continue
        }
        await dropSlot(conn, r.slotName)
      } finally {
        await conn.close()
      }
      await forgetImportSlot(ctx, r.slotName)
      out.dropped.push({ slotName: r.slotName, server, timelineId: r.timelineId })
    } catch (e) {
      out.left.push({ slotName: r.slotName, server, reason: slotDropFailure(e), dropWith })
    }
  }
  return out
}
