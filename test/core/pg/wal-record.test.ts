/**
 * decodeRecord and restoreBlockImage on records built by hand (wal-record-builder.ts, written from
 * xlogrecord.h, not from the decoder): every fragment kind, every image shape, and each structural check
 * PostgreSQL's DecodeXLogRecord makes.
 */
import { describe, expect, it } from 'vitest'
import { compressSync as lz4CompressSync } from 'lz4-napi'
import { PageserverError } from '../../../src/core/lib/errors.js'
import { INVALID_LSN, lsn } from '../../../src/core/pg/lsn.js'
import { decodeRecord, recordCrcIsValid, restoreBlockImage } from '../../../src/core/pg/wal-record.js'
import { recordToJson } from '../../../src/core/pg/wal-format.js'
import { buildRecord, fixCrc } from './wal-record-builder.js'
import { mulberry32 } from '../../support/prng.js'

const REL = { spcNode: 1663, dbNode: 5, relNode: 16384 }

/** A standard page: pd_lower 200, pd_upper 6000, with a zero hole between and bytes around it. */
function standardPage(): Buffer {
  const p = Buffer.alloc(8192)
  for (let i = 0; i < 8192; i++) p[i] = (i * 31 + 7) & 0xff
  p.fill(0, 200, 6000)
  p.writeUInt16LE(200, 12)
  p.writeUInt16LE(6000, 14)
  return p
}

function expectBad(raw: Buffer, code = 'WAL_BAD_RECORD'): void {
  expect(() => decodeRecord(raw, lsn(0x1000028))).toThrow(expect.objectContaining({ code, kind: 'corruption' }))
}

/** A record with five images of one page (and a VM page): uncompressed with and without hole, pglz, lz4, zstd. */
function imageRecord(): { raw: Buffer; page: Buffer; vm: Buffer } {
  const page = standardPage()
  const body = Buffer.concat([page.subarray(0, 200), page.subarray(6000)])
  const lz4 = lz4CompressSync(body).subarray(4)
  // A pglz stream of only literals is valid: control byte 0 before every 8 bytes.
  const pglz: number[] = []
  for (let i = 0; i < body.length; i += 8) pglz.push(0, ...body.subarray(i, i + 8))
  // zstd: one raw block.
  const zstd = Buffer.concat([
    Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x60, (body.length - 256) & 0xff, (body.length - 256) >> 8]),
    Buffer.from([((body.length << 3) | 1) & 0xff, ((body.length << 3) >> 8) & 0xff, (body.length << 3) >> 16]),
    body,
  ])
  const vm = Buffer.alloc(8192, 0x5a)
  const raw = buildRecord({
    rmid: 0,
    info: 0xb0,
    blocks: [
      { id: 0, rel: REL, blkno: 0, image: { stored: body, holeOffset: 200, bimgInfo: 0x01 | 0x02 } },
      { id: 1, sameRel: true, fork: 2, blkno: 0, image: { stored: vm, holeOffset: 0, bimgInfo: 0x02 } },
      { id: 2, sameRel: true, blkno: 2, image: { stored: Buffer.from(pglz), holeOffset: 200, holeLength: 5800, bimgInfo: 0x01 | 0x04 } },
      { id: 3, sameRel: true, blkno: 3, image: { stored: lz4, holeOffset: 200, holeLength: 5800, bimgInfo: 0x01 | 0x08 } },
      { id: 4, sameRel: true, blkno: 4, image: { stored: zstd, holeOffset: 200, holeLength: 5800, bimgInfo: 0x01 | 0x10 | 0x02 } },
    ],
  })
  return { raw, page, vm }
}

