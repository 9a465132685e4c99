import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { BinaryReader, BinaryWriter } from '../../../src/core/lib/bytes.js'
import { CorruptionError, UnsupportedError, UsageError } from '../../../src/core/lib/errors.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import type { BufferTag } from '../../../src/core/pg/reltag.js'
import {
  BUFFER_TAG_BYTES,
  SlruFork,
  formatRedoTag,
  readBufferTag,
  slruBufferTag,
  writeBufferTag,
} from '../../../src/core/walredo/buffer-tag-codec.js'
import {
  MESSAGE_MAX_BYTES,
  PAGE_BYTES,
  REQUEST_RECORDS_MAX,
  RECORD_MAX_BYTES,
  RedoMessageDecoder,
  encodePing,
  INLINE_RECORD_MAX_BYTES,
  encodeRedoRequest,
  encodeRedoRequestChunks,
  redoRequestBytes,
  type RedoMessage,
} from '../../../src/core/walredo/protocol.js'

const VM_TAG: BufferTag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 2, blkno: 0 }
const MAIN_TAG: BufferTag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0, blkno: 7 }

/** A fake XLogRecord of `len` bytes whose xl_tot_len is right; the rest is a pattern seeded by `seed`. */
function record(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len)
  for (let i = 4; i < len; i++) b[i] = (i * 31 + seed) & 0xff
  b.writeUInt32LE(len, 0)
  return b
}

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex')
}

describe('BufferTag codec', () => {
  it('writes the 17-byte big-endian layout of the header example', () => {
    const w = new BinaryWriter()
    writeBufferTag(w, VM_TAG)
    expect(w.finish()).toEqual(hex('02 0000067f 00000005 00004000 00000000'))
    expect(BUFFER_TAG_BYTES).toBe(17)
  })

  it('reads back what it writes, for relation forks and SLRU pseudo-forks', () => {
    const tags: BufferTag[] = [
      MAIN_TAG,
      { spcNode: 1664, dbNode: 0, relNode: 1262, forkNum: 3, blkno: 0xffff_fffe },
      slruBufferTag(SlruFork.Clog, 2, 5),
      slruBufferTag(SlruFork.MultixactOffsets, 0, 0),
      slruBufferTag(SlruFork.MultixactMembers, 1, 31),
    ]
    for (const t of tags) {
      const w = new BinaryWriter()
      writeBufferTag(w, t)
      expect(readBufferTag(new BinaryReader(w.finish()))).toEqual(t)
    }
    expect(slruBufferTag(SlruFork.Clog, 2, 5).blkno).toBe(69)
    expect(formatRedoTag(slruBufferTag(SlruFork.Clog, 2, 5))).toBe('pg_xact page 69')
    expect(formatRedoTag(VM_TAG)).toBe('1663/5/16384_vm blk 0')
    expect(hex('40 00000000 00000000 00000000 00000045')).toEqual(
      (() => {
        const w = new BinaryWriter()
        writeBufferTag(w, slruBufferTag(SlruFork.Clog, 2, 5))
        return w.finish()
      })(),
    )
  })

  it('refuses tags that name no page, on both sides', () => {
    const bad: BufferTag[] = [
      { ...MAIN_TAG, forkNum: 4 },
      { ...MAIN_TAG, forkNum: 0x43 },
      { ...MAIN_TAG, blkno: 0xffff_ffff },
      { ...MAIN_TAG, forkNum: SlruFork.Clog },
      { ...MAIN_TAG, relNode: -1 },
    ]
    for (const t of bad) expect(() => writeBufferTag(new BinaryWriter(), t)).toThrow(UsageError)
    expect(() => readBufferTag(new BinaryReader(hex('07 0000067f 00000005 00004000 00000000')))).toThrow(CorruptionError)
    expect(() => readBufferTag(new BinaryReader(hex('40 0000067f 00000000 00000000 00000001')))).toThrow(/spc = db = rel = 0/)
    expect(() => slruBufferTag(SlruFork.Clog, 0, 32)).toThrow(UsageError)
  })
})

