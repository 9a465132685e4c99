/**
 * RedoVerifier with concurrent checks: the report must not depend on the concurrency or on the order in
 * which redo answers (first mismatches and errors in WAL order), the number of checks in flight stays within
 * the bound, each check gets the right base and chain, and failures are classified (unsupported vs errors).
 * Records are hand-built (verify-builder.ts); redo is a fake that answers with chosen pages after chosen
 * delays.
 */
import { describe, expect, it } from 'vitest'
import { UnsupportedError, UsageError } from '../../../src/core/lib/errors.js'
import { RM } from '../../../src/core/pg/rmgr.js'
import type { BufferTag } from '../../../src/core/pg/reltag.js'
import type { DecodedRecord } from '../../../src/core/pg/wal-record.js'
import type { RedoRecord } from '../../../src/core/redo/engine.js'
import { pageGetLsn } from '../../../src/core/redo/page/page.js'
import { firstDifference, RedoVerifier, type RedoFn, type VerifyReport } from '../../../src/core/redo/verify.js'
import { buildImageRecord, decodedAt, heapPage } from './verify-builder.js'

const HEAP_INSERT = 0x00
/** xl_heap_insert {offnum 1, flags 0}: no visibility-map bits cleared. */
const INSERT_MAIN = Buffer.from([1, 0, 0])
/** The first payload byte of heapPage()'s tuple: lp_off 8128 + t_hoff 24. */
const PAYLOAD_OFFSET = 8192 - 64 + 24

interface Workload {
  records: DecodedRecord[]
  /** record index by end LSN */
  byEnd: Map<bigint, number>
}

/**
 * Record n touches block n % 4 (and block 4 + n % 3 when n % 5 == 0) with a check image heapPage(n);
 * the first record of each block carries an APPLY image instead (a base, nothing to check).
 */
function workload(count: number): Workload {
  const seen = new Set<number>()
  const records: DecodedRecord[] = []
  const byEnd = new Map<bigint, number>()
  for (let n = 0; n < count; n++) {
    const blks = n % 5 === 0 ? [n % 4, 4 + (n % 3)] : [n % 4]
    const blocks = blks.map((blkno, id) => {
      const first = !seen.has(blkno)
      seen.add(blkno)
      return { id, blkno, image: heapPage(n & 0xff), apply: first }
    })
    const rec = decodedAt(n, buildImageRecord({ rmid: RM.HEAP, info: HEAP_INSERT, blocks, main: INSERT_MAIN }))
    records.push(rec)
    byEnd.set(rec.endLsn, n)
  }
  return { records, byEnd }
}

function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

/** A fake redo: the "right" page is heapPage(n) of the chain's last record, wrong for records in `bad`. */
function fakeRedo(w: Workload, bad: Set<number>, opts: { delay?: (n: number) => number; fail?: Map<number, Error> } = {}) {
  let inFlight = 0
  let maxInFlight = 0
  const calls: Array<{ tag: BufferTag; base: Buffer | null; chain: RedoRecord[] }> = []
  const redo: RedoFn = async (tag, base, chain) => {
    calls.push({ tag, base, chain })
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    const n = w.byEnd.get(chain[chain.length - 1]!.endLsn)!
    try {
      const ms = opts.delay?.(n) ?? 0
      if (ms > 0) await new Promise((r) => setTimeout(r, ms))
      const err = opts.fail?.get(n)
      if (err) throw err
      return heapPage(bad.has(n) ? (n + 100) & 0xff : n & 0xff)
    } finally {
      inFlight--
    }
  }
  return { redo, calls, max: () => maxInFlight }
}

async function run(w: Workload, redo: RedoFn, concurrency: number, extra: { firstMismatchesMax?: number; errorsMax?: number } = {}): Promise<VerifyReport> {
  const v = new RedoVerifier({ redo, concurrency, ...extra })
  for (const r of w.records) await v.addRecord(r)
  return v.drain()
}

