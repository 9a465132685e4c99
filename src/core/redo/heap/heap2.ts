/**
 * Heap2 resource manager redo (heap2_redo in access/heap/heapam.c): PRUNE, VACUUM, FREEZE_PAGE, VISIBLE,
 * MULTI_INSERT (+INIT), LOCK_UPDATED; REWRITE (logical-decoding mapping files) and NEW_CID (logical
 * decoding only) change no page and name no block.
 *
 * VISIBLE is the record with two kinds of pages: block 0 is the visibility-map page, whose bits are set as
 * visibilitymap_set does in recovery (and whose LSN moves only when a bit changed); block 1 is the heap
 * page, which gets PD_ALL_VISIBLE and, unlike every other heap redo, the record's LSN only when hint-bit
 * changes are WAL-logged (data checksums or wal_log_hints: `opts.hintBitsLogged`).
 *
 * MULTI_INSERT's block data is a sequence of (xl_multi_insert_tuple, tuple bytes), each header 2-byte
 * aligned relative to the start of the block data (PostgreSQL MAXALIGNs the decoded block data, so the
 * SHORTALIGN of the pointer is the SHORTALIGN of the offset).
 */
import { ForkNumber } from '../../pg/reltag.js'
import { RM } from '../../pg/rmgr.js'
import { MaxHeapTuplesPerPage, pageClearAllVisible, pageGetLsn, pageSetAllVisible, pageSetLsn, pageInit } from '../page/page.js'
import { copyBytes } from '../page/page-access.js'
import { SizeofHeapTupleHeader, htupSetXmax } from '../page/htup.js'
import { registerRmgrRedo, type RedoContext } from '../rmgr-redo.js'
import { addHeapTuple, fail, tupleAt, withRecordContext } from './heap.js'
import { freezeTupleAt } from './freeze.js'
import { heapPagePruneExecute, heapPageVacuumExecute, readOffsets } from './prune.js'
import {
  SizeOfHeapFreezeTuple,
  SizeOfMultiInsertTuple,
  XLH_INSERT_ALL_FROZEN_SET,
  XLH_INSERT_ALL_VISIBLE_CLEARED,
  XLOG_HEAP2_FREEZE_PAGE,
  XLOG_HEAP2_LOCK_UPDATED,
  XLOG_HEAP2_MULTI_INSERT,
  XLOG_HEAP2_NEW_CID,
  XLOG_HEAP2_PRUNE,
  XLOG_HEAP2_REWRITE,
  XLOG_HEAP2_VACUUM,
  XLOG_HEAP2_VISIBLE,
  XLOG_HEAP_INIT_PAGE,
  XLOG_HEAP_OPMASK,
  parseHeapFreezePage,
  parseHeapLock,
  parseHeapMultiInsert,
  parseHeapPrune,
  parseHeapVacuum,
  parseHeapVisible,
  readFreezeTuple,
} from './records.js'
import { beginTuple, finishTuple, readXlHeapHeader, resetXmaxBits } from './tuple.js'
import { heapBlkToMapBlock, vmInitIfNew, vmSet } from './visibilitymap.js'
import { vmImplicitTargets, vmRedoImplicit } from './vm-clear.js'

function heapXlogPrune(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseHeapPrune(ctx.rec.mainData())
  const data = ctx.rec.blockData(ctx.block!)
  if (data.length % 2 !== 0) fail(ctx, `prune offsets take ${data.length} bytes, not a whole number of u16`)
  const why = heapPagePruneExecute(page, readOffsets(data)!, xlrec.nredirected, xlrec.ndead)
  if (why !== null) fail(ctx, why)
  pageSetLsn(page, ctx.endLsn)
}

function heapXlogVacuum(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseHeapVacuum(ctx.rec.mainData())
  const offsets = readOffsets(ctx.rec.blockData(ctx.block!), xlrec.nunused)
  if (offsets === null) fail(ctx, `vacuum lists ${xlrec.nunused} offsets but its block data is shorter`)
  const why = heapPageVacuumExecute(page, offsets)
  if (why !== null) fail(ctx, why)
  pageSetLsn(page, ctx.endLsn)
}

function heapXlogFreezePage(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseHeapFreezePage(ctx.rec.mainData())
  const data = ctx.rec.blockData(ctx.block!)
  if (data.length < xlrec.ntuples * SizeOfHeapFreezeTuple) fail(ctx, `${xlrec.ntuples} freeze plans need ${xlrec.ntuples * SizeOfHeapFreezeTuple} bytes, block data has ${data.length}`)
  for (let i = 0; i < xlrec.ntuples; i++) {
    const why = freezeTupleAt(page, readFreezeTuple(data, i))
    if (why !== null) fail(ctx, why)
  }
  pageSetLsn(page, ctx.endLsn)
}

