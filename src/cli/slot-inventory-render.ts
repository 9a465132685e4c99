/**
 * What `slot list` and `slot drop` print: a table of slots with a closing line that says what to do about
 * the orphans, the lines of a drop, and the JSON of a drop (its refusals as {code, message, hint}, the form
 * every error takes under --json).
 */
import type { SlotDropOutcome, SlotEntry, SlotInventory } from '../core/app/slot-inventory.js'
import { PAGESERVER_SLOT_PREFIX } from '../core/app/slots.js'
import { formatBytes } from '../core/lib/units.js'
import { redactConnString } from '../core/protocol/conn-string-redact.js'
import { shellWord } from './pg-commands.js'
import { renderTable } from './render.js'

export interface SlotRefusalJson {
  slotName: string
  error: { code: string; message: string; hint: string | null }
}

export interface SlotDropJson {
  server: string
  systemId: string
  dryRun: boolean
  dropped: SlotEntry[]
  refused: SlotRefusalJson[]
  skipped: SlotEntry[]
}

export function slotDropJson(o: SlotDropOutcome): SlotDropJson {
  return {
    server: o.server,
    systemId: o.systemId,
    dryRun: o.dryRun,
    dropped: o.dropped,
    refused: o.refused.map((r) => ({ slotName: r.slotName, error: { code: r.error.code, message: r.error.message, hint: r.error.hint ?? null } })),
    skipped: o.skipped,
  }
}

/** The table of `slot list` and the lines after it; `from` is the --from text as given (printed redacted). */
export async function slotListText(inv: SlotInventory, from: string): Promise<string> {
  if (inv.slots.length === 0) return `no pageserver replication slots on ${inv.server} (system ${inv.systemId})\n`
  const rows = inv.slots.map((s) => [
    s.slotName,
    s.active ? `yes (pid ${s.activePid ?? '?'})` : 'no',
    s.restartLsn ?? '-',
    s.retainedBytes === null ? '-' : formatBytes(s.retainedBytes),
    s.state,
    s.owner === null ? '-' : `${s.owner.tenantId}/${s.owner.timelineId}`,
  ])
  let out = `replication slots on ${inv.server} (system ${inv.systemId})\n`
  out += (await renderTable(['slot', 'active', 'restart_lsn', 'retained WAL', 'state', 'owner (tenant/timeline)'], rows)) + '\n'
  return out + slotAdvice(inv.slots, from)
}

/** What to do about the orphans and unknowns of a listing, one line each kind. */
export function slotAdvice(slots: readonly SlotEntry[], from: string): string {
  const fromFlag = `--from ${shellWord(redactConnString(from))}`
  const orphans = slots.filter((s) => s.state === 'orphan')
  const droppable = orphans.filter((s) => !s.active && s.slotName.startsWith(PAGESERVER_SLOT_PREFIX))
  const byName = orphans.filter((s) => !s.active && !s.slotName.startsWith(PAGESERVER_SLOT_PREFIX))
  const inUse = orphans.filter((s) => s.active)
  const unknown = slots.filter((s) => s.state === 'unknown')
  let out = ''
  if (droppable.length > 0) {
    out += `${count(droppable.length, 'orphan slot')} ${droppable.length === 1 ? 'retains' : 'retain'} ${formatBytes(retained(droppable))} of WAL: ` +
      `drop ${droppable.length === 1 ? 'it' : 'them'} with \`pageserver slot drop ${fromFlag} --orphans\`\n`
  }
  if (byName.length > 0) {
    out += `${count(byName.length, 'other orphan slot')} (not named ${PAGESERVER_SLOT_PREFIX}*) ${byName.length === 1 ? 'retains' : 'retain'} ` +
      `${formatBytes(retained(byName))} of WAL: if no other client needs ${byName.length === 1 ? 'it' : 'them'}, drop with \`pageserver slot drop ${fromFlag} ${byName.map((s) => `--slot ${s.slotName}`).join(' ')}\`\n`
  }
  if (inUse.length > 0) out += `${count(inUse.length, 'orphan slot')} ${inUse.length === 1 ? 'is' : 'are'} in use by a client outside this workdir: ${inUse.map((s) => s.slotName).join(', ')}\n`
  for (const s of unknown) out += `slot ${s.slotName} may belong to a timeline here: ${s.reason}; check it, then \`pageserver slot drop ${fromFlag} --slot ${s.slotName} --force\` drops the slot\n`
  if (orphans.length === 0 && unknown.length === 0) out += 'no orphan slots\n'
  return out
}

/** `slot drop`'s lines: what was (or would be) dropped on stdout, refusals and skipped slots for stderr. */
export function slotDropText(o: SlotDropOutcome): { stdout: string; stderr: string } {
  let stdout = ''
  let stderr = ''
  for (const s of o.dropped) {
    const wal = s.retainedBytes === null ? '' : ` (${o.dryRun ? 'retains' : 'retained'} ${formatBytes(s.retainedBytes)} of WAL)`
    stdout += `${o.dryRun ? 'would drop' : 'dropped'} slot ${s.slotName} on ${o.server}${wal}\n`
  }
  if (o.dropped.length === 0 && o.refused.length === 0) stdout += `nothing to drop on ${o.server}\n`
  for (const s of o.skipped) {
    const why = s.active ? `in use by server process ${s.activePid ?? '?'}` : `${s.reason} (\`--slot ${s.slotName} --force\` drops it)`
    stderr += `pageserver: skipped slot ${s.slotName}: ${why}\n`
  }
  for (const r of o.refused) {
    stderr += `pageserver: slot ${r.slotName} not dropped: ${r.error.message}\n`
    if (r.error.hint) stderr += `Hint: ${r.error.hint}\n`
  }
  return { stdout, stderr }
}

function retained(slots: readonly SlotEntry[]): number {
  return slots.reduce((sum, s) => sum + (s.retainedBytes ?? 0), 0)
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`
}