describe('RedoVerifier', () => {
  it('gives the same report at any concurrency and any completion order', async () => {
    const w = workload(120)
    const bad = new Set([17, 18, 44, 90, 91, 119])
    const serial = fakeRedo(w, bad)
    const expected = await run(w, serial.redo, 1)
    expect(serial.max()).toBe(1)
    expect(expected.mismatches).toBe(7) // record 90 has two block references
    expect(expected.blocksChecked).toBe(120 + 24 - 7) // every block reference but the 7 first (APPLY) ones
    expect(expected.firstMismatches.map((m) => m.lsn)).toEqual([17, 18, 44, 90, 90, 91, 119].map((n) => `0/${(0x1000000 + n * 0x10000).toString(16).toUpperCase()}`))
    expect(expected.firstMismatches.every((m) => m.offset === PAYLOAD_OFFSET && m.type === 'Heap/INSERT' && m.rel === '1663/5/16384')).toBe(true)

    for (const concurrency of [2, 16, 200]) {
      const rnd = lcg(concurrency)
      const f = fakeRedo(w, bad, { delay: () => Math.floor(rnd() * 4) })
      const got = await run(w, f.redo, concurrency)
      expect(got).toEqual(expected)
      expect(f.max()).toBeLessThanOrEqual(concurrency)
      if (concurrency > 2) expect(f.max()).toBeGreaterThan(2)
    }
  })

  it('keeps the first mismatches in WAL order when later checks finish first', async () => {
    const w = workload(60)
    const bad = new Set(Array.from({ length: 60 }, (_, i) => i))
    // Earlier records answer later: completion order is the reverse of WAL order within the window.
    const f = fakeRedo(w, bad, { delay: (n) => 60 - n })
    const r = await run(w, f.redo, 32, { firstMismatchesMax: 5 })
    const firstChecked = [4, 5, 6, 7, 8] // records 0..3 carry the first (APPLY) image of each block: bases only
    expect(r.firstMismatches.map((m) => m.lsn)).toEqual(firstChecked.map((n) => `0/${(0x1000000 + n * 0x10000).toString(16).toUpperCase()}`))
    expect(r.mismatches).toBe(r.blocksChecked)
  })

  it('passes the previous image (LSN stamped) as the base and queues records without images', async () => {
    const img1 = heapPage(1)
    const img3 = heapPage(3)
    const recs = [
      decodedAt(0, buildImageRecord({ rmid: RM.HEAP, info: HEAP_INSERT, blocks: [{ id: 0, blkno: 9, image: heapPage(0), apply: true }], main: INSERT_MAIN })),
      decodedAt(1, buildImageRecord({ rmid: RM.HEAP, info: HEAP_INSERT, blocks: [{ id: 0, blkno: 9, image: img1 }], main: INSERT_MAIN })),
      // No image for block 9 here (a record of an rmgr without mask): it must be chained.
      decodedAt(2, buildImageRecord({ rmid: RM.XLOG, info: 0xa0, blocks: [{ id: 0, blkno: 9 }], checking: false })),
      decodedAt(3, buildImageRecord({ rmid: RM.HEAP, info: HEAP_INSERT, blocks: [{ id: 0, blkno: 9, image: img3 }], main: INSERT_MAIN })),
    ]
    const calls: Array<{ base: Buffer | null; chain: RedoRecord[] }> = []
    const v = new RedoVerifier({
      redo: (_tag, base, chain) => {
        calls.push({ base: base && Buffer.from(base), chain })
        return chain.length === 1 ? img1 : img3
      },
      concurrency: 4,
    })
    for (const r of recs) await v.addRecord(r)
    const rep = await v.drain()
    expect(rep.mismatches).toBe(0)
    expect(rep.blocksChecked).toBe(2)
    expect(calls).toHaveLength(2)
    expect(pageGetLsn(calls[0]!.base!)).toBe(recs[0]!.endLsn)
    expect(pageGetLsn(calls[1]!.base!)).toBe(recs[1]!.endLsn)
    expect(calls[1]!.chain.map((c) => c.endLsn)).toEqual([recs[2]!.endLsn, recs[3]!.endLsn])
    // The base handed to redo is PostgreSQL's image, apart from the stamped LSN.
    expect(firstDifference(calls[1]!.base!.subarray(8), img1.subarray(8))).toBe(-1)
  })

  it('counts unsupported records apart from errors, and keeps errors in WAL order', async () => {
    const w = workload(40)
    const fail = new Map<number, Error>([
      [7, new UnsupportedError('REDO_UNSUPPORTED_RECORD', 'no redo')],
      [9, new UnsupportedError('REDO_UNSUPPORTED_RECORD', 'no redo')],
      [21, new Error('worker fell over')],
      [13, new UsageError('SOMETHING', 'bad')],
    ])
    const f = fakeRedo(w, new Set(), { fail, delay: (n) => (n === 13 ? 5 : 0) })
    const r = await run(w, f.redo, 8)
    expect(r.unsupported).toBe(2)
    expect(r.unsupportedByType).toEqual({ 'Heap/INSERT': 2 })
    expect(r.mismatches).toBe(2)
    expect(r.errors.map((e) => [e.code, e.blk])).toEqual([
      ['SOMETHING', 1],
      ['INTERNAL', 1],
    ])
    expect(r.firstMismatches).toEqual([])
  })

  it('turns a synchronous throw or an unmaskable result into a counted error', async () => {
    const w = workload(10)
    let calls = 0
    const r = await run(
      w,
      () => {
        calls++
        if (calls === 1) throw new Error('sync throw')
        const p = heapPage(0)
        p.writeUInt16LE(9000, 12) // pd_lower beyond the page: masking must fail
        return p
      },
      4,
    )
    expect(r.errors.length).toBe(r.blocksChecked)
    expect(r.errors[0]!.message).toBe('sync throw')
    expect(r.mismatches).toBe(r.blocksChecked)
  })

  it('keeps what it holds between records within heldBytesMax, forgetting the pages used longest ago', async () => {
    // A run over the WAL of a large database: 2,000 distinct pages, each met once with a full-page image. Kept
    // without a bound, that is an 8 KiB base per page ever met (16 MiB here, gigabytes for a real database).
    const pages = 2000
    const heldBytesMax = 64 * 8192
    const calls: Array<{ blkno: number; base: Buffer | null; chain: RedoRecord[] }> = []
    const v = new RedoVerifier({ redo: (tag, base, chain) => (calls.push({ blkno: tag.blkno, base, chain }), heapPage(7)), heldBytesMax })
    let heldMax = 0
    for (let n = 0; n < pages; n++) {
      await v.addRecord(decodedAt(n, buildImageRecord({ rmid: RM.HEAP, info: HEAP_INSERT, blocks: [{ id: 0, blkno: n, image: heapPage(n & 0xff), apply: true }], main: INSERT_MAIN })))
      heldMax = Math.max(heldMax, v.heldBytes)
    }
    expect(heldMax).toBeLessThanOrEqual(heldBytesMax)
    expect(heldMax).toBeGreaterThan(heldBytesMax / 2)
    // A record without an image, for a recent page, as read from a 1 MiB chunk: queued in memory of its own.
    const chunk = Buffer.alloc(1024 * 1024)
    const chained = buildImageRecord({ rmid: RM.XLOG, info: 0xa0, blocks: [{ id: 0, blkno: pages - 1 }], checking: false })
    chained.copy(chunk, 4096)
    await v.addRecord(decodedAt(pages, chunk.subarray(4096, 4096 + chained.length)))
    // The oldest page was forgotten: its next image has no base (not a check against a wrong one); a recent
    // page's image is checked against its base, with the queued record.
    const check = (n: number, blkno: number) =>
      v.addRecord(decodedAt(n, buildImageRecord({ rmid: RM.HEAP, info: HEAP_INSERT, blocks: [{ id: 0, blkno, image: heapPage(7) }], main: INSERT_MAIN })))
    await check(pages + 1, 0)
    await check(pages + 2, pages - 1)
    const rep = await v.drain()
    expect(rep.noBase).toBe(1)
    expect(rep.basesDropped).toBeGreaterThan(pages - 64) // about 62 pages of 8 KiB and their overhead stay
    expect(rep.blocksChecked).toBe(1)
    expect(rep.mismatches).toBe(0)
    expect(calls.map((c) => c.blkno)).toEqual([pages - 1])
    expect(calls[0]!.chain).toHaveLength(2)
    expect(calls[0]!.chain[0]!.raw.buffer).not.toBe(chunk.buffer)
    expect(v.heldBytes).toBeLessThanOrEqual(heldBytesMax)
  })

  it('refuses a concurrency outside 1..1024', () => {
    expect(() => new RedoVerifier({ redo: () => Buffer.alloc(8192), concurrency: 0 })).toThrow(/concurrency/)
    expect(() => new RedoVerifier({ redo: () => Buffer.alloc(8192), concurrency: 5000 })).toThrow(/concurrency/)
  })
})
