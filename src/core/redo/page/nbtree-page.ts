/**
 * nbtree page layout (access/nbtree.h, access/itup.h): the special-space opaque, the metapage, deleted-page
 * contents, IndexTupleData and the pivot / posting-list encodings packed into an index tuple's t_tid.
 *
 * BTPageOpaqueData, 16 bytes at pd_special:
 *   +0 btpo_prev u32, +4 btpo_next u32, +8 btpo_level u32, +12 btpo_flags u16, +14 btpo_cycleid u16
 * BTMetaPageData at PageGetContents (byte 24):
 *   +0 btm_magic, +4 btm_version, +8 btm_root, +12 btm_level, +16 btm_fastroot, +20 btm_fastlevel,
 *   +24 btm_last_cleanup_num_delpages (u32), +32 btm_last_cleanup_num_heap_tuples (float8, 8-aligned),
 *   +40 btm_allequalimage (bool); sizeof 48
 * IndexTupleData: t_tid (6 bytes, itemptr.ts) then t_info u16 at +6:
 *   bits 0..12 size, 0x2000 INDEX_ALT_TID_MASK (nbtree: pivot or posting), 0x4000 var-width, 0x8000 nulls
 *
 * t_tid reuse (worked example): a posting tuple with 3 heap TIDs whose list starts at byte 16 of the tuple
 * has t_info | 0x2000, t_tid block = 16 (the posting offset) and t_tid offset = 0x2000 | 3. A pivot tuple
 * (high key, downlink) has t_info | 0x2000 and t_tid offset = number of key attributes, plus 0x1000 when a
 * heap TID is appended as the last 6 bytes; its t_tid block is the downlink.
 *
 * Getters and setters only, all taking (buffer, byte position); btree redo lives elsewhere.
 */
import { BLCKSZ, PageGetContentsOffset, SizeOfPageHeaderData, getPdSpecial, maxalign, maxalignDown, setPdLower, setPdUpper, sizeOfItemIdData } from './page.js'
import {
  SizeOfIptrData,
  itemPointerGetBlockNumber,
  itemPointerGetOffsetNumber,
  itemPointerSetBlockNumber,
  itemPointerSetOffsetNumber,
} from './itemptr.js'

// --- BTPageOpaqueData ------------------------------------------------------------------------------

export const SizeOfBTPageOpaqueData = 16
export const BTPO_PREV_OFFSET = 0
export const BTPO_NEXT_OFFSET = 4
export const BTPO_LEVEL_OFFSET = 8
export const BTPO_FLAGS_OFFSET = 12
export const BTPO_CYCLEID_OFFSET = 14

export const BTP_LEAF = 1 << 0
export const BTP_ROOT = 1 << 1
export const BTP_DELETED = 1 << 2
export const BTP_META = 1 << 3
export const BTP_HALF_DEAD = 1 << 4
export const BTP_SPLIT_END = 1 << 5
export const BTP_HAS_GARBAGE = 1 << 6
export const BTP_INCOMPLETE_SPLIT = 1 << 7
export const BTP_HAS_FULLXID = 1 << 8
export const MAX_BT_CYCLE_ID = 0xff7f

/** P_NONE: no sibling. */
export const P_NONE = 0
export const P_HIKEY = 1
export const P_FIRSTKEY = 2

