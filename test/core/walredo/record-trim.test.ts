/**
 * record-trim: images of other pages cut out of records, the rest intact. Records are built here byte by
 * byte (block headers with image headers, SAME_REL, origin, top-level xid, long main data) and read back
 * with the WAL decoder. The header scan that lets records without foreign images skip decoding agrees with
 * the decoder on hand-made records and on every record of real WAL with compressed images.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { crc32c } from '../../../src/core/lib/crc32c.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import type { BufferTag, RelFileNode } from '../../../src/core/pg/reltag.js'
import { decodeRecord, recordCrcIsValid, restoreBlockImage } from '../../../src/core/pg/wal-record.js'
import { foreignImageBytes, mayHaveForeignImage } from '../../../src/core/pg/wal-record-images.js'
import { WalFileReader } from '../../../src/core/pg/wal-files.js'
import { implicitTargets } from '../../../src/core/redo/rmgr-redo.js'
import '../../../src/core/redo/all.js'
import { PgCluster } from '../../support/pg-cluster.js'
import { TRIM_MIN_RECORD_BYTES, trimRecords, withoutForeignImages } from '../../../src/core/walredo/record-trim.js'

const REL_A: RelFileNode = { spcNode: 1663, dbNode: 5, relNode: 16384 }
const REL_B: RelFileNode = { spcNode: 1663, dbNode: 5, relNode: 16390 }

interface Img {
  bytes: Buffer
  holeOffset: number
  holeLength: number
  /** bimg_info: 0x01 HAS_HOLE, 0x02 APPLY, 0x04 PGLZ (the bytes are then taken as they are) */
  info: number
}
interface Blk {
  id: number
  rel: RelFileNode
  fork: number
  blkno: number
  data?: Buffer
  image?: Img
}

function u16(v: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16LE(v)
  return b
}
function u32(v: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(v >>> 0)
  return b
}

/** A PostgreSQL 15 record in canonical layout, with a right CRC. */
function build(blocks: Blk[], main: Buffer, extras: { origin?: number; toplevelXid?: number } = {}): Buffer {
  const heads: Buffer[] = []
  const pays: Buffer[] = []
  let prev: RelFileNode | null = null
  for (const b of blocks) {
    const data = b.data ?? Buffer.alloc(0)
    const same = prev !== null && prev.relNode === b.rel.relNode && prev.dbNode === b.rel.dbNode && prev.spcNode === b.rel.spcNode
    const flags = b.fork | (b.image ? 0x10 : 0) | (data.length ? 0x20 : 0) | (same ? 0x80 : 0)
    heads.push(Buffer.from([b.id, flags]), u16(data.length))
    if (b.image) {
      heads.push(u16(b.image.bytes.length), u16(b.image.holeOffset), Buffer.from([b.image.info]))
      if (b.image.info & 0x04 && b.image.info & 0x01) heads.push(u16(b.image.holeLength))
      pays.push(b.image.bytes)
    }
    if (!same) heads.push(u32(b.rel.spcNode), u32(b.rel.dbNode), u32(b.rel.relNode))
    heads.push(u32(b.blkno))
    pays.push(data)
    prev = b.rel
  }
  if (extras.origin !== undefined) heads.push(Buffer.from([253]), u16(extras.origin))
  if (extras.toplevelXid !== undefined) heads.push(Buffer.from([252]), u32(extras.toplevelXid))
  if (main.length > 0) heads.push(main.length < 256 ? Buffer.from([255, main.length]) : Buffer.concat([Buffer.from([254]), u32(main.length)]))
  const body = Buffer.concat([...heads, ...pays, main])
  const rec = Buffer.alloc(24 + body.length)
  rec.writeUInt32LE(rec.length, 0)
  rec.writeUInt32LE(777, 4)
  rec.writeBigUInt64LE(0x1234_5678n, 8)
  rec[16] = 0x10
  rec[17] = 10 // Heap
  body.copy(rec, 24)
  rec.writeUInt32LE(crc32c(rec.subarray(0, 20), crc32c(rec.subarray(24))), 20)
  return rec
}

