/**
 * LayerMap: the historic layers (delta and image files) of one timeline, answering "which layer do I read
 * next for (key, lsn)" in O(log n).
 *
 * Assumptions (asserted on add):
 *   - no two delta layers overlap in both key and LSN (L0s cover all keys over disjoint LSN ranges; the L1s
 *     of a compaction partition the keys of one LSN range);
 *   - no two image layers at the same LSN overlap in key (image layers at different LSNs never overlap:
 *     each covers [lsn, lsn+1)).
 * An image layer MAY lie inside a delta layer's LSN range: compaction creates images at the last LSN of
 * the deltas it covers (as Neon does), e.g. deltas [0/100, 0/200) and an image at 0/1FF for the same keys.
 *
 * search(key, lsn) returns the layer holding the newest data at or below `lsn` for `key`, and `lsnFloor`:
 * the caller reads that layer's values with lsnFloor <= lsn' <= min(lsn, end - 1), then, unless they
 * ended in a will-init value, searches again at lsnFloor - 1. Rule, with D the topmost delta and I the
 * topmost image covering key at or below lsn (topmost = greatest start LSN):
 *   - only D: D, floor D.start;  only I: I, floor I.lsn;
 *   - both: if I.lsn + 1 >= D.end (the image is at least as new as the delta's last LSN) or I.lsn == lsn,
 *     then I; otherwise D with floor max(D.start, I.lsn + 1) (read the delta's part above the image, then
 *     the image).
 *   Worked example: D = keys [A, B) x [0/100, 0/200), I = [A, B) at 0/180. search(k, 0/1F0) = D with floor
 *   0/181; then search(k, 0/180) = I (I.lsn == lsn). search(k, 0/300) also starts with D: the image at
 *   0/180 does not hold the delta's records in (0/180, 0/200).
 *
 * Shape: per kind, a list of "versions" (the distinct start LSNs, ascending), each with the coverage at that
 * LSN: sorted, non-overlapping key intervals, each naming the topmost layer of that kind covering those keys
 * at or below the version's LSN. A search is a binary search over versions, then over intervals. Changes
 * are rare (flush, compaction, gc) and lookups hot, so add/remove only mark the map dirty and the next
 * search rebuilds it: O(versions x intervals), where L0 versions have one interval each.
 */
import { assert } from '../lib/errors.js'
import type { Key } from '../model/key.js'
import type { Lsn } from '../pg/lsn.js'
import { isL0, type LayerDesc } from './layer-name.js'

export interface LayerMapEntry<H> {
  readonly desc: LayerDesc
  readonly handle: H
}

export interface SearchResult<H> {
  readonly desc: LayerDesc
  readonly handle: H
  /** Read this layer's values with lsn >= lsnFloor; continue below at lsnFloor - 1. */
  readonly lsnFloor: Lsn
}

/** The coverage of one kind at one LSN: interval i is [starts[i], ends[i]) -> layers[i]. */
interface Coverage<H> {
  readonly starts: Key[]
  readonly ends: Key[]
  readonly layers: LayerMapEntry<H>[]
}

interface KindIndex<H> {
  /** Distinct start LSNs, ascending. */
  readonly versions: Lsn[]
  readonly coverages: Coverage<H>[]
}

export class LayerMap<H> {
  private readonly byName = new Map<string, LayerMapEntry<H>>()
  private deltas: KindIndex<H> = { versions: [], coverages: [] }
  private images: KindIndex<H> = { versions: [], coverages: [] }
  private dirty = false

  get size(): number {
    return this.byName.size
  }

  get(name: string): LayerMapEntry<H> | undefined {
    return this.byName.get(name)
  }

  /** Adds a layer; asserts a unique name and the no-overlap assumptions (see the module header). */
  add(desc: LayerDesc, handle: H): void {
    assert(!this.byName.has(desc.name), () => `layer ${desc.name} is already in the layer map`)
    assert(desc.keyRange.start < desc.keyRange.end && desc.lsnRange.start < desc.lsnRange.end, () => `layer ${desc.name} has an empty range`)
    for (const other of this.byName.values()) {
      const o = other.desc
      if (o.kind !== desc.kind) continue
      const keysOverlap = o.keyRange.start < desc.keyRange.end && desc.keyRange.start < o.keyRange.end
      const lsnsOverlap = o.lsnRange.start < desc.lsnRange.end && desc.lsnRange.start < o.lsnRange.end
      assert(!(keysOverlap && lsnsOverlap), () => `layer ${desc.name} overlaps layer ${o.name} in both keys and LSNs`)
    }
    this.byName.set(desc.name, { desc, handle })
    this.dirty = true
  }

  /** Removes a layer by name; returns its entry (undefined when it was not there). */
  remove(name: string): LayerMapEntry<H> | undefined {
    const e = this.byName.get(name)
    if (e === undefined) return undefined
    this.byName.delete(name)
    this.dirty = true
    return e
  }

  /** Replaces the handle of a layer (e.g. when a file is reopened), keeping its place. */
  replaceHandle(name: string, handle: H): void {
    const e = this.byName.get(name)
    assert(e !== undefined, () => `layer ${name} is not in the layer map`)
    this.byName.set(name, { desc: e.desc, handle })
    this.dirty = true
  }

