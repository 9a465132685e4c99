/**
 * Visibility-map pages (access/heap/visibilitymap.c): block mapping and the bit operations redo performs.
 *
 * A VM page is a standard page with no line pointers (pd_lower 24, pd_upper = pd_special = 8192) whose
 * contents (from byte 24, MAXALIGN of the header) are a bitmap of 2 bits per heap block: ALL_VISIBLE 0x1,
 * ALL_FROZEN 0x2. Four heap blocks per byte, (8192 - 24) * 4 = 32,672 heap blocks per VM page.
 *
 * Worked example: heap block 70,000 -> VM block 70000 / 32672 = 2, byte (70000 % 32672) / 4 = 1164,
 * shift (70000 % 4) * 2 = 0; its bits live at page byte 24 + 1164 = 1188, mask 0x03.
 *
 * LSN rules, as in PostgreSQL's redo: visibilitymap_clear never sets pd_lsn (the heap record that clears a
 * bit does not reference the VM page); visibilitymap_set stamps the record's end LSN only when it changed
 * the bits it was asked to set. A VM page that does not exist yet is PageInit-ed (vm_readbuf) before use.
 *
 * Pure functions over an 8 KiB page buffer; no allocation.
 */
import { BLCKSZ, PageGetContentsOffset, pageInit, pageIsNew, pageSetLsn } from '../page/page.js'
import type { Lsn } from '../../pg/lsn.js'

export const VISIBILITYMAP_ALL_VISIBLE = 0x01
export const VISIBILITYMAP_ALL_FROZEN = 0x02
export const VISIBILITYMAP_VALID_BITS = 0x03

export const BITS_PER_HEAPBLOCK = 2
export const HEAPBLOCKS_PER_BYTE = 8 / BITS_PER_HEAPBLOCK
/** Bytes of bitmap per VM page: the whole page after the MAXALIGNed header. */
export const MAPSIZE = BLCKSZ - PageGetContentsOffset
export const HEAPBLOCKS_PER_PAGE = MAPSIZE * HEAPBLOCKS_PER_BYTE

/** HEAPBLK_TO_MAPBLOCK: the VM block holding heap block `heapBlk`'s bits. */
export function heapBlkToMapBlock(heapBlk: number): number {
  return Math.floor(heapBlk / HEAPBLOCKS_PER_PAGE)
}
/** HEAPBLK_TO_MAPBYTE: the byte within the bitmap (add PageGetContentsOffset for the page offset). */
export function heapBlkToMapByte(heapBlk: number): number {
  return Math.floor((heapBlk % HEAPBLOCKS_PER_PAGE) / HEAPBLOCKS_PER_BYTE)
}
/** HEAPBLK_TO_OFFSET: the bit shift within that byte. */
export function heapBlkToMapOffset(heapBlk: number): number {
  return (heapBlk % HEAPBLOCKS_PER_BYTE) * BITS_PER_HEAPBLOCK
}

/** vm_readbuf in recovery: a page read as zeros (never written, or just extended) is PageInit-ed. */
export function vmInitIfNew(page: Buffer): void {
  if (pageIsNew(page)) pageInit(page, 0)
}

/** The two status bits of `heapBlk` on its VM page. */
export function vmGetStatus(page: Buffer, heapBlk: number): number {
  const b = page[PageGetContentsOffset + heapBlkToMapByte(heapBlk)]!
  return (b >> heapBlkToMapOffset(heapBlk)) & VISIBILITYMAP_VALID_BITS
}

/**
 * visibilitymap_clear: clears `flags` (VALID_BITS, or ALL_FROZEN for tuple locks) of `heapBlk` on its VM
 * page. No LSN change. Returns whether any bit was set before.
 */
export function vmClear(page: Buffer, heapBlk: number, flags: number): boolean {
  const at = PageGetContentsOffset + heapBlkToMapByte(heapBlk)
  const mask = (flags << heapBlkToMapOffset(heapBlk)) & 0xff
  const b = page[at]!
  if ((b & mask) === 0) return false
  page[at] = b & ~mask
  return true
}

/**
 * visibilitymap_set during recovery: if the bits of `heapBlk` differ from `flags`, OR `flags` in and stamp
 * `lsn` on the VM page; otherwise leave the page (and its LSN) alone. Returns whether the page changed.
 * The comparison is PostgreSQL's: bits already 0x3 asked to be 0x1 still "differ", so the LSN moves.
 */
export function vmSet(page: Buffer, heapBlk: number, flags: number, lsn: Lsn): boolean {
  const at = PageGetContentsOffset + heapBlkToMapByte(heapBlk)
  const shift = heapBlkToMapOffset(heapBlk)
  const b = page[at]!
  if (flags === ((b >> shift) & VISIBILITYMAP_VALID_BITS)) return false
  page[at] = (b | (flags << shift)) & 0xff
  pageSetLsn(page, lsn)
  return true
}

// --- truncation --------------------------------------------------------------------------------------

export interface VmTruncation {
  /** The VM block that holds the first truncated heap block's bits. */
  truncBlock: number
  truncByte: number
  truncOffset: number
  /** The truncated heap size does not end on a VM page boundary: the last kept VM page needs editing. */
  partialPage: boolean
  /** VM blocks to keep (the fork is truncated to this many blocks unless already shorter). */
  newVmBlocks: number
}

/** Where visibilitymap_prepare_truncate cuts for a heap truncated to `nheapblocks` blocks. */
export function vmTruncation(nheapblocks: number): VmTruncation {
  const truncBlock = heapBlkToMapBlock(nheapblocks)
  const truncByte = heapBlkToMapByte(nheapblocks)
  const truncOffset = heapBlkToMapOffset(nheapblocks)
  const partialPage = truncByte !== 0 || truncOffset !== 0
  return { truncBlock, truncByte, truncOffset, partialPage, newVmBlocks: partialPage ? truncBlock + 1 : truncBlock }
}

/**
 * The edit visibilitymap_prepare_truncate makes to the last kept VM page (block `truncBlock`) when the heap
 * is truncated to `nheapblocks`: clear every bit of heap blocks >= nheapblocks on that page. Does nothing
 * when the cut falls on a page boundary (then no page is edited; whole VM pages are dropped). The page
 * LSN is not changed (smgr TRUNCATE redo does not stamp it). A new (all-zero) page is PageInit-ed first, as
 * vm_readbuf would.
 */
export function vmTruncatePage(page: Buffer, nheapblocks: number): void {
  const t = vmTruncation(nheapblocks)
  if (!t.partialPage) return
  vmInitIfNew(page)
  const at = PageGetContentsOffset + t.truncByte
  page.fill(0, at + 1, BLCKSZ)
  page[at] = page[at]! & ((1 << t.truncOffset) - 1)
}
