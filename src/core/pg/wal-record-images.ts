/**
 * A WAL record re-encoded with the block images of other pages left out: every block reference stays, in
 * order, with its data; the blocks whose image is dropped lose BKPBLOCK_HAS_IMAGE, their image header and
 * image bytes; origin, top-level xid and main data stay; xl_tot_len and xl_crc are recomputed. The result
 * is a valid PostgreSQL 15 record, laid out as the writer lays one out (xlogrecord.h: block headers, origin,
 * top-level xid, main-data header; then per block its image and data; then the main data), so it decodes,
 * checks and redoes as any record.
 *
 * Why: redo of one page reads that page's image and, of the other blocks, only their headers and data. A
 * record often carries images of other pages — an UPDATE moving a tuple logs both heap pages; a heap record
 * that clears a visibility-map bit reaches the VM page's history with the heap page's image — and those
 * were a third of the value bytes ingest stored and 42 % of the bytes sent to redo workers on pgbench WAL.
 * Ingest stores implicit targets' records with no image (datadir/record-without-images.ts); the redo
 * manager trims each request's records down to the target's image (walredo/record-trim.ts).
 *
 * When an image is dropped, XLR_CHECK_CONSISTENCY is cleared: the record no longer carries the image of
 * every block that consistency checking compares.
 */
import { copyBytes } from '../lib/shared-copy.js'
import type { BufferTag } from './reltag.js'
import {
  BKPBLOCK_FORK_MASK,
  BKPBLOCK_HAS_IMAGE,
  BKPBLOCK_SAME_REL,
  BKPIMAGE_COMPRESS_LZ4,
  BKPIMAGE_COMPRESS_PGLZ,
  BKPIMAGE_COMPRESS_ZSTD,
  BKPIMAGE_HAS_HOLE,
  SizeOfXLogRecord,
  XLR_BLOCK_ID_DATA_LONG,
  XLR_BLOCK_ID_DATA_SHORT,
  XLR_BLOCK_ID_ORIGIN,
  XLR_BLOCK_ID_TOPLEVEL_XID,
  XLR_CHECK_CONSISTENCY,
  XLR_MAX_BLOCK_ID,
  recordCrc,
  type DecodedBlock,
  type DecodedRecord,
} from './wal-record.js'

const XL_INFO_OFFSET = 16
const XL_CRC_OFFSET = 20

/**
 * Whether the record `raw` may carry an image of a block other than `keep`'s, read from its block headers
 * where they lie (no decoding, no allocation): false only when every image it carries is `keep`'s. A
 * record whose headers cannot be walked gives true, so that the caller decodes it and the decoder names
 * the fault. The trim of redo requests asks this first: most long records carry only their own page's image.
 */
export function mayHaveForeignImage(raw: Uint8Array, keep: BufferTag): boolean {
  const end = raw.length
  if (end < SizeOfXLogRecord) return true
  let p = SizeOfXLogRecord
  let datatotal = 0
  let haveRel = false
  let spc = 0
  let db = 0
  let relNode = 0
  while (end - p > datatotal) {
    const id = raw[p++]!
    if (id === XLR_BLOCK_ID_DATA_SHORT || id === XLR_BLOCK_ID_DATA_LONG) return false
    if (id === XLR_BLOCK_ID_ORIGIN) {
      p += 2
      continue
    }
    if (id === XLR_BLOCK_ID_TOPLEVEL_XID) {
      p += 4
      continue
    }
    if (id > XLR_MAX_BLOCK_ID || end - p < 3) return true
    const flags = raw[p]!
    const dataLength = raw[p + 1]! | (raw[p + 2]! << 8)
    p += 3
    let bimgLen = 0
    const hasImage = (flags & BKPBLOCK_HAS_IMAGE) !== 0
    if (hasImage) {
      if (end - p < 5) return true
      bimgLen = raw[p]! | (raw[p + 1]! << 8)
      const info = raw[p + 4]!
      p += 5
      if ((info & (BKPIMAGE_COMPRESS_PGLZ | BKPIMAGE_COMPRESS_LZ4 | BKPIMAGE_COMPRESS_ZSTD)) !== 0 && (info & BKPIMAGE_HAS_HOLE) !== 0) p += 2
    }
    if ((flags & BKPBLOCK_SAME_REL) === 0) {
      if (end - p < 12) return true
      spc = u32le(raw, p)
      db = u32le(raw, p + 4)
      relNode = u32le(raw, p + 8)
      haveRel = true
      p += 12
    } else if (!haveRel) {
      return true
    }
    if (end - p < 4) return true
    const blkno = u32le(raw, p)
    p += 4
    datatotal += bimgLen + dataLength
    if (hasImage && (blkno !== keep.blkno || (flags & BKPBLOCK_FORK_MASK) !== keep.forkNum || relNode !== keep.relNode || db !== keep.dbNode || spc !== keep.spcNode)) {
      return true
    }
  }
  return false
}

