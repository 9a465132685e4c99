/**
 * Heap resource manager redo (heap_redo in access/heap/heapam.c): INSERT, DELETE, UPDATE, HOT_UPDATE,
 * CONFIRM, LOCK, INPLACE, TRUNCATE (a no-op kept for logical decoding), with the +INIT variants.
 *
 * One target page at a time, after the framework's per-block rules (engine.ts): a body only runs when the
 * page needs redo, and gets a zeroed page for WILL_INIT blocks. Each body then does what PostgreSQL does to
 * that page, in the same order, byte for byte, and stamps pd_lsn with the record's end LSN.
 *
 * UPDATE names the new page as block 0 and, if different, the old page as block 1. A same-page update
 * (block 0 only) does both halves on one page, and only then may the new tuple borrow a prefix and/or
 * suffix from the old one (XLH_UPDATE_PREFIX_FROM_OLD / SUFFIX_FROM_OLD): PostgreSQL only compresses when
 * both versions share a page, so per-page redo never needs a second page.
 *
 * The visibility-map bits these records clear (no VM block reference) are vm-clear.ts's business.
 */
import { ForkNumber } from '../../pg/reltag.js'
import { RM } from '../../pg/rmgr.js'
import { pageAddItemExtended, PAI_IS_HEAP, PAI_OVERWRITE } from '../page/bufpage.js'
import { pageClearAllVisible, pageGetMaxOffsetNumber, pageInit, pageSetLsn, pageSetPrunable } from '../page/page.js'
import {
  HEAP_HOT_UPDATED,
  SizeOfHeapHeader,
  SizeofHeapTupleHeader,
  T_INFOMASK2_OFFSET,
  T_INFOMASK_OFFSET,
  heapXmaxIsLockedOnly,
  htupGetHoff,
  htupSetCtid,
  htupSetXmax,
  htupSetXmin,
} from '../page/htup.js'
import { MovedPartitionsBlockNumber, MovedPartitionsOffsetNumber } from '../page/itemptr.js'
import { copyBytes } from '../page/page-access.js'
import { redoFailure, registerRmgrRedo, type RedoContext } from '../rmgr-redo.js'
import {
  HeapRecordError,
  XLH_DELETE_ALL_VISIBLE_CLEARED,
  XLH_DELETE_IS_PARTITION_MOVE,
  XLH_DELETE_IS_SUPER,
  XLH_INSERT_ALL_VISIBLE_CLEARED,
  XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED,
  XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED,
  XLH_UPDATE_PREFIX_FROM_OLD,
  XLH_UPDATE_SUFFIX_FROM_OLD,
  XLOG_HEAP_CONFIRM,
  XLOG_HEAP_DELETE,
  XLOG_HEAP_HOT_UPDATE,
  XLOG_HEAP_INIT_PAGE,
  XLOG_HEAP_INPLACE,
  XLOG_HEAP_INSERT,
  XLOG_HEAP_LOCK,
  XLOG_HEAP_OPMASK,
  XLOG_HEAP_TRUNCATE,
  XLOG_HEAP_UPDATE,
  parseHeapDelete,
  parseHeapInsert,
  parseHeapLock,
  parseHeapOffnum,
  parseHeapUpdate,
  type XlHeapUpdate,
} from './records.js'
import { beginTuple, finishTuple, normalTuple, readXlHeapHeader, resetXmaxBits, setFirstCommandId, type TupleRef } from './tuple.js'
import { vmImplicitTargets, vmRedoImplicit } from './vm-clear.js'

/** Throws REDO_FAILED naming the record and page. */
export function fail(ctx: RedoContext, why: string): never {
  throw redoFailure(ctx, why)
}

/**
 * Runs `body(ctx, page, arg)`, turning a malformed-record error from the parsers into REDO_FAILED with the
 * context. The body is a plain function, not a closure: this runs once per record.
 */
export function withRecordContext<A>(ctx: RedoContext, page: Buffer, arg: A, body: (ctx: RedoContext, page: Buffer, arg: A) => void): void {
  try {
    body(ctx, page, arg)
  } catch (e) {
    if (e instanceof HeapRecordError) throw redoFailure(ctx, e.message)
    throw e
  }
}

