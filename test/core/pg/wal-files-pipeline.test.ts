/**
 * WalFileReader's pipeline on real WAL with full-page images: files read and CRCs checked on the worker
 * thread or on the decoding thread, read buffers fresh or reused, any read size: the same records with the
 * same bytes, every one checked by the worker when it is used; a damaged record is WAL_BAD_CRC at its LSN
 * after every record before it, whatever comes after it; a worker that dies mid-read changes nothing but
 * where the work is done; and no worker thread outlives a read, whether it ends, fails or is abandoned.
 * The worker's record walker (WalCrcWalker) is also checked on its own against the decoder.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { PgCluster, pgAvailable } from '../../support/pg-cluster.js'
import { crc32c } from '../../../src/core/lib/crc32c.js'
import { formatLsn, parseLsn } from '../../../src/core/pg/lsn.js'
import { WalCrcVerifier } from '../../../src/core/pg/wal-crc-verifier.js'
import { CrcWorkerHost } from '../../../src/core/pg/wal-crc-worker.js'
import { WalCrcWalker, type WalkBad } from '../../../src/core/pg/wal-crc-walker.js'
import { crc32cRange } from '../../../src/core/lib/crc32c.js'
import { WAL_RECORD_MAX_BYTES } from '../../../src/core/pg/wal-record.js'
import { WAL_CHUNK_POOL_MAX } from '../../../src/core/pg/wal-chunk-source.js'
import { WAL_READ_CHUNK_DEFAULT_BYTES, WalFileReader, type WalReadOptions } from '../../../src/core/pg/wal-files.js'
import { WORKER_READ_AHEAD } from '../../../src/core/pg/wal-worker-source.js'
import { XLOG_BLCKSZ } from '../../../src/core/pg/wal-page.js'

const SEG = 16 * 1024 * 1024

/** Reads everything, noting each record when it is handed out (reused buffers may not be kept). */
async function digestAll(paths: string[], opts: WalReadOptions, afterOpen?: () => void): Promise<{ keys: string[]; error: unknown; reader: WalFileReader }> {
  const reader = await WalFileReader.open(paths, opts)
  afterOpen?.()
  const keys: string[] = []
  try {
    for await (const batch of reader.recordBatches()) {
      for (const r of batch) {
        // A checksum of the bytes, taken now (a reused buffer is overwritten later), by a different route
        // than the one under test (the whole record, not body then header).
        keys.push(`${formatLsn(r.lsn)}-${formatLsn(r.endLsn)}-${r.blocks.length}-${crc32c(r.raw)}`)
      }
    }
  } catch (error) {
    return { keys, error, reader }
  }
  return { keys, error: null, reader }
}

/** Start and end LSN of a digested record. */
function span(key: string): [number, number] {
  const [a, b] = key.split('-')
  return [Number(parseLsn(a!)), Number(parseLsn(b!))]
}

const variants: Array<{ label: string; opts: WalReadOptions }> = [
  { label: 'worker', opts: { crcWorker: true } },
  { label: 'worker, reused buffers', opts: { crcWorker: true, reuseBuffers: true } },
  { label: 'worker, reused 8 KiB buffers', opts: { crcWorker: true, reuseBuffers: true, chunkBytes: XLOG_BLCKSZ } },
  { label: 'worker, 24 KiB reads', opts: { crcWorker: true, chunkBytes: 3 * XLOG_BLCKSZ } },
  { label: 'worker, 8 KiB reads, no balance', opts: { crcWorker: true, chunkBytes: XLOG_BLCKSZ, crcWorkerBalance: false } },
  { label: 'no worker, reused 40 KiB buffers', opts: { crcWorker: false, reuseBuffers: true, chunkBytes: 5 * XLOG_BLCKSZ } },
]

/** The variants that cover the error paths: no worker, worker, worker with reused buffers split on every page. */
const faultVariants = [{ label: 'no worker', opts: { crcWorker: false } }, variants[0]!, variants[2]!]

