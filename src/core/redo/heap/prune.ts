/**
 * heap_page_prune_execute (access/heap/pruneheap.c) and VACUUM's second heap pass, as redo runs them.
 *
 * Prune: set the listed line pointers to LP_REDIRECT (from -> to), LP_DEAD and LP_UNUSED, in that order,
 * then PageRepairFragmentation, which repacks the surviving tuples from pd_special down in line-pointer
 * order, drops trailing unused pointers and recomputes PD_HAS_FREE_LINES. The physical layout after this
 * is what the primary had, byte for byte (stale bytes in the free gap are masked).
 *
 * Vacuum: the listed LP_DEAD pointers become LP_UNUSED (all four bytes zero), then
 * PageTruncateLinePointerArray drops trailing unused pointers (never pointer 1). No tuple moves.
 *
 * Offsets come from WAL: each is checked against the line-pointer array before it is written (PostgreSQL
 * trusts them; a bad one would scribble over the page). Returns a reason instead of throwing, so the rmgr
 * module can name the record in its error.
 */
import { pageGetMaxOffsetNumber } from '../page/page.js'
import { itemIdSetDead, itemIdSetRedirect, itemIdSetUnused } from '../page/itemid.js'
import { pageRepairFragmentation, pageTruncateLinePointerArray } from '../page/bufpage.js'

function badOffset(page: Buffer, off: number): string | null {
  const maxoff = pageGetMaxOffsetNumber(page)
  return off >= 1 && off <= maxoff ? null : `offset ${off} outside the line pointer array 1..${maxoff}`
}

/**
 * `offsets` is the record's u16 array: `nredirected` (from, to) pairs, then `ndead` offsets, then the rest
 * (now unused). Returns null on success or why the record does not fit the page.
 */
export function heapPagePruneExecute(page: Buffer, offsets: Uint16Array, nredirected: number, ndead: number): string | null {
  const nunused = offsets.length - 2 * nredirected - ndead
  if (nunused < 0) return `prune lists ${nredirected} redirects and ${ndead} dead items but carries only ${offsets.length} offsets`
  for (const off of offsets) {
    const bad = badOffset(page, off)
    if (bad !== null) return bad
  }
  let i = 0
  for (let n = 0; n < nredirected; n++, i += 2) itemIdSetRedirect(page, offsets[i]!, offsets[i + 1]!)
  for (let n = 0; n < ndead; n++, i++) itemIdSetDead(page, offsets[i]!)
  for (; i < offsets.length; i++) itemIdSetUnused(page, offsets[i]!)
  pageRepairFragmentation(page)
  return null
}

/** VACUUM's second pass on one page: `nowunused` LP_DEAD pointers become LP_UNUSED; then truncate the array. */
export function heapPageVacuumExecute(page: Buffer, nowunused: Uint16Array): string | null {
  for (const off of nowunused) {
    const bad = badOffset(page, off)
    if (bad !== null) return bad
  }
  for (const off of nowunused) itemIdSetUnused(page, off)
  pageTruncateLinePointerArray(page)
  return null
}

/** Reads `count` u16 offsets from block data (or all of it when count is omitted); null when it is too short. */
export function readOffsets(data: Buffer, count?: number): Uint16Array | null {
  const n = count ?? data.length >>> 1
  if (data.length < 2 * n) return null
  const out = new Uint16Array(n)
  for (let i = 0; i < n; i++) out[i] = data.readUInt16LE(2 * i)
  return out
}
