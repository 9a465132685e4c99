/**
 * ValueCache (bounds, CLOCK eviction, per-file spaces) and layer file readers using it: lookups answer the
 * same with the cache as without, hot values come from memory, and every value a layer hands out belongs
 * to the caller — changing it changes nothing a later read returns (the contract of layer-read.ts, which
 * DatadirReader relies on to set checksums without copying), for delta, image and in-memory layers.
 */
import { describe, expect, it } from 'vitest'
import { DeltaLayer, DeltaLayerWriter } from '../../../src/core/layer/delta-layer.js'
import { ImageLayer, ImageLayerWriter } from '../../../src/core/layer/image-layer.js'
import { InMemoryLayer } from '../../../src/core/layer/inmemory-layer.js'
import type { LsnValue, ReadableLayer } from '../../../src/core/layer/layer-read.js'
import { INDEX_BLOCK_CACHE_MAX_DEFAULT } from '../../../src/core/layer/layer-file-reader.js'
import { ENTRY_OVERHEAD_BYTES, ValueCache, VALUE_CACHE_VALUE_BYTES_MAX, type ValueCacheSpace } from '../../../src/core/layer/value-cache.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import { TENANT, TIMELINE, blockKey, compareEntry, makeValue, prng, randInt, refGetValues, withTempDir, type Entry } from './helpers.js'

const L = (n: number): Lsn => BigInt(n) as Lsn

describe('ValueCache', () => {
  /** Offers twice (the first offer only marks the offset as seen). */
  const put = (c: ValueCache, s: ValueCacheSpace, off: number, v: Buffer) => {
    c.offer(s, off, v)
    c.offer(s, off, v)
  }

  it('caches a value on its second offer; a scan that offers each value once caches nothing', () => {
    const c = new ValueCache(1 << 20, 4)
    const s = c.space()
    for (let off = 0; off < 100; off++) c.offer(s, off, Buffer.alloc(10))
    expect(c.entries).toBe(0)
    // Only the last 4 offsets are remembered: 99 is admitted on a second offer, 0 is not.
    c.offer(s, 99, Buffer.alloc(10, 9))
    c.offer(s, 0, Buffer.alloc(10))
    expect(c.get(s, 99)![0]).toBe(9)
    expect(c.get(s, 0)).toBeUndefined()
    c.offer(s, 0, Buffer.alloc(10, 1))
    expect(c.get(s, 0)![0]).toBe(1)
    // Bypassed: lookups miss and nothing is admitted, but the contents stay.
    c.bypass = true
    expect(c.get(s, 0)).toBeUndefined()
    c.offer(s, 50, Buffer.alloc(10))
    c.offer(s, 50, Buffer.alloc(10))
    c.bypass = false
    expect(c.get(s, 50)).toBeUndefined()
    expect(c.get(s, 0)![0]).toBe(1)
  })

  it('copies what it keeps, stays within its bound, and gives referenced entries a second chance', () => {
    const slot = 100 + ENTRY_OVERHEAD_BYTES
    const c = new ValueCache(3 * slot)
    const s = c.space()
    const v = Buffer.alloc(100, 1)
    put(c, s, 0, v)
    v.fill(2)
    expect(c.get(s, 0)!.every((b) => b === 1)).toBe(true)
    put(c, s, 1, Buffer.alloc(100, 3))
    put(c, s, 2, Buffer.alloc(100, 4))
    expect(c.sizeBytes).toBe(3 * slot)
    c.get(s, 0) // referenced: survives the next eviction, which takes 1 instead
    put(c, s, 3, Buffer.alloc(100, 5))
    expect(c.entries).toBe(3)
    expect(c.get(s, 1)).toBeUndefined()
    expect(c.get(s, 0)).toBeDefined()
    expect(c.sizeBytes).toBeLessThanOrEqual(3 * slot)
    // Too large for the cache, or for any value: not kept.
    put(c, s, 9, Buffer.alloc(4 * slot))
    expect(c.get(s, 9)).toBeUndefined()
    const roomy = new ValueCache(1 << 30)
    put(roomy, roomy.space(), 0, Buffer.alloc(VALUE_CACHE_VALUE_BYTES_MAX + 1))
    expect(roomy.entries).toBe(0)
    // Spaces are independent and dropped whole; a closed space takes nothing more.
    const other = c.space()
    put(c, other, 0, Buffer.alloc(10, 6))
    expect(c.get(other, 0)![0]).toBe(6)
    s.close()
    expect(c.get(s, 0)).toBeUndefined()
    put(c, s, 0, Buffer.alloc(10))
    expect(c.get(s, 0)).toBeUndefined()
    expect(c.entries).toBe(1)
    expect(c.sizeBytes).toBe(10 + ENTRY_OVERHEAD_BYTES)
    c.resize(0)
    expect(c.entries + c.sizeBytes).toBe(0)
    put(c, other, 1, Buffer.alloc(1))
    expect(c.entries).toBe(0)
  })
})

