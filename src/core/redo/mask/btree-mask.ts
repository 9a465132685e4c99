/**
 * btree_mask (access/nbtree/nbtxlog.c), in place: LSN, checksum, page hint bits, free space; on leaf
 * pages the line pointer flags (LP_DEAD is set by scans without WAL); BTP_HAS_GARBAGE and BTP_SPLIT_END
 * flags and btpo_cycleid (redo of a split does not reproduce them).
 */
import { CorruptionError } from '../../lib/errors.js'
import { BLCKSZ, getPdSpecial } from '../page/page.js'
import { BTP_HAS_GARBAGE, BTP_LEAF, BTP_SPLIT_END, BTPO_CYCLEID_OFFSET, BTPO_FLAGS_OFFSET, SizeOfBTPageOpaqueData } from '../page/nbtree-page.js'
import { maskLpFlags, maskPageHintBits, maskPageLsnAndChecksum, maskUnusedSpace } from './bufmask.js'

/** Position of an AM's special-space struct, refusing one that would run past the page. */
export function specialPosition(page: Buffer, opaqueSize: number, am: string): number {
  const special = getPdSpecial(page)
  if (special + opaqueSize > BLCKSZ) {
    throw new CorruptionError('MASK_BAD_SPECIAL', `${am} page has no room for its special space at pd_special ${special}`, {
      hint: `The page cannot be masked for comparison: it is damaged or not a ${am} page.`,
      details: { pd_special: special, opaqueSize },
    })
  }
  return special
}

export function btreeMask(page: Buffer, _blkno: number): void {
  maskPageLsnAndChecksum(page)
  maskPageHintBits(page)
  maskUnusedSpace(page)

  const special = specialPosition(page, SizeOfBTPageOpaqueData, 'btree')
  const flags = page.readUInt16LE(special + BTPO_FLAGS_OFFSET)
  if ((flags & BTP_LEAF) !== 0) maskLpFlags(page)
  page.writeUInt16LE(flags & ~(BTP_HAS_GARBAGE | BTP_SPLIT_END), special + BTPO_FLAGS_OFFSET)
  page.writeUInt16LE(0, special + BTPO_CYCLEID_OFFSET)
}
