// A record re-encoded without its block images (what ingest stores for implicit targets): it decodes to
// the same header fields, block references, block data, origin, top-level xid and main data, has no
// images and a valid CRC; a record without images re-encodes to exactly its own bytes (the encoding is
// PostgreSQL's); on real WAL (VM bits cleared by heap records carrying full-page images) the VM clears and
// the redone VM pages are the same from the stripped record as from the original.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lengthKeepingImageOf, recordHasImages, writeKeepingImageOf } from '../../../src/core/pg/wal-record-images.js'
import { decodeRecord, recordCrcIsValid, type DecodedRecord } from '../../../src/core/pg/wal-record.js'
import { WalFileReader } from '../../../src/core/pg/wal-files.js'
import { ForkNumber } from '../../../src/core/pg/reltag.js'
import { redoBlock } from '../../../src/core/redo/engine.js'
import { implicitTargets } from '../../../src/core/redo/rmgr-redo.js'
import { vmClears } from '../../../src/core/redo/heap/vm-clear.js'
import '../../../src/core/redo/all.js'
import { buildRecord, type RecordSpec } from '../pg/wal-record-builder.js'
import { PgCluster } from '../../support/pg-cluster.js'

function strip(rec: DecodedRecord): Buffer {
  const out = Buffer.alloc(lengthKeepingImageOf(rec, null))
  writeKeepingImageOf(rec, null, out)
  return out
}

function shape(rec: DecodedRecord) {
  return {
    xid: rec.xl_xid,
    rmid: rec.xl_rmid,
    info: rec.xl_info & ~0x02,
    prev: rec.raw.readBigUInt64LE(8),
    origin: rec.origin,
    toplevelXid: rec.toplevelXid,
    main: rec.mainData().toString('hex'),
    blocks: rec.blocks.map((b) => ({
      id: b.id,
      fork: b.forkNum,
      rel: b.rel,
      blkno: b.blkno,
      willInit: b.willInit,
      hasData: b.hasData,
      data: rec.raw.subarray(b.dataOffset, b.dataOffset + b.dataLength).toString('hex'),
    })),
  }
}

const image = (fill: number, holeOffset = 0, bimgInfo = 0x02) => ({ stored: Buffer.alloc(8192 - (bimgInfo & 0x01 ? 1000 : 0), fill), holeOffset, bimgInfo })

describe('record without images', () => {
  const specs: Array<[string, RecordSpec]> = [
    ['one image, no data', { rmid: 10, info: 0x20, blocks: [{ id: 0, blkno: 7, image: image(1) }], mainData: Buffer.from('0123456789ab') }],
    [
      'image with a hole, data, a second block of the same relation, origin and top-level xid',
      {
        xid: 77,
        prev: 0x1234_5678n,
        rmid: 10,
        info: 0x40,
        blocks: [
          { id: 0, blkno: 9, data: Buffer.from('new tuple'), image: image(2, 100, 0x03) },
          { id: 1, blkno: 3, sameRel: true, data: Buffer.from('old') },
        ],
        origin: 5,
        toplevelXid: 700,
        mainData: Buffer.alloc(14, 9),
      },
    ],
    [
      'consistency-check image (not applied), long main data, another fork and relation',
      {
        rmid: 11,
        info: 0x00 | 0x02,
        blocks: [
          { id: 0, fork: 2, rel: { spcNode: 1663, dbNode: 5, relNode: 999 }, blkno: 1, willInit: true, data: Buffer.from('x'), image: image(3, 0, 0x00) },
          { id: 4, blkno: 2, image: image(4) },
        ],
        mainData: Buffer.alloc(300, 1),
      },
    ],
  ]
  for (const [name, spec] of specs) {
    it(`keeps everything but the images: ${name}`, () => {
      const rec = decodeRecord(buildRecord(spec))
      expect(recordHasImages(rec)).toBe(true)
      const out = strip(rec)
      expect(recordCrcIsValid(out)).toBe(true)
      const again = decodeRecord(out)
      expect(recordHasImages(again)).toBe(false)
      expect(again.xl_info & 0x02).toBe(0)
      expect(shape(again)).toEqual(shape(rec))
      expect(out.length).toBeLessThan(rec.raw.length - 7000)
    })
  }

  it('re-encodes a record without images to exactly its own bytes', () => {
    for (const spec of [
      { rmid: 10, info: 0x00, blocks: [{ id: 0, blkno: 1, data: Buffer.from('abc') }], mainData: Buffer.from('main') },
      { rmid: 1, info: 0x00, mainData: Buffer.alloc(400, 3) },
      { rmid: 10, info: 0x10, blocks: [{ id: 0, blkno: 1 }, { id: 1, blkno: 2, sameRel: true, data: Buffer.from('d') }], origin: 1, toplevelXid: 9 },
    ] satisfies RecordSpec[]) {
      const raw = buildRecord(spec)
      const rec = decodeRecord(raw)
      expect(recordHasImages(rec)).toBe(false)
      expect(strip(rec).equals(raw)).toBe(true)
    }
  })
})

describe('record without images on real WAL', () => {
  let pg: PgCluster
  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'strip-images', checksums: true })
  })
  afterAll(async () => {
    await pg?.destroy()
  })

  it('clears the same VM bits and redoes the same VM pages as the original heap records', async () => {
    await pg.sql('CREATE TABLE t (id int primary key, v text) WITH (fillfactor = 50); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g; VACUUM t; CHECKPOINT;')
    const start = await pg.insertLsn()
    await pg.sql("UPDATE t SET v = 'u' WHERE id % 50 = 0; DELETE FROM t WHERE id % 97 = 0; INSERT INTO t SELECT g, 'n' FROM generate_series(30001, 30100) g; SELECT pg_switch_wal();")
    const end = await pg.insertLsn()
    const reader = await WalFileReader.open([pg.walDir], { startLsn: start, endLsn: end })
    let checked = 0
    let changed = 0
    for await (const batch of reader.recordBatches()) {
      for (const rec of batch) {
        const targets = implicitTargets(rec).filter((t) => t.tag.forkNum === ForkNumber.VisibilityMap)
        if (targets.length === 0 || !recordHasImages(rec)) continue
        const raw = strip(rec)
        const stripped = decodeRecord(raw, rec.lsn, rec.endLsn)
        expect(vmClears(stripped)).toEqual(vmClears(rec))
        for (const t of targets) {
          const opts = { hintBitsLogged: true }
          // Every VM bit set and page LSN 0, so the record's clears show.
          const base = Buffer.alloc(8192, 0xff).fill(0, 0, 8)
          const a = redoBlock(t.tag, base, [{ raw: rec.raw, endLsn: rec.endLsn }], opts as never)
          const b = redoBlock(t.tag, base, [{ raw, endLsn: rec.endLsn }], opts as never)
          expect(b.equals(a)).toBe(true)
          if (!a.subarray(24).equals(base.subarray(24))) changed++
          const fromNew = redoBlock(t.tag, null, [{ raw, endLsn: rec.endLsn }], opts as never)
          expect(fromNew.equals(redoBlock(t.tag, null, [{ raw: rec.raw, endLsn: rec.endLsn }], opts as never))).toBe(true)
        }
        checked++
      }
    }
    expect(checked).toBeGreaterThan(20)
    expect(changed).toBeGreaterThan(0)
  }, 120_000)
})
