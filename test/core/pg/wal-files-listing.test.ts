/**
 * WalFileReader on the pg_wal directories an operator meets besides a plain copy: segments that are
 * symbolic links (followed, as pg_waldump follows them; a broken one is named), a promoted standby's two
 * timelines (refused with the timelines named, or one picked with `timeline`), a lone `.partial` segment,
 * and what is reported around the start: the end never before the start asked for, the first record after
 * a start inside a record, and decoding errors that name the segment file they were found in.
 */
import { copyFileSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PgCluster, pgAvailable } from '../../support/pg-cluster.js'
import { CorruptionError, PageserverError } from '../../../src/core/lib/errors.js'
import { formatLsn, lsn } from '../../../src/core/pg/lsn.js'
import { listWalSegmentFiles } from '../../../src/core/pg/wal-segment-listing.js'
import { XLOG_BLCKSZ } from '../../../src/core/pg/wal-page.js'
import type { DecodedRecord } from '../../../src/core/pg/wal-record.js'
import { readAll, workloadWal } from './wal-files-fixture.js'

const SEG = 16 * 1024 * 1024


async function failure(p: Promise<unknown>): Promise<PageserverError> {
  try {
    await p
  } catch (e) {
    if (e instanceof PageserverError) return e
    throw e
  }
  throw new Error('expected a failure')
}

function segnoOf(name: string): number {
  return parseInt(name.slice(16), 16)
}

