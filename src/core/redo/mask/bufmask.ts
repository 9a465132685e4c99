/**
 * Generic page masks (access/common/bufmask.c), the building blocks of every resource manager's rm_mask.
 *
 * wal_consistency_checking compares a replayed page with the primary's post-image after masking what
 * may legitimately differ: the LSN and checksum, hint bits set without WAL, free space, LP_DEAD hints.
 * A mask overwrites those bytes with MASK_MARKER (0), in place, on both pages; equality after masking is
 * the consistency criterion, so the masks must blank exactly what PostgreSQL blanks.
 *
 * mask_unused_space refuses a page whose pointers are insane (PostgreSQL raises ERROR): CorruptionError
 * MASK_BAD_PAGE_POINTERS.
 */
import { CorruptionError } from '../../lib/errors.js'
import {
  BLCKSZ,
  PD_ALL_VISIBLE,
  PD_CHECKSUM_OFFSET,
  PD_HAS_FREE_LINES,
  PD_LOWER_OFFSET,
  PD_LSN_OFFSET,
  PD_PAGE_FULL,
  PD_UPPER_OFFSET,
  SizeOfPageHeaderData,
  getPdFlags,
  getPdLower,
  getPdSpecial,
  getPdUpper,
  pageGetMaxOffsetNumber,
  setPdFlags,
  setPdPruneXid,
} from '../page/page.js'
import { itemIdPosition } from '../page/itemid.js'

export const MASK_MARKER = 0

/** Blank pd_lsn (both words) and pd_checksum. */
export function maskPageLsnAndChecksum(page: Buffer): void {
  page.fill(MASK_MARKER, PD_LSN_OFFSET, PD_LSN_OFFSET + 8)
  page.writeUInt16LE(MASK_MARKER, PD_CHECKSUM_OFFSET)
}

/** Blank pd_prune_xid and clear PD_PAGE_FULL, PD_HAS_FREE_LINES and PD_ALL_VISIBLE. */
export function maskPageHintBits(page: Buffer): void {
  setPdPruneXid(page, MASK_MARKER)
  setPdFlags(page, getPdFlags(page) & ~(PD_PAGE_FULL | PD_HAS_FREE_LINES | PD_ALL_VISIBLE))
}

/** Blank pd_lower..pd_upper; throws CorruptionError when the pointers are not sane. */
export function maskUnusedSpace(page: Buffer): void {
  const pd_lower = getPdLower(page)
  const pd_upper = getPdUpper(page)
  const pd_special = getPdSpecial(page)
  if (pd_lower > pd_upper || pd_special < pd_upper || pd_lower < SizeOfPageHeaderData || pd_special > BLCKSZ) {
    throw new CorruptionError(
      'MASK_BAD_PAGE_POINTERS',
      `invalid page pd_lower ${pd_lower} pd_upper ${pd_upper} pd_special ${pd_special}`,
      {
        hint: 'The page cannot be masked for comparison: its header is damaged or it is not a standard page.',
        details: { pd_lower, pd_upper, pd_special },
      },
    )
  }
  page.fill(MASK_MARKER, pd_lower, pd_upper)
}

/** Set lp_flags of every used line pointer to LP_UNUSED, keeping lp_off and lp_len. */
export function maskLpFlags(page: Buffer): void {
  const maxoff = pageGetMaxOffsetNumber(page)
  // lp_flags is bits 15..16 of the u32 LE word, i.e. bit 7 of byte 1 and bit 0 of byte 2; LP_UNUSED is 0.
  for (let offnum = 1; offnum <= maxoff; offnum++) {
    const pos = itemIdPosition(offnum)
    if (pos + 4 > BLCKSZ) throw new RangeError(`line pointer ${offnum} lies outside the page`)
    page[pos + 1] = page[pos + 1]! & 0x7f
    page[pos + 2] = page[pos + 2]! & 0xfe
  }
}

/** Blank everything after the header, and pd_lower and pd_upper (deleted index pages). */
export function maskPageContent(page: Buffer): void {
  page.fill(MASK_MARKER, SizeOfPageHeaderData, BLCKSZ)
  page.writeUInt16LE(MASK_MARKER, PD_LOWER_OFFSET)
  page.writeUInt16LE(MASK_MARKER, PD_UPPER_OFFSET)
}
