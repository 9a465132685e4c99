/**
 * Visibility-map bits that Heap and Heap2 records clear without referencing the VM page.
 *
 * PostgreSQL's redo of INSERT, DELETE, UPDATE / HOT_UPDATE (old and new block), MULTI_INSERT (flag
 * ALL_VISIBLE_CLEARED) calls visibilitymap_clear(..., VISIBILITYMAP_VALID_BITS) for the heap block, and
 * LOCK / LOCK_UPDATED (flag ALL_FROZEN_CLEARED) clears only ALL_FROZEN; it does so before, and regardless
 * of, the heap page's LSN check, and never stamps the VM page's LSN. A VM page read as zeros is
 * PageInit-ed first (vm_readbuf).
 *
 * `vmClears(rec)` is the single list of those effects; `implicitTargets` (which VM pages a record
 * changes, for ingest and verification) and `redoImplicit` (apply them to one VM page) both derive from it,
 * so they cannot disagree.
 */
import type { DecodedBlock, DecodedRecord } from '../../pg/wal-record.js'
import { ForkNumber, type RelFileNode } from '../../pg/reltag.js'
import { RM } from '../../pg/rmgr.js'
import { redoFailure, type ImplicitTarget, type RedoContext } from '../rmgr-redo.js'
import { heapBlkToMapBlock, vmClear, vmInitIfNew, VISIBILITYMAP_ALL_FROZEN, VISIBILITYMAP_VALID_BITS } from './visibilitymap.js'
import {
  HeapRecordError,
  XLH_DELETE_ALL_VISIBLE_CLEARED,
  XLH_INSERT_ALL_VISIBLE_CLEARED,
  XLH_LOCK_ALL_FROZEN_CLEARED,
  XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED,
  XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED,
  XLOG_HEAP2_LOCK_UPDATED,
  XLOG_HEAP2_MULTI_INSERT,
  XLOG_HEAP_DELETE,
  XLOG_HEAP_HOT_UPDATE,
  XLOG_HEAP_INSERT,
  XLOG_HEAP_LOCK,
  XLOG_HEAP_OPMASK,
  XLOG_HEAP_UPDATE,
  SizeOfHeapDelete,
  SizeOfHeapInsert,
  SizeOfHeapLock,
  SizeOfHeapLockUpdated,
  SizeOfHeapMultiInsert,
  SizeOfHeapUpdate,
} from './records.js'

export interface VmClear {
  rel: RelFileNode
  heapBlk: number
  /** VISIBILITYMAP_VALID_BITS, or VISIBILITYMAP_ALL_FROZEN for tuple locks */
  flags: number
}

/** The flags byte of a record's main data at `at`, after checking the struct's size. */
function flagsAt(rec: DecodedRecord, size: number, at: number, what: string): number {
  const n = rec.mainDataLength
  if (n < size) throw new HeapRecordError(`${what} main data has ${n} bytes, expected at least ${size}`)
  return rec.mainDataByte(at)
}

/** What most records clear (shared, never changed). */
const NO_CLEARS: readonly VmClear[] = Object.freeze([])
const NO_TARGETS: readonly ImplicitTarget[] = Object.freeze([])

function heapBlock(rec: DecodedRecord, id: number): DecodedBlock {
  const b = rec.block(id)
  if (b === undefined) throw new HeapRecordError(`the record has no block reference ${id}`)
  return b
}

function clearOf(b: DecodedBlock, flags: number): VmClear {
  return { rel: b.rel, heapBlk: b.blkno, flags }
}