export function btpoGetPrev(page: Buffer): number {
  return page.readUInt32LE(getPdSpecial(page) + BTPO_PREV_OFFSET)
}
export function btpoSetPrev(page: Buffer, blkno: number): void {
  page.writeUInt32LE(blkno >>> 0, getPdSpecial(page) + BTPO_PREV_OFFSET)
}
export function btpoGetNext(page: Buffer): number {
  return page.readUInt32LE(getPdSpecial(page) + BTPO_NEXT_OFFSET)
}
export function btpoSetNext(page: Buffer, blkno: number): void {
  page.writeUInt32LE(blkno >>> 0, getPdSpecial(page) + BTPO_NEXT_OFFSET)
}
export function btpoGetLevel(page: Buffer): number {
  return page.readUInt32LE(getPdSpecial(page) + BTPO_LEVEL_OFFSET)
}
export function btpoSetLevel(page: Buffer, level: number): void {
  page.writeUInt32LE(level >>> 0, getPdSpecial(page) + BTPO_LEVEL_OFFSET)
}
export function btpoGetFlags(page: Buffer): number {
  return page.readUInt16LE(getPdSpecial(page) + BTPO_FLAGS_OFFSET)
}
export function btpoSetFlags(page: Buffer, flags: number): void {
  page.writeUInt16LE(flags & 0xffff, getPdSpecial(page) + BTPO_FLAGS_OFFSET)
}
export function btpoGetCycleId(page: Buffer): number {
  return page.readUInt16LE(getPdSpecial(page) + BTPO_CYCLEID_OFFSET)
}
export function btpoSetCycleId(page: Buffer, cycleid: number): void {
  page.writeUInt16LE(cycleid & 0xffff, getPdSpecial(page) + BTPO_CYCLEID_OFFSET)
}

export function pLeftmost(page: Buffer): boolean {
  return btpoGetPrev(page) === P_NONE
}
export function pRightmost(page: Buffer): boolean {
  return btpoGetNext(page) === P_NONE
}
export function pIsLeaf(page: Buffer): boolean {
  return (btpoGetFlags(page) & BTP_LEAF) !== 0
}
export function pIsRoot(page: Buffer): boolean {
  return (btpoGetFlags(page) & BTP_ROOT) !== 0
}
export function pIsDeleted(page: Buffer): boolean {
  return (btpoGetFlags(page) & BTP_DELETED) !== 0
}
export function pIsMeta(page: Buffer): boolean {
  return (btpoGetFlags(page) & BTP_META) !== 0
}
export function pIsHalfDead(page: Buffer): boolean {
  return (btpoGetFlags(page) & BTP_HALF_DEAD) !== 0
}
export function pIgnore(page: Buffer): boolean {
  return (btpoGetFlags(page) & (BTP_DELETED | BTP_HALF_DEAD)) !== 0
}
export function pHasGarbage(page: Buffer): boolean {
  return (btpoGetFlags(page) & BTP_HAS_GARBAGE) !== 0
}
export function pIncompleteSplit(page: Buffer): boolean {
  return (btpoGetFlags(page) & BTP_INCOMPLETE_SPLIT) !== 0
}
export function pHasFullXid(page: Buffer): boolean {
  return (btpoGetFlags(page) & BTP_HAS_FULLXID) !== 0
}
/** P_FIRSTDATAKEY: 1 on the rightmost page of a level (no high key), else 2. */
export function pFirstDataKey(page: Buffer): number {
  return pRightmost(page) ? P_HIKEY : P_FIRSTKEY
}

// --- limits --------------------------------------------------------------------------------------

/** BTMaxItemSize for 8 KiB pages: MAXALIGN_DOWN((8192 - MAXALIGN(24 + 3*4 + 3*6) - 16) / 3) = 2704. */
export const BTMaxItemSize = maxalignDown(
  Math.floor((BLCKSZ - maxalign(SizeOfPageHeaderData + 3 * sizeOfItemIdData + 3 * SizeOfIptrData) - maxalign(SizeOfBTPageOpaqueData)) / 3),
)
/** BTMaxItemSizeNoHeapTid = 2712. */
export const BTMaxItemSizeNoHeapTid = maxalignDown(
  Math.floor((BLCKSZ - maxalign(SizeOfPageHeaderData + 3 * sizeOfItemIdData) - maxalign(SizeOfBTPageOpaqueData)) / 3),
)
/** MaxTIDsPerBTreePage = (8192 - 24 - 16) / 6 = 1358. */
export const MaxTIDsPerBTreePage = Math.floor((BLCKSZ - SizeOfPageHeaderData - SizeOfBTPageOpaqueData) / SizeOfIptrData)

// --- metapage ------------------------------------------------------------------------------------

