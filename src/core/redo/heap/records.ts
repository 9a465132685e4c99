/**
 * Main-data structs of the Heap and Heap2 WAL records (access/heapam_xlog.h), parsed from their bytes.
 *
 * WAL payloads are not aligned, but padding inside a C struct stays, so every field is read at its C byte
 * offset and the record must be at least the struct's `SizeOf...` (which stops after the last field,
 * dropping tail padding). Worked example: xl_heap_update is
 *
 *   0 old_xmax u32 | 4 old_offnum u16 | 6 old_infobits_set u8 | 7 flags u8 | 8 new_xmax u32 | 12 new_offnum u16
 *
 * so SizeOfHeapUpdate = 14. Arrays carried in block data (prune offsets, freeze plans, multi-insert tuples)
 * are read by the redo modules, which know where they live.
 *
 * A record shorter than its struct is corrupt: the parsers throw HeapRecordError, which the rmgr modules
 * turn into a REDO_FAILED error naming the record and page.
 */
import { CorruptionError } from '../../lib/errors.js'

// --- record types (high nibble of xl_info; 0x80 = INIT_PAGE) ---------------------------------------

export const XLOG_HEAP_INSERT = 0x00
export const XLOG_HEAP_DELETE = 0x10
export const XLOG_HEAP_UPDATE = 0x20
export const XLOG_HEAP_TRUNCATE = 0x30
export const XLOG_HEAP_HOT_UPDATE = 0x40
export const XLOG_HEAP_CONFIRM = 0x50
export const XLOG_HEAP_LOCK = 0x60
export const XLOG_HEAP_INPLACE = 0x70
export const XLOG_HEAP_OPMASK = 0x70
export const XLOG_HEAP_INIT_PAGE = 0x80

export const XLOG_HEAP2_REWRITE = 0x00
export const XLOG_HEAP2_PRUNE = 0x10
export const XLOG_HEAP2_VACUUM = 0x20
export const XLOG_HEAP2_FREEZE_PAGE = 0x30
export const XLOG_HEAP2_VISIBLE = 0x40
export const XLOG_HEAP2_MULTI_INSERT = 0x50
export const XLOG_HEAP2_LOCK_UPDATED = 0x60
export const XLOG_HEAP2_NEW_CID = 0x70

// --- flags ------------------------------------------------------------------------------------------

/** xl_heap_insert / xl_heap_multi_insert flags. */
export const XLH_INSERT_ALL_VISIBLE_CLEARED = 1 << 0
export const XLH_INSERT_LAST_IN_MULTI = 1 << 1
export const XLH_INSERT_IS_SPECULATIVE = 1 << 2
export const XLH_INSERT_CONTAINS_NEW_TUPLE = 1 << 3
export const XLH_INSERT_ON_TOAST_RELATION = 1 << 4
export const XLH_INSERT_ALL_FROZEN_SET = 1 << 5

/** xl_heap_update flags. */
export const XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED = 1 << 0
export const XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED = 1 << 1
export const XLH_UPDATE_CONTAINS_OLD_TUPLE = 1 << 2
export const XLH_UPDATE_CONTAINS_OLD_KEY = 1 << 3
export const XLH_UPDATE_CONTAINS_NEW_TUPLE = 1 << 4
export const XLH_UPDATE_PREFIX_FROM_OLD = 1 << 5
export const XLH_UPDATE_SUFFIX_FROM_OLD = 1 << 6

/** xl_heap_delete flags. */
export const XLH_DELETE_ALL_VISIBLE_CLEARED = 1 << 0
export const XLH_DELETE_CONTAINS_OLD_TUPLE = 1 << 1
export const XLH_DELETE_CONTAINS_OLD_KEY = 1 << 2
export const XLH_DELETE_IS_SUPER = 1 << 3
export const XLH_DELETE_IS_PARTITION_MOVE = 1 << 4

/** infobits_set of delete / update / lock records (compute_infobits). */
export const XLHL_XMAX_IS_MULTI = 0x01
export const XLHL_XMAX_LOCK_ONLY = 0x02
export const XLHL_XMAX_EXCL_LOCK = 0x04
export const XLHL_XMAX_KEYSHR_LOCK = 0x08
export const XLHL_KEYS_UPDATED = 0x10

/** xl_heap_lock / xl_heap_lock_updated flags. */
export const XLH_LOCK_ALL_FROZEN_CLEARED = 0x01

/** xl_heap_freeze_tuple.frzflags (0x01 was XLH_FREEZE_XMIN before PG 9.4). */
export const XLH_FREEZE_XVAC = 0x02
export const XLH_INVALID_XVAC = 0x04

// --- sizes ------------------------------------------------------------------------------------------

export const SizeOfHeapInsert = 3
export const SizeOfHeapDelete = 8
export const SizeOfHeapUpdate = 14
export const SizeOfHeapLock = 8
export const SizeOfHeapLockUpdated = 8
export const SizeOfHeapConfirm = 2
export const SizeOfHeapInplace = 2
export const SizeOfHeapPrune = 8
export const SizeOfHeapVacuum = 2
export const SizeOfHeapFreezePage = 6
export const SizeOfHeapVisible = 5
export const SizeOfHeapMultiInsert = 4
/** xl_multi_insert_tuple: datalen u16, t_infomask2 u16, t_infomask u16, t_hoff u8 (7; 2-byte aligned in block data). */
export const SizeOfMultiInsertTuple = 7
/** sizeof(xl_heap_freeze_tuple): 11 bytes of fields padded to the 4-byte alignment of its xmax. */
export const SizeOfHeapFreezeTuple = 12

export class HeapRecordError extends CorruptionError {
  constructor(message: string) {
    super('HEAP_RECORD_MALFORMED', message, { hint: 'The WAL record is damaged; the page cannot be rebuilt from it.' })
  }
}

