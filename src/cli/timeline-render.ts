/** Rendering of timeline results for terminals. */
import type { ListedTimeline, TimelineInfo } from '../core/app/timelines.js'
import { renderTable } from './render.js'
import { parseLsn } from '../core/pg/lsn.js'

export function timelineLine(t: TimelineInfo): string {
  const parts = [`timeline ${t.timelineId}`, `tenant ${t.tenantId}`, `last record ${t.lastRecordLsn}`]
  if (t.ancestorTimelineId) parts.push(`branched from ${t.ancestorTimelineId} at ${t.ancestorLsn}`)
  if (t.walSource) parts.push(`WAL from ${t.walSource.connString}${t.walSource.slotName ? ` (slot ${t.walSource.slotName})` : ''}`)
  return parts.join(', ')
}

/** A row per timeline; a broken one shows its error code in place of its LSNs (`brokenWarnings` says why). */
export async function timelineTable(list: ListedTimeline[]): Promise<string> {
  return renderTable(
    ['TIMELINE', 'STATE', 'ANCESTOR', 'ANCESTOR LSN', 'LAST RECORD', 'DISK CONSISTENT', 'WAL SOURCE'],
    list.map((t) =>
      t.state === 'Broken'
        ? [t.timelineId, `Broken (${t.error.code})`, '', '', '', '', '']
        : [t.timelineId, t.state, t.ancestorTimelineId ?? '', t.ancestorLsn ?? '', t.lastRecordLsn, t.diskConsistentLsn, t.walSource ? t.walSource.connString : ''],
    ),
  )
}

/**
 * For stderr: why each broken timeline of a listing cannot load, and what to do; which served timelines
 * no longer receive WAL (their receiver stopped for good: reads past their last record will fail); which are
 * not readable yet (an interrupted import); empty when there is nothing to say.
 */
export function brokenWarnings(list: ListedTimeline[]): string {
  let s = ''
  for (const t of list) {
    // An import interrupted before its WAL reached the end of the base backup (a killed `timeline import`):
    // listed, but no page can be read until that WAL is streamed.
    if (t.state === 'Active' && parseLsn(t.lastRecordLsn) < parseLsn(t.minReadableLsn)) {
      s += `pageserver: warning: timeline ${t.timelineId} is not readable yet: its WAL reaches ${t.lastRecordLsn}, pages are readable from ${t.minReadableLsn} (an interrupted import?)\n`
      s += `Hint: \`pageserver timeline sync --tenant ${t.tenantId} --timeline ${t.timelineId}\` streams the rest (a running serve does it by itself).\n`
      continue
    }
    if (t.state === 'Active' && t.walReceiverStatus?.startsWith('stopped:') === true) {
      s += `pageserver: warning: timeline ${t.timelineId} no longer receives WAL (last record ${t.lastRecordLsn}): ${t.walReceiverStatus.slice('stopped: '.length)}\n`
      continue
    }
    if (t.state !== 'Broken') continue
    s += `pageserver: warning: timeline ${t.timelineId} is broken: ${t.error.message}
`
    if (t.error.hint) s += `Hint: ${t.error.hint}
`
  }
  return s
}