/** Reads every key three times (the second read admits values to the cache, the third hits); compares with the reference. */
function readThrice(layer: ReadableLayer, entries: Entry[], keys: string[], ceil: Lsn): void {
  for (let pass = 0; pass < 3; pass++) {
    for (const key of keys) {
      const out: LsnValue[] = []
      layer.getValues(key as never, ceil, out)
      const ref = refGetValues(entries, key as never, ceil)
      expect(out.map((v) => v.lsn)).toEqual(ref.values.map((v) => v.lsn))
      out.forEach((v, i) => expect(v.value.equals(ref.values[i]!.value)).toBe(true))
      // The caller's own: scribbling over it must not show in the next read.
      for (const v of out) v.value.fill(0xee)
    }
  }
}

describe('layer files with the value cache', () => {
  it('answer as without it, serve the third read from memory, and hand out values the caller owns', async () => {
    await withTempDir('ps-vcache-', async (dir) => {
      const rng = prng(5)
      const entries: Entry[] = []
      const w = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(0x100), end: L(0x10000) }, noSync: true, indexBlockBytes: 512 })
      for (let blk = 0; blk < 60; blk++) {
        let lsn = 0x100
        const n = randInt(rng, 1, 12)
        for (let i = 0; i < n; i++) {
          lsn += randInt(rng, 1, 50)
          const willInit = i === 0 || rng() < 0.1
          entries.push({ key: blockKey(1, blk), lsn: L(lsn), value: makeValue(rng, willInit && rng() < 0.5 ? 8192 : randInt(rng, 10, 300), willInit, rng() < 0.3), willInit })
        }
      }
      entries.sort(compareEntry)
      for (const e of entries) if (!w.put(e.key, e.lsn, e.value)) await w.drain()
      const delta = await w.finish()
      const keys = [...new Set(entries.map((e) => e.key))]

      const cache = new ValueCache(1 << 24)
      const cached = DeltaLayer.open(delta.path, { valueCache: cache })
      const plain = DeltaLayer.open(delta.path, { valueCache: null })
      try {
        readThrice(plain, entries, keys, L(0xffff))
        readThrice(cached, entries, keys, L(0xffff))
        expect(cache.hits).toBeGreaterThan(0)
        expect(cache.misses).toBeGreaterThan(0)
        // Reads at other LSNs: partly cached chains.
        for (const ceil of [0x180, 0x200, 0x300]) readThrice(cached, entries, keys, L(ceil))
      } finally {
        plain.close()
        cached.close()
      }
      expect(cache.entries).toBe(0) // closing a file drops its values

      const imgEntries: Entry[] = []
      const iw = await ImageLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsn: L(0x20000), noSync: true })
      for (let blk = 0; blk < 40; blk++) {
        const e = { key: blockKey(2, blk), lsn: L(0x20000), value: makeValue(rng, 8192, true, rng() < 0.5), willInit: true }
        e.value[0] = 0 // an image
        imgEntries.push(e)
        if (!iw.put(e.key, e.value)) await iw.drain()
      }
      const image = await iw.finish(blockKey(3, 0))
      const layer = ImageLayer.open(image.path, { valueCache: cache })
      try {
        readThrice(layer, imgEntries, imgEntries.map((e) => e.key), L(0x20000))
        expect(cache.entries).toBe(40)
      } finally {
        layer.close()
      }
    })
  })

  it('keeps index blocks behind the per-file LRU: lookups cycling over more blocks than it holds stop reading the file', async () => {
    await withTempDir('ps-vcache-blocks-', async (dir) => {
      const rng = prng(11)
      const entries: Entry[] = []
      const w = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(0x100), end: L(0x10000) }, noSync: true, indexBlockBytes: 256 })
      for (let blk = 0; blk < 120; blk++) {
        for (let i = 0; i < 2; i++) entries.push({ key: blockKey(1, blk), lsn: L(0x100 + i), value: makeValue(rng, randInt(rng, 10, 200), i === 0), willInit: i === 0 })
      }
      for (const e of entries) if (!w.put(e.key, e.lsn, e.value)) await w.drain()
      const delta = await w.finish()
      const keys = [...new Set(entries.map((e) => e.key))]

      const cache = new ValueCache(1 << 24)
      const cached = DeltaLayer.open(delta.path, { valueCache: cache, indexBlockCacheMax: 2 })
      const plain = DeltaLayer.open(delta.path, { valueCache: null, indexBlockCacheMax: 2 })
      try {
        const reads = (layer: DeltaLayer) => layer.cacheStats.reads
        const perPass: number[][] = [[], []]
        for (let pass = 0; pass < 4; pass++) {
          for (const [i, layer] of [plain, cached].entries()) {
            const before = reads(layer)
            readThrice(layer, entries, keys, L(0xffff))
            perPass[i]!.push(reads(layer) - before)
          }
        }
        const blocks = cached.dumpSummary().indexBlockCount
        expect(blocks).toBeGreaterThan(20)
        // Two blocks of LRU against a cycle over every block: each traversal (three per readThrice) reads them all.
        expect(perPass[0]).toEqual([3 * blocks, 3 * blocks, 3 * blocks, 3 * blocks])
        // Shared: each block read twice (the second read admits it), then never again.
        expect(perPass[1]).toEqual([2 * blocks, 0, 0, 0])
        expect(cache.hits).toBeGreaterThan(0)
        // Opened with the defaults: the per-file LRU stays at its bound, the shared cache holds the rest.
        const shared = new ValueCache(1 << 24)
        const byDefault = DeltaLayer.open(delta.path, { valueCache: shared })
        try {
          expect(blocks).toBeGreaterThan(INDEX_BLOCK_CACHE_MAX_DEFAULT)
          const perPassDefault: number[] = []
          for (let pass = 0; pass < 3; pass++) {
            const before = reads(byDefault)
            readThrice(byDefault, entries, keys, L(0xffff))
            perPassDefault.push(reads(byDefault) - before)
          }
          expect(perPassDefault).toEqual([2 * blocks, 0, 0])
          expect(byDefault.cacheStats.blocks).toBe(INDEX_BLOCK_CACHE_MAX_DEFAULT)
        } finally {
          byDefault.close()
        }
      } finally {
        plain.close()
        cached.close()
      }
      expect(cache.entries).toBe(0) // closing the file drops its blocks with its values
    })
  })

  it('the in-memory layer hands out values the caller owns too', async () => {
    await withTempDir('ps-vcache-mem-', async (dir) => {
      const rng = prng(9)
      const layer = InMemoryLayer.create({ dir, fileId: 1, startLsn: L(0x100) })
      try {
        const entries: Entry[] = []
        for (let i = 0; i < 200; i++) {
          const e = { key: blockKey(1, i % 17), lsn: L(0x100 + i), value: makeValue(rng, randInt(rng, 10, 400), i < 17), willInit: i < 17 }
          entries.push(e)
          layer.put(e.key, e.lsn, e.value)
        }
        entries.sort(compareEntry)
        readThrice(layer, entries, [...new Set(entries.map((e) => e.key))], L(0x100 + 199))
      } finally {
        layer.delete()
      }
    })
  })
})