describe.skipIf(!pgAvailable())('WalFileReader pipeline', () => {
  let pg: PgCluster
  let scratch: string
  let walDir: string
  let segs: string[]
  let reference: string[]
  let maxRecordBytes: number
  let n = 0

  beforeAll(async () => {
    pg = await PgCluster.start({ checksums: true, name: 'walpipe' })
    await pg.runWorkload([
      { name: 'fill', sql: `CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 60000) g;` },
      { name: 'checkpoint', sql: 'CHECKPOINT;' },
      { name: 'images', sql: `UPDATE t SET v = v || 'x' WHERE id % 7 = 0;` },
      { name: 'more', sql: `INSERT INTO t SELECT g, repeat('y', 300) FROM generate_series(60001, 90000) g;` },
      // One record of ~200 KB: with 8 KiB reads the decoder holds 25 chunks at once.
      { name: 'big', sql: `SELECT pg_logical_emit_message(false, 'big', repeat('z', 200000));` },
    ])
    await pg.stop()
    scratch = mkdtempSync(join(tmpdir(), 'ps-wal-pipe-'))
    walDir = join(scratch, 'pg_wal')
    mkdirSync(walDir)
    segs = pg.walSegments()
    for (const s of segs) copyFileSync(join(pg.walDir, s), join(walDir, s))
    const ref = await digestAll([walDir], { crcWorker: false })
    expect(ref.error).toBeNull()
    reference = ref.keys
    maxRecordBytes = reference.reduce((m, k) => Math.max(m, span(k)[1] - span(k)[0]), 0)
  })

  afterAll(async () => {
    await pg?.destroy()
    if (scratch) rmSync(scratch, { recursive: true, force: true })
  })

  afterEach(async () => {
    // The shared worker lingers after each read; stopped now, no thread is left.
    await WalCrcVerifier.stopIdleWorker()
    expect(WalCrcVerifier.live).toBe(0)
  })

  /** A copy of the WAL with `mutate` applied to the segment holding `lsn` (at that LSN's offset). */
  function damagedCopy(edits: Array<{ lsn: number; mutate: (seg: Buffer, off: number) => void }>): string {
    const d = join(scratch, `d${++n}`)
    mkdirSync(d)
    for (const s of segs) copyFileSync(join(walDir, s), join(d, s))
    for (const e of edits) {
      const name = segs.find((s) => parseInt(s.slice(16), 16) === Math.floor(e.lsn / SEG))!
      const seg = readFileSync(join(d, name))
      e.mutate(seg, e.lsn % SEG)
      writeFileSync(join(d, name), seg)
    }
    return d
  }

  it('has WAL with full-page images over several segments, and a record of 200 KB', () => {
    expect(segs.length).toBeGreaterThanOrEqual(3)
    expect(reference.length).toBeGreaterThan(50_000)
    expect(maxRecordBytes).toBeGreaterThan(200_000)
  })

  it('gives the same records and bytes with the CRC worker, reused buffers and any read size', async () => {
    for (const v of variants) {
      const { keys, error, reader } = await digestAll([walDir], v.opts)
      expect(error, v.label).toBeNull()
      expect(keys.length, v.label).toBe(reference.length)
      expect(keys, v.label).toEqual(reference)
      expect(reader.endReport?.reason, v.label).toBe('end-of-wal')
      expect(reader.stats?.crcWorker, v.label).toBe(v.opts.crcWorker)
      // With the worker, every record's CRC was checked there, unless the balance gave some chunks to the
      // decoding thread (never without it).
      const local = reader.stats!.crcLocalChunks
      if (v.opts.crcWorkerBalance === false) expect(local, v.label).toBe(0)
      if (local === 0) expect(reader.stats!.crcWorkerRecords, v.label).toBe(v.opts.crcWorker ? reference.length : 0)
      else expect(reader.stats!.crcWorkerRecords, v.label).toBeLessThan(reference.length)
      if (v.opts.reuseBuffers) {
        // Reused: a handful, plus the chunks the big record spans while it is assembled; afterwards at
        // most WAL_CHUNK_POOL_MAX free ones are kept, beside the read-ahead and the chunk in hand.
        const bigChunks = Math.ceil(maxRecordBytes / (v.opts.chunkBytes ?? WAL_READ_CHUNK_DEFAULT_BYTES)) + 1
        expect(reader.stats!.chunksAllocated, v.label).toBeLessThanOrEqual(WAL_CHUNK_POOL_MAX + 2 + bigChunks)
        expect(reader.stats!.chunksKept, v.label).toBeLessThanOrEqual(WAL_CHUNK_POOL_MAX + WORKER_READ_AHEAD + 2)
        if (v.opts.chunkBytes === XLOG_BLCKSZ) expect(reader.stats!.chunksAllocated, v.label).toBeGreaterThan(WAL_CHUNK_POOL_MAX + WORKER_READ_AHEAD + 2)
      }
    }
  })

  it('reports a damaged record as WAL_BAD_CRC at its LSN after every record before it, worker or not', async () => {
    // A record in the middle of the second segment, whole on one page, its body damaged.
    const spans = reference.map(span)
    const k = spans.findIndex(([s, e]) => s > SEG * 1.5 && Math.floor(s / XLOG_BLCKSZ) === Math.floor((e - 1) / XLOG_BLCKSZ) && e - s > 40)
    expect(k).toBeGreaterThan(0)
    const badLsn = spans[k]![0]
    const dir = damagedCopy([{ lsn: badLsn + 30, mutate: (seg, off) => void (seg[off] ^= 0x40) }])
    for (const v of faultVariants) {
      const { keys, error } = await digestAll([dir], v.opts)
      expect(error, v.label).toMatchObject({ code: 'WAL_BAD_CRC', details: { lsn: formatLsn(BigInt(badLsn)) } })
      expect(keys, v.label).toEqual(reference.slice(0, k))
    }
  })

  it('reports the first fault in WAL order when later WAL is damaged too', async () => {
    const lsns = reference.map((key) => span(key)[0])
    const k = Math.floor(lsns.length / 2)
    const badLsn = lsns[k]!
    const laterPage = (Math.floor(lsns[k + 40]! / XLOG_BLCKSZ) + 1) * XLOG_BLCKSZ
    const dir = damagedCopy([
      { lsn: badLsn + 24, mutate: (seg, off) => void (seg[off] ^= 1) },
      { lsn: laterPage, mutate: (seg, off) => seg.writeUInt16LE(0xbeef, off) }, // a bad page magic further on
      { lsn: lsns[k + 80]! + 25, mutate: (seg, off) => void (seg[off] ^= 1) },
    ])
    for (const v of faultVariants) {
      const { keys, error } = await digestAll([dir], v.opts)
      expect(error, v.label).toMatchObject({ code: 'WAL_BAD_CRC', details: { lsn: formatLsn(BigInt(badLsn)) } })
      expect(keys.length, v.label).toBe(k)
    }
    // Without the first damage, the page fault is the first.
    const dir2 = damagedCopy([{ lsn: laterPage, mutate: (seg, off) => seg.writeUInt16LE(0xbeef, off) }])
    for (const v of faultVariants) {
      const { error } = await digestAll([dir2], v.opts)
      expect(error, v.label).toMatchObject({ code: 'WAL_BAD_MAGIC' })
    }
  })

  it('reports a damaged record before a later read failure, with the records before it', async () => {
    // The last record whole on one page near the end of the second segment is damaged, and the third
    // segment is cut short: its read fails while the damaged record's batch still waits for its check.
    const spans = reference.map(span)
    const seg2 = Math.floor(spans.find(([s]) => s >= SEG)![0] / SEG)
    let k = -1
    for (let i = 0; i < spans.length; i++) {
      const [s, e] = spans[i]!
      if (Math.floor(s / SEG) !== seg2 || Math.floor(e / SEG) !== seg2) continue
      if (Math.floor(s / XLOG_BLCKSZ) === Math.floor((e - 1) / XLOG_BLCKSZ) && e - s > 40) k = i
    }
    expect(k).toBeGreaterThan(0)
    const badLsn = spans[k]![0]
    expect((seg2 + 1) * SEG - badLsn).toBeLessThan(1024 * 1024) // in the segment's last 1 MiB read
    const dir = damagedCopy([{ lsn: badLsn + 30, mutate: (seg, off) => void (seg[off] ^= 0x40) }])
    const next = join(dir, segs.find((name) => parseInt(name.slice(16), 16) === seg2 + 1)!)
    const saved = readFileSync(next)
    for (const v of faultVariants) {
      writeFileSync(next, saved)
      // Opened while whole (the reader checks sizes when it opens); then the file becomes a directory,
      // whose read fails.
      const { keys, error } = await digestAll([dir], v.opts, () => {
        rmSync(next)
        mkdirSync(next)
      })
      rmSync(next, { recursive: true })
      expect(error, v.label).toMatchObject({ code: 'WAL_BAD_CRC', details: { lsn: formatLsn(BigInt(badLsn)) } })
      expect(keys, v.label).toEqual(reference.slice(0, k))
    }
  })

  it('leaves no worker behind when the consumer stops early or the read fails', async () => {
    const reader = await WalFileReader.open([walDir], { crcWorker: true, reuseBuffers: true })
    let seen = 0
    for await (const batch of reader.recordBatches()) {
      seen += batch.length
      if (seen > 1000) break
    }
    await WalCrcVerifier.stopIdleWorker() // nobody uses it any more: it stops
    expect(WalCrcVerifier.live).toBe(0)
    const oneByOne = await WalFileReader.open([walDir], { crcWorker: true })
    let k = 0
    for await (const _ of oneByOne.records()) if (++k === 5) break
    await WalCrcVerifier.stopIdleWorker()
    expect(WalCrcVerifier.live).toBe(0)
    // A missing segment in the middle.
    const d = join(scratch, `gap${++n}`)
    mkdirSync(d)
    for (const s of [segs[0]!, ...segs.slice(2)]) copyFileSync(join(walDir, s), join(d, s))
    const gap = await digestAll([d], { crcWorker: true })
    expect(gap.error).toMatchObject({ code: 'WAL_SEGMENT_MISSING' })
  })
  it('reads on when the worker dies mid-read: same records, the rest checked on the decoding thread', async () => {
    const reader = await WalFileReader.open([walDir], { crcWorker: true, chunkBytes: 64 * 1024 })
    const keys: string[] = []
    let crashed = false
    for await (const batch of reader.recordBatches()) {
      for (const r of batch) keys.push(`${formatLsn(r.lsn)}-${formatLsn(r.endLsn)}-${r.blocks.length}-${crc32c(r.raw)}`)
      if (!crashed && keys.length > reference.length / 3) {
        crashed = true
        const host = CrcWorkerHost.acquire()
        host.crashForTest()
        host.release()
      }
    }
    expect(keys).toEqual(reference)
    expect(reader.stats!.crcWorkerRecords).toBeGreaterThan(0)
    expect(reader.stats!.crcWorkerRecords).toBeLessThan(reference.length)
  })

  describe('WalCrcWalker', () => {
    const crc = (b: Uint8Array, start: number, end: number, prev: number): number => crc32cRange(b as Buffer, start, end, prev)

    /** Walks the segment files from `startLsn` in chunks of `chunkBytes`; the LSNs it checked and its first bad CRC. */
    function walkFiles(dir: string, startLsn: number, chunkBytes: number, checkChunk: (lsn: number) => boolean = () => true): { ok: number[]; bad: WalkBad | null; state: number } {
      const w = new WalCrcWalker(startLsn, SEG, WAL_RECORD_MAX_BYTES, crc)
      const ok: number[] = []
      let bad: WalkBad | null = null
      for (const name of segs) {
        const segStart = parseInt(name.slice(16), 16) * SEG
        if (segStart + SEG <= startLsn) continue
        const seg = readFileSync(join(dir, name))
        for (let off = Math.max(0, startLsn - segStart); off < SEG && bad === null && w.state === 0; off += chunkBytes) {
          bad = w.walk(seg.subarray(off, Math.min(SEG, off + chunkBytes)), segStart + off, ok, checkChunk(segStart + off))
        }
      }
      return { ok, bad, state: w.state }
    }

    it('checks exactly the records the decoder finds, in any chunking, from a segment start or a page inside a record', async () => {
      const lsns = reference.map((k) => span(k)[0])
      const first = parseInt(segs[0]!.slice(16), 16) * SEG
      for (const chunk of [XLOG_BLCKSZ, 3 * XLOG_BLCKSZ, 1024 * 1024]) {
        const r = walkFiles(walDir, first, chunk)
        expect(r.bad, `${chunk}`).toBeNull()
        expect(r.state, `${chunk}`).toBe(1) // stopped at the end of valid WAL
        expect(r.ok, `${chunk}`).toEqual(lsns)
      }
      // From the page holding a record that spans pages (its tail is skipped there, as by the decoder).
      const spans = reference.map(span)
      const k = spans.findIndex(([s, e]) => s > SEG && Math.floor(s / XLOG_BLCKSZ) !== Math.floor((e - 1) / XLOG_BLCKSZ))
      const page = (Math.floor(spans[k]![0] / XLOG_BLCKSZ) + 1) * XLOG_BLCKSZ
      const fromPage = await digestAll([walDir], { crcWorker: false, startLsn: page as never })
      const r = walkFiles(walDir, page, 5 * XLOG_BLCKSZ)
      expect(r.ok).toEqual(fromPage.keys.map((key) => span(key)[0]))
    })

    it('keeps its place through chunks it does not check, and gives verdicts only for records wholly in checked ones', () => {
      const spans = reference.map(span)
      const first = parseInt(segs[0]!.slice(16), 16) * SEG
      for (const chunk of [XLOG_BLCKSZ, 3 * XLOG_BLCKSZ, 64 * 1024]) {
        // Chunks start at each segment's start (walkFiles); every third one of a segment is unchecked.
        const chunkStart = (lsn: number): number => lsn - ((lsn % SEG) % chunk)
        const checked = (start: number): boolean => Math.floor((start % SEG) / chunk) % 3 !== 2
        const r = walkFiles(walDir, first, chunk, checked)
        expect(r.bad, `${chunk}`).toBeNull()
        expect(r.state, `${chunk}`).toBe(1)
        // A record is checked if every chunk it has bytes in is.
        const want = spans
          .filter(([a, e]) => {
            for (let c = chunkStart(a); c < e; c = Math.min(c + chunk, (Math.floor(c / SEG) + 1) * SEG)) if (!checked(c)) return false
            return true
          })
          .map(([a]) => a)
        expect(want.length, `${chunk}`).toBeLessThan(spans.length)
        expect(r.ok, `${chunk}`).toEqual(want)
      }
      // A damaged record in an unchecked chunk is not the walker's to report; the walk goes on.
      const k = spans.findIndex(([a, e]) => a > SEG * 1.2 && e - a > 64 && Math.floor(a / XLOG_BLCKSZ) === Math.floor((e - 1) / XLOG_BLCKSZ))
      const [a] = spans[k]!
      const dir = damagedCopy([{ lsn: a + 40, mutate: (seg, off) => void (seg[off] ^= 0x10) }])
      const page = Math.floor(a / XLOG_BLCKSZ) * XLOG_BLCKSZ
      const r = walkFiles(dir, first, XLOG_BLCKSZ, (lsn) => lsn !== page)
      expect(r.bad).toBeNull()
      expect(r.state).toBe(1)
      expect(r.ok).not.toContain(a)
    })

    it('names the damaged record with its stored and computed CRC, and stops there', () => {
      const spans = reference.map(span)
      // A record that spans pages, damaged on its second page.
      const k = spans.findIndex(([s, e]) => s > SEG * 1.2 && Math.floor(s / XLOG_BLCKSZ) !== Math.floor((e - 1) / XLOG_BLCKSZ) && e % XLOG_BLCKSZ > 64)
      const [s, e] = spans[k]!
      const dir = damagedCopy([{ lsn: e - 16, mutate: (seg, off) => void (seg[off] ^= 0x10) }])
      const r = walkFiles(dir, parseInt(segs[0]!.slice(16), 16) * SEG, 1024 * 1024)
      expect(r.bad).toMatchObject({ lsn: s })
      expect(r.bad!.stored).not.toBe(r.bad!.computed)
      expect(r.ok).toEqual(spans.slice(0, k).map(([a]) => a))
      expect(r.state).toBe(2)
    })
  })
})