function pattern(n: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff))
}

/** An uncompressed image with a hole: 8192 - holeLength bytes. */
function holed(seed: number, holeOffset = 100, holeLength = 5000, apply = true): Img {
  return { bytes: pattern(8192 - holeLength, seed), holeOffset, holeLength, info: 0x01 | (apply ? 0x02 : 0) }
}

const tagOf = (rel: RelFileNode, blkno: number, fork = 0): BufferTag => ({ ...rel, forkNum: fork, blkno })

describe('withoutForeignImages', () => {
  it("cuts other blocks' images and keeps everything else, the target's image included", () => {
    const mainData = pattern(300, 9) // long form of the main-data length
    const raw = build(
      [
        { id: 0, rel: REL_A, fork: 0, blkno: 7, data: pattern(40, 1), image: holed(1) },
        { id: 1, rel: REL_A, fork: 0, blkno: 8, data: pattern(12, 2), image: holed(2, 200, 3000) },
        { id: 3, rel: REL_B, fork: 0, blkno: 1, image: { bytes: pattern(900, 3), holeOffset: 50, holeLength: 400, info: 0x04 | 0x01 | 0x02 } },
      ],
      mainData,
      { origin: 5, toplevelXid: 4242 },
    )
    const before = decodeRecord(raw)
    const out = withoutForeignImages(raw, tagOf(REL_A, 7))!
    expect(out).not.toBeNull()
    expect(out.length).toBe(raw.length - (5 + 5192) - (7 + 900))
    expect(recordCrcIsValid(out)).toBe(true)
    const after = decodeRecord(out)
    expect(after.xl_xid).toBe(777)
    expect(after.xl_prev).toBe(0x1234_5678n)
    expect([after.xl_info, after.xl_rmid, after.origin, after.toplevelXid]).toEqual([0x10, 10, 5, 4242])
    expect(after.mainData().equals(mainData)).toBe(true)
    expect(after.blocks.map((b) => [b.id, b.rel.relNode, b.blkno, b.hasImage])).toEqual([
      [0, REL_A.relNode, 7, true],
      [1, REL_A.relNode, 8, false],
      [3, REL_B.relNode, 1, false],
    ])
    for (let i = 0; i < 3; i++) expect(after.blockData(after.blocks[i]!).equals(before.blockData(before.blocks[i]!))).toBe(true)
    expect(after.blocks[1]!.forkFlags & 0x80).toBe(0x80) // SAME_REL kept
    expect(restoreBlockImage(after, after.blocks[0]!).equals(restoreBlockImage(before, before.blocks[0]!))).toBe(true)
  })

  it("keeps a compressed target image with its hole length, and strips every image for an implicit target", () => {
    const raw = build(
      [
        { id: 0, rel: REL_B, fork: 0, blkno: 1, image: { bytes: pattern(1500, 3), holeOffset: 50, holeLength: 400, info: 0x04 | 0x01 | 0x02 } },
        { id: 1, rel: REL_A, fork: 0, blkno: 2, data: pattern(10, 4), image: holed(5) },
      ],
      pattern(20, 6),
    )
    const own = decodeRecord(withoutForeignImages(raw, tagOf(REL_B, 1))!)
    expect(own.blocks.map((b) => b.hasImage)).toEqual([true, false])
    expect([own.blocks[0]!.compression, own.blocks[0]!.holeLength, own.blocks[0]!.holeOffset, own.blocks[0]!.bimgLen]).toEqual(['pglz', 400, 50, 1500])
    expect(own.blockImageBytes(own.blocks[0]!).equals(pattern(1500, 3))).toBe(true)
    // The VM page of REL_A: no block reference, so no image is its own.
    const vm = decodeRecord(withoutForeignImages(raw, tagOf(REL_A, 0, 2))!)
    expect(vm.blocks.every((b) => !b.hasImage)).toBe(true)
    expect(vm.xl_tot_len).toBe(24 + 2 * 4 + 2 * 16 + 2 + 10 + 20)
  })

  it('leaves small records, records without foreign images and undecodable records alone', () => {
    const small = build([{ id: 0, rel: REL_A, fork: 0, blkno: 1, data: pattern(50, 1) }], pattern(10, 2))
    expect(small.length).toBeLessThanOrEqual(TRIM_MIN_RECORD_BYTES)
    expect(withoutForeignImages(small, tagOf(REL_A, 9))).toBeNull()
    const ownOnly = build([{ id: 0, rel: REL_A, fork: 0, blkno: 7, image: holed(1) }], Buffer.alloc(0))
    expect(withoutForeignImages(ownOnly, tagOf(REL_A, 7))).toBeNull()
    const junk = Buffer.alloc(5000, 0xee)
    junk.writeUInt32LE(5000, 0)
    expect(withoutForeignImages(junk, tagOf(REL_A, 7))).toBeNull()
  })

  it('trimRecords replaces only the records it cut, and returns the same array when none', () => {
    const foreign = build([{ id: 0, rel: REL_A, fork: 0, blkno: 8, image: holed(2) }, { id: 1, rel: REL_A, fork: 0, blkno: 7, data: pattern(30, 1) }], pattern(8, 3))
    const plain = build([{ id: 0, rel: REL_A, fork: 0, blkno: 7, data: pattern(30, 4) }], pattern(8, 5))
    const records = [
      { endLsn: lsn(0x10n), raw: plain },
      { endLsn: lsn(0x20n), raw: foreign },
      { endLsn: lsn(0x30n), raw: plain },
    ]
    const out = trimRecords(records, tagOf(REL_A, 7))
    expect(out).not.toBe(records)
    expect(out[0]).toBe(records[0])
    expect(out[2]).toBe(records[2])
    expect(out[1]!.endLsn).toBe(0x20n)
    expect(out[1]!.raw.length).toBeLessThan(foreign.length)
    expect(decodeRecord(out[1]!.raw).blocks.map((b) => b.hasImage)).toEqual([false, false])
    const none = [records[0]!, records[2]!]
    expect(trimRecords(none, tagOf(REL_A, 7))).toBe(none)
  })

  it('leaves a record with a wrong CRC as it is when asked to check (workers that check CRCs see the damage)', () => {
    const damaged = build([{ id: 0, rel: REL_A, fork: 0, blkno: 8, image: holed(2) }, { id: 1, rel: REL_A, fork: 0, blkno: 7, data: pattern(30, 1) }], pattern(8, 3))
    damaged[damaged.length - 1]! ^= 1 // main data: the record still decodes
    expect(recordCrcIsValid(damaged)).toBe(false)
    expect(withoutForeignImages(damaged, tagOf(REL_A, 7), true)).toBeNull()
    const records = [{ endLsn: lsn(0x20n), raw: damaged }]
    expect(trimRecords(records, tagOf(REL_A, 7), true)).toBe(records)
    // Without the check (workers that skip CRCs get CRC-checked input), it is rewritten with a fresh CRC.
    expect(recordCrcIsValid(withoutForeignImages(damaged, tagOf(REL_A, 7))!)).toBe(true)
  })
})

