/**
 * bufpage.c routines for index pages: PageIndexTupleDelete, PageIndexMultiDelete,
 * PageIndexTupleDeleteNoCompact (BRIN) and PageIndexTupleOverwrite, ported byte for byte.
 *
 * Unlike heap pages, index pages close the gap a deleted tuple leaves, either retail (slide the bytes
 * between pd_upper and the victim up by its MAXALIGNed size) or, for more than 2 items at once, by
 * rebuilding the line pointer array and running compactify_tuples. The two give different physical
 * layouts when line-pointer order and physical order differ; the threshold (2) is PostgreSQL's.
 */
import { assert } from '../../lib/errors.js'
import { FirstOffsetNumber, MaxOffsetNumber, SizeOfPageHeaderData, maxalign, sizeOfItemIdData } from './page.js'
import { makeItemId, rawItemIdFlags, rawItemIdLength, rawItemIdOffset } from './itemid.js'
import {
  LP_OFF_MASK,
  PD_LOWER,
  PD_SPECIAL,
  PD_UPPER,
  checkIndexOffnum,
  checkLinePointer,
  checkPagePointers,
  corrupted,
  lpGet,
  lpPosition,
  lpSet,
  maxOffset,
  setU16,
  u16,
  view,
} from './page-access.js'
import { compactAlignedLen, compactItemOff, compactOffsetIndex, compactifyTuples } from './compactify.js'

/** newitemids of PageIndexMultiDelete. */
const newItemIds = new Uint32Array(MaxOffsetNumber)

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