function need(data: Buffer, size: number, what: string): void {
  if (data.length < size) throw new HeapRecordError(`${what} main data has ${data.length} bytes, expected at least ${size}`)
}

// --- Heap -------------------------------------------------------------------------------------------

export interface XlHeapInsert {
  offnum: number
  flags: number
}
export function parseHeapInsert(d: Buffer): XlHeapInsert {
  need(d, SizeOfHeapInsert, 'xl_heap_insert')
  return { offnum: d.readUInt16LE(0), flags: d[2]! }
}

export interface XlHeapDelete {
  xmax: number
  offnum: number
  infobits_set: number
  flags: number
}
export function parseHeapDelete(d: Buffer): XlHeapDelete {
  need(d, SizeOfHeapDelete, 'xl_heap_delete')
  return { xmax: d.readUInt32LE(0), offnum: d.readUInt16LE(4), infobits_set: d[6]!, flags: d[7]! }
}

export interface XlHeapUpdate {
  old_xmax: number
  old_offnum: number
  old_infobits_set: number
  flags: number
  new_xmax: number
  new_offnum: number
}
export function parseHeapUpdate(d: Buffer): XlHeapUpdate {
  need(d, SizeOfHeapUpdate, 'xl_heap_update')
  return {
    old_xmax: d.readUInt32LE(0),
    old_offnum: d.readUInt16LE(4),
    old_infobits_set: d[6]!,
    flags: d[7]!,
    new_xmax: d.readUInt32LE(8),
    new_offnum: d.readUInt16LE(12),
  }
}

/** xl_heap_lock and xl_heap_lock_updated share one layout (the first field is locking_xid / xmax). */
export interface XlHeapLock {
  xmax: number
  offnum: number
  /** int8 in xl_heap_lock, uint8 in xl_heap_lock_updated: the same bits either way */
  infobits_set: number
  flags: number
}
export function parseHeapLock(d: Buffer, what = 'xl_heap_lock'): XlHeapLock {
  need(d, SizeOfHeapLock, what)
  return { xmax: d.readUInt32LE(0), offnum: d.readUInt16LE(4), infobits_set: d[6]!, flags: d[7]! }
}

/** xl_heap_confirm and xl_heap_inplace: one offset number. */
export function parseHeapOffnum(d: Buffer, what: string): number {
  need(d, 2, what)
  return d.readUInt16LE(0)
}

// --- Heap2 ------------------------------------------------------------------------------------------

export interface XlHeapPrune {
  latestRemovedXid: number
  nredirected: number
  ndead: number
}
export function parseHeapPrune(d: Buffer): XlHeapPrune {
  need(d, SizeOfHeapPrune, 'xl_heap_prune')
  return { latestRemovedXid: d.readUInt32LE(0), nredirected: d.readUInt16LE(4), ndead: d.readUInt16LE(6) }
}

export function parseHeapVacuum(d: Buffer): { nunused: number } {
  need(d, SizeOfHeapVacuum, 'xl_heap_vacuum')
  return { nunused: d.readUInt16LE(0) }
}

export interface XlHeapFreezePage {
  cutoff_xid: number
  ntuples: number
}
export function parseHeapFreezePage(d: Buffer): XlHeapFreezePage {
  need(d, SizeOfHeapFreezePage, 'xl_heap_freeze_page')
  return { cutoff_xid: d.readUInt32LE(0), ntuples: d.readUInt16LE(4) }
}

/** One freeze plan, xl_heap_freeze_tuple: 0 xmax u32 | 4 offset u16 | 6 t_infomask2 | 8 t_infomask | 10 frzflags. */
export interface XlHeapFreezeTuple {
  xmax: number
  offset: number
  t_infomask2: number
  t_infomask: number
  frzflags: number
}
export function readFreezeTuple(data: Buffer, i: number): XlHeapFreezeTuple {
  const at = i * SizeOfHeapFreezeTuple
  return {
    xmax: data.readUInt32LE(at),
    offset: data.readUInt16LE(at + 4),
    t_infomask2: data.readUInt16LE(at + 6),
    t_infomask: data.readUInt16LE(at + 8),
    frzflags: data[at + 10]!,
  }
}

export interface XlHeapVisible {
  cutoff_xid: number
  flags: number
}
export function parseHeapVisible(d: Buffer): XlHeapVisible {
  need(d, SizeOfHeapVisible, 'xl_heap_visible')
  return { cutoff_xid: d.readUInt32LE(0), flags: d[4]! }
}

export interface XlHeapMultiInsert {
  flags: number
  ntuples: number
  /** offset numbers of the tuples; empty for +INIT records (tuples then go to 1..ntuples) */
  offsets: Uint16Array
}
export function parseHeapMultiInsert(d: Buffer, isInit: boolean): XlHeapMultiInsert {
  need(d, SizeOfHeapMultiInsert, 'xl_heap_multi_insert')
  const flags = d[0]!
  const ntuples = d.readUInt16LE(2)
  const offsets = new Uint16Array(isInit ? 0 : ntuples)
  if (!isInit) {
    need(d, SizeOfHeapMultiInsert + 2 * ntuples, `xl_heap_multi_insert with ${ntuples} offsets`)
    for (let i = 0; i < ntuples; i++) offsets[i] = d.readUInt16LE(SizeOfHeapMultiInsert + 2 * i)
  }
  return { flags, ntuples, offsets }
}

/** Only the flags byte, for implicitTargets (which must not parse more than it needs). */
export function multiInsertFlags(d: Buffer): number {
  need(d, SizeOfHeapMultiInsert, 'xl_heap_multi_insert')
  return d[0]!
}