describe.skipIf(!pgAvailable())('WalFileReader: listing and reporting', () => {
  let pg: PgCluster
  let scratch: string
  let walDir: string
  let segs: string[]
  let all: DecodedRecord[]
  let freshDir: () => string
  let dirWith: (names: string[]) => string

  beforeAll(async () => {
    ;({ pg, scratch, walDir, segs, freshDir, dirWith } = await workloadWal('walfiles-listing', 100000))
    all = (await readAll([walDir])).records
    expect(segs.length).toBeGreaterThanOrEqual(3)
  })

  afterAll(async () => {
    await pg?.destroy()
    if (scratch) rmSync(scratch, { recursive: true, force: true })
  })

  describe('symbolic links', () => {
    it('follows segments that are symbolic links to regular files, as pg_waldump does', async () => {
      const links = freshDir()
      for (const s of segs) symlinkSync(join(walDir, s), join(links, s))
      expect((await listWalSegmentFiles([links])).map((f) => f.path)).toEqual(segs.map((s) => join(links, s)))
      const { records, end } = await readAll([links])
      expect(records.length).toBe(all.length)
      expect(end.reason).toBe('end-of-wal')
      // Some files, some links: nothing is skipped (before, reading stopped at the first link, exit 0).
      const mixed = dirWith([segs[0]!])
      for (const s of segs.slice(1)) symlinkSync(join(walDir, s), join(mixed, s))
      expect((await readAll([mixed])).records.length).toBe(all.length)
    })

    it('names a link to nothing and a link to a directory named like a segment', async () => {
      const dangling = dirWith([segs[0]!])
      symlinkSync(join(scratch, 'gone'), join(dangling, segs[1]!))
      const err = await failure(readAll([dangling]))
      expect(err).toMatchObject({ code: 'WAL_SEGMENT_LINK_BROKEN', kind: 'not_found' })
      expect(err.message).toContain(join(dangling, segs[1]!))
      const toDir = dirWith([segs[0]!])
      symlinkSync(scratch, join(toDir, segs[1]!))
      const err2 = await failure(readAll([toDir]))
      expect(err2).toMatchObject({ code: 'NOT_A_REGULAR_FILE', kind: 'usage' })
      expect(err2.message).toContain(join(toDir, segs[1]!))
      // A broken link under another name is none of our business, as any other file is.
      const other = dirWith([segs[0]!])
      symlinkSync(join(scratch, 'gone'), join(other, 'not-a-segment'))
      expect((await listWalSegmentFiles([other])).length).toBe(1)
    })
  })

  describe('timelines', () => {
    /** A promoted standby's pg_wal: segs[0] on timeline 1, the later ones renamed to timeline 2. */
    function promoted(): { dir: string; tl2: string[] } {
      const d = dirWith([segs[0]!])
      writeFileSync(join(d, '00000002.history'), `1\t${formatLsn(lsn(segnoOf(segs[1]!) * SEG))}\tno recovery target specified\n`)
      const tl2 = segs.slice(1).map((s) => '00000002' + s.slice(8))
      segs.slice(1).forEach((s, i) => copyFileSync(join(walDir, s), join(d, tl2[i]!)))
      return { dir: d, tl2 }
    }

    it('refuses two timelines, naming them and the newest, without guessing', async () => {
      const { dir } = promoted()
      const err = await failure(readAll([dir]))
      expect(err).toMatchObject({ code: 'WAL_MULTIPLE_TIMELINES', kind: 'usage', details: { timelines: [1, 2] } })
      expect(err.message).toContain('(1, 2)')
      expect(err.hint).toContain('the newest, 2')
    })

    it('reads the one timeline asked for from a directory holding two', async () => {
      const { dir, tl2 } = promoted()
      const one = await readAll([dir], { timeline: 1 })
      expect(one.reader.timeline).toBe(1)
      expect(one.reader.segments.map((s) => s.name)).toEqual([segs[0]])
      expect(one.end.reason).toBe('end-of-files')
      const two = await readAll([dir], { timeline: 2 })
      expect(two.reader.timeline).toBe(2)
      expect(two.reader.segments.map((s) => s.name)).toEqual(tl2)
      const segStart = segnoOf(segs[1]!) * SEG
      expect(two.records.map((r) => r.lsn)).toEqual(all.filter((r) => Number(r.lsn) >= segStart).map((r) => r.lsn))
    })

    it('names the timelines found when none is the one asked for, and refuses a file of another timeline', async () => {
      const { dir, tl2 } = promoted()
      const err = await failure(readAll([dir], { timeline: 3 }))
      expect(err).toMatchObject({ code: 'WAL_NO_SEGMENTS', kind: 'not_found' })
      expect(err.message).toContain('timelines found: 1, 2')
      const wrong = await failure(readAll([join(dir, tl2[0]!)], { timeline: 1 }))
      expect(wrong).toMatchObject({ code: 'WAL_WRONG_TIMELINE', kind: 'usage' })
      expect(wrong.message).toContain(join(dir, tl2[0]!))
      expect(await failure(readAll([dir], { timeline: 0 }))).toMatchObject({ code: 'WAL_BAD_TIMELINE', kind: 'usage' })
    })
  })

  it('mentions the .partial files it skipped when there is nothing else', async () => {
    const d = freshDir()
    copyFileSync(join(walDir, segs[0]!), join(d, `${segs[0]}.partial`))
    const err = await failure(readAll([d]))
    expect(err).toMatchObject({ code: 'WAL_NO_SEGMENTS', kind: 'not_found' })
    expect(err.message).toContain(`${segs[0]}.partial`)
    expect(err.hint).toContain(`without ".partial" (e.g. ${segs[0]})`)
    // Beside full segments, a .partial one is still skipped quietly.
    copyFileSync(join(walDir, segs[1]!), join(d, segs[1]!))
    expect((await listWalSegmentFiles([d])).map((f) => f.name)).toEqual([segs[1]])
  })

  describe('around the start', () => {
    /** A record of the middle of the WAL that is neither the first on its page nor crosses into the next. */
    function midPageRecord(): DecodedRecord {
      return all.find((r, i) => {
        const off = Number(r.lsn) % XLOG_BLCKSZ
        return i > all.length / 3 && off > 200 && off + r.xl_tot_len < XLOG_BLCKSZ - 8 && r.xl_tot_len > 40 && Number(r.lsn) % SEG > XLOG_BLCKSZ
      })!
    }

    it('never reports an end before the start when no record is handed out', async () => {
      const a = midPageRecord()
      const start = lsn(Number(a.lsn) + 1) // inside record a
      const end = lsn(Number(a.endLsn) - 1) // before a ends: no record fits
      const { records, end: report, reader } = await readAll([walDir], { startLsn: start, endLsn: end })
      expect(records).toEqual([])
      expect(report.reason).toBe('end-lsn')
      expect(formatLsn(report.endLsn)).toBe(formatLsn(start)) // was the end of the record before a, or the page start
      expect(report.lastRecordLsn).toBeNull() // the records decoded to reach the start were not handed out
      expect(reader.firstRecordLsn).toBeNull()
    })

    it('knows the first record after a start inside a record (wal dump prints "skipping over")', async () => {
      const a = midPageRecord()
      const { records, reader } = await readAll([walDir], { startLsn: lsn(Number(a.lsn) + 3), endLsn: all[all.indexOf(a) + 3]!.endLsn })
      expect(records[0]!.lsn).toBe(a.endLsn)
      expect(reader.firstRecordLsn).toBe(a.endLsn)
      expect(records).toHaveLength(3)
    })
  })

  describe('decoding errors name the segment file', () => {
    /** A copy of the WAL with one byte of a record's data flipped in segs[1]; the record and the file. */
    function corrupted(): { dir: string; rec: DecodedRecord; path: string } {
      const segStart = segnoOf(segs[1]!) * SEG
      const rec = all.find((r) => {
        const off = Number(r.lsn) % XLOG_BLCKSZ
        return Number(r.lsn) > segStart + 4 * XLOG_BLCKSZ && r.xl_tot_len > 100 && off + 90 < XLOG_BLCKSZ
      })!
      const dir = dirWith(segs)
      const path = join(dir, segs[1]!)
      const bytes = readFileSync(path)
      bytes[(Number(rec.lsn) % SEG) + 80]! ^= 0xff
      writeFileSync(path, bytes)
      return { dir, rec, path }
    }

    for (const crcWorker of [false, true]) {
      it(`a bad record CRC (${crcWorker ? 'worker' : 'no worker'}) keeps its class, code and exit code`, async () => {
        const { dir, rec, path } = corrupted()
        const err = await failure(readAll([dir], { crcWorker, reuseBuffers: crcWorker }))
        expect(err).toBeInstanceOf(CorruptionError)
        expect(err).toMatchObject({ code: 'WAL_BAD_CRC', kind: 'corruption', exitCode: 5, details: { lsn: formatLsn(rec.lsn), path } })
        expect(err.message).toMatch(new RegExp(`at ${formatLsn(rec.lsn)} in ${path}$`))
        expect(err.hint).toContain('corrupt')
      })
    }

    it('a page of another system names its file', async () => {
      const dir = dirWith(segs)
      const path = join(dir, segs[2]!)
      const bytes = readFileSync(path)
      bytes.writeBigUInt64LE(bytes.readBigUInt64LE(24) ^ 1n, 24) // the long header's xlp_sysid
      writeFileSync(path, bytes)
      const err = await failure(readAll([dir]))
      expect(err).toBeInstanceOf(CorruptionError)
      expect(err).toMatchObject({ code: 'WAL_SYSTEM_ID_MISMATCH', exitCode: 5, details: { path } })
      expect(err.message).toContain(` in ${path}`)
    })
  })
})