/** Every VM clear the record implies (empty for records that clear none). */
export function vmClears(rec: DecodedRecord): readonly VmClear[] {
  const op = rec.rmgrInfo & XLOG_HEAP_OPMASK
  if (rec.xl_rmid === RM.HEAP) {
    switch (op) {
      case XLOG_HEAP_INSERT:
        return flagsAt(rec, SizeOfHeapInsert, 2, 'xl_heap_insert') & XLH_INSERT_ALL_VISIBLE_CLEARED
          ? [clearOf(heapBlock(rec, 0), VISIBILITYMAP_VALID_BITS)]
          : NO_CLEARS
      case XLOG_HEAP_DELETE:
        return flagsAt(rec, SizeOfHeapDelete, 7, 'xl_heap_delete') & XLH_DELETE_ALL_VISIBLE_CLEARED
          ? [clearOf(heapBlock(rec, 0), VISIBILITYMAP_VALID_BITS)]
          : NO_CLEARS
      case XLOG_HEAP_UPDATE:
      case XLOG_HEAP_HOT_UPDATE: {
        const flags = flagsAt(rec, SizeOfHeapUpdate, 7, 'xl_heap_update')
        const out: VmClear[] = []
        // Block 0 is the new page; block 1, when present, the old one (else the update stayed on block 0).
        if (flags & XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED) out.push(clearOf(rec.block(1) ?? heapBlock(rec, 0), VISIBILITYMAP_VALID_BITS))
        if (flags & XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED) out.push(clearOf(heapBlock(rec, 0), VISIBILITYMAP_VALID_BITS))
        return out
      }
      case XLOG_HEAP_LOCK:
        return flagsAt(rec, SizeOfHeapLock, 7, 'xl_heap_lock') & XLH_LOCK_ALL_FROZEN_CLEARED
          ? [clearOf(heapBlock(rec, 0), VISIBILITYMAP_ALL_FROZEN)]
          : NO_CLEARS
      default:
        return NO_CLEARS
    }
  }
  if (rec.xl_rmid === RM.HEAP2) {
    switch (op) {
      case XLOG_HEAP2_MULTI_INSERT:
        return flagsAt(rec, SizeOfHeapMultiInsert, 0, 'xl_heap_multi_insert') & XLH_INSERT_ALL_VISIBLE_CLEARED
          ? [clearOf(heapBlock(rec, 0), VISIBILITYMAP_VALID_BITS)]
          : NO_CLEARS
      case XLOG_HEAP2_LOCK_UPDATED:
        return flagsAt(rec, SizeOfHeapLockUpdated, 7, 'xl_heap_lock_updated') & XLH_LOCK_ALL_FROZEN_CLEARED
          ? [clearOf(heapBlock(rec, 0), VISIBILITYMAP_ALL_FROZEN)]
          : NO_CLEARS
      default:
        return NO_CLEARS
    }
  }
  return NO_CLEARS
}

function sameRel(a: RelFileNode, b: RelFileNode): boolean {
  return a.spcNode === b.spcNode && a.dbNode === b.dbNode && a.relNode === b.relNode
}

/** The VM pages the record changes: one per distinct (relation, VM block), never initialised from zero. */
export function vmImplicitTargets(rec: DecodedRecord): readonly ImplicitTarget[] {
  const clears = vmClears(rec)
  if (clears.length === 0) return NO_TARGETS
  const out: ImplicitTarget[] = []
  for (const c of clears) {
    const blkno = heapBlkToMapBlock(c.heapBlk)
    if (out.some((t) => t.tag.blkno === blkno && sameRel(t.tag, c.rel))) continue
    out.push({ tag: { spcNode: c.rel.spcNode, dbNode: c.rel.dbNode, relNode: c.rel.relNode, forkNum: ForkNumber.VisibilityMap, blkno }, willInit: false })
  }
  return out
}

/** Applies the record's clears that fall on the target VM page. */
export function vmRedoImplicit(ctx: RedoContext, page: Buffer): void {
  if (ctx.tag.forkNum !== ForkNumber.VisibilityMap) throw redoFailure(ctx, 'the record does not reference this page')
  let clears: VmClear[]
  try {
    clears = vmClears(ctx.rec).filter((c) => sameRel(c.rel, ctx.tag) && heapBlkToMapBlock(c.heapBlk) === ctx.tag.blkno)
  } catch (e) {
    if (e instanceof HeapRecordError) throw redoFailure(ctx, e.message)
    throw e
  }
  if (clears.length === 0) throw redoFailure(ctx, 'the record clears no visibility-map bit on this page')
  vmInitIfNew(page)
  for (const c of clears) vmClear(page, c.heapBlk, c.flags)
}
