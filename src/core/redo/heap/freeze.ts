/**
 * heap_execute_freeze_tuple (access/heap/heapam.c): apply one freeze plan of a FREEZE_PAGE record.
 *
 * A plan replaces t_xmax, t_infomask and t_infomask2 with the values VACUUM computed on the primary
 * (heap_prepare_freeze_tuple), and may rewrite the old VACUUM FULL t_xvac word (XLH_FREEZE_XVAC: the
 * frozen xid 2; XLH_INVALID_XVAC: 0). Nothing else of the tuple changes; the plan is self-contained, so
 * redo needs no transaction status.
 *
 * Plans are 12-byte xl_heap_freeze_tuple structs in block 0's data (records.ts reads them).
 */
import { pageGetMaxOffsetNumber } from '../page/page.js'
import { htupSetInfomask, htupSetInfomask2, htupSetXmax, htupSetXvac } from '../page/htup.js'
import { normalTuple } from './tuple.js'
import { XLH_FREEZE_XVAC, XLH_INVALID_XVAC, type XlHeapFreezeTuple } from './records.js'

export const InvalidTransactionId = 0
export const FrozenTransactionId = 2

/** Applies one plan to the tuple header at byte `at`. */
export function heapExecuteFreezeTuple(page: Buffer, at: number, frz: XlHeapFreezeTuple): void {
  htupSetXmax(page, at, frz.xmax)
  if (frz.frzflags & XLH_FREEZE_XVAC) htupSetXvac(page, at, FrozenTransactionId)
  if (frz.frzflags & XLH_INVALID_XVAC) htupSetXvac(page, at, InvalidTransactionId)
  htupSetInfomask(page, at, frz.t_infomask)
  htupSetInfomask2(page, at, frz.t_infomask2)
}

/**
 * Applies a plan to the tuple at `frz.offset`. PostgreSQL takes the item without checking its flags;
 * VACUUM only freezes LP_NORMAL tuples, so anything else means the record does not fit the page.
 */
export function freezeTupleAt(page: Buffer, frz: XlHeapFreezeTuple): string | null {
  const t = normalTuple(page, frz.offset)
  if (typeof t === 'string') return `freeze plan for offset ${frz.offset} (max ${pageGetMaxOffsetNumber(page)}): ${t}`
  heapExecuteFreezeTuple(page, t.at, frz)
  return null
}
