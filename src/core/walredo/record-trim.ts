/**
 * Full-page images a redo request does not need, cut out of its records before they are sent to a worker.
 *
 * A record often carries images of pages other than the one being rebuilt: an UPDATE moving a tuple logs
 * both heap pages, and the records that clear a visibility-map bit reach the VM page's chain whole, with the
 * image of the heap page they also changed. Redo of one page reads only that page's image, and of the other
 * blocks only their headers and data (never their images). In the redo benchmark's pgbench WAL such foreign
 * images were 42 % of the bytes sent to the workers.
 *
 * The trimmed record is a valid PostgreSQL 15 record, so any worker (ours, or Neon's `postgres --wal-redo`)
 * takes it: every block reference stays, in order, with its data; the stripped blocks lose
 * BKPBLOCK_HAS_IMAGE, their image headers and image bytes; origin, top-level xid and main data are kept;
 * xl_tot_len and xl_crc are recomputed. The target's own image (full-page write or consistency-check image)
 * is never touched.
 *
 * Only records longer than TRIM_MIN_RECORD_BYTES are looked at (a smaller one cannot hold an image worth
 * the copy), and a record that does not decode is left as it is: the worker reports it.
 */
import type { BufferTag } from '../pg/reltag.js'
import {
  BKPBLOCK_HAS_IMAGE,
  BKPBLOCK_SAME_REL,
  BKPIMAGE_HAS_HOLE,
  SizeOfXLogRecord,
  XLR_BLOCK_ID_DATA_LONG,
  XLR_BLOCK_ID_DATA_SHORT,
  XLR_BLOCK_ID_ORIGIN,
  XLR_BLOCK_ID_TOPLEVEL_XID,
  decodeRecord,
  recordCrc,
  type DecodedBlock,
  type DecodedRecord,
} from '../pg/wal-record.js'
import type { RedoRecordInput } from './protocol.js'

/** Records up to this size are sent as they are. */
export const TRIM_MIN_RECORD_BYTES = 1024

function isTarget(b: DecodedBlock, tag: BufferTag): boolean {
  return b.blkno === tag.blkno && b.forkNum === tag.forkNum && b.rel.relNode === tag.relNode && b.rel.dbNode === tag.dbNode && b.rel.spcNode === tag.spcNode
}

/** Bytes of a block image header: length, hole offset, info, and the hole length of a compressed image with a hole. */
function imageHeaderBytes(b: DecodedBlock): number {
  return 5 + (b.compression !== 'none' && (b.bimgInfo & BKPIMAGE_HAS_HOLE) !== 0 ? 2 : 0)
}

/** `raw` without the images of blocks other than `tag`'s, or null when it has none (or does not decode). */
export function withoutForeignImages(raw: Buffer, tag: BufferTag): Buffer | null {
  if (raw.length <= TRIM_MIN_RECORD_BYTES) return null
  let rec: DecodedRecord
  try {
    rec = decodeRecord(raw)
  } catch {
    return null
  }
  let cut = 0
  for (const b of rec.blocks) if (b.hasImage && !isTarget(b, tag)) cut += imageHeaderBytes(b) + b.bimgLen
  if (cut === 0) return null

  try {
    return rebuild(raw, rec, tag, raw.length - cut)
  } catch {
    return null // a layout this code does not reproduce: send the record as it is
  }
}

function rebuild(raw: Buffer, rec: DecodedRecord, tag: BufferTag, length: number): Buffer | null {
  const out = Buffer.allocUnsafe(length)
  raw.copy(out, 0, 0, SizeOfXLogRecord)
  let h = SizeOfXLogRecord
  // Headers, in PostgreSQL's order: block references, origin, top-level xid, main data.
  for (const b of rec.blocks) {
    const keep = b.hasImage && isTarget(b, tag)
    out[h] = b.id
    out[h + 1] = keep || !b.hasImage ? b.forkFlags : b.forkFlags & ~BKPBLOCK_HAS_IMAGE
    out.writeUInt16LE(b.dataLength, h + 2)
    h += 4
    if (keep) {
      out.writeUInt16LE(b.bimgLen, h)
      out.writeUInt16LE(b.holeOffset, h + 2)
      out[h + 4] = b.bimgInfo
      h += 5
      if (imageHeaderBytes(b) === 7) {
        out.writeUInt16LE(b.holeLength, h)
        h += 2
      }
    }
    if ((b.forkFlags & BKPBLOCK_SAME_REL) === 0) {
      out.writeUInt32LE(b.rel.spcNode, h)
      out.writeUInt32LE(b.rel.dbNode, h + 4)
      out.writeUInt32LE(b.rel.relNode, h + 8)
      h += 12
    }
    out.writeUInt32LE(b.blkno, h)
    h += 4
  }
  if (rec.origin !== null) {
    out[h] = XLR_BLOCK_ID_ORIGIN
    out.writeUInt16LE(rec.origin, h + 1)
    h += 3
  }
  if (rec.toplevelXid !== null) {
    out[h] = XLR_BLOCK_ID_TOPLEVEL_XID
    out.writeUInt32LE(rec.toplevelXid, h + 1)
    h += 5
  }
  if (rec.mainDataLength > 0) {
    if (rec.mainDataLength < 256) {
      out[h] = XLR_BLOCK_ID_DATA_SHORT
      out[h + 1] = rec.mainDataLength
      h += 2
    } else {
      out[h] = XLR_BLOCK_ID_DATA_LONG
      out.writeUInt32LE(rec.mainDataLength, h + 1)
      h += 5
    }
  }
  // Payloads: per block its image (kept ones) and data, then the main data.
  for (const b of rec.blocks) {
    if (b.hasImage && isTarget(b, tag)) h += raw.copy(out, h, b.imageOffset, b.imageOffset + b.bimgLen)
    h += raw.copy(out, h, b.dataOffset, b.dataOffset + b.dataLength)
  }
  h += raw.copy(out, h, rec.mainDataOffset, rec.mainDataOffset + rec.mainDataLength)
  // A layout this code does not reproduce (say, a short main-data length written in the long form).
  if (h !== out.length) return null
  out.writeUInt32LE(out.length, 0)
  out.writeUInt32LE(recordCrc(out), 20)
  return out
}

/** The records of a request with foreign images cut out; the same array when nothing was cut. */
export function trimRecords(records: readonly RedoRecordInput[], tag: BufferTag): readonly RedoRecordInput[] {
  let out: RedoRecordInput[] | null = null
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!
    const trimmed = r.raw.length > TRIM_MIN_RECORD_BYTES ? withoutForeignImages(r.raw, tag) : null
    if (trimmed === null) {
      if (out !== null) out.push(r)
      continue
    }
    out ??= records.slice(0, i)
    out.push({ endLsn: r.endLsn, raw: trimmed })
  }
  return out ?? records
}
