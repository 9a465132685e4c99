/**
 * bufpage.c routines, ported to reproduce PostgreSQL 15's physical page layout byte for byte.
 *
 * Redo is checked against PostgreSQL's own post-images, so where an item lands, which bytes are moved and
 * which stale bytes are left behind must match, not just the logical content:
 * - PageAddItemExtended places the item at pd_upper - MAXALIGN(size) and writes only `size` bytes; the
 *   alignment padding keeps whatever was there (heap_mask masks it).
 * - PageRepairFragmentation repacks tuples from pd_special down in line-pointer order (compactify_tuples,
 *   with its presorted memmove path and its scratch-page path), drops trailing LP_UNUSED pointers (PG14+)
 *   and sets or clears PD_HAS_FREE_LINES.
 * - PageIndexTupleDelete slides the bytes between pd_upper and the victim up by the victim's MAXALIGNed
 *   size; PageIndexMultiDelete does that retail for <= 2 items and otherwise rebuilds the line pointer array
 *   and compactifies. The two give different layouts; the threshold is PostgreSQL's.
 *
 * Checks PostgreSQL reports as ERROR/PANIC on corrupted pointers become CorruptionError (code
 * PAGE_CORRUPTED); the WARNING-and-return-InvalidOffsetNumber cases of PageAddItemExtended return 0 silently.
 *
 * Hot path: no allocation per call beyond a DataView. compactify_tuples (compactify.ts) uses module-level
 * scratch. The index-page routines live in index-page.ts and are re-exported here, so callers import every
 * bufpage routine from this module.
 */
import { assert } from '../../lib/errors.js'
import {
  BLCKSZ,
  FirstOffsetNumber,
  InvalidOffsetNumber,
  MaxHeapTuplesPerPage,
  MaxOffsetNumber,
  PD_HAS_FREE_LINES,
  SizeOfPageHeaderData,
  maxalign,
  sizeOfItemIdData,
} from './page.js'
import { LP_UNUSED, makeItemId, rawItemIdFlags, rawItemIdLength, rawItemIdOffset } from './itemid.js'
import {
  PD_FLAGS,
  PD_LOWER,
  PD_SPECIAL,
  PD_UPPER,
  checkPagePointers,
  copyBytes,
  corrupted,
  corruptedPointers,
  lpGet,
  lpPosition,
  lpSet,
  maxOffset,
  setU16,
  u16,
  view,
} from './page-access.js'
import { compactAlignedLen, compactItemOff, compactOffsetIndex, compactifyTuples } from './compactify.js'

export { pageIndexMultiDelete, pageIndexTupleDelete, pageIndexTupleDeleteNoCompact, pageIndexTupleOverwrite } from './index-page.js'

/** PageAddItemExtended flag: store at the given (unused) line pointer instead of shifting the array. */
export const PAI_OVERWRITE = 1 << 0
/** PageAddItemExtended flag: enforce MaxHeapTuplesPerPage. */
export const PAI_IS_HEAP = 1 << 1

/** PageGetItem: a view (no copy) of the item `offnum` points to. */
export function pageGetItem(page: Buffer, offnum: number): Buffer {
  const raw = page.readUInt32LE(lpPosition(offnum))
  const off = rawItemIdOffset(raw)
  return page.subarray(off, off + rawItemIdLength(raw))
}

/**
 * PageAddItemExtended. Returns the offset number used, or InvalidOffsetNumber (0) when PostgreSQL refuses
 * (no room, a used slot under PAI_OVERWRITE, an offset past the end, too many heap tuples).
 *
 * `offsetNumber` 0 (or above MaxOffsetNumber) means "find a free slot" (using the PD_HAS_FREE_LINES hint).
 * Redo always passes one.
 */
