/**
 * maskPage: PostgreSQL's rm_mask for a resource manager id, as used by wal_consistency_checking to compare
 * a replayed page with the primary's post-image (verifyBackupPageConsistency), plus maskVmPage for our own
 * visibility-map comparisons.
 *
 * In place or copy, explicitly:
 * - the per-AM functions (heapMask, btreeMask, ...) and maskPage(..., {inPlace: true}) mutate `page`;
 * - maskPage without inPlace returns a masked copy and leaves `page` untouched;
 * - maskPageInto copies `page` into a caller-owned 8 KiB buffer and masks that (no allocation: the form
 *   for hot comparison loops).
 *
 * Only rmgrs that have an rm_mask in PostgreSQL 15 are maskable (Heap2, Heap, Btree, Hash, Gin, Gist,
 * Sequence, SPGist, BRIN, Generic); records of the others never carry verification images, so asking to
 * mask for them is an UnsupportedError.
 *
 * Why a separate VM mask: heap_mask applied to a VM page blanks pd_lower..pd_upper, i.e. the whole
 * bitmap (PostgreSQL never really checks VM contents). maskVmPage blanks only the LSN and checksum.
 */
import { UnsupportedError } from '../../lib/errors.js'
import { assertPage } from '../page/page.js'
import { RM } from '../../pg/rmgr.js'
import { maskPageLsnAndChecksum } from './bufmask.js'
import { heapMask } from './heap-mask.js'
import { btreeMask } from './btree-mask.js'
import { seqMask } from './seq-mask.js'
import { brinMask, genericMask, ginMask, gistMask, hashMask, spgMask } from './am-masks.js'

export { MASK_MARKER, maskLpFlags, maskPageContent, maskPageHintBits, maskPageLsnAndChecksum, maskUnusedSpace } from './bufmask.js'
export { heapMask } from './heap-mask.js'
export { btreeMask } from './btree-mask.js'
export { seqMask } from './seq-mask.js'
export { brinMask, genericMask, ginMask, gistMask, hashMask, spgMask } from './am-masks.js'

/** Resource manager ids with an rm_mask (src/include/access/rmgrlist.h). */
export const MASKABLE_RMGR = {
  HEAP2: RM.HEAP2,
  HEAP: RM.HEAP,
  BTREE: RM.BTREE,
  HASH: RM.HASH,
  GIN: RM.GIN,
  GIST: RM.GIST,
  SEQ: RM.SEQ,
  SPGIST: RM.SPGIST,
  BRIN: RM.BRIN,
  GENERIC: RM.GENERIC,
} as const

export type MaskFn = (page: Buffer, blkno: number) => void

const MASKS: ReadonlyMap<number, MaskFn> = new Map<number, MaskFn>([
  [MASKABLE_RMGR.HEAP2, heapMask],
  [MASKABLE_RMGR.HEAP, heapMask],
  [MASKABLE_RMGR.BTREE, btreeMask],
  [MASKABLE_RMGR.HASH, hashMask],
  [MASKABLE_RMGR.GIN, ginMask],
  [MASKABLE_RMGR.GIST, gistMask],
  [MASKABLE_RMGR.SEQ, seqMask],
  [MASKABLE_RMGR.SPGIST, spgMask],
  [MASKABLE_RMGR.BRIN, brinMask],
  [MASKABLE_RMGR.GENERIC, genericMask],
])

/** True when PostgreSQL 15 has an rm_mask for this resource manager. */
export function hasMask(rmgrId: number): boolean {
  return MASKS.has(rmgrId)
}

/** The in-place mask function of a resource manager; UnsupportedError when it has none. */
export function maskFunctionFor(rmgrId: number): MaskFn {
  const fn = MASKS.get(rmgrId)
  if (fn === undefined) {
    throw new UnsupportedError('MASK_UNSUPPORTED_RMGR', `resource manager ${rmgrId} has no page mask`, {
      hint: 'Only Heap, Heap2, Btree, Hash, Gin, Gist, Sequence, SPGist, BRIN and Generic records carry verification images.',
      details: { rmgrId },
    })
  }
  return fn
}

export interface MaskOptions {
  /** Mask `page` itself instead of a copy. Default false. */
  inPlace?: boolean
}

/** Applies rmgr `rmgrId`'s mask for block `blkno`; returns the masked page (a copy unless inPlace). */
export function maskPage(rmgrId: number, page: Buffer, blkno: number, options: MaskOptions = {}): Buffer {
  const fn = maskFunctionFor(rmgrId)
  assertPage(page)
  const target = options.inPlace === true ? page : Buffer.from(page)
  fn(target, blkno)
  return target
}

/** Copies `page` into `out` (8 KiB, caller-owned, must not overlap `page`) and masks `out`; returns `out`. */
export function maskPageInto(rmgrId: number, page: Buffer, blkno: number, out: Buffer): Buffer {
  const fn = maskFunctionFor(rmgrId)
  assertPage(page)
  assertPage(out)
  page.copy(out)
  fn(out, blkno)
  return out
}

/** Visibility-map page mask for our own comparisons: LSN and checksum only, in place. */
export function maskVmPage(page: Buffer): void {
  assertPage(page)
  maskPageLsnAndChecksum(page)
}
