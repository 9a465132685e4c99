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
 * Hot path: no allocation per call. compactify_tuples's temporary page and its item arrays are module-level
 * scratch (sized for the most line pointers a page can hold, so a corrupt page cannot overflow them).
 */
import { assert, CorruptionError } from '../../lib/errors.js'
import {
  BLCKSZ,
  FirstOffsetNumber,
  InvalidOffsetNumber,
  MaxHeapTuplesPerPage,
  MaxOffsetNumber,
  PD_HAS_FREE_LINES,
  SizeOfPageHeaderData,
  assertPage,
  maxalign,
  sizeOfItemIdData,
} from './page.js'
import { LP_UNUSED, makeItemId, rawItemIdFlags, rawItemIdLength, rawItemIdOffset } from './itemid.js'

/** PageAddItemExtended flag: store at the given (unused) line pointer instead of shifting the array. */
export const PAI_OVERWRITE = 1 << 0
/** PageAddItemExtended flag: enforce MaxHeapTuplesPerPage. */
export const PAI_IS_HEAP = 1 << 1

// --- fast access -------------------------------------------------------------------------------------
// The loops below touch every line pointer; a DataView (bounds-checked, any alignment) is several times
// faster than Buffer's readUInt32LE/writeUInt32LE, whose argument validation dominates at this size.

const PD_FLAGS = 10
const PD_LOWER = 12
const PD_UPPER = 14
const PD_SPECIAL = 16
const LP_OFF_MASK = 0x7fff

function view(page: Buffer): DataView {
  assertPage(page)
  return new DataView(page.buffer, page.byteOffset, BLCKSZ)
}
function u16(dv: DataView, pos: number): number {
  return dv.getUint16(pos, true)
}
function setU16(dv: DataView, pos: number, v: number): void {
  dv.setUint16(pos, v, true)
}
/** Line pointer `offnum` (1-based) as its raw u32 word. */
function lpGet(dv: DataView, offnum: number): number {
  return dv.getUint32(SizeOfPageHeaderData - sizeOfItemIdData + offnum * sizeOfItemIdData, true)
}
function lpSet(dv: DataView, offnum: number, raw: number): void {
  dv.setUint32(SizeOfPageHeaderData - sizeOfItemIdData + offnum * sizeOfItemIdData, raw >>> 0, true)
}
/** `lp->lp_off = off` (15-bit truncation, flags and length kept). */
function lpSetOff(dv: DataView, offnum: number, off: number): void {
  lpSet(dv, offnum, (lpGet(dv, offnum) & ~LP_OFF_MASK) | (off & LP_OFF_MASK))
}
function lpPosition(offnum: number): number {
  return SizeOfPageHeaderData + (offnum - 1) * sizeOfItemIdData
}
/** PageGetMaxOffsetNumber on the view. */
function maxOffset(dv: DataView): number {
  const lower = u16(dv, PD_LOWER)
  return lower <= SizeOfPageHeaderData ? 0 : (lower - SizeOfPageHeaderData) >>> 2
}

// --- errors ------------------------------------------------------------------------------------------

function corrupted(message: string, details: Record<string, unknown>): CorruptionError {
  return new CorruptionError('PAGE_CORRUPTED', message, {
    hint: 'The page image is damaged (bad pd_lower/pd_upper/pd_special or line pointer); restore it from an earlier image.',
    details,
  })
}

function corruptedPointers(lower: number, upper: number, special: number): CorruptionError {
  return corrupted(`corrupted page pointers: lower = ${lower}, upper = ${upper}, special = ${special}`, {
    pd_lower: lower,
    pd_upper: upper,
    pd_special: special,
  })
}

/** The sanity test shared by the routines that move bytes (PageRepairFragmentation and the index ones). */
function checkPagePointers(dv: DataView): void {
  const lower = u16(dv, PD_LOWER)
  const upper = u16(dv, PD_UPPER)
  const special = u16(dv, PD_SPECIAL)
  if (lower < SizeOfPageHeaderData || lower > upper || upper > special || special > BLCKSZ || special !== maxalign(special)) {
    throw corruptedPointers(lower, upper, special)
  }
}

