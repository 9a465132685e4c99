/**
 * Redo of the insert family (btree_xlog_insert): INSERT_LEAF, INSERT_UPPER, INSERT_META, INSERT_POST.
 *
 * Block references:
 *   0  the page the tuple goes into: PageAddItem at xl_btree_insert.offnum (later items shift right).
 *      INSERT_POST's data starts with a u16 postingoff and carries the *original* new item; the posting
 *      list just before offnum is split with _bt_swap_posting, rewritten in place (same size), and the
 *      swapped new item (now holding the list's old largest TID) is inserted.
 *   1  (UPPER, META) the child whose split this downlink finishes: clear BTP_INCOMPLETE_SPLIT.
 *   2  (META) the metapage, rebuilt from the xl_btree_metadata in its data (the page became a fast root).
 */
import { redoFailure, type RedoContext } from '../rmgr-redo.js'
import { pageAddItem } from '../page/bufpage.js'
import { clearIncompleteSplit, indexItem, pageTuple, stampLsn, targetData, tupleSpan } from './common.js'
import { restoreMeta } from './meta.js'
import { swapPosting } from './posting.js'
import { XLOG_BTREE, parseInsert } from './records.js'

function insertOnTarget(ctx: RedoContext, page: Buffer, posting: boolean): void {
  const xlrec = parseInsert(ctx.rec.mainData())
  const data = targetData(ctx)
  if (!posting) {
    if (pageAddItem(page, data, data.length, xlrec.offnum, false, false) === 0) throw redoFailure(ctx, 'failed to add new item')
  } else {
    if (data.length < 2) throw redoFailure(ctx, 'INSERT_POST data lacks its postingoff')
    const postingoff = data.readUInt16LE(0)
    const item = data.subarray(2)
    const datalen = item.length
    tupleSpan(item, 0, datalen, false, 'INSERT_POST new item')
    // A private copy of the new item: _bt_swap_posting gives it the posting list's largest TID.
    const newitem = Buffer.from(item)
    const oposting = pageTuple(page, xlrec.offnum - 1)
    const nposting = swapPosting(newitem, oposting, postingoff)
    // The new list replaces the old one in place; it has the same (MAXALIGNed) size.
    nposting.copy(page, indexItem(page, xlrec.offnum - 1).at)
    if (pageAddItem(page, newitem, datalen, xlrec.offnum, false, false) === 0) {
      throw redoFailure(ctx, 'failed to add posting split new item')
    }
  }
  stampLsn(ctx, page)
}

export function redoInsert(ctx: RedoContext, page: Buffer): void {
  const info = ctx.rec.rmgrInfo
  const isleaf = info === XLOG_BTREE.INSERT_LEAF || info === XLOG_BTREE.INSERT_POST
  const ismeta = info === XLOG_BTREE.INSERT_META
  switch (ctx.block!.id) {
    case 0:
      insertOnTarget(ctx, page, info === XLOG_BTREE.INSERT_POST)
      return
    case 1:
      if (!isleaf) return clearIncompleteSplit(ctx, page)
      break
    case 2:
      if (ismeta) return restoreMeta(ctx, page)
      break
  }
  throw redoFailure(ctx, `insert redo does not change block reference ${ctx.block!.id}`)
}