describe('mayHaveForeignImage', () => {
  it('reads the block headers: false only when every image is the page\'s own', () => {
    const own = tagOf(REL_A, 7)
    const ownOnly = build([{ id: 0, rel: REL_A, fork: 0, blkno: 7, data: pattern(20, 1), image: holed(1) }], pattern(8, 2))
    expect(mayHaveForeignImage(ownOnly, own)).toBe(false)
    expect(mayHaveForeignImage(ownOnly, tagOf(REL_A, 8))).toBe(true)
    expect(mayHaveForeignImage(ownOnly, tagOf(REL_A, 7, 1))).toBe(true)
    expect(mayHaveForeignImage(ownOnly, tagOf(REL_B, 7))).toBe(true)
    // Other blocks with data but no image; SAME_REL; a compressed own image with a hole; origin, xid, long main data.
    const mixed = build(
      [
        { id: 0, rel: REL_B, fork: 0, blkno: 3, data: pattern(30, 3) },
        { id: 1, rel: REL_A, fork: 0, blkno: 7, image: { bytes: pattern(900, 3), holeOffset: 50, holeLength: 400, info: 0x04 | 0x01 | 0x02 } },
        { id: 2, rel: REL_A, fork: 0, blkno: 9, data: pattern(5, 4) },
      ],
      pattern(300, 5),
      { origin: 3, toplevelXid: 99 },
    )
    expect(mayHaveForeignImage(mixed, own)).toBe(false)
    expect(mayHaveForeignImage(mixed, tagOf(REL_A, 9))).toBe(true)
    // A second image under SAME_REL is foreign to the first block's page.
    const two = build([{ id: 0, rel: REL_A, fork: 0, blkno: 7, image: holed(1) }, { id: 1, rel: REL_A, fork: 0, blkno: 8, image: holed(2) }], Buffer.alloc(0))
    expect(mayHaveForeignImage(two, own)).toBe(true)
    // Headers that cannot be walked: the caller decodes and the decoder decides.
    const junk = Buffer.alloc(5000, 0xee)
    junk.writeUInt32LE(5000, 0)
    expect(mayHaveForeignImage(junk, own)).toBe(true)
    expect(mayHaveForeignImage(Buffer.alloc(10), own)).toBe(true)
    for (const raw of [ownOnly, mixed, two]) {
      for (const tag of [own, tagOf(REL_A, 8), tagOf(REL_A, 9), tagOf(REL_B, 3)]) {
        expect(mayHaveForeignImage(raw, tag)).toBe(foreignImageBytes(decodeRecord(raw), tag) > 0)
      }
    }
  })
})

