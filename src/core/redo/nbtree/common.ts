/**
 * Pieces shared by the B-tree redo routines: _bt_pageinit, _bt_restore_page, the incomplete-split flag
 * clear, index-tuple access with bounds checks, and the one scratch page the rebuilding routines use.
 *
 * Invariants: every routine works on one target page in place; reading an item or a tuple never goes past
 * the page or the WAL payload (a malformed input throws BtreeRecordError, reported by the framework as
 * REDO_FAILED naming the record). The scratch page is module-level (redo is synchronous and single-threaded
 * per worker), so rebuilding a page allocates nothing.
 */
import { BLCKSZ, FirstOffsetNumber, MaxIndexTuplesPerPage, getPdSpecial, maxalign, pageGetMaxOffsetNumber, pageGetPageSize, pageInit, pageInitCopySpecial, pageSetLsn } from '../page/page.js'
import { itemIdGetRaw, rawItemIdLength, rawItemIdOffset } from '../page/itemid.js'
import { pageAddItem } from '../page/bufpage.js'
import { BTP_INCOMPLETE_SPLIT, SizeOfBTPageOpaqueData, SizeOfIndexTupleData, btpoGetFlags, btpoSetFlags, indexTupleSize } from '../page/nbtree-page.js'
import type { RedoContext } from '../rmgr-redo.js'
import { BtreeRecordError } from './records.js'

/** _bt_pageinit: PageInit with a BTPageOpaqueData special space (all opaque fields zero). */
export function btPageInit(page: Buffer): void {
  pageInit(page, SizeOfBTPageOpaqueData)
}

/** PageSetLSN(page, EndRecPtr): every B-tree redo body stamps the record's end LSN. */
export function stampLsn(ctx: RedoContext, page: Buffer): void {
  pageSetLsn(page, ctx.endLsn)
}

/** Block data of the target block reference (empty when the record carries none). */
export function targetData(ctx: RedoContext): Buffer {
  return ctx.block === null ? Buffer.alloc(0) : ctx.rec.blockData(ctx.block)
}

/** Block number of another block reference of the record (the split's left page, say), or null. */
export function blockNumberOf(ctx: RedoContext, blockId: number): number | null {
  return ctx.rec.block(blockId)?.blkno ?? null
}

/** Shared scratch for PageGetTempPageCopySpecial / PageRestoreTempPage. */
const tempPage = Buffer.alloc(BLCKSZ)

/** PageGetTempPageCopySpecial(page) into the module's scratch page; returns it. */
export function tempPageCopySpecial(page: Buffer): Buffer {
  checkSpecial(page)
  pageInitCopySpecial(tempPage, page)
  return tempPage
}

/** PageRestoreTempPage: the whole temporary page replaces the target, header and free space included. */
export function restoreTempPage(temp: Buffer, page: Buffer): void {
  temp.copy(page, 0, 0, BLCKSZ)
}

/**
 * The item `offnum` of `page` (PageGetItemId + PageGetItem), checked to lie inside the page and to be at
 * least an IndexTupleData long: { at, len } with len = lp_len.
 */
export function indexItem(page: Buffer, offnum: number): { at: number; len: number } {
  const nline = pageGetMaxOffsetNumber(page)
  if (offnum < FirstOffsetNumber || offnum > nline) {
    throw new BtreeRecordError(`item ${offnum} does not exist (page has ${nline} line pointers)`)
  }
  const raw = itemIdGetRaw(page, offnum)
  const at = rawItemIdOffset(raw)
  const len = rawItemIdLength(raw)
  if (at + Math.max(len, SizeOfIndexTupleData) > BLCKSZ || at < 24) {
    throw new BtreeRecordError(`item ${offnum} at ${at} (length ${len}) lies outside the page`)
  }
  return { at, len }
}

/**
 * A view of the index tuple at item `offnum`, IndexTupleSize bytes long (PageGetItem as IndexTuple), checked
 * to lie inside the page.
 */
export function pageTuple(page: Buffer, offnum: number): Buffer {
  const { at } = indexItem(page, offnum)
  const size = tupleSpan(page, at, BLCKSZ, false, `item ${offnum}`)
  return page.subarray(at, at + size)
}

/**
 * IndexTupleSize of the tuple at `at` in `buf`, checked to fit inside `buf` from `at` up to `end`.
 * `aligned` asks for MAXALIGN(IndexTupleSize), the span WAL payloads use.
 */
export function tupleSpan(buf: Buffer, at: number, end: number, aligned: boolean, what: string): number {
  if (at + SizeOfIndexTupleData > end) throw new BtreeRecordError(`${what}: no room for an index tuple header at ${at}`)
  const size = indexTupleSize(buf, at)
  const span = aligned ? maxalign(size) : size
  if (size < SizeOfIndexTupleData || at + span > end) {
    throw new BtreeRecordError(`${what}: index tuple of ${size} bytes at ${at} runs past ${end}`)
  }
  return span
}

/** Item starts of _bt_restore_page; MaxIndexTuplesPerPage bounds what one page's worth of data can hold. */
const restoreStarts = new Int32Array(MaxIndexTuplesPerPage + 1)
const restoreSizes = new Int32Array(MaxIndexTuplesPerPage + 1)

/**
 * _bt_restore_page: `data` is a copy of a page's pd_upper..pd_special, tuples back to back with the highest
 * item number first. The tuples are added to the freshly initialised `page` as items 1..n, each with its
 * MAXALIGNed size as lp_len (as PostgreSQL does).
 */
export function restorePage(page: Buffer, data: Buffer): void {
  let nitems = 0
  let pos = 0
  while (pos < data.length) {
    if (nitems >= restoreStarts.length) throw new BtreeRecordError(`page image holds more than ${MaxIndexTuplesPerPage} tuples`)
    const span = tupleSpan(data, pos, data.length, true, '_bt_restore_page')
    restoreStarts[nitems] = pos
    restoreSizes[nitems] = span
    nitems++
    pos += span
  }
  for (let i = nitems - 1; i >= 0; i--) {
    const start = restoreStarts[i]!
    const size = restoreSizes[i]!
    if (pageAddItem(page, data.subarray(start, start + size), size, nitems - i, false, false) === 0) {
      throw new BtreeRecordError('_bt_restore_page: cannot add item to page')
    }
  }
}

/** _bt_clear_incomplete_split on the child page whose split this record finishes. */
export function clearIncompleteSplit(ctx: RedoContext, page: Buffer): void {
  checkSpecial(page)
  btpoSetFlags(page, btpoGetFlags(page) & ~BTP_INCOMPLETE_SPLIT)
  stampLsn(ctx, page)
}

/**
 * Every btree page has its 16-byte BTPageOpaqueData at the very end (_bt_pageinit); anything else is not a
 * btree page, and reading or copying its "special space" would go astray.
 */
export function checkSpecial(page: Buffer): void {
  const special = getPdSpecial(page)
  if (special !== BLCKSZ - SizeOfBTPageOpaqueData || pageGetPageSize(page) !== BLCKSZ) {
    throw new BtreeRecordError(
      `not a btree page: pd_special is ${special} and the page size ${pageGetPageSize(page)}, expected ${BLCKSZ - SizeOfBTPageOpaqueData} and ${BLCKSZ}`,
    )
  }
}