  /** The layer to read next for (key, lsn), or null when no layer holds data for key at or below lsn. */
  search(key: Key, lsn: Lsn): SearchResult<H> | null {
    if (this.dirty) this.rebuild()
    const d = lookup(this.deltas, key, lsn)
    const i = lookup(this.images, key, lsn)
    if (d === null && i === null) return null
    if (i === null) return { desc: d!.desc, handle: d!.handle, lsnFloor: d!.desc.lsnRange.start }
    const imageLsn = i.desc.lsnRange.start
    if (d === null || i.desc.lsnRange.end >= d.desc.lsnRange.end || imageLsn === lsn) {
      return { desc: i.desc, handle: i.handle, lsnFloor: imageLsn }
    }
    const above = (imageLsn + 1n) as Lsn
    return { desc: d.desc, handle: d.handle, lsnFloor: above > d.desc.lsnRange.start ? above : d.desc.lsnRange.start }
  }

  /** Every layer, ordered by LSN start, then key start. */
  layers(): LayerMapEntry<H>[] {
    return [...this.byName.values()].sort(compareEntries)
  }

  /** The L0 delta layers, oldest first. */
  l0s(): LayerMapEntry<H>[] {
    return this.layers().filter((e) => isL0(e.desc))
  }

  private rebuild(): void {
    const all = [...this.byName.values()]
    this.deltas = buildIndex(all.filter((e) => e.desc.kind === 'delta'))
    this.images = buildIndex(all.filter((e) => e.desc.kind === 'image'))
    this.dirty = false
  }
}

function compareEntries<H>(a: LayerMapEntry<H>, b: LayerMapEntry<H>): number {
  const x = a.desc
  const y = b.desc
  if (x.lsnRange.start !== y.lsnRange.start) return x.lsnRange.start < y.lsnRange.start ? -1 : 1
  if (x.keyRange.start !== y.keyRange.start) return x.keyRange.start < y.keyRange.start ? -1 : 1
  return x.kind === y.kind ? 0 : x.kind === 'delta' ? -1 : 1
}

/** Builds the versions of one kind: each version overlays the layers starting at its LSN onto the previous coverage. */
function buildIndex<H>(entries: LayerMapEntry<H>[]): KindIndex<H> {
  entries.sort(compareEntries)
  const versions: Lsn[] = []
  const coverages: Coverage<H>[] = []
  let cov: Coverage<H> = { starts: [], ends: [], layers: [] }
  for (let i = 0; i < entries.length; ) {
    const lsn = entries[i]!.desc.lsnRange.start
    let j = i
    while (j < entries.length && entries[j]!.desc.lsnRange.start === lsn) j++
    cov = overlay(cov, entries.slice(i, j))
    versions.push(lsn)
    coverages.push(cov)
    i = j
  }
  return { versions, coverages }
}

/**
 * The coverage `base` with `top` (sorted by key start, non-overlapping) laid over it: inside a top layer's
 * key range the top layer wins, elsewhere `base` stays, cut at the top layers' edges. Linear in both.
 */
function overlay<H>(base: Coverage<H>, top: LayerMapEntry<H>[]): Coverage<H> {
  const out: Coverage<H> = { starts: [], ends: [], layers: [] }
  const push = (s: Key, e: Key, l: LayerMapEntry<H>): void => {
    if (s < e) {
      out.starts.push(s)
      out.ends.push(e)
      out.layers.push(l)
    }
  }
  const n = base.starts.length
  let b = 0
  // The effective start of base interval b: its left part may already be hidden by a top layer.
  let cur = n > 0 ? base.starts[0]! : ('' as Key)
  const next = (): void => {
    b++
    if (b < n) cur = base.starts[b]!
  }
  for (let t = 0; t < top.length; t++) {
    const tl = top[t]!
    const ts = tl.desc.keyRange.start
    const te = tl.desc.keyRange.end
    if (t > 0) assert(top[t - 1]!.desc.keyRange.end <= ts, 'layers with the same start LSN overlap in keys')
    while (b < n && cur < ts) {
      const e = base.ends[b]!
      push(cur, e < ts ? e : ts, base.layers[b]!)
      if (e <= ts) next()
      else {
        cur = ts
        break
      }
    }
    push(ts, te, tl)
    while (b < n && base.ends[b]! <= te) next()
    if (b < n && cur < te) cur = te
  }
  for (; b < n; next()) push(cur, base.ends[b]!, base.layers[b]!)
  return out
}

function lookup<H>(idx: KindIndex<H>, key: Key, lsn: Lsn): LayerMapEntry<H> | null {
  // last version <= lsn
  const vs = idx.versions
  let lo = 0
  let hi = vs.length - 1
  let v = -1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    if (vs[mid]! <= lsn) {
      v = mid
      lo = mid + 1
    } else {
      hi = mid - 1
    }
  }
  if (v < 0) return null
  const c = idx.coverages[v]!
  lo = 0
  hi = c.starts.length - 1
  let k = -1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    if (c.starts[mid]! <= key) {
      k = mid
      lo = mid + 1
    } else {
      hi = mid - 1
    }
  }
  if (k < 0 || key >= c.ends[k]!) return null
  return c.layers[k]!
}
