/** Rendering of timeline results for terminals. */
import type { TimelineInfo } from '../core/app/timelines.js'
import { renderTable } from './render.js'

export function timelineLine(t: TimelineInfo): string {
  const parts = [`timeline ${t.timelineId}`, `tenant ${t.tenantId}`, `last record ${t.lastRecordLsn}`]
  if (t.ancestorTimelineId) parts.push(`branched from ${t.ancestorTimelineId} at ${t.ancestorLsn}`)
  if (t.walSource) parts.push(`WAL from ${t.walSource.connString}${t.walSource.slotName ? ` (slot ${t.walSource.slotName})` : ''}`)
  return parts.join(', ')
}

export async function timelineTable(list: TimelineInfo[]): Promise<string> {
  return renderTable(
    ['TIMELINE', 'ANCESTOR', 'ANCESTOR LSN', 'LAST RECORD', 'DISK CONSISTENT', 'WAL SOURCE'],
    list.map((t) => [t.timelineId, t.ancestorTimelineId ?? '', t.ancestorLsn ?? '', t.lastRecordLsn, t.diskConsistentLsn, t.walSource ? t.walSource.connString : '']),
  )
}
