/**
 * What `timeline delete` and `tenant delete` say about the replication slots of what they deleted: the ones
 * left on a primary are warnings on stderr (they keep the primary's WAL until dropped), with the SQL to run;
 * so are the timelines whose metadata could not be read (their slot, if any, is unknown).
 */
import type { SlotsDropped } from '../core/app/slots.js'

export function slotWarnings(r: Partial<SlotsDropped>): string {
  let s = ''
  for (const slot of r.slotsDropped ?? []) s += `dropped replication slot ${slot}\n`
  for (const left of r.slotsLeft ?? []) {
    s +=
      `pageserver: warning: replication slot ${left.slotName} on ${left.server} was not dropped (${left.reason}); ` +
      `it keeps WAL on that server until dropped there: ${left.dropWith}\n`
  }
  for (const u of r.slotsUnknown ?? []) {
    s +=
      `pageserver: warning: timeline ${u.timelineId} could not be read (${u.reason}), so a replication slot it may hold on its ` +
      `primary was not dropped; look for ${u.defaultSlotName} (its default name) in pg_replication_slots there\n`
  }
  return s
}
