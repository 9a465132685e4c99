/**
 * effectiveRequestLsn against Neon's effective_request_lsn table (reference section 15), including the
 * boundaries: request_lsn == not_modified_since, == cutoff, == last_record_lsn, and Lsn.MAX.
 */
import { describe, expect, it } from 'vitest'
import { lsn, MAX_LSN, type Lsn } from '../../../src/core/pg/lsn.js'
import { effectiveRequestLsn, lsnTimeoutMessage } from '../../../src/core/page-service/lsn-rules.js'
import { FakeTimeline } from './fake-backend.js'

function rule(last: number, cutoff: number, request: Lsn | number, nms: Lsn | number): unknown {
  const tl = new FakeTimeline(lsn(last))
  tl.gcCutoff = lsn(cutoff)
  try {
    const e = effectiveRequestLsn(tl, { reqid: 0n, request_lsn: lsn(request), not_modified_since: lsn(nms) })
    return { lsn: e.lsn, waitFor: e.waitFor }
  } catch (err) {
    return (err as Error).message
  }
}

describe('effectiveRequestLsn', () => {
  it('refuses request < not_modified_since, 0, and below the GC cutoff, in that order', () => {
    expect(rule(0x5000, 0x1000, 0x2000, 0x2001)).toBe('invalid request with request LSN 0/2000 and not_modified_since 0/2001')
    expect(rule(0x5000, 0x1000, 0, 0)).toBe('invalid LSN(0) in request')
    expect(rule(0x5000, 0x1000, 0xfff, 0xfff)).toBe('tried to request a page version that was garbage collected. requested at 0/FFF gc cutoff 0/1000')
    expect(rule(0x5000, 0x1000, 0x1000, 0x1000)).toEqual({ lsn: 0x1000n, waitFor: null })
  })

  it('reads at min(last, request) when not_modified_since has arrived', () => {
    expect(rule(0x5000, 0, MAX_LSN, 0)).toEqual({ lsn: 0x5000n, waitFor: null })
    expect(rule(0x5000, 0, MAX_LSN, 0x5000)).toEqual({ lsn: 0x5000n, waitFor: null })
    expect(rule(0x5000, 0, 0x3000, 0x3000)).toEqual({ lsn: 0x3000n, waitFor: null })
    expect(rule(0x5000, 0, 0x9000, 0x5000)).toEqual({ lsn: 0x5000n, waitFor: null })
  })

  it('waits for not_modified_since (not request_lsn) when it is ahead of last_record_lsn', () => {
    expect(rule(0x5000, 0, 0x9000, 0x6000)).toEqual({ lsn: 0x6000n, waitFor: 0x6000n })
    expect(rule(0x5000, 0, MAX_LSN, 0x5008)).toEqual({ lsn: 0x5008n, waitFor: 0x5008n })
  })

  it('formats the timeout text as Neon', () => {
    const tl = new FakeTimeline(lsn(0x16b3748))
    expect(lsnTimeoutMessage(tl, lsn(0x1700000))).toBe(
      'Timed out while waiting for WAL record at LSN 0/1700000 to arrive, last_record_lsn 0/16B3748 disk consistent LSN=0/16B3748, WalReceiver status: fake',
    )
  })
})
