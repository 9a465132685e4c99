// TIMELINE_HISTORY's reply and the timeline a resume point lies on: the first earlier timeline that ended
// after it (its switch point is exclusive), else the server's current one. Hand-written history files, as
// PostgreSQL writes them at a promotion (parent tli, switch point, reason; comments and blank lines).
import { describe, expect, it } from 'vitest'
import { parseTimelineHistory, timelineOfLsn } from '../../../src/core/walreceiver/replication-commands.js'
import { lsn } from '../../../src/core/pg/lsn.js'

const reply = (content: string) => ({ fields: ['filename', 'content'], rows: [['00000003.history', content]], tags: ['SELECT'] })

describe('timeline history', () => {
  const history = parseTimelineHistory(reply('1\t0/5000108\tno recovery target specified\n\n# a comment\n2\t0/9000000\tbefore 2026-11-24 09:00:00+00\n'))

  it('parses each parent timeline with its switch point, oldest first', () => {
    expect(history).toEqual([
      { tli: 1, end: lsn(0x5000108n) },
      { tli: 2, end: lsn(0x9000000n) },
    ])
  })

  it('finds the timeline holding a resume point: before a switch point on the older one, at or after it on the next', () => {
    expect(timelineOfLsn(history, 3, lsn(0x3000000n))).toBe(1)
    expect(timelineOfLsn(history, 3, lsn(0x5000100n))).toBe(1)
    expect(timelineOfLsn(history, 3, lsn(0x5000108n))).toBe(2)
    expect(timelineOfLsn(history, 3, lsn(0x8ffffffn))).toBe(2)
    expect(timelineOfLsn(history, 3, lsn(0x9000000n))).toBe(3)
    expect(timelineOfLsn([], 1, lsn(0x9000000n))).toBe(1)
  })

  it('refuses a reply that is not a history file', () => {
    expect(() => parseTimelineHistory({ fields: [], rows: [], tags: [] })).toThrow(/TIMELINE_HISTORY/)
    expect(() => parseTimelineHistory(reply('one\t0/1\tx\n'))).toThrow(/line "one/)
    expect(() => parseTimelineHistory(reply('1\tnot-an-lsn\tx\n'))).toThrow()
  })
})
