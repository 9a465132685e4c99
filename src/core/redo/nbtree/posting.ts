/**
 * Posting-list tuple routines of nbtdedup.c that redo re-runs: _bt_form_posting, _bt_update_posting and
 * _bt_swap_posting, over index tuples held in Buffers.
 *
 * A posting tuple keeps its key bytes, then (at a MAXALIGNed offset, recorded in t_tid's block number) an
 * ascending array of 6-byte heap TIDs; t_tid's offset field holds BT_IS_POSTING | count. Worked example:
 * a 16-byte key with 3 TIDs is MAXALIGN(16 + 18) = 40 bytes, t_info size 40, t_tid = (16, 0x2003).
 * New tuples start zero-filled (palloc0 in PostgreSQL), so alignment padding is zero, as on the primary.
 *
 * Inputs come from pages and WAL; anything that breaks the invariants (a posting offset past the tuple,
 * a split point outside the list, positions that do not match the count) throws BtreeRecordError.
 */
import { maxalign } from '../page/page.js'
import { SizeOfIptrData } from '../page/itemptr.js'
import {
  INDEX_ALT_TID_MASK,
  INDEX_SIZE_MASK,
  T_TID_OFFSET,
  btreeTupleGetNPosting,
  btreeTupleGetPostingOffset,
  btreeTupleIsPivot,
  btreeTupleIsPosting,
  btreeTupleSetPosting,
  indexTupleSize,
  itupGetInfo,
  itupSetInfo,
} from '../page/nbtree-page.js'
import { BtreeRecordError } from './records.js'

/** The largest tuple t_info can describe (INDEX_SIZE_MASK): bounds every tuple built here. */
export const indexTupleSizeMax = INDEX_SIZE_MASK

/** Key size of a non-pivot tuple: the posting offset of a posting tuple, else the whole tuple. */
function keySize(tup: Buffer): number {
  return btreeTupleIsPosting(tup, 0) ? btreeTupleGetPostingOffset(tup, 0) : indexTupleSize(tup, 0)
}

/** Checks a posting tuple's list lies inside the tuple; returns its TID count. */
export function checkedNPosting(tup: Buffer, what: string): number {
  const n = btreeTupleGetNPosting(tup, 0)
  const off = btreeTupleGetPostingOffset(tup, 0)
  const size = indexTupleSize(tup, 0)
  if (off < 8 || off + n * SizeOfIptrData > size || size > tup.length) {
    throw new BtreeRecordError(`${what}: posting list of ${n} TIDs at ${off} does not fit a ${size}-byte tuple`)
  }
  return n
}

/**
 * _bt_form_posting: a tuple with `base`'s key and the `nhtids` TIDs at `htids` (6 bytes each, ascending):
 * a posting tuple when nhtids > 1, else a plain tuple whose t_tid is the one TID.
 */
export function formPosting(base: Buffer, htids: Buffer, nhtids: number): Buffer {
  const keysize = keySize(base)
  if (nhtids < 1 || keysize > base.length) throw new BtreeRecordError(`cannot form a posting tuple of ${nhtids} TIDs`)
  const newsize = nhtids > 1 ? maxalign(keysize + nhtids * SizeOfIptrData) : keysize
  if (newsize > indexTupleSizeMax) throw new BtreeRecordError(`posting tuple of ${newsize} bytes exceeds ${indexTupleSizeMax}`)
  const itup = Buffer.alloc(newsize)
  base.copy(itup, 0, 0, keysize)
  itupSetInfo(itup, 0, (itupGetInfo(itup, 0) & ~INDEX_SIZE_MASK) | newsize)
  if (nhtids > 1) {
    btreeTupleSetPosting(itup, 0, nhtids, keysize)
    htids.copy(itup, keysize, 0, nhtids * SizeOfIptrData)
  } else {
    itupSetInfo(itup, 0, itupGetInfo(itup, 0) & ~INDEX_ALT_TID_MASK)
    htids.copy(itup, T_TID_OFFSET, 0, SizeOfIptrData)
  }
  return itup
}

/**
 * _bt_update_posting: `orig` without the TIDs at the 0-based positions `deletetids` (ascending). Keeps at
 * least one TID; one left makes a plain tuple.
 */