export const BTREE_METAPAGE = 0
export const BTREE_MAGIC = 0x053162
export const BTREE_VERSION = 4
export const BTREE_MIN_VERSION = 2
export const BTREE_NOVAC_VERSION = 3
export const SizeOfBTMetaPageData = 48

const BTM = PageGetContentsOffset
export const BTM_MAGIC_OFFSET = BTM + 0
export const BTM_VERSION_OFFSET = BTM + 4
export const BTM_ROOT_OFFSET = BTM + 8
export const BTM_LEVEL_OFFSET = BTM + 12
export const BTM_FASTROOT_OFFSET = BTM + 16
export const BTM_FASTLEVEL_OFFSET = BTM + 20
export const BTM_LAST_CLEANUP_NUM_DELPAGES_OFFSET = BTM + 24
export const BTM_LAST_CLEANUP_NUM_HEAP_TUPLES_OFFSET = BTM + 32
export const BTM_ALLEQUALIMAGE_OFFSET = BTM + 40

export interface BTMetaPageData {
  btm_magic: number
  btm_version: number
  btm_root: number
  btm_level: number
  btm_fastroot: number
  btm_fastlevel: number
  btm_last_cleanup_num_delpages: number
  btm_last_cleanup_num_heap_tuples: number
  btm_allequalimage: boolean
}

export function readBtMeta(page: Buffer): BTMetaPageData {
  return {
    btm_magic: page.readUInt32LE(BTM_MAGIC_OFFSET),
    btm_version: page.readUInt32LE(BTM_VERSION_OFFSET),
    btm_root: page.readUInt32LE(BTM_ROOT_OFFSET),
    btm_level: page.readUInt32LE(BTM_LEVEL_OFFSET),
    btm_fastroot: page.readUInt32LE(BTM_FASTROOT_OFFSET),
    btm_fastlevel: page.readUInt32LE(BTM_FASTLEVEL_OFFSET),
    btm_last_cleanup_num_delpages: page.readUInt32LE(BTM_LAST_CLEANUP_NUM_DELPAGES_OFFSET),
    btm_last_cleanup_num_heap_tuples: page.readDoubleLE(BTM_LAST_CLEANUP_NUM_HEAP_TUPLES_OFFSET),
    btm_allequalimage: page[BTM_ALLEQUALIMAGE_OFFSET] !== 0,
  }
}

/**
 * Writes every field of BTMetaPageData. Padding bytes (28..31 and 41..47 of the struct) are left as they
 * are; PostgreSQL writes the struct field by field onto a page PageInit has zeroed.
 */
export function writeBtMeta(page: Buffer, meta: BTMetaPageData): void {
  page.writeUInt32LE(meta.btm_magic >>> 0, BTM_MAGIC_OFFSET)
  page.writeUInt32LE(meta.btm_version >>> 0, BTM_VERSION_OFFSET)
  page.writeUInt32LE(meta.btm_root >>> 0, BTM_ROOT_OFFSET)
  page.writeUInt32LE(meta.btm_level >>> 0, BTM_LEVEL_OFFSET)
  page.writeUInt32LE(meta.btm_fastroot >>> 0, BTM_FASTROOT_OFFSET)
  page.writeUInt32LE(meta.btm_fastlevel >>> 0, BTM_FASTLEVEL_OFFSET)
  page.writeUInt32LE(meta.btm_last_cleanup_num_delpages >>> 0, BTM_LAST_CLEANUP_NUM_DELPAGES_OFFSET)
  page.writeDoubleLE(meta.btm_last_cleanup_num_heap_tuples, BTM_LAST_CLEANUP_NUM_HEAP_TUPLES_OFFSET)
  page[BTM_ALLEQUALIMAGE_OFFSET] = meta.btm_allequalimage ? 1 : 0
}

// --- deleted pages (BTDeletedPageData) -------------------------------------------------------------

/** sizeof(BTDeletedPageData): one FullTransactionId. */
export const SizeOfBTDeletedPageData = 8
/** FirstNormalFullTransactionId: what BTPageGetDeleteXid reports for pages deleted before PG14. */
export const FirstNormalFullTransactionId = 3n