export function pageAddItemExtended(page: Buffer, item: Buffer, size: number, offsetNumber: number, flags: number): number {
  assert(size >= 0 && size <= item.length, () => `item of ${item.length} bytes cannot supply ${size} bytes`)
  const dv = view(page)
  const pd_lower = u16(dv, PD_LOWER)
  const pd_upper = u16(dv, PD_UPPER)
  const pd_special = u16(dv, PD_SPECIAL)
  if (pd_lower < SizeOfPageHeaderData || pd_lower > pd_upper || pd_upper > pd_special || pd_special > BLCKSZ) {
    throw corruptedPointers(pd_lower, pd_upper, pd_special)
  }

  const limit = maxOffset(dv) + 1
  let needshuffle = false

  // OffsetNumberIsValid: 1..MaxOffsetNumber; anything else (0, or > 2048 truncated to u16) means "find a slot".
  offsetNumber &= 0xffff
  if (offsetNumber !== InvalidOffsetNumber && offsetNumber <= MaxOffsetNumber) {
    if ((flags & PAI_OVERWRITE) !== 0) {
      if (offsetNumber < limit) {
        const raw = lpGet(dv, offsetNumber)
        if (rawItemIdFlags(raw) !== LP_UNUSED || rawItemIdLength(raw) !== 0) return InvalidOffsetNumber
      }
    } else if (offsetNumber < limit) {
      needshuffle = true
    }
  } else if ((u16(dv, PD_FLAGS) & PD_HAS_FREE_LINES) !== 0) {
    offsetNumber = FirstOffsetNumber
    for (; offsetNumber < limit; offsetNumber++) {
      const raw = lpGet(dv, offsetNumber)
      if (rawItemIdFlags(raw) === LP_UNUSED && rawItemIdLength(raw) === 0) break
    }
    if (offsetNumber >= limit) setU16(dv, PD_FLAGS, u16(dv, PD_FLAGS) & ~PD_HAS_FREE_LINES)
  } else {
    offsetNumber = limit
  }

  if (offsetNumber > limit) return InvalidOffsetNumber
  if ((flags & PAI_IS_HEAP) !== 0 && offsetNumber > MaxHeapTuplesPerPage) return InvalidOffsetNumber

  const lower = offsetNumber === limit || needshuffle ? pd_lower + sizeOfItemIdData : pd_lower
  const upper = pd_upper - maxalign(size)
  if (lower > upper) return InvalidOffsetNumber

  if (needshuffle) {
    // memmove(itemId + 1, itemId, (limit - offsetNumber) * 4)
    const from = lpPosition(offsetNumber)
    page.copyWithin(from + sizeOfItemIdData, from, from + (limit - offsetNumber) * sizeOfItemIdData)
  }
  lpSet(dv, offsetNumber, makeItemId(upper, 1, size))
  copyBytes(item, 0, size, page, upper)

  setU16(dv, PD_LOWER, lower)
  setU16(dv, PD_UPPER, upper)
  return offsetNumber
}

/** The PageAddItem macro. */
export function pageAddItem(page: Buffer, item: Buffer, size: number, offsetNumber: number, overwrite: boolean, isHeap: boolean): number {
  return pageAddItemExtended(page, item, size, offsetNumber, (overwrite ? PAI_OVERWRITE : 0) | (isHeap ? PAI_IS_HEAP : 0))
}

/**
 * PageRepairFragmentation (heap pages, after pruning): compact the tuples that have storage, reset unused
 * pointers to all-zero, drop trailing LP_UNUSED pointers (possibly all of them) and set PD_HAS_FREE_LINES
 * iff some unused pointer remains.
 */
