/**
 * Full-page images a redo request does not need, cut out of its records before they are sent to a worker.
 *
 * A record often carries images of pages other than the one being rebuilt: an UPDATE moving a tuple logs
 * both heap pages, and the records that clear a visibility-map bit reach the VM page's chain whole, with the
 * image of the heap page they also changed. Redo of one page reads only that page's image, and of the other
 * blocks only their headers and data (never their images). In the redo benchmark's pgbench WAL such foreign
 * images were 42 % of the bytes sent to the workers.
 *
 * The trimmed record is a valid PostgreSQL 15 record (pg/wal-record-images.ts), so any worker (ours, or
 * Neon's `postgres --wal-redo`) takes it. The target's own image (full-page write or consistency-check
 * image) is never touched.
 *
 * Only records longer than TRIM_MIN_RECORD_BYTES are looked at (a smaller one cannot hold an image worth
 * the copy), and of those only the ones whose block headers show a foreign image are decoded and rewritten
 * (most carry just their own page's image); a record that does not decode is left as it is: the worker
 * reports it.
 */
import type { BufferTag } from '../pg/reltag.js'
import { foreignImageBytes, lengthKeepingImageOf, mayHaveForeignImage, writeKeepingImageOf } from '../pg/wal-record-images.js'
import { decodeRecord, recordCrcIsValid, type DecodedRecord } from '../pg/wal-record.js'
import type { RedoRecordInput } from './protocol.js'

/** Records up to this size are sent as they are. */
export const TRIM_MIN_RECORD_BYTES = 1024

/**
 * `raw` without the images of blocks other than `tag`'s, or null when it has none (or does not decode).
 * With `checkCrc`, a record whose CRC is wrong is left as it is: the rewrite computes a fresh CRC, which
 * would hide the damage from a worker that checks records.
 */
export function withoutForeignImages(raw: Buffer, tag: BufferTag, checkCrc = false): Buffer | null {
  if (raw.length <= TRIM_MIN_RECORD_BYTES || !mayHaveForeignImage(raw, tag)) return null
  let rec: DecodedRecord
  try {
    rec = decodeRecord(raw)
  } catch {
    return null
  }
  if (foreignImageBytes(rec, tag) === 0) return null
  if (checkCrc && !recordCrcIsValid(raw)) return null
  const out = Buffer.allocUnsafe(lengthKeepingImageOf(rec, tag))
  writeKeepingImageOf(rec, tag, out)
  return out
}

/** The records of a request with foreign images cut out; the same array when nothing was cut. */
export function trimRecords(records: readonly RedoRecordInput[], tag: BufferTag, checkCrc = false): readonly RedoRecordInput[] {
  let out: RedoRecordInput[] | null = null
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!
    const trimmed = r.raw.length > TRIM_MIN_RECORD_BYTES ? withoutForeignImages(r.raw, tag, checkCrc) : null
    if (trimmed === null) {
      if (out !== null) out.push(r)
      continue
    }
    out ??= records.slice(0, i)
    out.push({ endLsn: r.endLsn, raw: trimmed })
  }
  return out ?? records
}
