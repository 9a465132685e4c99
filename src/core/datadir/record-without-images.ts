/**
 * A WAL record re-encoded without its block images, for the values ingest stores for pages a record
 * changes without referencing them (implicit targets: the visibility-map page of a heap record that clears
 * VM bits, the last FSM/VM page of a truncation, CLOG and MultiXact pages).
 *
 * Why: the redo of an implicit target reads only the record's main data and block references (relation,
 * block number), never a block image, yet a heap record touching a page for the first time after a
 * checkpoint carries that page's full-page image. Storing the raw record under the VM key stored the 8 KiB
 * image a second time: on pgbench WAL a third of all value bytes (bench/ingest.ts), copied at ingest,
 * checksummed and written again at every flush. The record stored instead is what PostgreSQL's record
 * assembly would have produced without the images: the same header fields (xl_info without
 * XLR_CHECK_CONSISTENCY, since no image is left to check), the same block references in the same order
 * (ids, fork and flags without BKPBLOCK_HAS_IMAGE, SAME_REL as before, relation, block number, block
 * data), origin, top-level xid and main data, in the writer's order (xlogrecord.h: block headers, origin,
 * top-level xid, main-data header; then per block its data; then the main data), with xl_tot_len and the
 * CRC-32C (body first, then the header up to xl_crc) recomputed, so redo checks and decodes it as any
 * record. Records without images are stored as they are.
 */
import { crc32c, crc32cRange } from '../lib/crc32c.js'
import type { DecodedRecord } from '../pg/wal-record.js'

const SIZE_OF_XLOG_RECORD = 24
const XL_CRC_OFFSET = 20
const XL_INFO_OFFSET = 16
const XLR_CHECK_CONSISTENCY = 0x02
const BKPBLOCK_HAS_IMAGE = 0x10
const BKPBLOCK_SAME_REL = 0x80
const XLR_BLOCK_ID_DATA_SHORT = 255
const XLR_BLOCK_ID_DATA_LONG = 254
const XLR_BLOCK_ID_ORIGIN = 253
const XLR_BLOCK_ID_TOPLEVEL_XID = 252

/** True when the record carries at least one block image (else it is stored as it is). */
export function recordHasImages(rec: DecodedRecord): boolean {
  for (const b of rec.blocks) if (b.hasImage) return true
  return false
}

/** Length of `rec` without its block images. */
export function recordWithoutImagesLength(rec: DecodedRecord): number {
  let n = SIZE_OF_XLOG_RECORD
  for (const b of rec.blocks) n += 4 + ((b.forkFlags & BKPBLOCK_SAME_REL) === 0 ? 12 : 0) + 4 + b.dataLength
  if (rec.origin !== null) n += 3
  if (rec.toplevelXid !== null) n += 5
  if (rec.mainDataLength > 0) n += (rec.mainDataLength > 255 ? 5 : 2) + rec.mainDataLength
  return n
}

/** Writes `rec` without its block images into out[0, recordWithoutImagesLength(rec)). */
export function writeRecordWithoutImages(rec: DecodedRecord, out: Buffer): void {
  const raw = rec.raw
  const len = recordWithoutImagesLength(rec)
  raw.copy(out, 0, 0, SIZE_OF_XLOG_RECORD)
  out.writeUInt32LE(len, 0)
  out[XL_INFO_OFFSET] = raw[XL_INFO_OFFSET]! & ~XLR_CHECK_CONSISTENCY
  let p = SIZE_OF_XLOG_RECORD
  for (const b of rec.blocks) {
    out[p] = b.id
    out[p + 1] = b.forkFlags & ~BKPBLOCK_HAS_IMAGE
    out.writeUInt16LE(b.dataLength, p + 2)
    p += 4
    if ((b.forkFlags & BKPBLOCK_SAME_REL) === 0) {
      out.writeUInt32LE(b.rel.spcNode, p)
      out.writeUInt32LE(b.rel.dbNode, p + 4)
      out.writeUInt32LE(b.rel.relNode, p + 8)
      p += 12
    }
    out.writeUInt32LE(b.blkno, p)
    p += 4
  }
  if (rec.origin !== null) {
    out[p] = XLR_BLOCK_ID_ORIGIN
    out.writeUInt16LE(rec.origin, p + 1)
    p += 3
  }
  if (rec.toplevelXid !== null) {
    out[p] = XLR_BLOCK_ID_TOPLEVEL_XID
    out.writeUInt32LE(rec.toplevelXid, p + 1)
    p += 5
  }
  if (rec.mainDataLength > 255) {
    out[p] = XLR_BLOCK_ID_DATA_LONG
    out.writeUInt32LE(rec.mainDataLength, p + 1)
    p += 5
  } else if (rec.mainDataLength > 0) {
    out[p] = XLR_BLOCK_ID_DATA_SHORT
    out[p + 1] = rec.mainDataLength
    p += 2
  }
  for (const b of rec.blocks) {
    raw.copy(out, p, b.dataOffset, b.dataOffset + b.dataLength)
    p += b.dataLength
  }
  raw.copy(out, p, rec.mainDataOffset, rec.mainDataOffset + rec.mainDataLength)
  p += rec.mainDataLength
  const crc = crc32c(out.subarray(0, XL_CRC_OFFSET), crc32cRange(out, SIZE_OF_XLOG_RECORD, p))
  out.writeUInt32LE(crc, XL_CRC_OFFSET)
}

/** Most bytes kept for the last record re-encoded (larger ones get a buffer of their own). */
const CACHE_BYTES_MAX = 1024 * 1024

/**
 * `rec` as stored for implicit targets — its raw bytes when it has no images, else re-encoded without
 * them — made once per record (a heap update can clear VM bits on two pages). The result is valid until
 * the next call.
 */
export class RecordWithoutImagesCache {
  private last: DecodedRecord | null = null
  private lastOut: Buffer | null = null
  private scratch = Buffer.allocUnsafe(8192)

  of(rec: DecodedRecord): Buffer {
    if (rec === this.last) return this.lastOut!
    let out = rec.raw
    if (recordHasImages(rec)) {
      const len = recordWithoutImagesLength(rec)
      if (len > this.scratch.length && len <= CACHE_BYTES_MAX) this.scratch = Buffer.allocUnsafe(Math.min(CACHE_BYTES_MAX, Math.max(len, this.scratch.length * 2)))
      out = len <= this.scratch.length ? this.scratch.subarray(0, len) : Buffer.allocUnsafe(len)
      writeRecordWithoutImages(rec, out)
    }
    this.last = rec
    this.lastOut = out
    return out
  }
}
