/**
 * WalFileReader on real WAL segment files: listing, start/end semantics checked against pg_waldump on the
 * same files, gaps, timelines, sizes, and the three ways valid WAL ends (zero length, zeroed page,
 * recycled page) against real corruption (a page from the future).
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PgCluster, pgAvailable } from '../../support/pg-cluster.js'
import { asOracle, parseWaldump } from './waldump-oracle.js'
import { formatLsn, lsn } from '../../../src/core/pg/lsn.js'
import { WalFileReader } from '../../../src/core/pg/wal-files.js'
import { listWalSegmentFiles } from '../../../src/core/pg/wal-segment-listing.js'
import { XLOG_BLCKSZ } from '../../../src/core/pg/wal-page.js'
import type { DecodedRecord } from '../../../src/core/pg/wal-record.js'
import { readAll, workloadWal } from './wal-files-fixture.js'

const SEG = 16 * 1024 * 1024


async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (e) {
    return e
  }
  throw new Error('expected a failure')
}

describe.skipIf(!pgAvailable())('WalFileReader', () => {
  let pg: PgCluster
  let scratch: string
  let walDir: string
  let segs: string[]
  let all: DecodedRecord[]
  let dirWith: (names: string[]) => string

  beforeAll(async () => {
    ;({ pg, scratch, walDir, segs, dirWith } = await workloadWal('walfiles', 140000))
    mkdirSync(join(walDir, 'archive_status'))
    writeFileSync(join(walDir, '00000002.history'), '1\t0/3000000\tno recovery target specified\n')
    writeFileSync(join(walDir, `${segs[0]}.partial`), 'x')
    all = (await readAll([walDir])).records
  })

  afterAll(async () => {
    await pg?.destroy()
    if (scratch) rmSync(scratch, { recursive: true, force: true })
  })

  it('lists the segments of a directory, ignoring everything else', async () => {
    expect(segs.length).toBeGreaterThanOrEqual(4)
    const files = await listWalSegmentFiles([walDir])
    expect(files.map((f) => f.name)).toEqual(segs)
    const explicit = await listWalSegmentFiles([join(walDir, segs[2]!), join(walDir, segs[1]!)])
    expect(explicit.map((f) => f.name)).toEqual([segs[1], segs[2]])
  })

  it('reads a whole pg_wal exactly as pg_waldump does, to the end of valid WAL', async () => {
    const { records, end } = await readAll([walDir])
    const oracle = parseWaldump(await pg.waldump(['--bkp-details', join(walDir, segs[0]!), join(walDir, segs[segs.length - 1]!)]))
    expect(records.map(asOracle)).toEqual(oracle)
    expect(end.reason).toBe('end-of-wal')
    expect(end.lastRecordLsn).toBe(records[records.length - 1]!.lsn)
    expect(end.endLsn).toBe(records[records.length - 1]!.endLsn)
    expect(end.message).toContain(formatLsn(end.endLsn))
  })

  it('starts at the first record after a segment start that begins inside a record, as pg_waldump does', async () => {
    const crossing = all.find((r) => Math.floor(Number(r.lsn) / SEG) !== Math.floor((Number(r.endLsn) - 1) / SEG))!
    const segno = Math.floor((Number(crossing.endLsn) - 1) / SEG)
    const name = segs.find((s) => parseInt(s.slice(16), 16) === segno)!
    const from = segs.indexOf(name)
    const files = segs.slice(from).map((s) => join(walDir, s))
    const { records } = await readAll(files)
    expect(records[0]!.lsn).toBe(crossing.endLsn)
    const oracle = parseWaldump(await pg.waldump(['--bkp-details', files[0]!, files[files.length - 1]!]))
    expect(records.map(asOracle)).toEqual(oracle)
  })

  it('honours --start inside a record and --end at a record boundary like pg_waldump -s/-e', async () => {
    const a = all[Math.floor(all.length / 3)]!
    const b = all[Math.floor((2 * all.length) / 3)]!
    const start = Number(a.lsn) + 5 // inside record a
    const { records, end } = await readAll([walDir], { startLsn: lsn(start), endLsn: b.lsn })
    expect(records[0]!.lsn).toBe(a.endLsn)
    expect(records[records.length - 1]!.endLsn).toBeLessThanOrEqual(b.lsn)
    expect(end).toMatchObject({ reason: 'end-lsn' })
    const oracle = parseWaldump(await pg.waldump(['--bkp-details', '-p', walDir, '-s', formatLsn(lsn(start)), '-e', formatLsn(b.lsn)]))
    expect(records.map(asOracle)).toEqual(oracle)
  })

  it('gives the same records for any read size, one at a time or in batches', async () => {
    const small = await readAll([walDir], { chunkBytes: XLOG_BLCKSZ })
    expect(small.records.length).toBe(all.length)
    expect(small.records.every((r, i) => r.raw.equals(all[i]!.raw) && r.endLsn === all[i]!.endLsn)).toBe(true)
    const reader = await WalFileReader.open([walDir], { chunkBytes: 3 * XLOG_BLCKSZ })
    let count = 0
    for await (const batch of reader.recordBatches()) count += batch.length
    expect(count).toBe(all.length)
    expect(reader.endReport?.reason).toBe('end-of-wal')
    // Leaving early closes the files without errors.
    const early = await WalFileReader.open([walDir])
    let k = 0
    for await (const _ of early.records()) if (++k === 10) break
    expect(k).toBe(10)
  })

  it('names a missing segment in the middle, unless the end LSN comes before it', async () => {
    const d = dirWith([segs[0]!, segs[1]!, segs[3]!])
    const err = await failure(readAll([d]))
    expect(err).toMatchObject({ code: 'WAL_SEGMENT_MISSING', kind: 'not_found' })
    expect((err as Error).message).toContain(segs[2]!)
    const gapStart = lsn(BigInt(parseInt(segs[2]!.slice(16), 16)) * BigInt(SEG))
    const { records, end } = await readAll([d], { endLsn: gapStart })
    expect(end.reason).toBe('end-lsn')
    expect(records.length).toBeGreaterThan(1000)
    expect(records.every((r) => r.endLsn <= gapStart)).toBe(true)
  })

  it('ends at the end of the files when the last record continues beyond them', async () => {
    const crossing = all.find((r) => Math.floor(Number(r.lsn) / SEG) !== Math.floor((Number(r.endLsn) - 1) / SEG))!
    const segno = Math.floor(Number(crossing.lsn) / SEG)
    const upTo = segs.findIndex((s) => parseInt(s.slice(16), 16) === segno)
    const { records, end } = await readAll(segs.slice(0, upTo + 1).map((s) => join(walDir, s)))
    expect(end.reason).toBe('end-of-files')
    expect(end.message).toContain('inside a record')
    expect(end.endLsn).toBe(crossing.lsn)
    expect(records[records.length - 1]!.endLsn).toBe(crossing.lsn)
  })

  describe('end of valid WAL inside a segment', () => {
    /** The last segment with records in it, and a record of it crossing a page boundary. */
    function lastCrossing(): { rec: DecodedRecord; page: number; name: string } {
      const rec = [...all].reverse().find((r) => {
        const p = (Math.floor(Number(r.lsn) / XLOG_BLCKSZ) + 1) * XLOG_BLCKSZ
        return Number(r.lsn) + r.xl_tot_len > p && p % SEG !== 0 // its bytes cross (XLOG_SWITCH's end LSN does not count)
      })!
      const page = (Math.floor(Number(rec.lsn) / XLOG_BLCKSZ) + 1) * XLOG_BLCKSZ
      const name = segs.find((s) => parseInt(s.slice(16), 16) === Math.floor(page / SEG))!
      return { rec, page, name }
    }

    function damaged(mutate: (seg: Buffer, pageOff: number, page: number) => void): { dir: string; rec: DecodedRecord } {
      const { rec, page, name } = lastCrossing()
      const upTo = segs.indexOf(name)
      const d = dirWith(segs.slice(0, upTo + 1))
      const seg = readFileSync(join(d, name))
      mutate(seg, page % SEG, page)
      writeFileSync(join(d, name), seg)
      return { dir: d, rec }
    }

    it('ends cleanly at a zeroed page', async () => {
      const { dir, rec } = damaged((seg, off) => seg.fill(0, off))
      const { records, end } = await readAll([dir])
      expect(end.reason).toBe('zeroed-page')
      expect(end.endLsn).toBe(rec.lsn)
      expect(records[records.length - 1]!.endLsn).toBe(rec.lsn)
    })

    it('ends cleanly at a recycled page (older page address)', async () => {
      const { dir, rec } = damaged((seg, off, page) => {
        seg.fill(0x5a, off)
        seg.writeUInt16LE(0xd110, off)
        seg.writeUInt16LE(0, off + 2)
        seg.writeUInt32LE(1, off + 4)
        seg.writeBigUInt64LE(BigInt(page - 3 * SEG), off + 8)
      })
      const { end } = await readAll([dir])
      expect(end.reason).toBe('recycled-page')
      expect(end.endLsn).toBe(rec.lsn)
      expect(end.message).toContain(formatLsn(lsn(Number(rec.lsn) - (Number(rec.lsn) % XLOG_BLCKSZ) + XLOG_BLCKSZ)))
    })

    it('refuses a recycled first page (nothing decoded before it), unless resuming', async () => {
      const { page, name } = lastCrossing()
      const d = dirWith(segs.slice(0, segs.indexOf(name) + 1))
      const seg = readFileSync(join(d, name))
      seg.writeBigUInt64LE(BigInt(page - 3 * SEG), (page % SEG) + 8)
      writeFileSync(join(d, name), seg)
      const err = await failure(readAll([d], { startLsn: lsn(page) }))
      expect(err).toMatchObject({ code: 'WAL_UNEXPECTED_FIRST_PAGE', kind: 'usage' })
      expect((err as Error).message).toContain(join(d, name))
      expect((err as Error).message).toContain(`expected at ${formatLsn(lsn(page))}, has page address ${formatLsn(lsn(page - 3 * SEG))}`)
      const resumed = await readAll([d], { startLsn: lsn(page), resume: true })
      expect(resumed.records).toEqual([])
      expect(resumed.end.reason).toBe('recycled-page')
    })

    it('reports a page address from the future as corruption', async () => {
      const { dir } = damaged((seg, off, page) => seg.writeBigUInt64LE(BigInt(page + SEG), off + 8))
      const err = await failure(readAll([dir]))
      expect(err).toMatchObject({ code: 'WAL_BAD_PAGE_ADDRESS', kind: 'corruption' })
    })
  })

  describe('bad input', () => {
    it('rejects missing paths, badly named files, duplicates and empty directories', async () => {
      expect(await failure(readAll([join(scratch, 'nope')]))).toMatchObject({ code: 'WAL_PATH_NOT_FOUND', kind: 'not_found' })
      const odd = join(scratch, 'segment.bin')
      writeFileSync(odd, 'x')
      expect(await failure(readAll([odd]))).toMatchObject({ code: 'WAL_BAD_FILE_NAME', kind: 'usage' })
      const other = dirWith([segs[0]!])
      expect(await failure(readAll([walDir, join(other, segs[0]!)]))).toMatchObject({ code: 'WAL_DUPLICATE_SEGMENT' })
      expect((await listWalSegmentFiles([walDir, join(walDir, segs[0]!)])).length).toBe(segs.length) // the same file twice is one
      const empty = join(scratch, 'empty')
      mkdirSync(empty)
      expect(await failure(readAll([empty]))).toMatchObject({ code: 'WAL_NO_SEGMENTS', kind: 'not_found' })
      expect(await failure(readAll([]))).toMatchObject({ code: 'WAL_NO_PATHS', kind: 'usage' })
    })

    it('rejects wrong sizes, a first page without a long header, and several timelines', async () => {
      const short = dirWith([segs[0]!])
      writeFileSync(join(short, segs[0]!), readFileSync(join(walDir, segs[0]!)).subarray(0, SEG / 2))
      expect(await failure(readAll([short]))).toMatchObject({ code: 'WAL_BAD_SEGMENT_SIZE', kind: 'corruption' })
      const junk = dirWith([])
      writeFileSync(join(junk, segs[0]!), Buffer.alloc(SEG, 7))
      expect(await failure(readAll([junk]))).toMatchObject({ code: 'WAL_BAD_SEGMENT_HEADER', kind: 'corruption' })
      const tl = dirWith([segs[0]!])
      copyFileSync(join(walDir, segs[1]!), join(tl, '00000002' + segs[1]!.slice(8)))
      expect(await failure(readAll([tl]))).toMatchObject({ code: 'WAL_MULTIPLE_TIMELINES', kind: 'usage' })
    })

    it('rejects a start before the first segment and an end before the start', async () => {
      const d = dirWith([segs[1]!, segs[2]!])
      expect(await failure(readAll([d], { startLsn: lsn(SEG) }))).toMatchObject({ code: 'WAL_SEGMENT_MISSING' })
      expect(await failure(readAll([walDir], { startLsn: all[100]!.lsn, endLsn: all[50]!.lsn }))).toMatchObject({ code: 'WAL_BAD_RANGE' })
    })

    it('rejects a start at or past the end of the files, unless resuming', async () => {
      const d = dirWith([segs[0]!])
      const filesEnd = (parseInt(segs[0]!.slice(16), 16) + 1) * SEG
      for (const start of [filesEnd, filesEnd + 0x28]) {
        const err = await failure(readAll([d], { startLsn: lsn(start) }))
        expect(err).toMatchObject({ code: 'WAL_SEGMENT_MISSING', kind: 'not_found' })
        expect((err as { hint: string }).hint).toContain(`ends at ${formatLsn(lsn(filesEnd))}`)
      }
      const resumed = await readAll([d], { startLsn: lsn(filesEnd), resume: true })
      expect(resumed.records).toEqual([])
      expect(resumed.end.reason).toBe('end-of-files')
    })

    it('refuses a segment under the name of the next one: its first page has the wrong address', async () => {
      const d = dirWith([])
      const next = segs[0]!.slice(0, 16) + (parseInt(segs[0]!.slice(16), 16) + 1).toString(16).toUpperCase().padStart(8, '0')
      copyFileSync(join(walDir, segs[0]!), join(d, next))
      expect(await failure(readAll([d]))).toMatchObject({ code: 'WAL_UNEXPECTED_FIRST_PAGE', kind: 'usage' })
    })
  })
})