export function updatePosting(orig: Buffer, deletetids: Uint16Array): Buffer {
  if (!btreeTupleIsPosting(orig, 0)) throw new BtreeRecordError('posting-list update of a tuple that is not a posting tuple')
  const norig = checkedNPosting(orig, 'posting-list update')
  const nhtids = norig - deletetids.length
  if (!(nhtids > 0 && nhtids < norig)) {
    throw new BtreeRecordError(`cannot remove ${deletetids.length} of ${norig} TIDs from a posting list`)
  }
  const keysize = btreeTupleGetPostingOffset(orig, 0)
  const newsize = nhtids > 1 ? maxalign(keysize + nhtids * SizeOfIptrData) : keysize
  const itup = Buffer.alloc(newsize)
  orig.copy(itup, 0, 0, keysize)
  itupSetInfo(itup, 0, (itupGetInfo(itup, 0) & ~INDEX_SIZE_MASK) | newsize)
  let dest: number
  if (nhtids > 1) {
    btreeTupleSetPosting(itup, 0, nhtids, keysize)
    dest = keysize
  } else {
    itupSetInfo(itup, 0, itupGetInfo(itup, 0) & ~INDEX_ALT_TID_MASK)
    dest = T_TID_OFFSET
  }
  // Keep every TID whose position is not listed, copying each run of kept TIDs at once (a posting list
  // can hold hundreds of TIDs; one Buffer.copy per TID dominated DELETE redo).
  let ui = 0
  let d = 0
  let runStart = 0
  const flush = (runEnd: number): void => {
    const n = Math.min(runEnd - runStart, nhtids - ui)
    if (n <= 0) return
    const from = keysize + runStart * SizeOfIptrData
    orig.copy(itup, dest + ui * SizeOfIptrData, from, from + n * SizeOfIptrData)
    ui += n
  }
  for (let i = 0; i < norig; i++) {
    if (d < deletetids.length && deletetids[d] === i) {
      flush(i)
      runStart = i + 1
      d++
    }
  }
  flush(norig)
  if (ui !== nhtids || d !== deletetids.length) {
    throw new BtreeRecordError(`posting-list update kept ${ui} of ${nhtids} TIDs and matched ${d} of ${deletetids.length} positions`)
  }
  return itup
}

/**
 * _bt_swap_posting: the posting-list split. `newitem` (a private, mutable plain tuple) gets `oposting`'s
 * largest TID; the returned copy of `oposting` has newitem's original TID at `postingoff`, later TIDs
 * shifted right by one and the old largest dropped. Same size as oposting.
 */
export function swapPosting(newitem: Buffer, oposting: Buffer, postingoff: number): Buffer {
  if (!btreeTupleIsPosting(oposting, 0)) throw new BtreeRecordError('posting-list split of a tuple that is not a posting tuple')
  if (btreeTupleIsPivot(newitem, 0) || btreeTupleIsPosting(newitem, 0)) {
    throw new BtreeRecordError('posting-list split with a new item that is not a plain tuple')
  }
  const nhtids = checkedNPosting(oposting, 'posting-list split')
  if (!(postingoff > 0 && postingoff < nhtids)) {
    throw new BtreeRecordError(`posting list tuple with ${nhtids} items cannot be split at offset ${postingoff}`)
  }
  const size = indexTupleSize(oposting, 0)
  const nposting = Buffer.alloc(size)
  oposting.copy(nposting, 0, 0, size)
  const listAt = btreeTupleGetPostingOffset(nposting, 0)
  const replacepos = listAt + postingoff * SizeOfIptrData
  nposting.copyWithin(replacepos + SizeOfIptrData, replacepos, replacepos + (nhtids - postingoff - 1) * SizeOfIptrData)
  newitem.copy(nposting, replacepos, T_TID_OFFSET, T_TID_OFFSET + SizeOfIptrData)
  const maxAt = listAt + (nhtids - 1) * SizeOfIptrData
  oposting.copy(newitem, T_TID_OFFSET, maxAt, maxAt + SizeOfIptrData)
  return nposting
}
