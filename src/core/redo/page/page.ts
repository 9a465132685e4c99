/**
 * The standard PostgreSQL 15 page: constants, header accessors, PageInit.
 *
 * A page is an 8192-byte Buffer (a view into a larger buffer is fine). The 24-byte header is
 *
 *   0  pd_lsn        two u32 LE words, high (xlogid) first, then low (xrecoff): NOT one LE u64
 *   8  pd_checksum   u16
 *  10  pd_flags      u16 (PD_HAS_FREE_LINES 1, PD_PAGE_FULL 2, PD_ALL_VISIBLE 4)
 *  12  pd_lower      u16, end of the line pointer array
 *  14  pd_upper      u16, start of tuple space
 *  16  pd_special    u16, start of the special space
 *  18  pd_pagesize_version u16, 0x2004 (size 8192 | layout version 4)
 *  20  pd_prune_xid  u32
 *  24  line pointers (itemid.ts), 4 bytes each, 1-based offset numbers
 *
 * Worked example: pd_lsn 0/16B3748 is stored as 00 00 00 00 48 37 6B 01.
 *
 * Invariants of a sane page: 24 <= pd_lower <= pd_upper <= pd_special <= 8192, pd_special MAXALIGNed.
 * A page with pd_upper == 0 is "new" (all zeroes, never initialised). The accessors here do not check
 * sanity; the routines that move bytes (bufpage.ts) do, as PostgreSQL does, and throw CorruptionError.
 *
 * Everything is pure and allocation-free: numbers in, bytes mutated in place.
 */
import { assert } from '../../lib/errors.js'
import type { Lsn } from '../../pg/lsn.js'

export const BLCKSZ = 8192
export const SizeOfPageHeaderData = 24
export const MAXIMUM_ALIGNOF = 8
export const PG_PAGE_LAYOUT_VERSION = 4
export const PG_DATA_CHECKSUM_VERSION = 1

export const PD_HAS_FREE_LINES = 0x0001
export const PD_PAGE_FULL = 0x0002
export const PD_ALL_VISIBLE = 0x0004
export const PD_VALID_FLAG_BITS = 0x0007

/** sizeof(ItemIdData). */
export const sizeOfItemIdData = 4

export const InvalidOffsetNumber = 0
export const FirstOffsetNumber = 1
/** BLCKSZ / sizeof(ItemIdData): no page can hold more line pointers. */
export const MaxOffsetNumber = BLCKSZ / sizeOfItemIdData

/** (BLCKSZ - header) / (MAXALIGN(SizeofHeapTupleHeader 23) + sizeof(ItemIdData)) = 8168 / 28. */
export const MaxHeapTuplesPerPage = 291
/** (BLCKSZ - header) / (MAXALIGN(sizeof(IndexTupleData) 8 + 1) + sizeof(ItemIdData)) = 8168 / 20. */
export const MaxIndexTuplesPerPage = 408

/** Byte offsets of the header fields. */
export const PD_LSN_OFFSET = 0
export const PD_CHECKSUM_OFFSET = 8
export const PD_FLAGS_OFFSET = 10
export const PD_LOWER_OFFSET = 12
export const PD_UPPER_OFFSET = 14
export const PD_SPECIAL_OFFSET = 16
export const PD_PAGESIZE_VERSION_OFFSET = 18
export const PD_PRUNE_XID_OFFSET = 20

/** MAXALIGN(n): round up to a multiple of 8 (x86-64 and arm64 builds of PostgreSQL). */
export function maxalign(n: number): number {
  return (n + (MAXIMUM_ALIGNOF - 1)) & ~(MAXIMUM_ALIGNOF - 1)
}

/** MAXALIGN_DOWN(n). */
export function maxalignDown(n: number): number {
  return n & ~(MAXIMUM_ALIGNOF - 1)
}

/** Throws (a bug, not bad input) unless `page` is exactly one block. */
export function assertPage(page: Buffer): void {
  assert(page.length === BLCKSZ, () => `a page must be ${BLCKSZ} bytes, got ${page.length}`)
}

// --- pd_lsn ---------------------------------------------------------------------------------------

