/**
 * Redo of a deduplication pass (btree_xlog_dedup), re-running _bt_dedup_start_pending /
 * _bt_dedup_save_htid / _bt_dedup_finish_pending exactly as PostgreSQL's redo does.
 *
 * The record names the intervals the primary merged ({baseoff, nitems}: nitems consecutive items from
 * baseoff become one posting tuple). Redo walks the page's items from P_FIRSTDATAKEY into a temporary
 * page (high key first, if the page has one): an item extends the pending group while the group's base
 * offset matches the next logged interval and fewer than its nitems are in it; otherwise the pending group
 * is written out (a single item unchanged, with its lp_len; several as a new posting tuple, _bt_form_posting)
 * and a new group starts. BTP_HAS_GARBAGE is cleared and the temporary page replaces the target whole.
 *
 * maxpostingsize is BTMaxItemSize (2704 bytes), as redo uses; a group that would outgrow it means the
 * record does not fit the page, and redo fails rather than guess.
 */
import { redoFailure, type RedoContext } from '../rmgr-redo.js'
import { pageAddItem } from '../page/bufpage.js'
import { maxalign, pageGetMaxOffsetNumber, sizeOfItemIdData } from '../page/page.js'
import { SizeOfIptrData } from '../page/itemptr.js'
import {
  BTMaxItemSize,
  BTP_HAS_GARBAGE,
  P_HIKEY,
  T_TID_OFFSET,
  btpoGetFlags,
  btpoSetFlags,
  btreeTupleGetPostingOffset,
  btreeTupleIsPosting,
  pFirstDataKey,
  pHasGarbage,
  pRightmost,
} from '../page/nbtree-page.js'
import { checkSpecial, indexItem, pageTuple, restoreTempPage, stampLsn, targetData, tempPageCopySpecial } from './common.js'
import { checkedNPosting, formPosting } from './posting.js'
import { BtreeRecordError, parseDedup, type DedupInterval } from './records.js'

/** BTDedupStateData, as far as redo uses it. */
class DedupState {
  /** heap TIDs of the pending group; maxpostingsize bytes bound what a group may hold */
  readonly htids = Buffer.alloc(BTMaxItemSize)
  readonly maxpostingsize = BTMaxItemSize
  nhtids = 0
  nitems = 0
  basetupsize = 0
  base: Buffer | null = null
  baseoff = 0
  phystupsize = 0
  nintervals = 0
  readonly intervals: DedupInterval[] = []

  reset(): void {
    this.nhtids = 0
    this.nitems = 0
    this.basetupsize = 0
    this.base = null
    this.baseoff = 0
    this.phystupsize = 0
    this.nintervals = 0
    this.intervals.length = 0
  }

  /** The TIDs of a non-pivot tuple: its posting list, or t_tid. */
  private tidsOf(itup: Buffer): { from: number; n: number } {
    if (!btreeTupleIsPosting(itup, 0)) return { from: T_TID_OFFSET, n: 1 }
    return { from: btreeTupleGetPostingOffset(itup, 0), n: checkedNPosting(itup, 'deduplication') }
  }

  /** _bt_dedup_start_pending */
  startPending(base: Buffer, baseoff: number): void {
    const { from, n } = this.tidsOf(base)
    if (n * SizeOfIptrData > this.htids.length) throw new BtreeRecordError(`posting list of ${n} TIDs is too large to deduplicate`)
    base.copy(this.htids, 0, from, from + n * SizeOfIptrData)
    this.nhtids = n
    this.basetupsize = btreeTupleIsPosting(base, 0) ? from : base.length
    this.nitems = 1
    this.base = base
    this.baseoff = baseoff
    this.phystupsize = maxalign(base.length) + sizeOfItemIdData
    this.intervals[this.nintervals] = { baseoff, nitems: 0 }
  }

  /** _bt_dedup_save_htid: false when the merged tuple would exceed maxpostingsize. */
  saveHtid(itup: Buffer): boolean {
    const { from, n } = this.tidsOf(itup)
    const mergedtupsz = maxalign(this.basetupsize + (this.nhtids + n) * SizeOfIptrData)
    if (mergedtupsz > this.maxpostingsize) return false
    this.nitems++
    itup.copy(this.htids, this.nhtids * SizeOfIptrData, from, from + n * SizeOfIptrData)
    this.nhtids += n
    this.phystupsize += maxalign(itup.length) + sizeOfItemIdData
    return true
  }

  /** _bt_dedup_finish_pending: write the pending group to `newpage` as its next item. */
  finishPending(newpage: Buffer): void {
    if (this.nitems === 0 || this.base === null) throw new BtreeRecordError('deduplication of a page without data items')
    const tupoff = pageGetMaxOffsetNumber(newpage) + 1
    if (this.nitems === 1) {
      if (pageAddItem(newpage, this.base, this.base.length, tupoff, false, false) === 0) {
        throw new BtreeRecordError('deduplication failed to add tuple to page')
      }
    } else {
      const final = formPosting(this.base, this.htids, this.nhtids)
      this.intervals[this.nintervals]!.nitems = this.nitems
      if (pageAddItem(newpage, final, final.length, tupoff, false, false) === 0) {
        throw new BtreeRecordError('deduplication failed to add tuple to page')
      }
      this.nintervals++
    }
    this.nhtids = 0
    this.nitems = 0
    this.phystupsize = 0
  }
}

const state = new DedupState()

export function redoDedup(ctx: RedoContext, page: Buffer): void {
  if (ctx.block!.id !== 0) throw redoFailure(ctx, `dedup redo does not change block reference ${ctx.block!.id}`)
  checkSpecial(page)
  const intervals = parseDedup(ctx.rec.mainData(), targetData(ctx))
  state.reset()

  const minoff = pFirstDataKey(page)
  const maxoff = pageGetMaxOffsetNumber(page)
  const newpage = tempPageCopySpecial(page)
  if (!pRightmost(page)) {
    const { at, len } = indexItem(page, P_HIKEY)
    if (pageAddItem(newpage, page.subarray(at, at + len), len, P_HIKEY, false, false) === 0) {
      throw redoFailure(ctx, 'deduplication failed to add highkey')
    }
  }
  for (let offnum = minoff; offnum <= maxoff; offnum++) {
    const itup = pageTuple(page, offnum)
    if (offnum === minoff) {
      state.startPending(itup, offnum)
    } else if (
      state.nintervals < intervals.length &&
      state.baseoff === intervals[state.nintervals]!.baseoff &&
      state.nitems < intervals[state.nintervals]!.nitems
    ) {
      if (!state.saveHtid(itup)) throw redoFailure(ctx, 'deduplication failed to add heap tid to pending posting list')
    } else {
      state.finishPending(newpage)
      state.startPending(itup, offnum)
    }
  }
  state.finishPending(newpage)
  if (state.nintervals !== intervals.length) {
    throw redoFailure(ctx, `deduplication formed ${state.nintervals} posting lists, the record names ${intervals.length}`)
  }

  if (pHasGarbage(page)) btpoSetFlags(newpage, btpoGetFlags(newpage) & ~BTP_HAS_GARBAGE)
  restoreTempPage(newpage, page)
  stampLsn(ctx, page)
}
