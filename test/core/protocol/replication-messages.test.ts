import { describe, expect, it } from 'vitest'
import {
  decodeHotStandbyFeedback,
  decodeServerMessage,
  decodeStatusUpdate,
  encodeHotStandbyFeedback,
  encodeKeepalive,
  encodeStatusUpdate,
  encodeXLogData,
  pgMicrosToUnixMs,
  unixMsToPgMicros,
  xlogDataPayloadBytesMax,
} from '../../../src/core/protocol/replication-messages.js'
import { CorruptionError } from '../../../src/core/lib/errors.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'

const L = (v: bigint) => v as Lsn

/** Bytes built by hand (not with BinaryWriter) so encoder and decoder are checked against the layout. */
function be64(v: bigint): number[] {
  const out: number[] = []
  for (let i = 7; i >= 0; i--) out.push(Number((v >> BigInt(i * 8)) & 0xffn))
  return out
}

const XLOGDATA = Buffer.from([0x77, ...be64(0x1_0000_0028n), ...be64(0x1_0000_4000n), ...be64(123456789n), 0xde, 0xad, 0xbe, 0xef])
const KEEPALIVE = Buffer.from([0x6b, ...be64(0x16_b374_d848n), ...be64(-5n), 1])
const STATUS = Buffer.from([0x72, ...be64(0x300n), ...be64(0x200n), ...be64(0x100n), ...be64(42n), 0])
const HSFEEDBACK = Buffer.from([0x68, ...be64(7n), 0, 0, 0, 10, 0, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 2])

function isCorrupt(fn: () => unknown): boolean {
  try {
    fn()
    return false
  } catch (e) {
    return e instanceof CorruptionError && e.code === 'REPLICATION_MESSAGE_MALFORMED'
  }
}

describe('replication messages', () => {
  it('decodes XLogData built by hand; data is a view of the frame', () => {
    const m = decodeServerMessage(XLOGDATA)
    expect(m).toMatchObject({ type: 'xlogData', dataStart: 0x1_0000_0028n, walEnd: 0x1_0000_4000n, sendTime: 123456789n })
    if (m.type !== 'xlogData') throw new Error('type')
    expect([...m.data]).toEqual([0xde, 0xad, 0xbe, 0xef])
    expect(m.data.buffer).toBe(XLOGDATA.buffer)
    expect(encodeXLogData({ dataStart: L(0x1_0000_0028n), walEnd: L(0x1_0000_4000n), sendTime: 123456789n, data: Buffer.from([0xde, 0xad, 0xbe, 0xef]) })).toEqual(XLOGDATA)
  })

  it('decodes keepalives built by hand (negative clock allowed, LSNs not)', () => {
    expect(decodeServerMessage(KEEPALIVE)).toEqual({ type: 'keepalive', walEnd: 0x16_b374_d848n, sendTime: -5n, replyRequested: true })
    expect(encodeKeepalive({ walEnd: L(0x16_b374_d848n), sendTime: -5n, replyRequested: true })).toEqual(KEEPALIVE)
    const negative = Buffer.from(KEEPALIVE)
    negative.writeBigInt64BE(-1n, 1)
    expect(isCorrupt(() => decodeServerMessage(negative))).toBe(true)
    const badFlag = Buffer.from(KEEPALIVE)
    badFlag[17] = 2
    expect(isCorrupt(() => decodeServerMessage(badFlag))).toBe(true)
  })

  it('encodes status updates and hot-standby feedback to the exact layout, and decodes them back', () => {
    const st = { written: L(0x300n), flushed: L(0x200n), applied: L(0x100n), clock: 42n, replyRequested: false }
    expect(encodeStatusUpdate(st)).toEqual(STATUS)
    expect(decodeStatusUpdate(STATUS)).toEqual(st)
    const hs = { clock: 7n, xmin: 10, xminEpoch: 1, catalogXmin: 20, catalogXminEpoch: 2 }
    expect(encodeHotStandbyFeedback(hs)).toEqual(HSFEEDBACK)
    expect(decodeHotStandbyFeedback(HSFEEDBACK)).toEqual(hs)
  })

  it('rejects every truncation of every message, and trailing bytes on fixed-size ones', () => {
    for (const frame of [XLOGDATA.subarray(0, 25), KEEPALIVE]) {
      for (let cut = 0; cut < frame.length; cut++) {
        expect(isCorrupt(() => decodeServerMessage(frame.subarray(0, cut))), `cut at ${cut}`).toBe(true)
      }
    }
    for (let cut = 0; cut < STATUS.length; cut++) expect(isCorrupt(() => decodeStatusUpdate(STATUS.subarray(0, cut)))).toBe(true)
    for (let cut = 0; cut < HSFEEDBACK.length; cut++) expect(isCorrupt(() => decodeHotStandbyFeedback(HSFEEDBACK.subarray(0, cut)))).toBe(true)
    expect(isCorrupt(() => decodeServerMessage(Buffer.concat([KEEPALIVE, Buffer.from([0])])))).toBe(true)
    expect(isCorrupt(() => decodeStatusUpdate(Buffer.concat([STATUS, Buffer.from([0])])))).toBe(true)
  })

  it('accepts an XLogData split anywhere in its payload and refuses oversized or unknown messages', () => {
    // A header-only XLogData is valid (zero bytes of WAL).
    const empty = decodeServerMessage(XLOGDATA.subarray(0, 25))
    expect(empty.type === 'xlogData' && empty.data.length).toBe(0)
    for (let cut = 25; cut <= XLOGDATA.length; cut++) {
      const m = decodeServerMessage(XLOGDATA.subarray(0, cut))
      expect(m.type === 'xlogData' && m.data.length).toBe(cut - 25)
    }
    const big = Buffer.alloc(25 + xlogDataPayloadBytesMax + 1)
    big[0] = 0x77
    expect(isCorrupt(() => decodeServerMessage(big))).toBe(true)
    expect(isCorrupt(() => decodeServerMessage(Buffer.from([0x7a, 0, 0])))).toBe(true)
    expect(isCorrupt(() => decodeServerMessage(Buffer.alloc(0)))).toBe(true)
  })

  it('converts between Unix time and PostgreSQL µs since 2000-01-01', () => {
    expect(unixMsToPgMicros(Date.UTC(2000, 0, 1))).toBe(0n)
    expect(unixMsToPgMicros(Date.UTC(2000, 0, 1, 0, 0, 1))).toBe(1_000_000n)
    expect(pgMicrosToUnixMs(1_000_000n)).toBe(Date.UTC(2000, 0, 1, 0, 0, 1))
    expect(pgMicrosToUnixMs(unixMsToPgMicros(1_700_000_000_123))).toBe(1_700_000_000_123)
  })
})