export function pageGetLsn(page: Buffer): Lsn {
  const hi = page.readUInt32LE(PD_LSN_OFFSET)
  const lo = page.readUInt32LE(PD_LSN_OFFSET + 4)
  return ((BigInt(hi) << 32n) | BigInt(lo)) as Lsn
}

export function pageSetLsn(page: Buffer, lsn: Lsn | bigint): void {
  // Every redo body ends here: split through a double (exact below 2^53) instead of three bigint operations.
  // Bytes stored one by one: writeUInt32LE validates its arguments on every call.
  const n = Number(lsn)
  if (n <= Number.MAX_SAFE_INTEGER && n >= 0 && page.length >= 8) {
    const hi = Math.floor(n / 0x1_0000_0000)
    const lo = n - hi * 0x1_0000_0000
    page[0] = hi
    page[1] = hi >>> 8
    page[2] = hi >>> 16
    page[3] = hi >>> 24
    page[4] = lo
    page[5] = lo >>> 8
    page[6] = lo >>> 16
    page[7] = lo >>> 24
    return
  }
  page.writeUInt32LE(Number((lsn >> 32n) & 0xffff_ffffn), PD_LSN_OFFSET)
  page.writeUInt32LE(Number(lsn & 0xffff_ffffn), PD_LSN_OFFSET + 4)
}

// --- plain header fields --------------------------------------------------------------------------

export function getPdChecksum(page: Buffer): number {
  return page.readUInt16LE(PD_CHECKSUM_OFFSET)
}
export function setPdChecksum(page: Buffer, v: number): void {
  page.writeUInt16LE(v, PD_CHECKSUM_OFFSET)
}

export function getPdFlags(page: Buffer): number {
  return page.readUInt16LE(PD_FLAGS_OFFSET)
}
export function setPdFlags(page: Buffer, v: number): void {
  page.writeUInt16LE(v, PD_FLAGS_OFFSET)
}

export function getPdLower(page: Buffer): number {
  return page.readUInt16LE(PD_LOWER_OFFSET)
}
export function setPdLower(page: Buffer, v: number): void {
  page.writeUInt16LE(v, PD_LOWER_OFFSET)
}

export function getPdUpper(page: Buffer): number {
  return page.readUInt16LE(PD_UPPER_OFFSET)
}
export function setPdUpper(page: Buffer, v: number): void {
  page.writeUInt16LE(v, PD_UPPER_OFFSET)
}

export function getPdSpecial(page: Buffer): number {
  return page.readUInt16LE(PD_SPECIAL_OFFSET)
}
export function setPdSpecial(page: Buffer, v: number): void {
  page.writeUInt16LE(v, PD_SPECIAL_OFFSET)
}

export function getPdPagesizeVersion(page: Buffer): number {
  return page.readUInt16LE(PD_PAGESIZE_VERSION_OFFSET)
}
export function setPdPagesizeVersion(page: Buffer, v: number): void {
  page.writeUInt16LE(v, PD_PAGESIZE_VERSION_OFFSET)
}

export function getPdPruneXid(page: Buffer): number {
  return page.readUInt32LE(PD_PRUNE_XID_OFFSET)
}
export function setPdPruneXid(page: Buffer, xid: number): void {
  page.writeUInt32LE(xid >>> 0, PD_PRUNE_XID_OFFSET)
}

/** PageGetPageSize: the size half of pd_pagesize_version (8192 on every page we accept). */
export function pageGetPageSize(page: Buffer): number {
  return getPdPagesizeVersion(page) & 0xff00
}

export function pageGetPageLayoutVersion(page: Buffer): number {
  return getPdPagesizeVersion(page) & 0x00ff
}

// --- flag helpers ---------------------------------------------------------------------------------

export function pageHasFreeLinePointers(page: Buffer): boolean {
  return (getPdFlags(page) & PD_HAS_FREE_LINES) !== 0
}
export function pageSetHasFreeLinePointers(page: Buffer): void {
  setPdFlags(page, getPdFlags(page) | PD_HAS_FREE_LINES)
}
export function pageClearHasFreeLinePointers(page: Buffer): void {
  setPdFlags(page, getPdFlags(page) & ~PD_HAS_FREE_LINES)
}

