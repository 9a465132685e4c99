/**
 * Redo of page deletion: MARK_PAGE_HALFDEAD (btree_xlog_mark_page_halfdead), UNLINK_PAGE and
 * UNLINK_PAGE_META (btree_xlog_unlink_page).
 *
 * MARK_PAGE_HALFDEAD
 *   1  the parent of the subtree being removed: the downlink at poffset takes the block number of the
 *      downlink right after it, and that next tuple is deleted (PageIndexTupleDelete).
 *   0  the leaf (WILL_INIT): an empty half-dead leaf, prev/next from the record, whose only item is a
 *      dummy 8-byte high key linking to the top parent of the subtree (InvalidBlockNumber when the leaf
 *      itself is the top).
 * UNLINK_PAGE / UNLINK_PAGE_META
 *   1  the left sibling (only when leftsib != P_NONE): btpo_next = rightsib.
 *   0  the target (WILL_INIT): an empty deleted page, prev/next/level from the record, BTP_DELETED |
 *      BTP_HAS_FULLXID (| BTP_LEAF), safexid stored at PageGetContents (BTPageSetDeleted).
 *   2  the right sibling: btpo_prev = leftsib.
 *   3  the leaf, when the target was one of its parents (WILL_INIT): a half-dead leaf again, pointing to
 *      the next parent down (leaftopparent).
 *   4  (UNLINK_PAGE_META) the metapage, rebuilt (the right sibling became the fast root).
 */
import { redoFailure, type RedoContext } from '../rmgr-redo.js'
import { pageAddItem, pageIndexTupleDelete } from '../page/bufpage.js'
import {
  BTP_HALF_DEAD,
  BTP_LEAF,
  P_HIKEY,
  P_NONE,
  SizeOfIndexTupleData,
  btPageSetDeleted,
  btpoGetFlags,
  btpoSetCycleId,
  btpoSetFlags,
  btpoSetLevel,
  btpoSetNext,
  btpoSetPrev,
  btreeTupleGetDownLink,
  btreeTupleSetDownLink,
  btreeTupleSetTopParent,
  itupSetInfo,
} from '../page/nbtree-page.js'
import { btPageInit, checkSpecial, indexItem, stampLsn } from './common.js'
import { restoreMeta } from './meta.js'
import { XLOG_BTREE, parseMarkPageHalfDead, parseUnlinkPage } from './records.js'

/** A half-dead leaf: init, links, flags, and the dummy high key holding the top-parent link. */
function writeHalfDeadLeaf(ctx: RedoContext, page: Buffer, prev: number, next: number, topparent: number): void {
  btPageInit(page)
  btpoSetPrev(page, prev)
  btpoSetNext(page, next)
  btpoSetLevel(page, 0)
  btpoSetFlags(page, BTP_HALF_DEAD | BTP_LEAF)
  btpoSetCycleId(page, 0)
  const trunctuple = Buffer.alloc(SizeOfIndexTupleData)
  itupSetInfo(trunctuple, 0, SizeOfIndexTupleData)
  btreeTupleSetTopParent(trunctuple, 0, topparent)
  if (pageAddItem(page, trunctuple, SizeOfIndexTupleData, P_HIKEY, false, false) === 0) {
    throw redoFailure(ctx, 'could not add dummy high key to half-dead page')
  }
  stampLsn(ctx, page)
}

export function redoMarkPageHalfDead(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseMarkPageHalfDead(ctx.rec.mainData())
  switch (ctx.block!.id) {
    case 1: {
      checkSpecial(page)
      const nextoffset = xlrec.poffset + 1
      const rightsib = btreeTupleGetDownLink(page, indexItem(page, nextoffset).at)
      btreeTupleSetDownLink(page, indexItem(page, xlrec.poffset).at, rightsib)
      pageIndexTupleDelete(page, nextoffset)
      stampLsn(ctx, page)
      return
    }
    case 0:
      return writeHalfDeadLeaf(ctx, page, xlrec.leftblk, xlrec.rightblk, xlrec.topparent)
  }
  throw redoFailure(ctx, `half-dead redo does not change block reference ${ctx.block!.id}`)
}

export function redoUnlinkPage(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseUnlinkPage(ctx.rec.mainData())
  switch (ctx.block!.id) {
    case 1:
      if (xlrec.leftsib === P_NONE) break
      checkSpecial(page)
      btpoSetNext(page, xlrec.rightsib)
      stampLsn(ctx, page)
      return
    case 0:
      btPageInit(page)
      btpoSetPrev(page, xlrec.leftsib)
      btpoSetNext(page, xlrec.rightsib)
      btpoSetLevel(page, xlrec.level)
      btPageSetDeleted(page, xlrec.safexid)
      if (xlrec.level === 0) btpoSetFlags(page, btpoGetFlags(page) | BTP_LEAF)
      btpoSetCycleId(page, 0)
      stampLsn(ctx, page)
      return
    case 2:
      checkSpecial(page)
      btpoSetPrev(page, xlrec.leftsib)
      stampLsn(ctx, page)
      return
    case 3:
      return writeHalfDeadLeaf(ctx, page, xlrec.leafleftsib, xlrec.leafrightsib, xlrec.leaftopparent)
    case 4:
      if (ctx.rec.rmgrInfo === XLOG_BTREE.UNLINK_PAGE_META) return restoreMeta(ctx, page)
      break
  }
  throw redoFailure(ctx, `unlink redo does not change block reference ${ctx.block!.id}`)
}
