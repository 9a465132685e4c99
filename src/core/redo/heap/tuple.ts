/**
 * Heap-tuple pieces shared by the Heap and Heap2 redo routines: finding the tuple a record names, the xmax
 * bookkeeping of delete/update/lock (fix_infomask_from_infobits), and rebuilding a tuple from WAL.
 *
 * WAL carries a tuple as xl_heap_header (t_infomask2, t_infomask, t_hoff) plus its bytes from t_bits on;
 * redo rebuilds the 23-byte header: xmin = the record's xid, t_cid = FirstCommandId with HEAP_COMBOCID
 * cleared, t_ctid = (block, offset), xmax = 0 for inserts or the record's new_xmax for updates.
 *
 * Tuples are assembled in one module-level scratch buffer of MaxHeapTupleSize bytes (redo is synchronous,
 * so one buffer serves every call); the caller checks the final length against MaxHeapTupleSize before any
 * byte is written, and PageAddItem copies exactly that many bytes out of it.
 */
import { BLCKSZ, pageGetMaxOffsetNumber } from '../page/page.js'
import { LP_NORMAL, itemIdGetRaw, rawItemIdFlags, rawItemIdLength, rawItemIdOffset } from '../page/itemid.js'
import {
  FirstCommandId,
  HEAP_COMBOCID,
  HEAP_KEYS_UPDATED,
  HEAP_MOVED,
  HEAP_XMAX_BITS,
  HEAP_XMAX_EXCL_LOCK,
  HEAP_XMAX_IS_MULTI,
  HEAP_XMAX_KEYSHR_LOCK,
  HEAP_XMAX_LOCK_ONLY,
  MaxHeapTupleSize,
  SizeofHeapTupleHeader,
  T_CID_OFFSET,
  T_INFOMASK2_OFFSET,
  T_INFOMASK_OFFSET,
  htupSetCtid,
  htupSetHoff,
  htupSetInfomask,
  htupSetInfomask2,
  htupSetXmax,
  htupSetXmin,
} from '../page/htup.js'
import { XLHL_KEYS_UPDATED, XLHL_XMAX_EXCL_LOCK, XLHL_XMAX_IS_MULTI, XLHL_XMAX_KEYSHR_LOCK, XLHL_XMAX_LOCK_ONLY } from './records.js'

/** The tuple a record names: where it starts on the page and its lp_len. */
export interface TupleRef {
  at: number
  len: number
}

/**
 * The LP_NORMAL tuple at `offnum`, or a reason why not (PostgreSQL PANICs with "invalid lp"). Also refuses
 * a pointer whose header would run past the page, which PostgreSQL would not notice.
 */
export function normalTuple(page: Buffer, offnum: number): TupleRef | string {
  if (offnum < 1 || offnum > pageGetMaxOffsetNumber(page)) return `invalid lp: offset ${offnum} beyond the line pointer array`
  const raw = itemIdGetRaw(page, offnum)
  if (rawItemIdFlags(raw) !== LP_NORMAL) return `invalid lp: line pointer ${offnum} is not LP_NORMAL`
  const at = rawItemIdOffset(raw)
  const len = rawItemIdLength(raw)
  if (at + Math.max(len, SizeofHeapTupleHeader) > BLCKSZ) return `line pointer ${offnum} (offset ${at}, length ${len}) runs past the page`
  return { at, len }
}

/** HeapTupleHeaderSetCmin / SetCmax(cid, false): t_cid := FirstCommandId and HEAP_COMBOCID cleared. */
export function setFirstCommandId(page: Buffer, at: number): void {
  page.writeUInt32LE(FirstCommandId, at + T_CID_OFFSET)
  page.writeUInt16LE(page.readUInt16LE(at + T_INFOMASK_OFFSET) & ~HEAP_COMBOCID, at + T_INFOMASK_OFFSET)
}

/**
 * The common start of delete/update/lock redo on the old tuple: drop every xmax bit and HEAP_MOVED,
 * HEAP_KEYS_UPDATED, then set the bits the record's infobits name (fix_infomask_from_infobits; note that
 * HEAP_XMAX_SHR_LOCK is EXCL|KEYSHR, so it comes back from the two bits).
 */
