/**
 * compactify_tuples (bufpage.c), shared by PageRepairFragmentation and PageIndexMultiDelete.
 *
 * Callers fill the first `nitems` entries of the three module arrays (itemIdCompactData: line pointer
 * index, item offset, MAXALIGNed length) in line-pointer order. The tuples are then packed against
 * pd_special in that order: in place with memmove when the offsets already descend ("presorted"), else
 * through a scratch page, either tuple by tuple (fewer than a quarter of the line pointers survive) or in
 * one block from pd_upper. Bytes below the new pd_upper are never written, whichever path runs.
 *
 * The arrays hold MaxOffsetNumber entries, more than any page can have, so a corrupt page cannot overflow
 * them; they and the scratch page are module-level (no allocation per call, JS is single-threaded and the
 * function does not re-enter).
 */
import { assert } from '../../lib/errors.js'
import { BLCKSZ, MaxOffsetNumber } from './page.js'
import { PD_SPECIAL, PD_UPPER, lpSetOff, maxOffset, setU16, u16 } from './page-access.js'

/** itemIdCompactData as three parallel arrays; MaxOffsetNumber entries cover any page. */
export const compactOffsetIndex = new Uint16Array(MaxOffsetNumber)
export const compactItemOff = new Int32Array(MaxOffsetNumber)
export const compactAlignedLen = new Uint16Array(MaxOffsetNumber)
/** PGAlignedBlock scratch of compactify_tuples; only bytes copied in during the same call are read back. */
const scratchPage = Buffer.alloc(BLCKSZ)

/**
 * compactify_tuples over the first `nitems` entries of the module arrays: moves the tuples so that they end
 * at pd_special in array order, fixes their lp_off, and sets pd_upper. `presorted` means itemoff strictly
 * descends along the array, so an in-place memmove towards the end of the page cannot clobber anything.
 */
export function compactifyTuples(page: Buffer, dv: DataView, nitems: number, presorted: boolean): void {
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