/** The LP_NORMAL tuple at `offnum`, or REDO_FAILED ("invalid lp"). */
export function tupleAt(ctx: RedoContext, page: Buffer, offnum: number): TupleRef {
  const t = normalTuple(page, offnum)
  if (typeof t === 'string') fail(ctx, t)
  return t
}

/** XLogRecGetXid for PageSetPrunable, which needs a normal xid (every heap change has one). */
function prunableXid(ctx: RedoContext): number {
  const xid = ctx.rec.xl_xid
  if (xid < 3) fail(ctx, `record xid ${xid} is not a normal transaction id`)
  return xid
}

/** The PageAddItem(page, tuple, len, offnum, overwrite=true, is_heap=true) every heap insert path uses. */
export function addHeapTuple(ctx: RedoContext, page: Buffer, tup: Buffer, len: number, offnum: number): void {
  if (pageGetMaxOffsetNumber(page) + 1 < offnum) fail(ctx, `invalid max offset number: cannot add offset ${offnum}`)
  if (pageAddItemExtended(page, tup, len, offnum, PAI_OVERWRITE | PAI_IS_HEAP) === 0) fail(ctx, `failed to add tuple at offset ${offnum}`)
}

// --- INSERT -------------------------------------------------------------------------------------------

function heapXlogInsert(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseHeapInsert(ctx.rec.mainData())
  if (ctx.rec.xl_info & XLOG_HEAP_INIT_PAGE) pageInit(page, 0)

  const data = ctx.rec.blockData(ctx.block!)
  if (data.length <= SizeOfHeapHeader) fail(ctx, `insert carries ${data.length} bytes of tuple data`)
  const bodyLen = data.length - SizeOfHeapHeader
  const tup = beginTuple(SizeofHeapTupleHeader + bodyLen)
  if (typeof tup === 'string') fail(ctx, tup)
  copyBytes(data, SizeOfHeapHeader, data.length, tup, SizeofHeapTupleHeader)
  finishTuple(tup, readXlHeapHeader(data, 0), ctx.rec.xl_xid, 0, ctx.tag.blkno, xlrec.offnum)

  addHeapTuple(ctx, page, tup, SizeofHeapTupleHeader + bodyLen, xlrec.offnum)
  pageSetLsn(page, ctx.endLsn)
  if (xlrec.flags & XLH_INSERT_ALL_VISIBLE_CLEARED) pageClearAllVisible(page)
}

// --- DELETE -------------------------------------------------------------------------------------------

function heapXlogDelete(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseHeapDelete(ctx.rec.mainData())
  const { at } = tupleAt(ctx, page, xlrec.offnum)

  resetXmaxBits(page, at, xlrec.infobits_set)
  page.writeUInt16LE(page.readUInt16LE(at + T_INFOMASK2_OFFSET) & ~HEAP_HOT_UPDATED, at + T_INFOMASK2_OFFSET)
  if (xlrec.flags & XLH_DELETE_IS_SUPER) htupSetXmin(page, at, 0)
  else htupSetXmax(page, at, xlrec.xmax)
  setFirstCommandId(page, at)

  pageSetPrunable(page, prunableXid(ctx))
  if (xlrec.flags & XLH_DELETE_ALL_VISIBLE_CLEARED) pageClearAllVisible(page)

  if (xlrec.flags & XLH_DELETE_IS_PARTITION_MOVE) htupSetCtid(page, at, MovedPartitionsBlockNumber, MovedPartitionsOffsetNumber)
  else htupSetCtid(page, at, ctx.tag.blkno, xlrec.offnum)
  pageSetLsn(page, ctx.endLsn)
}

// --- UPDATE / HOT_UPDATE ----------------------------------------------------------------------------------