export function resetXmaxBits(page: Buffer, at: number, infobits: number): void {
  let infomask = page.readUInt16LE(at + T_INFOMASK_OFFSET) & ~(HEAP_XMAX_BITS | HEAP_MOVED)
  let infomask2 = page.readUInt16LE(at + T_INFOMASK2_OFFSET) & ~HEAP_KEYS_UPDATED
  ;[infomask, infomask2] = fixInfomaskFromInfobits(infobits, infomask, infomask2)
  page.writeUInt16LE(infomask, at + T_INFOMASK_OFFSET)
  page.writeUInt16LE(infomask2, at + T_INFOMASK2_OFFSET)
}

/** fix_infomask_from_infobits: returns the new [t_infomask, t_infomask2]. */
export function fixInfomaskFromInfobits(infobits: number, infomask: number, infomask2: number): [number, number] {
  infomask &= ~(HEAP_XMAX_IS_MULTI | HEAP_XMAX_LOCK_ONLY | HEAP_XMAX_KEYSHR_LOCK | HEAP_XMAX_EXCL_LOCK)
  infomask2 &= ~HEAP_KEYS_UPDATED
  if (infobits & XLHL_XMAX_IS_MULTI) infomask |= HEAP_XMAX_IS_MULTI
  if (infobits & XLHL_XMAX_LOCK_ONLY) infomask |= HEAP_XMAX_LOCK_ONLY
  if (infobits & XLHL_XMAX_EXCL_LOCK) infomask |= HEAP_XMAX_EXCL_LOCK
  if (infobits & XLHL_XMAX_KEYSHR_LOCK) infomask |= HEAP_XMAX_KEYSHR_LOCK
  if (infobits & XLHL_KEYS_UPDATED) infomask2 |= HEAP_KEYS_UPDATED
  return [infomask & 0xffff, infomask2 & 0xffff]
}

// --- rebuilding a tuple from WAL ----------------------------------------------------------------------

/** The scratch tuple (PostgreSQL's on-stack tbuf). Only the bytes of the tuple being built are meaningful. */
const tupleScratch = Buffer.alloc(MaxHeapTupleSize)

/** xl_heap_header fields. */
export interface XlHeapHeader {
  t_infomask2: number
  t_infomask: number
  t_hoff: number
}

/**
 * Starts a tuple of `totalLen` bytes in the scratch buffer: zeroes the 23-byte header and returns the
 * buffer; the caller copies the body from byte 23 and then calls finishTuple. Returns a reason instead
 * when the tuple would exceed MaxHeapTupleSize.
 */
export function beginTuple(totalLen: number): Buffer | string {
  if (totalLen < SizeofHeapTupleHeader || totalLen > MaxHeapTupleSize) {
    return `tuple of ${totalLen} bytes is outside ${SizeofHeapTupleHeader}..${MaxHeapTupleSize}`
  }
  tupleScratch.fill(0, 0, SizeofHeapTupleHeader)
  return tupleScratch
}

/** Fills the rebuilt header: infomask bits from WAL, xmin, t_cid = FirstCommandId (no combo), xmax, ctid. */
export function finishTuple(tup: Buffer, hdr: XlHeapHeader, xmin: number, xmax: number, blkno: number, offnum: number): void {
  htupSetInfomask2(tup, 0, hdr.t_infomask2)
  htupSetInfomask(tup, 0, hdr.t_infomask)
  htupSetHoff(tup, 0, hdr.t_hoff)
  htupSetXmin(tup, 0, xmin)
  setFirstCommandId(tup, 0)
  htupSetXmax(tup, 0, xmax)
  htupSetCtid(tup, 0, blkno, offnum)
}

export function readXlHeapHeader(data: Buffer, at: number): XlHeapHeader {
  return { t_infomask2: data.readUInt16LE(at), t_infomask: data.readUInt16LE(at + 2), t_hoff: data[at + 4]! }
}