/**
 * BTPageSetDeleted: clear HALF_DEAD, set DELETED | HAS_FULLXID, pd_lower = 24 + 8, pd_upper = pd_special,
 * and store `safexid` (a u64 FullTransactionId) at PageGetContents.
 */
export function btPageSetDeleted(page: Buffer, safexid: bigint): void {
  btpoSetFlags(page, (btpoGetFlags(page) & ~BTP_HALF_DEAD) | BTP_DELETED | BTP_HAS_FULLXID)
  setPdLower(page, PageGetContentsOffset + SizeOfBTDeletedPageData)
  setPdUpper(page, getPdSpecial(page))
  page.writeBigUInt64LE(safexid, PageGetContentsOffset)
}

/** BTPageGetDeleteXid of a deleted page. */
export function btPageGetDeleteXid(page: Buffer): bigint {
  if (!pHasFullXid(page)) return FirstNormalFullTransactionId
  return page.readBigUInt64LE(PageGetContentsOffset)
}

// --- IndexTupleData ----------------------------------------------------------------------------------

export const SizeOfIndexTupleData = 8
export const T_TID_OFFSET = 0
export const T_INFO_OFFSET = 6
export const INDEX_SIZE_MASK = 0x1fff
export const INDEX_AM_RESERVED_BIT = 0x2000
export const INDEX_VAR_MASK = 0x4000
export const INDEX_NULL_MASK = 0x8000
/** INDEX_MAX_KEYS (pg_config_manual.h): the null bitmap of an index tuple always has room for 32 bits. */
export const INDEX_MAX_KEYS = 32

export function itupGetInfo(buf: Buffer, at: number): number {
  return buf.readUInt16LE(at + T_INFO_OFFSET)
}
export function itupSetInfo(buf: Buffer, at: number, t_info: number): void {
  buf.writeUInt16LE(t_info & 0xffff, at + T_INFO_OFFSET)
}
/** IndexTupleSize: the low 13 bits of t_info. */
export function indexTupleSize(buf: Buffer, at: number): number {
  return itupGetInfo(buf, at) & INDEX_SIZE_MASK
}
export function indexTupleHasNulls(buf: Buffer, at: number): boolean {
  return (itupGetInfo(buf, at) & INDEX_NULL_MASK) !== 0
}
export function indexTupleHasVarwidths(buf: Buffer, at: number): boolean {
  return (itupGetInfo(buf, at) & INDEX_VAR_MASK) !== 0
}
/** IndexInfoFindDataOffset: 8 without nulls, MAXALIGN(8 + 4-byte null bitmap) = 16 with. */
export function indexInfoFindDataOffset(t_info: number): number {
  return (t_info & INDEX_NULL_MASK) === 0
    ? maxalign(SizeOfIndexTupleData)
    : maxalign(SizeOfIndexTupleData + INDEX_MAX_KEYS / 8)
}

// --- nbtree's reuse of t_tid -------------------------------------------------------------------------

export const INDEX_ALT_TID_MASK = INDEX_AM_RESERVED_BIT
export const BT_OFFSET_MASK = 0x0fff
export const BT_STATUS_OFFSET_MASK = 0xf000
export const BT_PIVOT_HEAP_TID_ATTR = 0x1000
export const BT_IS_POSTING = 0x2000

function tidOffsetField(buf: Buffer, at: number): number {
  return itemPointerGetOffsetNumber(buf, at + T_TID_OFFSET)
}

export function btreeTupleIsPivot(buf: Buffer, at: number): boolean {
  if ((itupGetInfo(buf, at) & INDEX_ALT_TID_MASK) === 0) return false
  return (tidOffsetField(buf, at) & BT_IS_POSTING) === 0
}

export function btreeTupleIsPosting(buf: Buffer, at: number): boolean {
  if ((itupGetInfo(buf, at) & INDEX_ALT_TID_MASK) === 0) return false
  return (tidOffsetField(buf, at) & BT_IS_POSTING) !== 0
}

