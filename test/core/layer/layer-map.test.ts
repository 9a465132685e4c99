// The layer map against two oracles over random timeline layouts (flushes into L0s, compactions into L1s
// that partition the key space with holes, image layers at delta ends, inside delta ranges and above
// them), before and after removals:
//   1. brute force: the topmost delta and image covering (key, lsn) by a scan, then the selection rule;
//   2. semantics: following search() and lsnFloor down from (key, lsn) visits every delta LSN covering the
//      key above the newest image exactly once, in descending order, and ends at that image.
import { describe, expect, it } from 'vitest'
import { LayerMap } from '../../../src/core/layer/layer-map.js'
import { deltaLayerDesc, imageLayerDesc, isL0, type LayerDesc } from '../../../src/core/layer/layer-name.js'
import { AssertionFailure } from '../../../src/core/lib/errors.js'
import { MAX_KEY, MIN_KEY, type Key } from '../../../src/core/model/key.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import { blockKey, prng, randInt } from './helpers.js'

const L = (n: number): Lsn => BigInt(n) as Lsn
const KEYS = 40
const K = (i: number): Key => (i <= 0 ? MIN_KEY : i >= KEYS ? MAX_KEY : blockKey(1, i))

/** Random key partition of [0, KEYS) into ranges, some dropped (holes). */
function partitions(rng: () => number, dropProbability: number): Array<[number, number]> {
  const cuts = new Set<number>([0, KEYS])
  const n = randInt(rng, 0, 6)
  for (let i = 0; i < n; i++) cuts.add(randInt(rng, 1, KEYS - 1))
  const sorted = [...cuts].sort((a, b) => a - b)
  const out: Array<[number, number]> = []
  for (let i = 0; i + 1 < sorted.length; i++) if (rng() >= dropProbability) out.push([sorted[i]!, sorted[i + 1]!])
  return out
}

function randomLayout(seed: number): LayerDesc[] {
  const rng = prng(seed)
  const layers = new Map<string, LayerDesc>()
  const add = (d: LayerDesc): void => {
    layers.set(d.name, d)
  }
  let cur = 100
  const images = new Set<string>() // "lsn" of image versions already used
  const steps = randInt(rng, 5, 40)
  for (let s = 0; s < steps; s++) {
    const r = rng()
    if (r < 0.55) {
      const len = randInt(rng, 1, 30)
      add(deltaLayerDesc({ start: MIN_KEY, end: MAX_KEY }, { start: L(cur), end: L(cur + len) }))
      cur += len
    } else if (r < 0.75) {
      const l0s = [...layers.values()].filter(isL0)
      if (l0s.length === 0) continue
      const start = l0s.reduce((m, d) => (d.lsnRange.start < m ? d.lsnRange.start : m), L(cur))
      for (const d of l0s) layers.delete(d.name)
      for (const [a, b] of partitions(rng, 0.2)) add(deltaLayerDesc({ start: K(a), end: K(b) }, { start, end: L(cur) }))
    } else {
      // an image at the last flushed LSN, inside some earlier range, or above everything
      const choice = rng()
      const lsn = choice < 0.5 ? cur - 1 : choice < 0.8 ? randInt(rng, 100, Math.max(100, cur - 1)) : cur + randInt(rng, 0, 5)
      if (images.has(String(lsn))) continue
      images.add(String(lsn))
      for (const [a, b] of partitions(rng, 0.3)) add(imageLayerDesc({ start: K(a), end: K(b) }, L(lsn)))
      if (lsn >= cur) cur = lsn + 1
    }
  }
  return [...layers.values()]
}

const covers = (d: LayerDesc, key: Key): boolean => d.keyRange.start <= key && key < d.keyRange.end

/** Oracle 1: the rule applied to a linear scan. */
function bruteSearch(layers: LayerDesc[], key: Key, lsn: Lsn): { name: string; lsnFloor: Lsn } | null {
  let d: LayerDesc | null = null
  let i: LayerDesc | null = null
  for (const x of layers) {
    if (!covers(x, key) || x.lsnRange.start > lsn) continue
    if (x.kind === 'delta' && (d === null || x.lsnRange.start > d.lsnRange.start)) d = x
    if (x.kind === 'image' && (i === null || x.lsnRange.start > i.lsnRange.start)) i = x
  }
  if (d === null && i === null) return null
  if (i === null) return { name: d!.name, lsnFloor: d!.lsnRange.start }
  if (d === null || i.lsnRange.end >= d.lsnRange.end || i.lsnRange.start === lsn) return { name: i.name, lsnFloor: i.lsnRange.start }
  const above = i.lsnRange.start + 1n
  return { name: d.name, lsnFloor: (above > d.lsnRange.start ? above : d.lsnRange.start) as Lsn }
}

