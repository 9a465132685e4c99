/**
 * heap_mask (access/heap/heapam.c): the rm_mask of Heap and Heap2, applied in place.
 *
 * On top of LSN, checksum, page hint bits and free space, per line pointer:
 * - LP_NORMAL tuples: if xmin is not frozen, every visibility bit of t_infomask (HEAP_XACT_MASK 0xFFF0)
 *   is blanked, since hint bits are set without WAL; if frozen, only XMAX_COMMITTED and XMAX_INVALID.
 *   t_cid is blanked (redo writes FirstCommandId). A speculative tuple's t_ctid (a token on the primary)
 *   is set to (blkno, offnum), as redo writes it.
 * - every item with storage: the MAXALIGN padding after lp_len is blanked (PageAddItem leaves it stale).
 *
 * Note that applied to a visibility-map page this blanks the whole bitmap (pd_lower 24, pd_upper 8192);
 * use maskVmPage for VM pages in our own comparisons.
 */
import { CorruptionError } from '../../lib/errors.js'
import { BLCKSZ, SizeOfPageHeaderData, maxalign, pageGetMaxOffsetNumber } from '../page/page.js'
import { LP_NORMAL, rawItemIdFlags, rawItemIdLength, rawItemIdOffset } from '../page/itemid.js'
import {
  HEAP_XACT_MASK,
  HEAP_XMAX_COMMITTED,
  HEAP_XMAX_INVALID,
  HEAP_XMIN_FROZEN,
  SizeofHeapTupleHeader,
  T_CID_OFFSET,
  T_CTID_OFFSET,
  T_INFOMASK_OFFSET,
} from '../page/htup.js'
import { SpecTokenOffsetNumber, itemPointerSet } from '../page/itemptr.js'
import { MASK_MARKER, maskPageHintBits, maskPageLsnAndChecksum, maskUnusedSpace } from './bufmask.js'

function itemOutsidePage(offnum: number, lp_off: number, lp_len: number): CorruptionError {
  return new CorruptionError('MASK_BAD_LINE_POINTER', `line pointer ${offnum} (offset ${lp_off}, length ${lp_len}) points outside the page`, {
    hint: 'The page cannot be masked for comparison: a line pointer is damaged.',
    details: { offnum, lp_off, lp_len },
  })
}

export function heapMask(page: Buffer, blkno: number): void {
  maskPageLsnAndChecksum(page)
  maskPageHintBits(page)
  maskUnusedSpace(page)

  // A DataView: this loop visits every tuple of the page, and Buffer's checked accessors cost several
  // times more per call.
  const dv = new DataView(page.buffer, page.byteOffset, BLCKSZ)
  const maxoff = pageGetMaxOffsetNumber(page)
  for (let off = 1; off <= maxoff; off++) {
    const raw = dv.getUint32(SizeOfPageHeaderData + (off - 1) * 4, true)
    const item = rawItemIdOffset(raw)
    const len = rawItemIdLength(raw)

    if (rawItemIdFlags(raw) === LP_NORMAL) {
      if (item + SizeofHeapTupleHeader > BLCKSZ) throw itemOutsidePage(off, item, len)
      const infomask = dv.getUint16(item + T_INFOMASK_OFFSET, true)
      const masked =
        (infomask & HEAP_XMIN_FROZEN) !== HEAP_XMIN_FROZEN
          ? infomask & ~HEAP_XACT_MASK
          : infomask & ~(HEAP_XMAX_INVALID | HEAP_XMAX_COMMITTED)
      dv.setUint16(item + T_INFOMASK_OFFSET, masked, true)
      dv.setUint32(item + T_CID_OFFSET, MASK_MARKER, true)
      if (dv.getUint16(item + T_CTID_OFFSET + 4, true) === SpecTokenOffsetNumber) {
        itemPointerSet(page, item + T_CTID_OFFSET, blkno, off)
      }
    }

    if (len !== 0) {
      const end = maxalign(len) + item
      if (end > BLCKSZ) throw itemOutsidePage(off, item, len)
      for (let pos = item + len; pos < end; pos++) page[pos] = MASK_MARKER
    }
  }
}
