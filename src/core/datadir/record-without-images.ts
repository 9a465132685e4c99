/**
 * The record ingest stores for pages a record changes without referencing them (implicit targets: the
 * visibility-map page of a heap record that clears VM bits, the last FSM/VM page of a truncation, CLOG and
 * MultiXact pages): the record re-encoded without any block image (pg/wal-record-images.ts).
 *
 * Why: the redo of an implicit target reads only the record's main data and block references (relation,
 * block number), never a block image, yet a heap record touching a page for the first time after a
 * checkpoint carries that page's full-page image. Storing the raw record under the VM key stored the 8 KiB
 * image a second time: on pgbench WAL a third of all value bytes (bench/ingest.ts), copied at ingest,
 * checksummed and written again at every flush. Records without images are stored as they are.
 */
import { lengthKeepingImageOf, recordHasImages, writeKeepingImageOf } from '../pg/wal-record-images.js'
import type { DecodedRecord } from '../pg/wal-record.js'

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
      const len = lengthKeepingImageOf(rec, null)
      if (len > this.scratch.length && len <= CACHE_BYTES_MAX) this.scratch = Buffer.allocUnsafe(Math.min(CACHE_BYTES_MAX, Math.max(len, this.scratch.length * 2)))
      out = len <= this.scratch.length ? this.scratch.subarray(0, len) : Buffer.allocUnsafe(len)
      writeKeepingImageOf(rec, null, out)
    }
    this.last = rec
    this.lastOut = out
    return out
  }
}
