/**
 * What `timeline delete` and `tenant delete` say about the replication slots of what they deleted: the ones
 * left on a primary are warnings on stderr (they keep the primary's WAL until dropped), with the SQL to run.
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
  return s
}