function checkIndexOffnum(dv: DataView, offnum: number): number {
  const nline = maxOffset(dv)
  if (offnum <= 0 || offnum > nline) {
    throw corrupted(`invalid index offnum: ${offnum}`, { offnum, maxOffnum: nline })
  }
  return nline
}

function checkLinePointer(dv: DataView, offset: number, size: number): void {
  if (offset < u16(dv, PD_UPPER) || offset + size > u16(dv, PD_SPECIAL) || offset !== maxalign(offset)) {
    throw corrupted(`corrupted line pointer: offset = ${offset}, size = ${size}`, { offset, size })
  }
}

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
  item.copy(page, upper, 0, size)

  setU16(dv, PD_LOWER, lower)
  setU16(dv, PD_UPPER, upper)
  return offsetNumber
}

/** The PageAddItem macro. */
export function pageAddItem(page: Buffer, item: Buffer, size: number, offsetNumber: number, overwrite: boolean, isHeap: boolean): number {
  return pageAddItemExtended(page, item, size, offsetNumber, (overwrite ? PAI_OVERWRITE : 0) | (isHeap ? PAI_IS_HEAP : 0))
}

// --- compactify_tuples -----------------------------------------------------------------------------

/** itemIdCompactData as three parallel arrays; MaxOffsetNumber entries cover any page. */
const compactOffsetIndex = new Uint16Array(MaxOffsetNumber)
const compactItemOff = new Int32Array(MaxOffsetNumber)
const compactAlignedLen = new Uint16Array(MaxOffsetNumber)
/** PGAlignedBlock scratch of compactify_tuples; only bytes copied in during the same call are read back. */
const scratchPage = Buffer.alloc(BLCKSZ)
/** newitemids of PageIndexMultiDelete. */
const newItemIds = new Uint32Array(MaxOffsetNumber)

/**
 * compactify_tuples over the first `nitems` entries of the module arrays: moves the tuples so that they end
 * at pd_special in array order, fixes their lp_off, and sets pd_upper. `presorted` means itemoff strictly
 * descends along the array, so an in-place memmove towards the end of the page cannot clobber anything.
 */
