/**
 * DatadirReader's GetPage path on a hand-built timeline: relation existence and size through the image
 * cache as relations appear, grow and go; pages with checksums that stay right when an image is served
 * again (remembered) and when a newer image replaces it; served pages owned by the caller; zero pages past
 * the end; redo results checksummed, and kept by the page cache like images. With and without the page cache.
 */
import { describe, expect, it } from 'vitest'
import { DatadirReader, type RedoService } from '../../../src/core/datadir/read.js'
import { encodeBlockCount, encodeRelDir, encodeU32Set, relBlockKey, relDirKey, relSizeKey, slruBlockKey, slruDirKey, slruSegmentSizeKey } from '../../../src/core/datadir/mapping.js'
import { SlruKind } from '../../../src/core/pg/slru.js'
import { Timeline } from '../../../src/core/repository/timeline.js'
import { tempDirs, testTimelineMetadata } from '../../support/timeline-fixture.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import { encodeValue, imageValue, recordValue } from '../../../src/core/model/value.js'
import { lsn, type Lsn } from '../../../src/core/pg/lsn.js'
import { ForkNumber, type RelTag } from '../../../src/core/pg/reltag.js'
import { pageChecksum } from '../../../src/core/redo/page/checksum.js'
import { NotFoundError } from '../../../src/core/lib/errors.js'
import { PageCache } from '../../../src/core/datadir/page-cache.js'

const newDir = tempDirs('ps-read-')

const meta = () => testTimelineMetadata({ dataChecksums: true })

const REL: RelTag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: ForkNumber.Main }
const OTHER: RelTag = { ...REL, relNode: 16390 }

/** A non-new heap-like page: header with pd_upper set, then bytes from `fill`, checksum left stale. */
function page(fill: number): Buffer {
  const p = Buffer.alloc(8192, fill)
  p.writeUInt16LE(0x1234, 8) // stale pd_checksum
  p.writeUInt16LE(24, 12) // pd_lower
  p.writeUInt16LE(8000, 14) // pd_upper
  p.writeUInt16LE(8192, 16) // pd_special
  p.writeUInt16LE(8192 | 4, 18)
  return p
}

const image = (b: Buffer) => encodeValue(imageValue(b))

type RedoRequest = Parameters<RedoService['redo']>[0]

async function setup(pageCache: PageCache | null = new PageCache()): Promise<{ tl: Timeline; reader: DatadirReader; redone: RedoService['redo'][]; requests: RedoRequest[] }> {
  const dir = newDir()
  const tl = await Timeline.create(dir, generateTenantId(), generateTimelineId(), meta(), null, { noSync: true, waitLsnTimeoutMs: 1000 })
  const redone: RedoService['redo'][] = []
  const requests: RedoRequest[] = []
  // A page filled with 0x77 + the number of records redone (on top of a base page of 0x77 + k: + k more).
  const redo: RedoService = {
    redo: async (req) => {
      redone.push(redo.redo)
      requests.push(req)
      const from = req.base !== null && req.base[100]! >= 0x77 ? req.base[100]! : 0x77
      return Buffer.from(page(from + req.records.length))
    },
  }
  return { tl, reader: new DatadirReader(tl, redo, { dataChecksums: true, pageCache }), redone, requests }
}

function at(tl: Timeline, l: number, writes: Array<[string, Buffer]>): Lsn {
  for (const [key, v] of writes) tl.put(key as never, lsn(l), v)
  tl.finishRecords(lsn(l), null)
  return lsn(l)
}