describe('request encoder', () => {
  it('encodes B P A A G exactly as the protocol lays it out', () => {
    const base = Buffer.alloc(PAGE_BYTES, 0xab)
    const r1 = record(24, 1)
    const r2 = record(30, 2)
    const out = encodeRedoRequest({
      tag: MAIN_TAG,
      base,
      records: [
        { endLsn: lsn(0x16b3748n), raw: r1 },
        { endLsn: lsn(0x1_0000_0010n), raw: r2 },
      ],
    })
    const tag = hex('00 0000067f 00000005 00004000 00000007')
    const expected = Buffer.concat([
      hex('42 00000015'),
      tag,
      hex('50 00002015'),
      tag,
      base,
      hex('41 00000024 00000000016b3748'),
      r1,
      hex('41 0000002a 0000000100000010'),
      r2,
      hex('47 00000015'),
      tag,
    ])
    expect(out.equals(expected)).toBe(true)
    expect(redoRequestBytes({ tag: MAIN_TAG, base, records: [{ endLsn: lsn(1), raw: r1 }, { endLsn: lsn(2), raw: r2 }] })).toBe(expected.length)
  })

  it('omits P when there is no base page, and encodes a ping as 5 bytes', () => {
    const out = encodeRedoRequest({ tag: VM_TAG, base: null, records: [{ endLsn: lsn(8), raw: record(24, 3) }] })
    expect(out[0]).toBe(0x42)
    expect(out[22]).toBe(0x41)
    expect(out.length).toBe(22 + 5 + 8 + 24 + 22)
    expect(encodePing()).toEqual(hex('48 00000004'))
  })

  it('refuses requests the worker would refuse, before allocating them', () => {
    const ok = record(24, 0)
    expect(() => encodeRedoRequest({ tag: MAIN_TAG, base: Buffer.alloc(100), records: [] })).toThrow(UsageError)
    const badLen = record(40, 0)
    badLen.writeUInt32LE(41, 0)
    expect(() => encodeRedoRequest({ tag: MAIN_TAG, base: null, records: [{ endLsn: lsn(1), raw: badLen }] })).toThrow(/xl_tot_len is 41/)
    expect(() => encodeRedoRequest({ tag: MAIN_TAG, base: null, records: [{ endLsn: lsn(1), raw: Buffer.alloc(10) }] })).toThrow(/shorter than an XLogRecord/)
    const many = Array.from({ length: REQUEST_RECORDS_MAX + 1 }, () => ({ endLsn: lsn(1), raw: ok }))
    expect(() => redoRequestBytes({ tag: MAIN_TAG, base: null, records: many })).toThrow(UnsupportedError)
    const huge = Buffer.allocUnsafe(RECORD_MAX_BYTES + 1)
    try {
      redoRequestBytes({ tag: MAIN_TAG, base: null, records: [{ endLsn: lsn(1), raw: huge }] })
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(UnsupportedError)
      expect((err as UnsupportedError).code).toBe('WALREDO_RECORD_TOO_LARGE')
    }
  })
})

describe('request encoder, gathered form', () => {
  it('gives buffers whose concatenation is the request: headers and small records copied, base and large records by reference', () => {
    const base = Buffer.alloc(PAGE_BYTES, 0x5c)
    const small = record(100, 1)
    const edge = record(INLINE_RECORD_MAX_BYTES, 2)
    const large = record(INLINE_RECORD_MAX_BYTES + 1, 3)
    const req = {
      tag: MAIN_TAG,
      base,
      records: [
        { endLsn: lsn(0x10n), raw: small },
        { endLsn: lsn(0x20n), raw: large },
        { endLsn: lsn(0x30n), raw: edge },
        { endLsn: lsn(0x40n), raw: large },
      ],
    }
    const chunks = encodeRedoRequestChunks(req)
    expect(Buffer.concat(chunks).equals(encodeRedoRequest(req))).toBe(true)
    expect(Buffer.concat(chunks).length).toBe(redoRequestBytes(req))
    // B+P headers | base | A small A | large | A edge A | large | G
    expect(chunks).toHaveLength(7)
    expect(chunks[1]).toBe(base)
    expect(chunks[3]).toBe(large)
    expect(chunks[5]).toBe(large)
    expect(chunks.filter((c) => c === small || c === edge)).toHaveLength(0)
    expect(chunks.every((c) => c.length > 0)).toBe(true)
  })

  it('is one buffer without base or large records, and encodes LSNs above 2^53 exactly', () => {
    const big = lsn(0xffff_ffff_ffff_fff0n)
    const chunks = encodeRedoRequestChunks({ tag: VM_TAG, base: null, records: [{ endLsn: big, raw: record(24, 4) }] })
    expect(chunks).toHaveLength(1)
    expect(chunks[0]!.readBigUInt64BE(22 + 5)).toBe(0xffff_ffff_ffff_fff0n)
    const near = lsn(2n ** 53n - 1n)
    expect(encodeRedoRequestChunks({ tag: VM_TAG, base: null, records: [{ endLsn: near, raw: record(24, 4) }] })[0]!.readBigUInt64BE(27)).toBe(2n ** 53n - 1n)
  })

  it('refuses a tag the protocol cannot carry, before encoding', () => {
    try {
      encodeRedoRequestChunks({ tag: { ...MAIN_TAG, forkNum: 9 }, base: null, records: [] })
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError)
      expect((err as UsageError).code).toBe('WALREDO_BAD_BUFFER_TAG')
    }
  })
})

