/**
 * WorkerSession without processes: the arena (requests larger than it, read in awkward pieces, views that
 * must survive arena switches, shrinking back), batched replies and their order, replies of served requests
 * flushed before an error, limits refused from a header before the body arrives, reply pages reused.
 */
import { describe, expect, it } from 'vitest'
import { PageserverError } from '../../../src/core/lib/errors.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import type { BufferTag } from '../../../src/core/pg/reltag.js'
import type { RedoRecord } from '../../../src/core/redo/engine.js'
import { PAGE_BYTES, encodePing, encodeRedoRequest } from '../../../src/core/walredo/protocol.js'
import {
  ARENA_BYTES_DEFAULT,
  REPLIES_PER_FLUSH_MAX,
  WorkerSession,
  type RedoFn,
  type WorkerLoopOptions,
} from '../../../src/core/walredo/worker-session.js'
import { record, tagOf } from './support.js'

/** Feeds `input` to a session in reads of `readBytes` (as the fd driver does); returns the flushed batches. */
function feed(input: Buffer, fn: RedoFn, readBytes: number, opts: WorkerLoopOptions = { hintBitsLogged: false }, reusePages = false) {
  const batches: Buffer[][] = []
  // Copied: with reusePages the session builds later replies in the same buffers.
  const session = new WorkerSession(fn, opts, (replies) => batches.push(replies.map((b) => Buffer.from(b))), reusePages)
  const arenaSizes: number[] = []
  let off = 0
  while (off < input.length) {
    session.reserve()
    const n = Math.min(readBytes, session.writeRoom, input.length - off)
    input.copy(session.buffer, session.writeOffset, off, off + n)
    off += n
    session.commit(n)
    session.process()
    session.flushReplies()
    arenaSizes.push(session.buffer.length)
  }
  return { session, batches, arenaSizes }
}

/** A page naming the request: its block number in every byte pair, so replies can be told apart. */
function pageFor(tag: BufferTag): Buffer {
  const p = Buffer.alloc(PAGE_BYTES)
  for (let i = 0; i < PAGE_BYTES; i += 4) p.writeUInt32LE(tag.blkno, i)
  return p
}

