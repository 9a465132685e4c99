/**
 * HeapTupleHeaderData (access/htup_details.h): field offsets, infomask bits, small getters and setters.
 *
 *   0  t_xmin      u32   (t_datum.datum_len_ in a composite datum)
 *   4  t_xmax      u32
 *   8  t_cid/t_xvac u32  (one field: command id, or the old-style VACUUM FULL xid)
 *  12  t_ctid      ItemPointerData (block hi u16, block lo u16, offset u16)
 *  18  t_infomask2 u16   (HEAP_NATTS_MASK attribute count + HOT / key-update bits)
 *  20  t_infomask  u16
 *  22  t_hoff      u8    (header size including null bitmap and padding, MAXALIGNed)
 *  23  t_bits      null bitmap, BITMAPLEN(natts) bytes when HEAP_HASNULL
 *
 * Heap WAL records carry xl_heap_header (t_infomask2 u16, t_infomask u16, t_hoff u8: 5 bytes, unpadded)
 * followed by the tuple from t_bits on; redo rebuilds the first 23 bytes.
 *
 * Helpers take the buffer and the byte position `at` where the tuple header starts (usually a page and an
 * lp_off) so that hot loops allocate nothing.
 */
import { BLCKSZ, SizeOfPageHeaderData, maxalign, sizeOfItemIdData } from './page.js'
import {
  SpecTokenOffsetNumber,
  itemPointerGetBlockNumber,
  itemPointerGetOffsetNumber,
  itemPointerSet,
} from './itemptr.js'

export const T_XMIN_OFFSET = 0
export const T_XMAX_OFFSET = 4
export const T_CID_OFFSET = 8
export const T_XVAC_OFFSET = 8
export const T_CTID_OFFSET = 12
export const T_INFOMASK2_OFFSET = 18
export const T_INFOMASK_OFFSET = 20
export const T_HOFF_OFFSET = 22
export const T_BITS_OFFSET = 23

/** offsetof(HeapTupleHeaderData, t_bits). */
export const SizeofHeapTupleHeader = 23
/** xl_heap_header: t_infomask2, t_infomask, t_hoff. */
export const SizeOfHeapHeader = 5
/** MAXALIGN(SizeofHeapTupleHeader). */
export const MinHeapTupleSize = maxalign(SizeofHeapTupleHeader)
/** The largest heap tuple that fits a page with one line pointer: 8192 - MAXALIGN(24 + 4) = 8160. */
export const MaxHeapTupleSize = BLCKSZ - maxalign(SizeOfPageHeaderData + sizeOfItemIdData)
export const MaxTupleAttributeNumber = 1664
export const MaxHeapAttributeNumber = 1600
/** FirstCommandId: the t_cid redo writes. */
export const FirstCommandId = 0

// --- t_infomask ---
export const HEAP_HASNULL = 0x0001
export const HEAP_HASVARWIDTH = 0x0002
export const HEAP_HASEXTERNAL = 0x0004
export const HEAP_HASOID_OLD = 0x0008
export const HEAP_XMAX_KEYSHR_LOCK = 0x0010
export const HEAP_COMBOCID = 0x0020
export const HEAP_XMAX_EXCL_LOCK = 0x0040
export const HEAP_XMAX_LOCK_ONLY = 0x0080
export const HEAP_XMAX_SHR_LOCK = HEAP_XMAX_EXCL_LOCK | HEAP_XMAX_KEYSHR_LOCK
export const HEAP_LOCK_MASK = HEAP_XMAX_SHR_LOCK | HEAP_XMAX_EXCL_LOCK | HEAP_XMAX_KEYSHR_LOCK
export const HEAP_XMIN_COMMITTED = 0x0100
export const HEAP_XMIN_INVALID = 0x0200
export const HEAP_XMIN_FROZEN = HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID
export const HEAP_XMAX_COMMITTED = 0x0400
export const HEAP_XMAX_INVALID = 0x0800
export const HEAP_XMAX_IS_MULTI = 0x1000
export const HEAP_UPDATED = 0x2000
export const HEAP_MOVED_OFF = 0x4000
export const HEAP_MOVED_IN = 0x8000
export const HEAP_MOVED = HEAP_MOVED_OFF | HEAP_MOVED_IN
/** Visibility-related bits of t_infomask. */
export const HEAP_XACT_MASK = 0xfff0
/** Bits to clear whenever xmax changes. */
export const HEAP_XMAX_BITS = HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID | HEAP_XMAX_IS_MULTI | HEAP_LOCK_MASK | HEAP_XMAX_LOCK_ONLY

// --- t_infomask2 ---
export const HEAP_NATTS_MASK = 0x07ff
export const HEAP_KEYS_UPDATED = 0x2000
export const HEAP_HOT_UPDATED = 0x4000
export const HEAP_ONLY_TUPLE = 0x8000
/** Visibility-related bits of t_infomask2. */
export const HEAP2_XACT_MASK = 0xe000
/** Hash-join overlay of HEAP_ONLY_TUPLE (never on disk). */
export const HEAP_TUPLE_HAS_MATCH = HEAP_ONLY_TUPLE

// --- infomask predicates (take the infomask value) ---

