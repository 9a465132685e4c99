// brokenWarnings: a listing warns on stderr about a timeline that cannot serve pages yet (its WAL stops before
// its first readable LSN: an import killed before it streamed to the end of its base backup), and says how
// to finish it; a readable timeline gets no warning.
import { describe, expect, it } from 'vitest'
import { brokenWarnings } from '../../src/cli/timeline-render.js'
import type { ListedTimeline } from '../../src/core/app/timelines.js'

const timeline = (lastRecordLsn: string, minReadableLsn: string): ListedTimeline =>
  ({
    state: 'Active',
    tenantId: 'a'.repeat(32),
    timelineId: 'b'.repeat(32),
    ancestorTimelineId: null,
    ancestorLsn: null,
    lastRecordLsn,
    diskConsistentLsn: lastRecordLsn,
    minReadableLsn,
    walSource: null,
  }) as unknown as ListedTimeline

describe('brokenWarnings', () => {
  it('warns about a timeline whose WAL has not reached its first readable LSN, with the command that finishes it', () => {
    const w = brokenWarnings([timeline('0/D8000028', '0/D81B6B70')])
    expect(w).toContain(`timeline ${'b'.repeat(32)} is not readable yet: its WAL reaches 0/D8000028, pages are readable from 0/D81B6B70`)
    expect(w).toContain(`timeline sync --tenant ${'a'.repeat(32)} --timeline ${'b'.repeat(32)}`)
    expect(brokenWarnings([timeline('0/D81B6B70', '0/D81B6B70')])).toBe('')
  })
})