describe('WorkerSession', () => {
  it('serves a request larger than its arena, read in odd pieces, with every record and the base intact', () => {
    const base = Buffer.alloc(PAGE_BYTES, 0x33)
    const records: RedoRecord[] = Array.from({ length: 400 }, (_, i) => ({ endLsn: lsn(BigInt(i + 1) * 0x100n), raw: record(5000 + (i % 7) * 531, i) }))
    const req = { tag: tagOf(9), base, records }
    const input = Buffer.concat([encodeRedoRequest({ tag: tagOf(1), base: null, records: records.slice(0, 3) }), encodeRedoRequest(req), encodePing()])
    expect(input.length).toBeGreaterThan(2 * ARENA_BYTES_DEFAULT)
    let checked = 0
    const fn: RedoFn = (tag, b, recs) => {
      if (tag.blkno === 9) {
        expect(b!.equals(base)).toBe(true)
        expect(recs).toHaveLength(records.length)
        recs.forEach((r, i) => {
          expect(r.endLsn).toBe(records[i]!.endLsn)
          expect(r.raw.equals(records[i]!.raw)).toBe(true)
        })
        checked++
      }
      return pageFor(tag)
    }
    const { session, batches, arenaSizes } = feed(input, fn, 7919)
    expect(checked).toBe(1)
    const replies = batches.flat()
    expect(replies).toHaveLength(3)
    expect(replies[0]!.equals(pageFor(tagOf(1)))).toBe(true)
    expect(replies[1]!.equals(pageFor(tagOf(9)))).toBe(true)
    expect(replies[2]!.every((b) => b === 0)).toBe(true)
    expect(session.finish()).toEqual({ requests: 2, pings: 1, truncated: false })
    // The large request cost fresh arenas, never one arena of its size; and the arena is back to its size.
    expect(Math.max(...arenaSizes)).toBe(ARENA_BYTES_DEFAULT)
    session.reserve()
    expect(session.buffer.length).toBe(ARENA_BYTES_DEFAULT)
  })

  it('grows for one message larger than the arena and shrinks back after it', () => {
    const big = record(3 * ARENA_BYTES_DEFAULT, 5)
    const input = Buffer.concat([encodeRedoRequest({ tag: tagOf(2), base: null, records: [{ endLsn: lsn(8), raw: big }] }), encodePing()])
    let seen: Buffer | null = null
    const { session, batches, arenaSizes } = feed(input, (tag, _b, recs) => ((seen = Buffer.from(recs[0]!.raw)), pageFor(tag)), 65536)
    expect(seen!.equals(big)).toBe(true)
    expect(Math.max(...arenaSizes)).toBeGreaterThan(3 * ARENA_BYTES_DEFAULT)
    expect(batches.flat()).toHaveLength(2)
    session.reserve()
    expect(session.buffer.length).toBe(ARENA_BYTES_DEFAULT)
  })

  it('hands replies over in order, at most REPLIES_PER_FLUSH_MAX at a time', () => {
    const parts: Buffer[] = []
    for (let i = 0; i < 150; i++) parts.push(i % 3 === 0 ? encodePing() : encodeRedoRequest({ tag: tagOf(i), base: null, records: [{ endLsn: lsn(8), raw: record(30, i) }] }))
    const { batches } = feed(Buffer.concat(parts), (tag) => pageFor(tag), 1 << 20)
    expect(batches.length).toBeGreaterThan(2)
    expect(batches.every((b) => b.length <= REPLIES_PER_FLUSH_MAX)).toBe(true)
    const replies = batches.flat()
    expect(replies).toHaveLength(150)
    replies.forEach((p, i) => expect(p.readUInt32LE(0)).toBe(i % 3 === 0 ? 0 : i))
  })

  it('flushes the replies of the requests served before a failure, then throws', () => {
    const input = Buffer.concat([
      encodeRedoRequest({ tag: tagOf(1), base: null, records: [{ endLsn: lsn(8), raw: record(30, 1) }] }),
      encodePing(),
      encodeRedoRequest({ tag: tagOf(2), base: null, records: [{ endLsn: lsn(8), raw: record(30, 2) }] }),
    ])
    const batches: Buffer[][] = []
    const session = new WorkerSession(
      (tag) => {
        if (tag.blkno === 2) throw new PageserverError('corruption', 'REDO_FAILED', 'cannot redo block 2')
        return pageFor(tag)
      },
      { hintBitsLogged: false },
      (r) => batches.push([...r]),
      false,
    )
    session.push(input)
    expect(() => session.process()).toThrow(/cannot redo block 2/)
    expect(batches.flat()).toHaveLength(2)
    expect(batches.flat()[0]!.readUInt32LE(0)).toBe(1)
  })

  it('refuses an ApplyRecord over the request limits from its header, before the body is there', () => {
    const head = encodeRedoRequest({ tag: tagOf(3), base: null, records: [{ endLsn: lsn(8), raw: record(100, 1) }] })
    // B (22 bytes), then the 13-byte header of an A announcing 50,000 bytes of record, and no body.
    const aHeader = Buffer.from([0x41, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8])
    aHeader.writeUInt32BE(4 + 8 + 50_000, 1)
    const session = new WorkerSession(() => Buffer.alloc(PAGE_BYTES), { hintBitsLogged: false, limits: { requestRecordBytesMax: 10_000 } }, () => {}, false)
    session.push(Buffer.concat([head.subarray(0, 22), aHeader]))
    try {
      session.process()
      expect.unreachable()
    } catch (err) {
      expect((err as PageserverError).code).toBe('WALREDO_REQUEST_TOO_LARGE')
    }
  })

  it('builds replies in reused pages once written, and takes a page the redo function made itself', () => {
    const parts = Array.from({ length: 300 }, (_, i) => encodeRedoRequest({ tag: tagOf(i), base: null, records: [{ endLsn: lsn(8), raw: record(30, i) }] }))
    const outs = new Set<Buffer>()
    const fn: RedoFn = (tag, _b, _r, _o, out) => {
      expect(out).toBeDefined()
      outs.add(out!)
      if (tag.blkno % 10 === 0) return pageFor(tag)
      pageFor(tag).copy(out!)
      return out!
    }
    const { batches } = feed(Buffer.concat(parts), fn, 1 << 20, { hintBitsLogged: false }, true)
    const replies = batches.flat()
    expect(replies).toHaveLength(300)
    replies.forEach((p, i) => expect(p.equals(pageFor(tagOf(i)))).toBe(true))
    expect(outs.size).toBeLessThanOrEqual(REPLIES_PER_FLUSH_MAX)
  })

  it('passes --skip-record-crc through as checkRecordCrc: false, and leaves it unset otherwise', () => {
    const req = encodeRedoRequest({ tag: tagOf(4), base: null, records: [{ endLsn: lsn(8), raw: record(30, 1) }] })
    const seen: Array<boolean | undefined> = []
    for (const checkRecordCrc of [undefined, false, true]) {
      const s = new WorkerSession((tag, _b, _r, o) => (seen.push(o.checkRecordCrc), pageFor(tag)), { hintBitsLogged: true, ...(checkRecordCrc === undefined ? {} : { checkRecordCrc }) }, () => {}, false)
      s.push(req)
      s.process()
    }
    expect(seen).toEqual([undefined, false, undefined])
  })
})