export function heapXmaxIsLockedOnly(infomask: number): boolean {
  return (infomask & HEAP_XMAX_LOCK_ONLY) !== 0 || (infomask & (HEAP_XMAX_IS_MULTI | HEAP_LOCK_MASK)) === HEAP_XMAX_EXCL_LOCK
}
export function heapLockedUpgraded(infomask: number): boolean {
  return (
    (infomask & HEAP_XMAX_IS_MULTI) !== 0 &&
    (infomask & HEAP_XMAX_LOCK_ONLY) !== 0 &&
    (infomask & (HEAP_XMAX_EXCL_LOCK | HEAP_XMAX_KEYSHR_LOCK)) === 0
  )
}
export function heapXmaxIsShrLocked(infomask: number): boolean {
  return (infomask & HEAP_LOCK_MASK) === HEAP_XMAX_SHR_LOCK
}
export function heapXmaxIsExclLocked(infomask: number): boolean {
  return (infomask & HEAP_LOCK_MASK) === HEAP_XMAX_EXCL_LOCK
}
export function heapXmaxIsKeyshrLocked(infomask: number): boolean {
  return (infomask & HEAP_LOCK_MASK) === HEAP_XMAX_KEYSHR_LOCK
}

/** BITMAPLEN(natts): bytes of the null bitmap. */
export function bitmapLen(natts: number): number {
  return (natts + 7) >>> 3
}

// --- field access ---

export function htupGetXmin(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + T_XMIN_OFFSET)
}
export function htupSetXmin(buf: Buffer, at: number, xid: number): void {
  buf.writeUInt32LE(xid >>> 0, at + T_XMIN_OFFSET)
}
export function htupGetXmax(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + T_XMAX_OFFSET)
}
export function htupSetXmax(buf: Buffer, at: number, xid: number): void {
  buf.writeUInt32LE(xid >>> 0, at + T_XMAX_OFFSET)
}
/** The raw t_cid/t_xvac word (HeapTupleHeaderGetRawCommandId). */
export function htupGetCid(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + T_CID_OFFSET)
}
/** Writes t_cid (HeapTupleHeaderSetCmin/Cmax write the same word). */
export function htupSetCid(buf: Buffer, at: number, cid: number): void {
  buf.writeUInt32LE(cid >>> 0, at + T_CID_OFFSET)
}
export function htupGetXvac(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + T_XVAC_OFFSET)
}
export function htupSetXvac(buf: Buffer, at: number, xid: number): void {
  buf.writeUInt32LE(xid >>> 0, at + T_XVAC_OFFSET)
}
export function htupGetCtidBlock(buf: Buffer, at: number): number {
  return itemPointerGetBlockNumber(buf, at + T_CTID_OFFSET)
}
export function htupGetCtidOffset(buf: Buffer, at: number): number {
  return itemPointerGetOffsetNumber(buf, at + T_CTID_OFFSET)
}
export function htupSetCtid(buf: Buffer, at: number, block: number, offset: number): void {
  itemPointerSet(buf, at + T_CTID_OFFSET, block, offset)
}
export function htupGetInfomask2(buf: Buffer, at: number): number {
  return buf.readUInt16LE(at + T_INFOMASK2_OFFSET)
}
export function htupSetInfomask2(buf: Buffer, at: number, v: number): void {
  buf.writeUInt16LE(v & 0xffff, at + T_INFOMASK2_OFFSET)
}
export function htupGetInfomask(buf: Buffer, at: number): number {
  return buf.readUInt16LE(at + T_INFOMASK_OFFSET)
}
export function htupSetInfomask(buf: Buffer, at: number, v: number): void {
  buf.writeUInt16LE(v & 0xffff, at + T_INFOMASK_OFFSET)
}
export function htupGetHoff(buf: Buffer, at: number): number {
  return buf[at + T_HOFF_OFFSET]!
}
export function htupSetHoff(buf: Buffer, at: number, v: number): void {
  buf[at + T_HOFF_OFFSET] = v
}
/** HeapTupleHeaderGetNatts. */
export function htupGetNatts(buf: Buffer, at: number): number {
  return htupGetInfomask2(buf, at) & HEAP_NATTS_MASK
}
/** HeapTupleHeaderSetNatts: replaces the attribute count, keeps the flag bits of t_infomask2. */
export function htupSetNatts(buf: Buffer, at: number, natts: number): void {
  htupSetInfomask2(buf, at, (htupGetInfomask2(buf, at) & ~HEAP_NATTS_MASK) | (natts & HEAP_NATTS_MASK))
}

// --- header predicates ---

/** HeapTupleHeaderXminFrozen: both XMIN_COMMITTED and XMIN_INVALID set. */
export function htupXminFrozen(buf: Buffer, at: number): boolean {
  return (htupGetInfomask(buf, at) & HEAP_XMIN_FROZEN) === HEAP_XMIN_FROZEN
}
/** HeapTupleHeaderIsSpeculative: t_ctid's offset is SpecTokenOffsetNumber. */
export function htupIsSpeculative(buf: Buffer, at: number): boolean {
  return htupGetCtidOffset(buf, at) === SpecTokenOffsetNumber
}
/** HeapTupleHeaderXminInvalid: XMIN_INVALID without XMIN_COMMITTED (not frozen). */
export function htupXminInvalid(buf: Buffer, at: number): boolean {
  return (htupGetInfomask(buf, at) & HEAP_XMIN_FROZEN) === HEAP_XMIN_INVALID
}
/** HeapTupleHeaderIsHotUpdated: the HOT_UPDATED bit, and neither xmax invalid nor xmin invalid. */
export function htupIsHotUpdated(buf: Buffer, at: number): boolean {
  const infomask = htupGetInfomask(buf, at)
  return (
    (htupGetInfomask2(buf, at) & HEAP_HOT_UPDATED) !== 0 &&
    (infomask & HEAP_XMAX_INVALID) === 0 &&
    (infomask & HEAP_XMIN_FROZEN) !== HEAP_XMIN_INVALID
  )
}
export function htupIsHeapOnly(buf: Buffer, at: number): boolean {
  return (htupGetInfomask2(buf, at) & HEAP_ONLY_TUPLE) !== 0
}
export function htupHasNulls(buf: Buffer, at: number): boolean {
  return (htupGetInfomask(buf, at) & HEAP_HASNULL) !== 0
}