export function pageIsFull(page: Buffer): boolean {
  return (getPdFlags(page) & PD_PAGE_FULL) !== 0
}
export function pageSetFull(page: Buffer): void {
  setPdFlags(page, getPdFlags(page) | PD_PAGE_FULL)
}
export function pageClearFull(page: Buffer): void {
  setPdFlags(page, getPdFlags(page) & ~PD_PAGE_FULL)
}

export function pageIsAllVisible(page: Buffer): boolean {
  return (getPdFlags(page) & PD_ALL_VISIBLE) !== 0
}
export function pageSetAllVisible(page: Buffer): void {
  setPdFlags(page, getPdFlags(page) | PD_ALL_VISIBLE)
}
export function pageClearAllVisible(page: Buffer): void {
  setPdFlags(page, getPdFlags(page) & ~PD_ALL_VISIBLE)
}

/**
 * PageSetPrunable: keep the oldest prunable xid. `xid` must be a normal xid (>= 3); the comparison is
 * TransactionIdPrecedes, i.e. modulo 2^32 (the signed difference is negative).
 */
export function pageSetPrunable(page: Buffer, xid: number): void {
  assert(xid >>> 0 >= 3, () => `PageSetPrunable needs a normal xid, got ${xid}`)
  const cur = getPdPruneXid(page)
  // TransactionIdPrecedes: unsigned compare when either xid is special (< 3), else modulo-2^32.
  const precedes = cur < 3 ? xid >>> 0 < cur : ((xid - cur) | 0) < 0
  if (cur === 0 || precedes) setPdPruneXid(page, xid)
}

export function pageClearPrunable(page: Buffer): void {
  setPdPruneXid(page, 0)
}

// --- derived ---------------------------------------------------------------------------------------

/** PageIsNew: never initialised (pd_upper == 0). */
export function pageIsNew(page: Buffer): boolean {
  return getPdUpper(page) === 0
}

/** PageIsEmpty: no line pointers. */
export function pageIsEmpty(page: Buffer): boolean {
  return getPdLower(page) <= SizeOfPageHeaderData
}

/** PageGetMaxOffsetNumber: the number of line pointers (0 when pd_lower <= 24). */
export function pageGetMaxOffsetNumber(page: Buffer): number {
  const lower = getPdLower(page)
  return lower <= SizeOfPageHeaderData ? 0 : (lower - SizeOfPageHeaderData) >>> 2
}

/** PageGetSpecialPointer: the byte offset of the special space (pd_special). */
export function pageGetSpecialPointer(page: Buffer): number {
  return getPdSpecial(page)
}

/** PageGetSpecialSize: page size (from pd_pagesize_version) minus pd_special, as a u16. */
export function pageGetSpecialSize(page: Buffer): number {
  return (pageGetPageSize(page) - getPdSpecial(page)) & 0xffff
}

/** PageGetContents: offset of the first byte after the MAXALIGNed header (metapages, VM, deleted btree pages). */
export const PageGetContentsOffset = maxalign(SizeOfPageHeaderData)

/**
 * PageInit: zero the whole page, then pd_lower = 24, pd_upper = pd_special = 8192 - MAXALIGN(specialSize),
 * pd_pagesize_version = 0x2004. Checksum, flags, LSN and prune xid stay zero.
 */
export function pageInit(page: Buffer, specialSize: number): void {
  assertPage(page)
  const special = maxalign(specialSize)
  assert(special >= 0 && BLCKSZ > special + SizeOfPageHeaderData, () => `special size ${specialSize} does not fit a page`)
  page.fill(0)
  setPdLower(page, SizeOfPageHeaderData)
  setPdUpper(page, BLCKSZ - special)
  setPdSpecial(page, BLCKSZ - special)
  setPdPagesizeVersion(page, BLCKSZ | PG_PAGE_LAYOUT_VERSION)
}

/**
 * PageGetTempPageCopySpecial into a caller-owned buffer: `temp` is initialised with `src`'s special size and
 * gets a copy of `src`'s special space. Used by redo routines that rebuild a page (btree split, dedup).
 */
export function pageInitCopySpecial(temp: Buffer, src: Buffer): void {
  const specialSize = pageGetSpecialSize(src)
  pageInit(temp, specialSize)
  const from = getPdSpecial(src)
  src.copy(temp, getPdSpecial(temp), from, from + specialSize)
}