function u32le(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0
}

/** True when `b` is the block of `tag`. */
export function blockIsPage(b: DecodedBlock, tag: BufferTag): boolean {
  return b.blkno === tag.blkno && b.forkNum === tag.forkNum && b.rel.relNode === tag.relNode && b.rel.dbNode === tag.dbNode && b.rel.spcNode === tag.spcNode
}

/** True when the record carries at least one block image. */
export function recordHasImages(rec: DecodedRecord): boolean {
  for (const b of rec.blocks) if (b.hasImage) return true
  return false
}

/** Bytes of a block image header: length, hole offset, info, and the hole length of a compressed image with a hole. */
function imageHeaderBytes(b: DecodedBlock): number {
  return 5 + (b.compression !== 'none' && (b.bimgInfo & BKPIMAGE_HAS_HOLE) !== 0 ? 2 : 0)
}

function keepsImage(b: DecodedBlock, keep: BufferTag | null): boolean {
  return b.hasImage && keep !== null && blockIsPage(b, keep)
}

/** Bytes of the images (headers included) that `keep` leaves out: 0 when the record would stay as it is. */
export function foreignImageBytes(rec: DecodedRecord, keep: BufferTag | null): number {
  let n = 0
  for (const b of rec.blocks) if (b.hasImage && !keepsImage(b, keep)) n += imageHeaderBytes(b) + b.bimgLen
  return n
}

/** Length of `rec` re-encoded with only the image of `keep`'s block (no image at all when keep is null). */
export function lengthKeepingImageOf(rec: DecodedRecord, keep: BufferTag | null): number {
  let n = SizeOfXLogRecord
  for (const b of rec.blocks) {
    n += 4 + ((b.forkFlags & BKPBLOCK_SAME_REL) === 0 ? 12 : 0) + 4 + b.dataLength
    if (keepsImage(b, keep)) n += imageHeaderBytes(b) + b.bimgLen
  }
  if (rec.origin !== null) n += 3
  if (rec.toplevelXid !== null) n += 5
  if (rec.mainDataLength > 0) n += (rec.mainDataLength > 255 ? 5 : 2) + rec.mainDataLength
  return n
}

/**
 * Writes `rec` with only the image of `keep`'s block (none when keep is null) into
 * out[0, lengthKeepingImageOf(rec, keep)).
 */
export function writeKeepingImageOf(rec: DecodedRecord, keep: BufferTag | null, out: Buffer): void {
  const raw = rec.raw
  const len = lengthKeepingImageOf(rec, keep)
  copyBytes(raw, out, 0, 0, SizeOfXLogRecord)
  out.writeUInt32LE(len, 0)
  if (foreignImageBytes(rec, keep) > 0) out[XL_INFO_OFFSET] = raw[XL_INFO_OFFSET]! & ~XLR_CHECK_CONSISTENCY
  let p = SizeOfXLogRecord
  for (const b of rec.blocks) {
    const kept = keepsImage(b, keep)
    out[p] = b.id
    out[p + 1] = kept ? b.forkFlags : b.forkFlags & ~BKPBLOCK_HAS_IMAGE
    out.writeUInt16LE(b.dataLength, p + 2)
    p += 4
    if (kept) {
      out.writeUInt16LE(b.bimgLen, p)
      out.writeUInt16LE(b.holeOffset, p + 2)
      out[p + 4] = b.bimgInfo
      p += 5
      if (imageHeaderBytes(b) === 7) {
        out.writeUInt16LE(b.holeLength, p)
        p += 2
      }
    }
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
    // (copyBytes: `out` may be an in-memory layer's shared slab; see lib/shared-copy.ts.)
    if (keepsImage(b, keep)) p += copyBytes(raw, out, p, b.imageOffset, b.imageOffset + b.bimgLen)
    p += copyBytes(raw, out, p, b.dataOffset, b.dataOffset + b.dataLength)
  }
  copyBytes(raw, out, p, rec.mainDataOffset, rec.mainDataOffset + rec.mainDataLength)
  out.writeUInt32LE(recordCrc(out.subarray(0, len)), XL_CRC_OFFSET)
}