/** The old-tuple half: xmax, lock bits, HOT flag and the forward t_ctid link. Returns the old tuple. */
function updateOldHalf(ctx: RedoContext, page: Buffer, xlrec: XlHeapUpdate, hot: boolean, newBlk: number): TupleRef {
  const old = tupleAt(ctx, page, xlrec.old_offnum)
  const at = old.at
  resetXmaxBits(page, at, xlrec.old_infobits_set)
  const infomask2 = page.readUInt16LE(at + T_INFOMASK2_OFFSET)
  page.writeUInt16LE(hot ? infomask2 | HEAP_HOT_UPDATED : infomask2 & ~HEAP_HOT_UPDATED, at + T_INFOMASK2_OFFSET)
  htupSetXmax(page, at, xlrec.old_xmax)
  setFirstCommandId(page, at)
  htupSetCtid(page, at, newBlk, xlrec.new_offnum)

  pageSetPrunable(page, prunableXid(ctx))
  if (xlrec.flags & XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED) pageClearAllVisible(page)
  pageSetLsn(page, ctx.endLsn)
  return old
}

/** The new-tuple half: rebuild the tuple (borrowing prefix/suffix bytes from `old` on the same page) and add it. */
function updateNewHalf(ctx: RedoContext, page: Buffer, xlrec: XlHeapUpdate, old: TupleRef | null): void {
  const data = ctx.rec.blockData(ctx.block!)
  let pos = 0
  let prefixlen = 0
  let suffixlen = 0
  if (xlrec.flags & (XLH_UPDATE_PREFIX_FROM_OLD | XLH_UPDATE_SUFFIX_FROM_OLD) && old === null) {
    fail(ctx, 'prefix/suffix compression across pages')
  }
  if (xlrec.flags & XLH_UPDATE_PREFIX_FROM_OLD) {
    if (data.length < pos + 2) fail(ctx, 'update data too short for its prefix length')
    prefixlen = data.readUInt16LE(pos)
    pos += 2
  }
  if (xlrec.flags & XLH_UPDATE_SUFFIX_FROM_OLD) {
    if (data.length < pos + 2) fail(ctx, 'update data too short for its suffix length')
    suffixlen = data.readUInt16LE(pos)
    pos += 2
  }
  if (data.length < pos + SizeOfHeapHeader) fail(ctx, `update carries ${data.length} bytes of tuple data`)
  const hdr = readXlHeapHeader(data, pos)
  pos += SizeOfHeapHeader
  const tuplen = data.length - pos
  const newlen = SizeofHeapTupleHeader + tuplen + prefixlen + suffixlen
  const tup = beginTuple(newlen)
  if (typeof tup === 'string') fail(ctx, tup)

  let out = SizeofHeapTupleHeader
  if (prefixlen > 0) {
    // Null bitmap [+ padding] from WAL, then the prefix from the old tuple's data, then the rest from WAL.
    const bitmapLen = hdr.t_hoff - SizeofHeapTupleHeader
    if (bitmapLen < 0 || bitmapLen > tuplen) fail(ctx, `t_hoff ${hdr.t_hoff} does not fit ${tuplen} bytes of tuple data`)
    copyBytes(data, pos, pos + bitmapLen, tup, out)
    out += bitmapLen
    const oldData = old!.at + htupGetHoff(page, old!.at)
    if (oldData + prefixlen > old!.at + old!.len) fail(ctx, `prefix of ${prefixlen} bytes is longer than the old tuple's data`)
    copyBytes(page, oldData, oldData + prefixlen, tup, out)
    out += prefixlen
    copyBytes(data, pos + bitmapLen, data.length, tup, out)
    out += tuplen - bitmapLen
  } else {
    copyBytes(data, pos, data.length, tup, out)
    out += tuplen
  }
  if (suffixlen > 0) {
    if (suffixlen > old!.len) fail(ctx, `suffix of ${suffixlen} bytes is longer than the old tuple`)
    const oldEnd = old!.at + old!.len
    copyBytes(page, oldEnd - suffixlen, oldEnd, tup, out)
  }
  finishTuple(tup, hdr, ctx.rec.xl_xid, xlrec.new_xmax, ctx.tag.blkno, xlrec.new_offnum)

  addHeapTuple(ctx, page, tup, newlen, xlrec.new_offnum)
  if (xlrec.flags & XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED) pageClearAllVisible(page)
  pageSetLsn(page, ctx.endLsn)
}

