/**
 * Redo of a page split (btree_xlog_split): SPLIT_L (new item on the left half) and SPLIT_R.
 *
 * Block references, each redone on its own:
 *   0  the original page, which keeps the left half. It is rebuilt in a temporary page in the order
 *      _bt_split added items, so the physical layout matches the primary's: the new high key from the
 *      WAL (MAXALIGNed size as lp_len), then the original items P_FIRSTDATAKEY..firstrightoff-1 with
 *      their own lp_len, the new item slotted in at newitemoff when it went left, and, when a posting
 *      list was split (postingoff != 0), the rewritten list at newitemoff - 1 in place of the old one.
 *      Block data: [new item, MAXALIGNed, when SPLIT_L or postingoff != 0] [left high key, MAXALIGNed].
 *      Then flags = BTP_INCOMPLETE_SPLIT (| BTP_LEAF), btpo_next = the right page, cycle id 0.
 *   1  the new right page (WILL_INIT): initialised with prev = block 0, next = block 2 (or P_NONE), the
 *      level, BTP_LEAF on level 0, and its tuples restored from the data (_bt_restore_page).
 *   2  the old right sibling, if any: btpo_prev = the new right page.
 *   3  (internal splits) the child whose split this downlink finishes: clear BTP_INCOMPLETE_SPLIT.
 */
import { redoFailure, type RedoContext } from '../rmgr-redo.js'
import { pageAddItem } from '../page/bufpage.js'
import { BTP_INCOMPLETE_SPLIT, BTP_LEAF, P_HIKEY, P_NONE, btpoSetCycleId, btpoSetFlags, btpoSetLevel, btpoSetNext, btpoSetPrev, pFirstDataKey } from '../page/nbtree-page.js'
import {
  blockNumberOf,
  btPageInit,
  checkSpecial,
  clearIncompleteSplit,
  indexItem,
  pageTuple,
  restorePage,
  restoreTempPage,
  stampLsn,
  targetData,
  tempPageCopySpecial,
  tupleSpan,
} from './common.js'
import { swapPosting } from './posting.js'
import { BtreeRecordError, XLOG_BTREE, parseSplit, type XlBtreeSplit } from './records.js'

function addOrFail(temp: Buffer, item: Buffer, size: number, off: number, what: string): void {
  if (pageAddItem(temp, item, size, off, false, false) === 0) throw new BtreeRecordError(`failed to add ${what} to left page after split`)
}

function redoLeftPage(ctx: RedoContext, page: Buffer, xlrec: XlBtreeSplit, newitemonleft: boolean, isleaf: boolean): void {
  const rightpagenumber = blockNumberOf(ctx, 1)
  if (rightpagenumber === null) throw redoFailure(ctx, 'split record has no right page (block 1)')
  checkSpecial(page)
  const data = targetData(ctx)
  let pos = 0

  let newitem: Buffer | null = null
  let newitemsz = 0
  let nposting: Buffer | null = null
  let replacepostingoff = 0
  if (newitemonleft || xlrec.postingoff !== 0) {
    newitemsz = tupleSpan(data, 0, data.length, true, 'split new item')
    newitem = data.subarray(0, newitemsz)
    pos += newitemsz
    if (xlrec.postingoff !== 0) {
      // The posting list sits just before the new item; swapping gives both their final TIDs.
      replacepostingoff = xlrec.newitemoff - 1
      newitem = Buffer.from(newitem)
      nposting = swapPosting(newitem, pageTuple(page, replacepostingoff), xlrec.postingoff)
    }
  }
  const hikeysz = tupleSpan(data, pos, data.length, true, 'left high key')
  const leftHikey = data.subarray(pos, pos + hikeysz)
  pos += hikeysz
  if (pos !== data.length) throw redoFailure(ctx, `${data.length - pos} unexpected bytes after the left high key`)

  const temp = tempPageCopySpecial(page)
  addOrFail(temp, leftHikey, hikeysz, P_HIKEY, 'high key')
  let leftoff = P_HIKEY + 1
  let off = pFirstDataKey(page)
  for (; off < xlrec.firstrightoff; off++) {
    if (off === replacepostingoff) {
      addOrFail(temp, nposting!, nposting!.length, leftoff, 'new posting list item')
      leftoff++
      continue
    } else if (newitemonleft && off === xlrec.newitemoff) {
      addOrFail(temp, newitem!, newitemsz, leftoff, 'new item')
      leftoff++
    }
    const { at, len } = indexItem(page, off)
    addOrFail(temp, page.subarray(at, at + len), len, leftoff, 'old item')
    leftoff++
  }
  if (newitemonleft && off === xlrec.newitemoff) {
    addOrFail(temp, newitem!, newitemsz, leftoff, 'new item')
    leftoff++
  }
  restoreTempPage(temp, page)

  btpoSetFlags(page, BTP_INCOMPLETE_SPLIT | (isleaf ? BTP_LEAF : 0))
  btpoSetNext(page, rightpagenumber)
  btpoSetCycleId(page, 0)
  stampLsn(ctx, page)
}

function redoRightPage(ctx: RedoContext, page: Buffer, xlrec: XlBtreeSplit, isleaf: boolean): void {
  const origpagenumber = blockNumberOf(ctx, 0)
  if (origpagenumber === null) throw redoFailure(ctx, 'split record has no left page (block 0)')
  btPageInit(page)
  btpoSetPrev(page, origpagenumber)
  btpoSetNext(page, blockNumberOf(ctx, 2) ?? P_NONE)
  btpoSetLevel(page, xlrec.level)
  btpoSetFlags(page, isleaf ? BTP_LEAF : 0)
  btpoSetCycleId(page, 0)
  restorePage(page, targetData(ctx))
  stampLsn(ctx, page)
}

export function redoSplit(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseSplit(ctx.rec.mainData())
  const isleaf = xlrec.level === 0
  const newitemonleft = ctx.rec.rmgrInfo === XLOG_BTREE.SPLIT_L
  switch (ctx.block!.id) {
    case 0:
      return redoLeftPage(ctx, page, xlrec, newitemonleft, isleaf)
    case 1:
      return redoRightPage(ctx, page, xlrec, isleaf)
    case 2: {
      const rightpagenumber = blockNumberOf(ctx, 1)
      if (rightpagenumber === null) throw redoFailure(ctx, 'split record has no right page (block 1)')
      checkSpecial(page)
      btpoSetPrev(page, rightpagenumber)
      stampLsn(ctx, page)
      return
    }
    case 3:
      if (!isleaf) return clearIncompleteSplit(ctx, page)
      break
  }
  throw redoFailure(ctx, `split redo does not change block reference ${ctx.block!.id}`)
}