/** Oracle 2: walk the map and check which LSNs get read. */
function checkWalk(map: LayerMap<LayerDesc>, layers: LayerDesc[], key: Key, lsn: number): void {
  const newestImage = layers.filter((x) => x.kind === 'image' && covers(x, key) && Number(x.lsnRange.start) <= lsn).sort((a, b) => Number(b.lsnRange.start - a.lsnRange.start))[0]
  const stop = newestImage ? Number(newestImage.lsnRange.start) : -1
  // the LSN points that must be read from deltas, as a sorted list of [lo, hi] intervals
  const want: Array<[number, number]> = []
  for (const x of layers) {
    if (x.kind !== 'delta' || !covers(x, key)) continue
    const lo = Math.max(Number(x.lsnRange.start), stop + 1)
    const hi = Math.min(Number(x.lsnRange.end) - 1, lsn)
    if (lo <= hi) want.push([lo, hi])
  }
  want.sort((a, b) => b[0] - a[0])
  const got: Array<[number, number]> = []
  let ceil = lsn
  let endedAt: LayerDesc | null = null
  for (let guard = 0; guard < 1000 && ceil >= 0; guard++) {
    const r = map.search(key, L(ceil))
    if (r === null) break
    if (r.desc.kind === 'image') {
      endedAt = r.desc
      expect(Number(r.lsnFloor)).toBeLessThanOrEqual(ceil)
      break
    }
    const floor = Number(r.lsnFloor)
    const hi = Math.min(ceil, Number(r.desc.lsnRange.end) - 1)
    expect(floor).toBeLessThanOrEqual(hi)
    expect(floor).toBeGreaterThanOrEqual(Number(r.desc.lsnRange.start))
    got.push([floor, hi])
    ceil = floor - 1
  }
  expect(endedAt?.name ?? null).toBe(newestImage?.name ?? null)
  expect(got).toEqual(want)
}

describe('layer map', () => {
  it('matches both oracles over random layouts, also after removals', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const layers = randomLayout(seed)
      const map = new LayerMap<LayerDesc>()
      for (const d of layers) map.add(d, d)
      expect(map.size).toBe(layers.length)
      const rng = prng(seed * 1000)
      const maxLsn = Math.max(100, ...layers.map((d) => Number(d.lsnRange.end))) + 3
      const check = (current: LayerDesc[]): void => {
        for (let q = 0; q < 300; q++) {
          const key = K(randInt(rng, 0, KEYS))
          const lsn = randInt(rng, 90, maxLsn)
          const r = map.search(key, L(lsn))
          const b = bruteSearch(current, key, L(lsn))
          expect(r === null ? null : { name: r.desc.name, lsnFloor: r.lsnFloor }, `seed ${seed} key ${key} lsn ${lsn}`).toEqual(b)
          if (r !== null) expect(r.handle).toBe(r.desc)
          if (q % 3 === 0) checkWalk(map, current, key, lsn)
        }
      }
      check(layers)
      // remove a third of the layers, at random
      const kept: LayerDesc[] = []
      for (const d of layers) {
        if (rng() < 0.33) expect(map.remove(d.name)?.desc).toBe(d)
        else kept.push(d)
      }
      expect(map.size).toBe(kept.length)
      check(kept)
    }
  })

  it('lists layers by LSN then key, and the L0s oldest first', () => {
    const map = new LayerMap<number>()
    const a = deltaLayerDesc({ start: MIN_KEY, end: MAX_KEY }, { start: L(200), end: L(300) })
    const b = deltaLayerDesc({ start: MIN_KEY, end: MAX_KEY }, { start: L(100), end: L(200) })
    const c = deltaLayerDesc({ start: K(10), end: K(20) }, { start: L(10), end: L(100) })
    const d = deltaLayerDesc({ start: K(1), end: K(10) }, { start: L(10), end: L(100) })
    const i = imageLayerDesc({ start: MIN_KEY, end: MAX_KEY }, L(99))
    ;[a, b, c, d, i].forEach((x, n) => map.add(x, n))
    expect(map.layers().map((e) => e.desc.name)).toEqual([d.name, c.name, i.name, b.name, a.name])
    expect(map.l0s().map((e) => e.handle)).toEqual([1, 0])
    expect(map.get(c.name)?.handle).toBe(2)
    expect(map.search(K(15), L(50))?.desc.name).toBe(c.name)
    expect(map.search(K(25), L(50))).toBeNull() // hole between the L1s
    expect(map.search(K(25), L(99))?.desc.name).toBe(i.name)
    expect(map.search(K(15), L(99))?.desc.name).toBe(i.name) // image at the deltas' last LSN wins
    expect(map.search(K(15), L(150))).toMatchObject({ handle: 1, lsnFloor: L(100) })
    expect(map.search(K(15), L(9))).toBeNull()
    map.replaceHandle(a.name, 42)
    expect(map.search(K(15), L(1000))?.handle).toBe(42)
    expect(map.remove('nope')).toBeUndefined()
  })

  it('asserts its assumptions on add', () => {
    const map = new LayerMap<null>()
    map.add(deltaLayerDesc({ start: K(1), end: K(10) }, { start: L(10), end: L(20) }), null)
    expect(() => map.add(deltaLayerDesc({ start: K(1), end: K(10) }, { start: L(10), end: L(20) }), null)).toThrow(/already in the layer map/)
    expect(() => map.add(deltaLayerDesc({ start: K(5), end: K(15) }, { start: L(15), end: L(30) }), null)).toThrow(AssertionFailure)
    expect(() => map.add(deltaLayerDesc({ start: MIN_KEY, end: MAX_KEY }, { start: L(19), end: L(25) }), null)).toThrow(/overlaps/)
    map.add(deltaLayerDesc({ start: K(10), end: K(15) }, { start: L(15), end: L(30) }), null) // touching keys: fine
    map.add(imageLayerDesc({ start: K(1), end: K(5) }, L(15)), null) // inside a delta's LSN range: allowed
    expect(() => map.add(imageLayerDesc({ start: K(4), end: K(8) }, L(15)), null)).toThrow(/overlaps/)
    map.add(imageLayerDesc({ start: K(5), end: K(8) }, L(15)), null)
    expect(map.size).toBe(4)
  })
})