export function pageRepairFragmentation(page: Buffer): void {
  const dv = view(page)
  checkPagePointers(dv)
  const pd_lower = u16(dv, PD_LOWER)
  const pd_upper = u16(dv, PD_UPPER)
  const pd_special = u16(dv, PD_SPECIAL)

  const nline = maxOffset(dv)
  let nstorage = 0
  let nunused = 0
  let totallen = 0
  let lastOffset = pd_special
  let presorted = true
  let finalusedlp = InvalidOffsetNumber

  for (let i = FirstOffsetNumber; i <= nline; i++) {
    const raw = lpGet(dv, i)
    if (rawItemIdFlags(raw) !== LP_UNUSED) {
      const len = rawItemIdLength(raw)
      if (len !== 0) {
        const itemoff = rawItemIdOffset(raw)
        compactOffsetIndex[nstorage] = i - 1
        compactItemOff[nstorage] = itemoff
        if (lastOffset > itemoff) lastOffset = itemoff
        else presorted = false
        if (itemoff < pd_upper || itemoff >= pd_special) {
          throw corrupted(`corrupted line pointer: ${itemoff}`, { offnum: i, lp_off: itemoff })
        }
        const alignedlen = maxalign(len)
        // PostgreSQL would read past the block here; refuse instead.
        if (itemoff + alignedlen > BLCKSZ) {
          throw corrupted(`corrupted line pointer: offset = ${itemoff}, size = ${len}`, { offnum: i, lp_off: itemoff, lp_len: len })
        }
        compactAlignedLen[nstorage] = alignedlen
        totallen += alignedlen
        nstorage++
      }
      finalusedlp = i
    } else {
      lpSet(dv, i, 0)
      nunused++
    }
  }

  if (nstorage === 0) {
    setU16(dv, PD_UPPER, pd_special)
  } else {
    if (totallen > pd_special - pd_lower) {
      throw corrupted(`corrupted item lengths: total ${totallen}, available space ${pd_special - pd_lower}`, {
        totallen,
        available: pd_special - pd_lower,
      })
    }
    compactifyTuples(page, dv, nstorage, presorted)
  }

  if (finalusedlp !== nline) {
    const nunusedend = nline - finalusedlp
    nunused -= nunusedend
    setU16(dv, PD_LOWER, u16(dv, PD_LOWER) - sizeOfItemIdData * nunusedend)
  }

  const flags = u16(dv, PD_FLAGS)
  setU16(dv, PD_FLAGS, nunused > 0 ? flags | PD_HAS_FREE_LINES : flags & ~PD_HAS_FREE_LINES)
}

/**
 * PageTruncateLinePointerArray (heap VACUUM's second pass): drop trailing LP_UNUSED pointers but never line
 * pointer 1; set PD_HAS_FREE_LINES iff an unused pointer remains before them.
 */
export function pageTruncateLinePointerArray(page: Buffer): void {
  const dv = view(page)
  let countdone = false
  let sethint = false
  let nunusedend = 0

  for (let i = maxOffset(dv); i >= FirstOffsetNumber; i--) {
    const used = rawItemIdFlags(lpGet(dv, i)) !== LP_UNUSED
    if (!countdone && i > FirstOffsetNumber) {
      if (!used) nunusedend++
      else countdone = true
    } else if (!used) {
      sethint = true
      break
    }
  }

  if (nunusedend > 0) setU16(dv, PD_LOWER, u16(dv, PD_LOWER) - sizeOfItemIdData * nunusedend)

  const flags = u16(dv, PD_FLAGS)
  setU16(dv, PD_FLAGS, sethint ? flags | PD_HAS_FREE_LINES : flags & ~PD_HAS_FREE_LINES)
}

// --- free space ----------------------------------------------------------------------------------

/** PageGetFreeSpace: pd_upper - pd_lower minus one line pointer, never negative. */
export function pageGetFreeSpace(page: Buffer): number {
  const space = page.readUInt16LE(PD_UPPER) - page.readUInt16LE(PD_LOWER)
  return space < sizeOfItemIdData ? 0 : space - sizeOfItemIdData
}

/** PageGetExactFreeSpace: pd_upper - pd_lower, never negative. */
export function pageGetExactFreeSpace(page: Buffer): number {
  const space = page.readUInt16LE(PD_UPPER) - page.readUInt16LE(PD_LOWER)
  return space < 0 ? 0 : space
}

/** PageGetHeapFreeSpace: as PageGetFreeSpace, but 0 when MaxHeapTuplesPerPage pointers exist and none is free. */
export function pageGetHeapFreeSpace(page: Buffer): number {
  let space = pageGetFreeSpace(page)
  if (space > 0) {
    const dv = view(page)
    const nline = maxOffset(dv)
    if (nline >= MaxHeapTuplesPerPage) {
      if ((u16(dv, PD_FLAGS) & PD_HAS_FREE_LINES) !== 0) {
        let offnum = FirstOffsetNumber
        for (; offnum <= nline; offnum++) {
          if (rawItemIdFlags(lpGet(dv, offnum)) === LP_UNUSED) break
        }
        if (offnum > nline) space = 0
      } else {
        space = 0
      }
    }
  }
  return space
}