function compactifyTuples(page: Buffer, dv: DataView, nitems: number, presorted: boolean): void {
  assert(nitems > 0, 'compactify_tuples needs at least one item')
  const pd_special = u16(dv, PD_SPECIAL)
  let upper: number
  let i: number
  let idx: number

  if (presorted) {
    // A plain Uint8Array view: TypedArray#copyWithin on it is about twice as fast as on a Buffer.
    const bytes = new Uint8Array(page.buffer, page.byteOffset, BLCKSZ)
    // Skip tuples already packed against pd_special.
    upper = pd_special
    i = 0
    idx = 0
    do {
      idx = i
      if (upper !== compactItemOff[idx]! + compactAlignedLen[idx]!) break
      upper -= compactAlignedLen[idx]!
      i++
    } while (i < nitems)

    let copyTail = compactItemOff[idx]! + compactAlignedLen[idx]!
    let copyHead = copyTail
    for (; i < nitems; i++) {
      const itemoff = compactItemOff[i]!
      const alignedlen = compactAlignedLen[i]!
      if (copyHead !== itemoff + alignedlen) {
        bytes.copyWithin(upper, copyHead, copyTail)
        copyTail = itemoff + alignedlen
      }
      upper -= alignedlen
      copyHead = itemoff
      lpSetOff(dv, compactOffsetIndex[i]! + 1, upper)
    }
    bytes.copyWithin(upper, copyHead, copyTail)
  } else {
    const scratch = scratchPage
    if (nitems < maxOffset(dv) >>> 2) {
      // Most tuples are gone: copy the survivors one by one.
      for (i = 0; i < nitems; i++) {
        const itemoff = compactItemOff[i]!
        page.copy(scratch, itemoff, itemoff, itemoff + compactAlignedLen[i]!)
      }
      i = 0
      idx = 0
      upper = pd_special
    } else {
      upper = pd_special
      i = 0
      idx = 0
      do {
        idx = i
        if (upper !== compactItemOff[idx]! + compactAlignedLen[idx]!) break
        upper -= compactAlignedLen[idx]!
        i++
      } while (i < nitems)
      // Everything between pd_upper and the first tuple that must move goes to the scratch page at once.
      const pd_upper = u16(dv, PD_UPPER)
      page.copy(scratch, pd_upper, pd_upper, upper)
    }

    let copyTail = compactItemOff[idx]! + compactAlignedLen[idx]!
    let copyHead = copyTail
    for (; i < nitems; i++) {
      const itemoff = compactItemOff[i]!
      const alignedlen = compactAlignedLen[i]!
      if (copyHead !== itemoff + alignedlen) {
        scratch.copy(page, upper, copyHead, copyTail)
        copyTail = itemoff + alignedlen
      }
      upper -= alignedlen
      copyHead = itemoff
      lpSetOff(dv, compactOffsetIndex[i]! + 1, upper)
    }
    scratch.copy(page, upper, copyHead, copyTail)
  }

  setU16(dv, PD_UPPER, upper)
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

// --- index page routines -------------------------------------------------------------------------

/**
 * PageIndexTupleDelete: remove item `offnum` and its line pointer. The bytes between pd_upper and the
 * victim slide up by MAXALIGN(victim's length); pointers at or below the victim's offset follow.
 */
export function pageIndexTupleDelete(page: Buffer, offnum: number): void {
  const dv = view(page)
  checkPagePointers(dv)
  let nline = checkIndexOffnum(dv, offnum)

  const raw = lpGet(dv, offnum)
  const offset = rawItemIdOffset(raw)
  checkLinePointer(dv, offset, rawItemIdLength(raw))
  const size = maxalign(rawItemIdLength(raw))

  const pd_lower = u16(dv, PD_LOWER)
  const pd_upper = u16(dv, PD_UPPER)
  // Close the gap in the line pointer array.
  const next = lpPosition(offnum + 1)
  if (pd_lower - next > 0) page.copyWithin(lpPosition(offnum), next, pd_lower)

  if (offset > pd_upper) page.copyWithin(pd_upper + size, pd_upper, offset)

  setU16(dv, PD_UPPER, pd_upper + size)
  setU16(dv, PD_LOWER, pd_lower - sizeOfItemIdData)

  if (pd_lower - sizeOfItemIdData > SizeOfPageHeaderData) {
    nline--
    for (let i = 1; i <= nline; i++) {
      const r = lpGet(dv, i)
      const off = r & LP_OFF_MASK
      if (off <= offset) lpSet(dv, i, (r & ~LP_OFF_MASK) | ((off + size) & LP_OFF_MASK))
    }
  }
}

/**
 * PageIndexMultiDelete: `itemnos[0..nitems)` must ascend. Up to 2 items: retail PageIndexTupleDelete from
 * the last to the first. More: keep the other pointers in order, then compactify_tuples.
 */
export function pageIndexMultiDelete(page: Buffer, itemnos: ArrayLike<number>, nitems: number = itemnos.length): void {
  assert(nitems >= 0 && nitems <= itemnos.length, () => `nitems ${nitems} exceeds the ${itemnos.length} offsets given`)
  if (nitems <= 2) {
    while (--nitems >= 0) pageIndexTupleDelete(page, itemnos[nitems]!)
    return
  }

  const dv = view(page)
  checkPagePointers(dv)
  const pd_lower = u16(dv, PD_LOWER)
  const pd_upper = u16(dv, PD_UPPER)
  const pd_special = u16(dv, PD_SPECIAL)

  const nline = maxOffset(dv)
  let nused = 0
  let nextitm = 0
  let totallen = 0
  let lastOffset = pd_special
  let presorted = true

  for (let offnum = FirstOffsetNumber; offnum <= nline; offnum++) {
    const raw = lpGet(dv, offnum)
    const size = rawItemIdLength(raw)
    const offset = rawItemIdOffset(raw)
    if (offset < pd_upper || offset + size > pd_special || offset !== maxalign(offset)) {
      throw corrupted(`corrupted line pointer: offset = ${offset}, size = ${size}`, { offnum, offset, size })
    }
    if (nextitm < nitems && offnum === itemnos[nextitm]) {
      nextitm++
    } else {
      compactOffsetIndex[nused] = nused
      compactItemOff[nused] = offset
      if (lastOffset > offset) lastOffset = offset
      else presorted = false
      const alignedlen = maxalign(size)
      compactAlignedLen[nused] = alignedlen
      totallen += alignedlen
      newItemIds[nused] = raw
      nused++
    }
  }

  if (nextitm !== nitems) {
    throw corrupted('incorrect index offsets supplied', { nitems, matched: nextitm })
  }
  if (totallen > pd_special - pd_lower) {
    throw corrupted(`corrupted item lengths: total ${totallen}, available space ${pd_special - pd_lower}`, {
      totallen,
      available: pd_special - pd_lower,
    })
  }

  for (let i = 0; i < nused; i++) lpSet(dv, i + 1, newItemIds[i]!)
  setU16(dv, PD_LOWER, SizeOfPageHeaderData + nused * sizeOfItemIdData)

  if (nused > 0) compactifyTuples(page, dv, nused, presorted)
  else setU16(dv, PD_UPPER, pd_special)
}

/**
 * PageIndexTupleDeleteNoCompact (BRIN): free item `offnum`'s storage but keep its pointer as LP_UNUSED,
 * unless it is the last pointer, which is removed.
 */
export function pageIndexTupleDeleteNoCompact(page: Buffer, offnum: number): void {
  const dv = view(page)
  checkPagePointers(dv)
  let nline = checkIndexOffnum(dv, offnum)

  const raw = lpGet(dv, offnum)
  const offset = rawItemIdOffset(raw)
  checkLinePointer(dv, offset, rawItemIdLength(raw))
  const size = maxalign(rawItemIdLength(raw))

  if (offnum < nline) {
    lpSet(dv, offnum, 0)
  } else {
    setU16(dv, PD_LOWER, u16(dv, PD_LOWER) - sizeOfItemIdData)
    nline--
  }

  const pd_upper = u16(dv, PD_UPPER)
  if (offset > pd_upper) page.copyWithin(pd_upper + size, pd_upper, offset)
  setU16(dv, PD_UPPER, pd_upper + size)

  if (u16(dv, PD_LOWER) > SizeOfPageHeaderData) {
    for (let i = 1; i <= nline; i++) {
      const r = lpGet(dv, i)
      const off = r & LP_OFF_MASK
      if (rawItemIdLength(r) !== 0 && off <= offset) lpSet(dv, i, (r & ~LP_OFF_MASK) | ((off + size) & LP_OFF_MASK))
    }
  }
}

/**
 * PageIndexTupleOverwrite: replace item `offnum` in place, sliding the tuple data below it when the
 * MAXALIGNed size changes; lp_flags is kept. Returns false (page unchanged) when the new tuple does not fit.
 */
export function pageIndexTupleOverwrite(page: Buffer, offnum: number, newtup: Buffer, newsize: number): boolean {
  assert(newsize >= 0 && newsize <= newtup.length, () => `tuple of ${newtup.length} bytes cannot supply ${newsize} bytes`)
  const dv = view(page)
  checkPagePointers(dv)
  const itemcount = checkIndexOffnum(dv, offnum)

  const raw = lpGet(dv, offnum)
  const offset = rawItemIdOffset(raw)
  checkLinePointer(dv, offset, rawItemIdLength(raw))

  const oldsize = maxalign(rawItemIdLength(raw))
  const alignednewsize = maxalign(newsize)
  const pd_upper = u16(dv, PD_UPPER)
  if (alignednewsize > oldsize + (pd_upper - u16(dv, PD_LOWER))) return false

  const sizeDiff = oldsize - alignednewsize
  if (sizeDiff !== 0) {
    page.copyWithin(pd_upper + sizeDiff, pd_upper, offset)
    setU16(dv, PD_UPPER, pd_upper + sizeDiff)
    for (let i = FirstOffsetNumber; i <= itemcount; i++) {
      const r = lpGet(dv, i)
      const off = r & LP_OFF_MASK
      if (rawItemIdLength(r) !== 0 && off <= offset) lpSet(dv, i, (r & ~LP_OFF_MASK) | ((off + sizeDiff) & LP_OFF_MASK))
    }
  }

  const newOffset = (offset + sizeDiff) & LP_OFF_MASK
  lpSet(dv, offnum, makeItemId(newOffset, rawItemIdFlags(raw), newsize))
  newtup.copy(page, newOffset, 0, newsize)
  return true
}