function heapXlogVisible(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseHeapVisible(ctx.rec.mainData())
  if (ctx.block!.id === 1) {
    if (ctx.tag.forkNum !== ForkNumber.Main) fail(ctx, 'block 1 of VISIBLE must be a heap page')
    pageSetAllVisible(page)
    if (ctx.opts.hintBitsLogged) pageSetLsn(page, ctx.endLsn)
    return
  }
  if (ctx.block!.id !== 0) fail(ctx, `VISIBLE has no block ${ctx.block!.id}`)
  if (ctx.tag.forkNum !== ForkNumber.VisibilityMap) fail(ctx, 'block 0 of VISIBLE must be a visibility-map page')
  const heap = ctx.rec.block(1)
  if (heap === undefined) fail(ctx, 'VISIBLE without its heap block reference')
  if (heapBlkToMapBlock(heap.blkno) !== ctx.tag.blkno) fail(ctx, `heap block ${heap.blkno} has its bits on VM block ${heapBlkToMapBlock(heap.blkno)}`)
  vmInitIfNew(page)
  // The framework already skipped pages at or past this record; PostgreSQL tests again after PageInit.
  if (ctx.endLsn > pageGetLsn(page)) vmSet(page, heap.blkno, xlrec.flags, ctx.endLsn)
}

function heapXlogMultiInsert(ctx: RedoContext, page: Buffer): void {
  const isInit = (ctx.rec.xl_info & XLOG_HEAP_INIT_PAGE) !== 0
  const xlrec = parseHeapMultiInsert(ctx.rec.mainData(), isInit)
  if (xlrec.ntuples > MaxHeapTuplesPerPage) fail(ctx, `${xlrec.ntuples} tuples cannot fit one heap page`)
  if (isInit) pageInit(page, 0)

  const data = ctx.rec.blockData(ctx.block!)
  let pos = 0
  for (let i = 0; i < xlrec.ntuples; i++) {
    const offnum = isInit ? 1 + i : xlrec.offsets[i]!
    pos = (pos + 1) & ~1
    if (pos + SizeOfMultiInsertTuple > data.length) fail(ctx, `tuple ${i} header runs past the block data`)
    const datalen = data.readUInt16LE(pos)
    const hdr = readXlHeapHeader(data, pos + 2)
    pos += SizeOfMultiInsertTuple
    if (pos + datalen > data.length) fail(ctx, `tuple ${i} of ${datalen} bytes runs past the block data`)
    const newlen = SizeofHeapTupleHeader + datalen
    const tup = beginTuple(newlen)
    if (typeof tup === 'string') fail(ctx, tup)
    copyBytes(data, pos, pos + datalen, tup, SizeofHeapTupleHeader)
    pos += datalen
    finishTuple(tup, hdr, ctx.rec.xl_xid, 0, ctx.tag.blkno, offnum)
    addHeapTuple(ctx, page, tup, newlen, offnum)
  }
  if (pos !== data.length) fail(ctx, `total tuple length mismatch: ${data.length - pos} bytes left over`)

  pageSetLsn(page, ctx.endLsn)
  if (xlrec.flags & XLH_INSERT_ALL_VISIBLE_CLEARED) pageClearAllVisible(page)
  if (xlrec.flags & XLH_INSERT_ALL_FROZEN_SET) pageSetAllVisible(page)
}

function heapXlogLockUpdated(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseHeapLock(ctx.rec.mainData(), 'xl_heap_lock_updated')
  const { at } = tupleAt(ctx, page, xlrec.offnum)
  resetXmaxBits(page, at, xlrec.infobits_set)
  htupSetXmax(page, at, xlrec.xmax)
  pageSetLsn(page, ctx.endLsn)
}

function heap2RedoBlock(ctx: RedoContext, page: Buffer): void {
  const op = ctx.rec.rmgrInfo & XLOG_HEAP_OPMASK
  if (op !== XLOG_HEAP2_VISIBLE && ctx.tag.forkNum !== ForkNumber.Main) fail(ctx, 'this heap2 record changes main-fork pages only')
  withRecordContext(ctx, page, op, heap2RedoBody)
}

function heap2RedoBody(ctx: RedoContext, page: Buffer, op: number): void {
  switch (op) {
    case XLOG_HEAP2_PRUNE:
      return heapXlogPrune(ctx, page)
    case XLOG_HEAP2_VACUUM:
      return heapXlogVacuum(ctx, page)
    case XLOG_HEAP2_FREEZE_PAGE:
      return heapXlogFreezePage(ctx, page)
    case XLOG_HEAP2_VISIBLE:
      return heapXlogVisible(ctx, page)
    case XLOG_HEAP2_MULTI_INSERT:
      return heapXlogMultiInsert(ctx, page)
    case XLOG_HEAP2_LOCK_UPDATED:
      return heapXlogLockUpdated(ctx, page)
    case XLOG_HEAP2_NEW_CID:
    case XLOG_HEAP2_REWRITE:
      // Logical decoding only; neither names a block, so this is never reached for a real record.
      return
  }
}

registerRmgrRedo(RM.HEAP2, {
  redoBlock: heap2RedoBlock,
  implicitTargets: vmImplicitTargets,
  redoImplicit: (ctx, page) => vmRedoImplicit(ctx, page),
})