function heapXlogUpdate(ctx: RedoContext, page: Buffer, hot: boolean): void {
  const xlrec = parseHeapUpdate(ctx.rec.mainData())
  const newBlock = ctx.rec.block(0)
  if (newBlock === undefined) fail(ctx, 'update without block reference 0')
  const crossPage = ctx.rec.block(1) !== undefined
  const newBlk = newBlock.blkno

  if (!crossPage) {
    const old = updateOldHalf(ctx, page, xlrec, hot, newBlk)
    updateNewHalf(ctx, page, xlrec, old)
  } else if (ctx.block!.id === 1) {
    updateOldHalf(ctx, page, xlrec, hot, newBlk)
  } else {
    if (ctx.rec.xl_info & XLOG_HEAP_INIT_PAGE) pageInit(page, 0)
    updateNewHalf(ctx, page, xlrec, null)
  }
}

// --- CONFIRM, LOCK, INPLACE ---------------------------------------------------------------------------

function heapXlogConfirm(ctx: RedoContext, page: Buffer): void {
  const offnum = parseHeapOffnum(ctx.rec.mainData(), 'xl_heap_confirm')
  const { at } = tupleAt(ctx, page, offnum)
  htupSetCtid(page, at, ctx.tag.blkno, offnum)
  pageSetLsn(page, ctx.endLsn)
}

function heapXlogLock(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseHeapLock(ctx.rec.mainData())
  const { at } = tupleAt(ctx, page, xlrec.offnum)
  resetXmaxBits(page, at, xlrec.infobits_set)
  // Only a pure lock (no update in xmax) drops the HOT flag and the forward link.
  if (heapXmaxIsLockedOnly(page.readUInt16LE(at + T_INFOMASK_OFFSET))) {
    page.writeUInt16LE(page.readUInt16LE(at + T_INFOMASK2_OFFSET) & ~HEAP_HOT_UPDATED, at + T_INFOMASK2_OFFSET)
    htupSetCtid(page, at, ctx.tag.blkno, xlrec.offnum)
  }
  htupSetXmax(page, at, xlrec.xmax)
  setFirstCommandId(page, at)
  pageSetLsn(page, ctx.endLsn)
}

function heapXlogInplace(ctx: RedoContext, page: Buffer): void {
  const offnum = parseHeapOffnum(ctx.rec.mainData(), 'xl_heap_inplace')
  const { at, len } = tupleAt(ctx, page, offnum)
  const newtup = ctx.rec.blockData(ctx.block!)
  const hoff = htupGetHoff(page, at)
  if (len - hoff !== newtup.length) fail(ctx, `wrong tuple length: ${newtup.length} bytes for a tuple body of ${len - hoff}`)
  newtup.copy(page, at + hoff)
  pageSetLsn(page, ctx.endLsn)
}

// --- dispatch -----------------------------------------------------------------------------------------

function heapRedoBlock(ctx: RedoContext, page: Buffer): void {
  if (ctx.tag.forkNum !== ForkNumber.Main) fail(ctx, 'heap records change main-fork pages only')
  withRecordContext(ctx, page, 0, heapRedoBody)
}

function heapRedoBody(ctx: RedoContext, page: Buffer): void {
  switch (ctx.rec.rmgrInfo & XLOG_HEAP_OPMASK) {
    case XLOG_HEAP_INSERT:
      return heapXlogInsert(ctx, page)
    case XLOG_HEAP_DELETE:
      return heapXlogDelete(ctx, page)
    case XLOG_HEAP_UPDATE:
      return heapXlogUpdate(ctx, page, false)
    case XLOG_HEAP_HOT_UPDATE:
      return heapXlogUpdate(ctx, page, true)
    case XLOG_HEAP_TRUNCATE:
      // Only for logical decoding: the storage TRUNCATE records do the work. It names no block anyway.
      return
    case XLOG_HEAP_CONFIRM:
      return heapXlogConfirm(ctx, page)
    case XLOG_HEAP_LOCK:
      return heapXlogLock(ctx, page)
    case XLOG_HEAP_INPLACE:
      return heapXlogInplace(ctx, page)
  }
}

registerRmgrRedo(RM.HEAP, {
  redoBlock: heapRedoBlock,
  implicitTargets: vmImplicitTargets,
  redoImplicit: (ctx, page) => vmRedoImplicit(ctx, page),
})