describe('message decoder', () => {
  const base = Buffer.alloc(PAGE_BYTES)
  base.write('base page', 100)
  const r1 = record(24, 7)
  const r2 = record(301, 9)
  const stream = Buffer.concat([
    encodeRedoRequest({ tag: MAIN_TAG, base, records: [{ endLsn: lsn(0x100n), raw: r1 }, { endLsn: lsn(0x200n), raw: r2 }] }),
    encodePing(),
    encodeRedoRequest({ tag: slruBufferTag(SlruFork.Clog, 0, 3), base: null, records: [{ endLsn: lsn(0x300n), raw: r1 }] }),
  ])
  const expected: RedoMessage[] = [
    { type: 'B', tag: MAIN_TAG },
    { type: 'P', tag: MAIN_TAG, page: base },
    { type: 'A', endLsn: lsn(0x100n), record: r1 },
    { type: 'A', endLsn: lsn(0x200n), record: r2 },
    { type: 'G', tag: MAIN_TAG },
    { type: 'H' },
    { type: 'B', tag: slruBufferTag(SlruFork.Clog, 0, 3) },
    { type: 'A', endLsn: lsn(0x300n), record: r1 },
    { type: 'G', tag: slruBufferTag(SlruFork.Clog, 0, 3) },
  ]

  /** One line per message, buffers as digests: comparing 8 KiB buffers with toEqual thousands of times is slow. */
  function summary(msgs: RedoMessage[]): string {
    const digest = (b: Buffer): string => `${b.length}:${createHash('sha1').update(b).digest('hex')}`
    return msgs
      .map((m) =>
        // JSON.stringify calls Buffer#toJSON before the replacer, so look at the holder's original value.
        JSON.stringify(m, function (this: Record<string, unknown>, k: string, v: unknown) {
          const orig = this[k]
          return Buffer.isBuffer(orig) ? digest(orig) : typeof v === 'bigint' ? v.toString() : v
        }),
      )
      .join('\n')
  }

  function decodeChunks(chunks: Buffer[]): string {
    const d = new RedoMessageDecoder()
    const out: RedoMessage[] = []
    for (const c of chunks) {
      d.push(c)
      for (let m = d.next(); m !== null; m = d.next()) out.push(m)
    }
    expect(d.bufferedBytes).toBe(0)
    return summary(out)
  }

  it('decodes the stream split at every offset', () => {
    const want = summary(expected)
    expect(want).toContain('"type":"P"')
    for (let i = 0; i <= stream.length; i++) {
      expect(decodeChunks([stream.subarray(0, i), stream.subarray(i)])).toBe(want)
    }
  })

  it('decodes the stream fed in small pieces and in three-way splits', () => {
    const want = summary(expected)
    const pieces: Buffer[] = []
    for (let i = 0; i < stream.length; i += 3) pieces.push(stream.subarray(i, i + 3))
    expect(decodeChunks(pieces)).toBe(want)
    for (let i = 0; i < stream.length; i += 97) {
      for (let j = i; j < stream.length; j += 389) {
        expect(decodeChunks([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)])).toBe(want)
      }
    }
  })

  function decodeError(bytes: Buffer): CorruptionError {
    const d = new RedoMessageDecoder()
    d.push(bytes)
    try {
      while (d.next() !== null);
    } catch (err) {
      expect(err).toBeInstanceOf(CorruptionError)
      return err as CorruptionError
    }
    throw new Error('no error')
  }

  it('rejects bad framing with a typed error, before the body arrives', () => {
    expect(decodeError(hex('5a 00000004')).code).toBe('WALREDO_UNKNOWN_MESSAGE')
    expect(decodeError(hex('42 00000014')).code).toBe('WALREDO_BAD_MESSAGE_LENGTH')
    expect(decodeError(hex('48 00000005 00')).code).toBe('WALREDO_BAD_MESSAGE_LENGTH')
    expect(decodeError(hex('41 0000000c 0000000000000001')).code).toBe('WALREDO_BAD_MESSAGE_LENGTH')
    // Only the 5-byte header of a 4 GiB ApplyRecord: refused at once, nothing buffered for the body.
    const tooLong = Buffer.from([0x41, 0, 0, 0, 0])
    tooLong.writeUInt32BE(MESSAGE_MAX_BYTES + 1, 1)
    expect(decodeError(tooLong).code).toBe('WALREDO_MESSAGE_TOO_LARGE')
    expect(decodeError(hex('42 00000015 09 00000000 00000000 00000000 00000000')).code).toBe('WALREDO_BAD_BUFFER_TAG')
  })

  it('waits for more input on a partial header or body', () => {
    const d = new RedoMessageDecoder()
    d.push(hex('42 0000'))
    expect(d.next()).toBeNull()
    d.push(hex('0015 00 0000067f'))
    expect(d.next()).toBeNull()
    expect(d.bufferedBytes).toBe(10)
    d.push(hex('00000005 00004000 00000007'))
    expect(d.next()).toEqual({ type: 'B', tag: MAIN_TAG })
    expect(d.next()).toBeNull()
  })
})