describe('DatadirReader', () => {
  it.each([['with', new PageCache()], ['without', null]] as const)('serves pages with right checksums, remembered per image version (%s a page cache)', async (_, cache) => {
    const { tl, reader, redone } = await setup(cache)
    try {
      const l1 = at(tl, 0x110, [
        [relDirKey(REL.spcNode, REL.dbNode), image(encodeRelDir([{ relNode: REL.relNode, forkNum: 0 }]))],
        [relSizeKey(REL), image(encodeBlockCount(3))],
        [relBlockKey(REL, 0), image(page(1))],
        [relBlockKey(REL, 1), image(page(2))],
        [relBlockKey(REL, 2), image(Buffer.alloc(8192))], // a new (all-zero) page: served as is
      ])
      for (let round = 0; round < 3; round++) {
        for (let blk = 0; blk < 2; blk++) {
          const p = await reader.getRelPage(REL, blk, l1)
          expect(p.readUInt16LE(8)).toBe(pageChecksum(p, blk))
          expect(p.subarray(24, 100).every((b) => b === blk + 1)).toBe(true)
        }
        // getPage (what basebackup uses) hands out the caller's own buffer, cached page or not.
        const own = await reader.getPage(relBlockKey(REL, 0), l1)
        expect(own[100]).toBe(1)
        own.fill(0xaa)
        expect((await reader.getRelPage(REL, 2, l1)).equals(Buffer.alloc(8192))).toBe(true)
      }
      expect((await reader.getRelPage(REL, 3, l1)).equals(Buffer.alloc(8192))).toBe(true) // past the end
      // A newer image of block 0, and a record on block 1 (redo).
      const l2 = at(tl, 0x120, [
        [relBlockKey(REL, 0), image(page(9))],
        [relBlockKey(REL, 1), encodeValue(recordValue(Buffer.from('rec'), false))],
      ])
      const p0 = await reader.getRelPage(REL, 0, l2)
      expect(p0[100]).toBe(9)
      expect(p0.readUInt16LE(8)).toBe(pageChecksum(p0, 0))
      const old0 = await reader.getRelPage(REL, 0, l1)
      expect(old0[100]).toBe(1)
      expect(old0.readUInt16LE(8)).toBe(pageChecksum(old0, 0))
      const p1 = await reader.getRelPage(REL, 1, l2)
      expect(redone.length).toBe(1)
      expect(p1[100]).toBe(0x78)
      expect(p1.readUInt16LE(8)).toBe(pageChecksum(p1, 1))
      // The same image as another block number gets that block's checksum (not a remembered one).
      const l3 = at(tl, 0x130, [[relBlockKey(REL, 1), image(page(1))]])
      const again = await reader.getRelPage(REL, 1, l3)
      expect(again.readUInt16LE(8)).toBe(pageChecksum(again, 1))
      expect(again.readUInt16LE(8)).not.toBe(pageChecksum(again, 0))
    } finally {
      await tl.close()
    }
  })

  it('keeps a page rebuilt by redo in the page cache: served again without redo while no newer version exists, then the base of newer redo', async () => {
    const cache = new PageCache()
    const { tl, reader, redone, requests } = await setup(cache)
    try {
      at(tl, 0x110, [
        [relDirKey(REL.spcNode, REL.dbNode), image(encodeRelDir([{ relNode: REL.relNode, forkNum: 0 }]))],
        [relSizeKey(REL), image(encodeBlockCount(2))],
        [relBlockKey(REL, 0), image(page(1))],
        [relBlockKey(REL, 1), image(page(2))],
      ])
      const l2 = at(tl, 0x120, [[relBlockKey(REL, 1), encodeValue(recordValue(Buffer.from('rec'), false))]])
      const l3 = at(tl, 0x130, [[relBlockKey(REL, 0), image(page(3))]]) // another key: block 1 unchanged
      // Admitted on the second read (a scan passes through), then served from the cache at any LSN up to
      // the newest one proven unchanged.
      for (const [i, l] of [l2, l2, l2, l3, l3].entries()) {
        const p = await reader.getRelPage(REL, 1, l)
        expect(p[100]).toBe(0x78)
        expect(p.readUInt16LE(8)).toBe(pageChecksum(p, 1))
        // The first two are redo results (the second one admitted): the cache kept a copy of its own.
        if (i < 2) p.fill(0)
      }
      expect(redone.length).toBe(2)
      // Below the record the page is the image, not the cached redo result.
      expect((await reader.getRelPage(REL, 1, lsn(0x110)))[100]).toBe(2)
      // A newer record: the cached page does not answer at its LSN, but is the base its redo starts from
      // (one record redone on it, not two on the image); the page rebuilt there replaces it (one entry per key, the latest), so
      // it answers the next read at l4 and no longer the older LSNs.
      const l4 = at(tl, 0x140, [[relBlockKey(REL, 1), encodeValue(recordValue(Buffer.from('rec2'), false))]])
      expect((await reader.getRelPage(REL, 1, l4))[100]).toBe(0x79) // 0x77 + the two records, either way
      expect(redone.length).toBe(3)
      const last = requests[requests.length - 1]!
      expect(last.base![100]).toBe(0x78) // the cached page of l2 (checksum and all)
      expect(last.records.map((r) => [r.endLsn, r.raw.toString()])).toEqual([[l4, 'rec2']])
      expect((await reader.getRelPage(REL, 1, l4))[100]).toBe(0x79)
      expect(redone.length).toBe(3)
      expect((await reader.getRelPage(REL, 1, l3))[100]).toBe(0x78)
      expect(redone.length).toBe(4)
      expect(requests[requests.length - 1]!.base![100]).toBe(2) // from the image: the cached version is newer
      expect(requests[requests.length - 1]!.records.length).toBe(1)
      // With the cache bypassed, the whole chain from the image.
      cache.bypass = true
      expect((await reader.getRelPage(REL, 1, l4))[100]).toBe(0x79)
      expect(requests[requests.length - 1]!.base![100]).toBe(2)
      cache.bypass = false
    } finally {
      await tl.close()
    }
  })

  it('answers existence and size as relations appear, grow and are dropped', async () => {
    const { tl, reader } = await setup()
    try {
      const dirKey = relDirKey(REL.spcNode, REL.dbNode)
      const l1 = at(tl, 0x110, [
        [dirKey, image(encodeRelDir([{ relNode: REL.relNode, forkNum: 0 }]))],
        [relSizeKey(REL), image(encodeBlockCount(1))],
      ])
      const fsm = { ...REL, forkNum: ForkNumber.Fsm }
      for (let i = 0; i < 2; i++) {
        expect(reader.relExists(REL, l1)).toBe(true)
        expect(reader.relExists(OTHER, l1)).toBe(false)
        expect(reader.relExists(fsm, l1)).toBe(false)
        expect(reader.relSize(REL, l1)).toBe(1)
        expect(reader.relSize(fsm, l1)).toBe(0)
        expect(() => reader.relSize(OTHER, l1)).toThrow(NotFoundError)
      }
      const l2 = at(tl, 0x120, [
        [dirKey, image(encodeRelDir([{ relNode: REL.relNode, forkNum: 0 }, { relNode: OTHER.relNode, forkNum: 0 }, { relNode: REL.relNode, forkNum: 1 }]))],
        [relSizeKey(REL), image(encodeBlockCount(7))],
        [relSizeKey(OTHER), image(encodeBlockCount(2))],
        [relSizeKey(fsm), image(encodeBlockCount(3))],
      ])
      const l3 = at(tl, 0x130, [[relSizeKey(REL), image(encodeBlockCount(9))]])
      for (let i = 0; i < 2; i++) {
        expect([reader.relSize(REL, l1), reader.relSize(REL, l2), reader.relSize(REL, l3)]).toEqual([1, 7, 9])
        expect([reader.relExists(OTHER, l1), reader.relExists(OTHER, l2), reader.relExists(OTHER, l3)]).toEqual([false, true, true])
        expect(reader.relSize(fsm, l3)).toBe(3)
        expect(reader.dbSize(REL.spcNode, REL.dbNode, l3)).toBe(BigInt((9 + 2 + 3) * 8192))
      }
      await tl.checkpoint()
      const l4 = at(tl, 0x140, [[dirKey, image(encodeRelDir([{ relNode: OTHER.relNode, forkNum: 0 }]))]])
      expect(reader.relExists(REL, l4)).toBe(false)
      expect(() => reader.relSize(REL, l4)).toThrow(NotFoundError)
      expect(reader.relSize(REL, l3)).toBe(9)
      expect(reader.relations(REL.spcNode, REL.dbNode, l4)).toEqual([OTHER])
    } finally {
      await tl.close()
    }
  })

  it('reads SLRU segments through the page cache: a second read redoes only the records since the first, and pages carry no checksum', async () => {
    const { tl, reader, requests } = await setup()
    try {
      const rec = (n: number) => encodeValue(recordValue(Buffer.alloc(24, n), false))
      const l1 = at(tl, 0x110, [
        [slruDirKey(SlruKind.Clog), image(encodeU32Set([0]))],
        [slruSegmentSizeKey(SlruKind.Clog, 0), image(encodeBlockCount(2))],
        [slruBlockKey(SlruKind.Clog, 0, 0), image(Buffer.alloc(8192, 0x77))],
        [slruBlockKey(SlruKind.Clog, 0, 1), image(Buffer.alloc(8192, 0x11))],
      ])
      // Commits since: 40 records on page 0.
      let l = 0x110
      for (let i = 0; i < 40; i++) at(tl, (l += 8), [[slruBlockKey(SlruKind.Clog, 0, 0), rec(i)]])
      const first = await reader.slruSegment(SlruKind.Clog, 0, lsn(l))
      expect(requests.map((r) => r.records.length)).toEqual([40])
      expect(first.subarray(0, 8192).equals(Buffer.from(page(0x77 + 40)))).toBe(true) // no checksum set on it
      expect(first.subarray(8192).every((b) => b === 0x11)).toBe(true)
      await expect(reader.slruSegment(SlruKind.Clog, 0, lsn(l1))).resolves.toHaveLength(2 * 8192)
      // Five more commits: the next read redoes those five on the cached page, not all 45 from the image.
      for (let i = 0; i < 5; i++) at(tl, (l += 8), [[slruBlockKey(SlruKind.Clog, 0, 0), rec(100 + i)]])
      requests.length = 0
      const second = await reader.slruSegment(SlruKind.Clog, 0, lsn(l))
      expect(requests.map((r) => r.records.length)).toEqual([5])
      expect(second.subarray(0, 8192).equals(Buffer.from(page(0x77 + 45)))).toBe(true)
      // And at the same LSN again, nothing at all.
      requests.length = 0
      await reader.slruSegment(SlruKind.Clog, 0, lsn(l))
      expect(requests).toEqual([])
    } finally {
      await tl.close()
    }
  })
})
