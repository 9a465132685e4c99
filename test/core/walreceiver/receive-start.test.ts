import { describe, expect, it } from 'vitest'
import { chooseStart, type PrimaryInfo } from '../../../src/core/walreceiver/receive-start.js'
import { UsageError } from '../../../src/core/lib/errors.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'

const L = (v: bigint) => v as Lsn
const info = (restartLsn: bigint | null, slot = true): PrimaryInfo => ({
  system: { systemId: 1n, timeline: 1, xlogPos: L(0x3_0123_4567n), dbname: null },
  segmentSizeBytes: 16 * 1024 * 1024,
  slot: slot ? { slotType: 'physical', restartLsn: restartLsn === null ? null : L(restartLsn), restartTimeline: 1 } : null,
  serverVersion: '15.18',
})

describe('chooseStart', () => {
  it('uses --start when it is a page boundary or a possible record start', () => {
    expect(chooseStart(info(null, false), L(0x1000000n))).toEqual({ startLsn: 0x1000000n, skipBeforeLsn: 0x1000000n, source: 'flag' })
    expect(chooseStart(info(0x2000000n), L(0x1000028n)).source).toBe('flag')
    expect(chooseStart(info(null, false), L(0x1002018n)).startLsn).toBe(0x1002018n) // right after a short page header
    expect(chooseStart(info(null, false), L(0x1000028n)).startLsn).toBe(0x1000028n) // right after a segment's long header
  })

  it('rejects --start inside a page header or off the 8-byte grid', () => {
    // 0x1000018 and 0x1000020 lie inside the 40-byte long header of segment 0x1000000.
    for (const bad of [0x1000010n, 0x1000018n, 0x1000020n, 0x1000029n, 0x1001ffcn]) {
      expect(() => chooseStart(info(null, false), L(bad))).toThrow(UsageError)
    }
  })

  it("starts at the page of the slot's restart_lsn and skips records before it", () => {
    expect(chooseStart(info(0x2_0000_2a38n), undefined)).toEqual({ startLsn: 0x2_0000_2000n, skipBeforeLsn: 0x2_0000_2a38n, source: 'slot' })
  })

  it('without a slot (or one with no restart_lsn), starts at the segment of the current position', () => {
    expect(chooseStart(info(null, false), undefined)).toEqual({ startLsn: 0x3_0100_0000n, skipBeforeLsn: 0x3_0100_0000n, source: 'segment' })
    expect(chooseStart(info(null, true), undefined).source).toBe('segment')
  })
})