describe('decodeRecord', () => {
  it('decodes blocks, SAME_REL, data, origin, top-level xid and main data, with payload offsets', () => {
    const raw = buildRecord({
      xid: 735,
      prev: 0x1000028n,
      info: 0x80,
      rmid: 10,
      blocks: [
        { id: 0, rel: REL, blkno: 7, willInit: true, data: Buffer.from('data-zero') },
        { id: 3, fork: 2, sameRel: true, blkno: 1 },
        { id: 5, rel: { spcNode: 1664, dbNode: 0, relNode: 1262 }, fork: 1, blkno: 4294967294, data: Buffer.from('d5') },
      ],
      origin: 7,
      toplevelXid: 734,
      mainData: Buffer.from('main!'),
    })
    expect(recordCrcIsValid(raw)).toBe(true)
    const rec = decodeRecord(raw, lsn(0x10000a0), lsn(0x1000100))
    expect(rec.lsn).toBe(0x10000a0n)
    expect(rec.endLsn).toBe(0x1000100n)
    expect(rec.xl_prev).toBe(0x1000028n)
    expect([rec.xl_xid, rec.xl_info, rec.xl_rmid, rec.rmgrInfo, rec.xl_tot_len]).toEqual([735, 0x80, 10, 0x80, raw.length])
    expect(rec.origin).toBe(7)
    expect(rec.toplevelXid).toBe(734)
    expect(rec.mainData().toString()).toBe('main!')
    expect(rec.blocks.map((b) => [b.id, b.forkNum, b.blkno, b.willInit, b.hasData, b.hasImage])).toEqual([
      [0, 0, 7, true, true, false],
      [3, 2, 1, false, false, false],
      [5, 1, 4294967294, false, true, false],
    ])
    expect(rec.blocks[1]!.rel).toEqual(REL)
    expect(rec.blocks[2]!.rel).toEqual({ spcNode: 1664, dbNode: 0, relNode: 1262 })
    expect(rec.blockData(rec.blocks[0]!).toString()).toBe('data-zero')
    expect(rec.blockData(rec.blocks[2]!).toString()).toBe('d5')
    expect(rec.block(3)).toBe(rec.blocks[1])
    expect(rec.block(4)).toBeUndefined()
    expect(recordToJson(rec)).toMatchObject({ lsn: '0/10000A0', endLsn: '0/1000100', prevLsn: '0/1000028', type: 'INSERT+INIT', mainDataLength: 5 })
  })

  it('decodes records without blocks or main data, and long main-data headers', () => {
    const empty = decodeRecord(buildRecord({ rmid: 0, info: 0x20 }))
    expect(empty.blocks).toEqual([])
    expect(empty.mainDataLength).toBe(0)
    expect(empty.lsn).toBe(INVALID_LSN)
    expect(empty.describePosition()).toBe('ending at 0/0')
    const long = decodeRecord(buildRecord({ mainData: Buffer.alloc(70_000, 0x6d) }))
    expect(long.mainDataLength).toBe(70_000)
    const forcedLong = decodeRecord(buildRecord({ mainData: Buffer.from('x'), longMainData: true }))
    expect(forcedLong.mainData().toString()).toBe('x')
  })

  it('restores images: uncompressed with and without hole, pglz, lz4 and zstd with hole', () => {
    const { raw, page, vm } = imageRecord()
    const rec = decodeRecord(raw)
    expect(rec.blocks.map((b) => [b.compression, b.applyImage, b.holeOffset, b.holeLength])).toEqual([
      ['none', true, 200, 5800],
      ['none', true, 0, 0],
      ['pglz', false, 200, 5800],
      ['lz4', false, 200, 5800],
      ['zstd', true, 200, 5800],
    ])
    const out = Buffer.alloc(8192, 0xff)
    for (const b of rec.blocks) {
      out.fill(0xff)
      const restored = restoreBlockImage(rec, b, out)
      expect(restored.equals(b.id === 1 ? vm : page), `block ${b.id}`).toBe(true)
    }
    expect(restoreBlockImage(rec, rec.blocks[0]!).equals(page)).toBe(true) // fresh buffer
    const noImage = decodeRecord(buildRecord({ blocks: [{ id: 0, blkno: 1, data: Buffer.from('x') }] }))
    expect(() => restoreBlockImage(noImage, noImage.blocks[0]!)).toThrow(expect.objectContaining({ code: 'WAL_NO_IMAGE' }))
  })

  it('restores images from and into shared memory at any alignment, touching only the page', () => {
    // WAL chunks and in-memory layer slabs are SharedArrayBuffers, where misaligned copies take another path
    // (lib/shared-copy.ts).
    const { raw, page, vm } = imageRecord()
    for (const recOff of [0, 1, 3, 4]) {
      const chunk = Buffer.from(new SharedArrayBuffer(raw.length + 8))
      raw.copy(chunk, recOff)
      const rec = decodeRecord(chunk.subarray(recOff, recOff + raw.length))
      for (const outOff of [0, 2, 5, 8]) {
        const slab = Buffer.from(new SharedArrayBuffer(8192 + 16)).fill(0xee)
        for (const b of rec.blocks) {
          const out = slab.subarray(outOff, outOff + 8192)
          expect(restoreBlockImage(rec, b, out)).toBe(out)
          expect(out.equals(b.id === 1 ? vm : page), `block ${b.id}, record at +${recOff}, page at +${outOff}`).toBe(true)
          expect(slab.subarray(0, outOff).every((x) => x === 0xee) && slab.subarray(outOff + 8192).every((x) => x === 0xee)).toBe(true)
        }
      }
    }
  })

  it('rejects what DecodeXLogRecord rejects', () => {
    const withBlocks = (blocks: Parameters<typeof buildRecord>[0]['blocks']) => buildRecord({ blocks, mainData: Buffer.from('m') })
    expectBad(withBlocks([{ id: 2, blkno: 1 }, { id: 2, blkno: 2 }])) // ids not increasing
    expectBad(withBlocks([{ id: 0, sameRel: true, blkno: 1 }])) // SAME_REL without a previous rel
    expectBad(withBlocks([{ id: 0, blkno: 1, image: { stored: Buffer.alloc(8000), holeOffset: 0, bimgInfo: 0x01 } }])) // hole at 0
    expectBad(withBlocks([{ id: 0, blkno: 1, image: { stored: Buffer.alloc(8000), holeOffset: 100, bimgInfo: 0x00 } }])) // short image, no hole flag
    expectBad(withBlocks([{ id: 0, blkno: 1, image: { stored: Buffer.alloc(8192), holeOffset: 0, bimgInfo: 0x04 } }])) // compressed full size
    expectBad(withBlocks([{ id: 0, blkno: 1, image: { stored: Buffer.alloc(100), holeOffset: 8000, holeLength: 500, bimgInfo: 0x05 } }])) // hole past the page
    // Uncompressed, with a hole, longer than a page: its hole length (8192 - 9000) would be negative, and
    // restoring it threw a RangeError (a bug report) instead of a corruption error.
    expectBad(withBlocks([{ id: 0, blkno: 1, image: { stored: Buffer.alloc(9000), holeOffset: 100, bimgInfo: 0x01 } }]))

    const good = buildRecord({ blocks: [{ id: 0, blkno: 1, data: Buffer.from('abc') }], mainData: Buffer.from('main') })
    const flags = 24 + 1 // fork_flags of block 0
    const noDataFlag = Buffer.from(good)
    noDataFlag[flags]! &= ~0x20
    expectBad(fixCrc(noDataFlag)) // data length without HAS_DATA
    const zeroData = Buffer.from(good)
    zeroData.writeUInt16LE(0, flags + 1)
    expectBad(fixCrc(zeroData)) // HAS_DATA without data (and lengths no longer add up)
    const badId = Buffer.from(good)
    badId[24] = 100
    expectBad(fixCrc(badId))
    const longer = Buffer.from(good)
    longer.writeUInt16LE(4, flags + 1)
    expectBad(fixCrc(longer)) // payloads do not add up
    expectBad(Buffer.from(good.subarray(0, 20))) // shorter than a header
    const lenMismatch = Buffer.from(good)
    lenMismatch.writeUInt32LE(good.length + 1, 0)
    expectBad(lenMismatch)
    const rmid = Buffer.from(good)
    rmid[17] = 50
    expectBad(rmid)
    const truncatedHeaders = buildRecord({ blocks: [{ id: 0, blkno: 1 }] }).subarray(0, 24 + 6)
    truncatedHeaders.writeUInt32LE(truncatedHeaders.length, 0)
    expectBad(Buffer.from(truncatedHeaders))
  })

  it('fails only with PageserverErrors on random bodies', () => {
    const rand = mulberry32(11)
    for (let t = 0; t < 2000; t++) {
      const raw = Buffer.alloc(24 + Math.floor(rand() * 120))
      for (let i = 24; i < raw.length; i++) raw[i] = t % 3 === 0 ? Math.floor(rand() * 256) : [0, 255, 254, 253, 252, 1, 0x10, 0x20][Math.floor(rand() * 8)]!
      raw.writeUInt32LE(raw.length, 0)
      raw[17] = 10
      try {
        const rec = decodeRecord(raw)
        for (const b of rec.blocks) expect(b.dataOffset + b.dataLength).toBeLessThanOrEqual(raw.length)
        expect(rec.mainDataOffset + rec.mainDataLength).toBe(raw.length)
      } catch (e) {
        expect(e).toBeInstanceOf(PageserverError)
      }
    }
  })
})
