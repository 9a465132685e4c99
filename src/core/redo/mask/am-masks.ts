/**
 * rm_mask of the other index access methods and of generic WAL, in place, each as its PostgreSQL 15
 * original (hash_xlog.c, ginxlog.c, gistxlog.c, spgxlog.c, brin_xlog.c, generic_xlog.c).
 *
 * Special-space layouts read here (offsets from pd_special):
 *   hash  HashPageOpaqueData 16 bytes: hasho_flag u16 @12 (page type in the low 4 bits)
 *   gin   GinPageOpaqueData 8 bytes: flags u16 @6
 *   gist  GISTPageOpaqueData 16 bytes: nsn (two u32, like pd_lsn) @0, flags u16 @12
 *   brin  BrinSpecialSpace 8 bytes: flags u16 @4, page type u16 @6 (the last half-word of the page)
 *   spgist, generic: none used
 * Like PostgreSQL, gin and brin read the special space even where pd_special is not set (it then lands in
 * the header); a special space that would run past the page is a CorruptionError instead of a wild read.
 */
import { SizeOfPageHeaderData, getPdLower } from '../page/page.js'
import { maskLpFlags, maskPageContent, maskPageHintBits, maskPageLsnAndChecksum, maskUnusedSpace } from './bufmask.js'
import { specialPosition } from './btree-mask.js'

// --- hash ---
export const LH_UNUSED_PAGE = 0
export const LH_OVERFLOW_PAGE = 1 << 0
export const LH_BUCKET_PAGE = 1 << 1
export const LH_BITMAP_PAGE = 1 << 2
export const LH_META_PAGE = 1 << 3
export const LH_PAGE_HAS_DEAD_TUPLES = 1 << 7
export const LH_PAGE_TYPE = LH_OVERFLOW_PAGE | LH_BUCKET_PAGE | LH_BITMAP_PAGE | LH_META_PAGE
const HASHO_FLAG_OFFSET = 12

// --- gin ---
export const GIN_DELETED = 1 << 2
const GIN_FLAGS_OFFSET = 6

// --- gist ---
export const F_LEAF = 1 << 0
export const F_FOLLOW_RIGHT = 1 << 3
export const F_HAS_GARBAGE = 1 << 4
const GIST_NSN_OFFSET = 0
const GIST_FLAGS_OFFSET = 12

// --- brin ---
export const BRIN_PAGETYPE_META = 0xf091
export const BRIN_PAGETYPE_REVMAP = 0xf092
export const BRIN_PAGETYPE_REGULAR = 0xf093
export const BRIN_EVACUATE_PAGE = 1 << 0
const BRIN_FLAGS_OFFSET = 4
const BRIN_TYPE_OFFSET = 6

export function hashMask(page: Buffer, _blkno: number): void {
  maskPageLsnAndChecksum(page)
  maskPageHintBits(page)
  maskUnusedSpace(page)

  const special = specialPosition(page, 16, 'hash')
  const pagetype = page.readUInt16LE(special + HASHO_FLAG_OFFSET) & LH_PAGE_TYPE
  if (pagetype === LH_UNUSED_PAGE) maskPageContent(page)
  else if (pagetype === LH_BUCKET_PAGE || pagetype === LH_OVERFLOW_PAGE) maskLpFlags(page)

  const flag = page.readUInt16LE(special + HASHO_FLAG_OFFSET)
  page.writeUInt16LE(flag & ~LH_PAGE_HAS_DEAD_TUPLES, special + HASHO_FLAG_OFFSET)
}

export function ginMask(page: Buffer, _blkno: number): void {
  maskPageLsnAndChecksum(page)
  const special = specialPosition(page, 8, 'gin')
  maskPageHintBits(page)

  if ((page.readUInt16LE(special + GIN_FLAGS_OFFSET) & GIN_DELETED) !== 0) maskPageContent(page)
  else if (getPdLower(page) > SizeOfPageHeaderData) maskUnusedSpace(page)
}

export function gistMask(page: Buffer, _blkno: number): void {
  maskPageLsnAndChecksum(page)
  maskPageHintBits(page)
  maskUnusedSpace(page)

  const special = specialPosition(page, 16, 'gist')
  page.fill(0, special + GIST_NSN_OFFSET, special + GIST_NSN_OFFSET + 8)
  // PostgreSQL masks F_FOLLOW_RIGHT by setting it on both pages.
  page.writeUInt16LE(page.readUInt16LE(special + GIST_FLAGS_OFFSET) | F_FOLLOW_RIGHT, special + GIST_FLAGS_OFFSET)
  if ((page.readUInt16LE(special + GIST_FLAGS_OFFSET) & F_LEAF) !== 0) maskLpFlags(page)
  page.writeUInt16LE(page.readUInt16LE(special + GIST_FLAGS_OFFSET) & ~F_HAS_GARBAGE, special + GIST_FLAGS_OFFSET)
}

export function spgMask(page: Buffer, _blkno: number): void {
  maskPageLsnAndChecksum(page)
  maskPageHintBits(page)
  if (getPdLower(page) >= SizeOfPageHeaderData) maskUnusedSpace(page)
}

export function brinMask(page: Buffer, _blkno: number): void {
  maskPageLsnAndChecksum(page)
  maskPageHintBits(page)

  const special = specialPosition(page, 8, 'brin')
  const pagetype = page.readUInt16LE(special + BRIN_TYPE_OFFSET)
  if (pagetype === BRIN_PAGETYPE_REGULAR || (pagetype === BRIN_PAGETYPE_META && getPdLower(page) > SizeOfPageHeaderData)) {
    maskUnusedSpace(page)
  }
  page.writeUInt16LE(page.readUInt16LE(special + BRIN_FLAGS_OFFSET) & ~BRIN_EVACUATE_PAGE, special + BRIN_FLAGS_OFFSET)
}

export function genericMask(page: Buffer, _blkno: number): void {
  maskPageLsnAndChecksum(page)
  maskUnusedSpace(page)
}