/** BTreeTupleSetPosting: mark as a posting tuple of `nhtids` TIDs starting `postingoffset` bytes in. */
export function btreeTupleSetPosting(buf: Buffer, at: number, nhtids: number, postingoffset: number): void {
  itupSetInfo(buf, at, itupGetInfo(buf, at) | INDEX_ALT_TID_MASK)
  itemPointerSetOffsetNumber(buf, at + T_TID_OFFSET, nhtids | BT_IS_POSTING)
  itemPointerSetBlockNumber(buf, at + T_TID_OFFSET, postingoffset)
}

export function btreeTupleGetNPosting(buf: Buffer, at: number): number {
  return tidOffsetField(buf, at) & BT_OFFSET_MASK
}

/** Byte offset of the posting list from the start of the tuple. */
export function btreeTupleGetPostingOffset(buf: Buffer, at: number): number {
  return itemPointerGetBlockNumber(buf, at + T_TID_OFFSET)
}

/** Byte position (in `buf`) of the n-th heap TID of a posting list (BTreeTupleGetPostingN). */
export function btreeTupleGetPostingNPosition(buf: Buffer, at: number, n: number): number {
  return at + btreeTupleGetPostingOffset(buf, at) + n * SizeOfIptrData
}

export function btreeTupleGetDownLink(buf: Buffer, at: number): number {
  return itemPointerGetBlockNumber(buf, at + T_TID_OFFSET)
}

export function btreeTupleSetDownLink(buf: Buffer, at: number, blkno: number): void {
  itemPointerSetBlockNumber(buf, at + T_TID_OFFSET, blkno)
}

/** BTreeTupleGetNAtts for a pivot tuple (a non-pivot has the index's attribute count, unknown here). */
export function btreeTupleGetPivotNAtts(buf: Buffer, at: number): number {
  return tidOffsetField(buf, at) & BT_OFFSET_MASK
}

/** BTreeTupleSetNAtts: make a pivot of `nkeyatts` key attributes, with or without a trailing heap TID. */
export function btreeTupleSetNAtts(buf: Buffer, at: number, nkeyatts: number, heaptid: boolean): void {
  itupSetInfo(buf, at, itupGetInfo(buf, at) | INDEX_ALT_TID_MASK)
  itemPointerSetOffsetNumber(buf, at + T_TID_OFFSET, heaptid ? nkeyatts | BT_PIVOT_HEAP_TID_ATTR : nkeyatts)
}

export function btreeTupleGetTopParent(buf: Buffer, at: number): number {
  return itemPointerGetBlockNumber(buf, at + T_TID_OFFSET)
}

/** BTreeTupleSetTopParent: the leaf high key of a half-dead page links to the top parent being deleted. */
export function btreeTupleSetTopParent(buf: Buffer, at: number, blkno: number): void {
  itemPointerSetBlockNumber(buf, at + T_TID_OFFSET, blkno)
  btreeTupleSetNAtts(buf, at, 0, false)
}

/**
 * BTreeTupleGetHeapTID: byte position of the tuple's (first) heap TID, or -1 for a pivot without one.
 * Pivot: the last 6 bytes of the tuple; posting: the first list entry; plain: t_tid itself.
 */
export function btreeTupleGetHeapTIDPosition(buf: Buffer, at: number): number {
  if (btreeTupleIsPivot(buf, at)) {
    if ((tidOffsetField(buf, at) & BT_PIVOT_HEAP_TID_ATTR) !== 0) return at + indexTupleSize(buf, at) - SizeOfIptrData
    return -1
  }
  if (btreeTupleIsPosting(buf, at)) return at + btreeTupleGetPostingOffset(buf, at)
  return at + T_TID_OFFSET
}

/** BTreeTupleGetMaxHeapTID of a non-pivot tuple: the last posting-list entry, or t_tid. */
export function btreeTupleGetMaxHeapTIDPosition(buf: Buffer, at: number): number {
  if (btreeTupleIsPosting(buf, at)) return btreeTupleGetPostingNPosition(buf, at, btreeTupleGetNPosting(buf, at) - 1)
  return at + T_TID_OFFSET
}