describe('mayHaveForeignImage on real WAL', () => {
  let pg: PgCluster
  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'trim-scan', walCompression: 'lz4' })
  })
  afterAll(async () => {
    await pg?.destroy()
  })

  it('agrees with the decoder for every block and implicit target of every record with an image', async () => {
    await pg.sql('CREATE TABLE t (id int primary key, v text) WITH (fillfactor = 60); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g; VACUUM t; CHECKPOINT;')
    const start = await pg.insertLsn()
    await pg.sql("UPDATE t SET v = v || 'x' WHERE id % 7 = 0; UPDATE t SET id = id + 100000 WHERE id % 31 = 0; DELETE FROM t WHERE id % 13 = 0; VACUUM t; SELECT pg_switch_wal();")
    const end = await pg.insertLsn()
    const reader = await WalFileReader.open([pg.walDir], { startLsn: start, endLsn: end })
    let withImages = 0
    let foreign = 0
    let compressed = 0
    for await (const batch of reader.recordBatches()) {
      for (const rec of batch) {
        if (!rec.blocks.some((b) => b.hasImage)) continue
        withImages++
        if (rec.blocks.some((b) => b.hasImage && b.compression !== 'none')) compressed++
        const tags: BufferTag[] = [...rec.blocks.map((b) => ({ ...b.rel, forkNum: b.forkNum, blkno: b.blkno })), ...implicitTargets(rec).map((t) => t.tag)]
        for (const tag of tags) {
          const expected = foreignImageBytes(rec, tag) > 0
          if (expected) foreign++
          expect(mayHaveForeignImage(rec.raw, tag)).toBe(expected)
        }
      }
    }
    expect(withImages).toBeGreaterThan(100)
    expect(compressed).toBeGreaterThan(100)
    expect(foreign).toBeGreaterThan(20)
  }, 120_000)
})
