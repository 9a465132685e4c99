// Delta layer files: round trips against a brute-force reference over many keys and versions (seeded),
// values of 0..64 KiB, will-init stopping, absent keys, LSNs below and above the layer, lookups whose
// versions span several index blocks, the entries() scan, compression, and the writer's assertions.
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DeltaLayer, DeltaLayerWriter } from '../../../src/core/layer/delta-layer.js'
import { AssertionFailure } from '../../../src/core/lib/errors.js'
import { MAX_KEY, MIN_KEY } from '../../../src/core/model/key.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import type { LsnValue } from '../../../src/core/layer/layer-read.js'
import { TENANT, TIMELINE, blockKey, compareEntry, makeValue, prng, randInt, refGetValues, withTempDir, type Entry } from './helpers.js'

const L = (n: number): Lsn => BigInt(n) as Lsn

/** Random history: `keys` keys, 1..maxVersions versions each, LSNs increasing per key inside [start, end). */
function randomHistory(seed: number, keys: number, maxVersions: number, start: number, end: number, maxPayload: number): Entry[] {
  const rng = prng(seed)
  const out: Entry[] = []
  for (let k = 0; k < keys; k++) {
    const key = blockKey(1000 + (k % 7), k * 3)
    const n = randInt(rng, 1, maxVersions)
    const lsns = new Set<number>()
    while (lsns.size < n) lsns.add(randInt(rng, start, end - 1))
    const sorted = [...lsns].sort((a, b) => a - b)
    for (let i = 0; i < sorted.length; i++) {
      const willInit = i === 0 ? rng() < 0.7 : rng() < 0.15
      const big = rng() < 0.03
      const len = big ? randInt(rng, 0, 64 * 1024) : randInt(rng, 0, maxPayload)
      out.push({ key, lsn: L(sorted[i]!), value: makeValue(rng, len, willInit, rng() < 0.3), willInit })
    }
  }
  return out.sort(compareEntry)
}

async function writeDelta(dir: string, entries: Entry[], start: number, end: number, opts: { indexBlockBytes?: number; compression?: 'lz4' | 'none'; chunkBytes?: number } = {}) {
  const w = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(start), end: L(end) }, noSync: true, ...opts })
  for (const e of entries) if (!w.put(e.key, e.lsn, e.value)) await w.drain()
  return w.finish()
}

function checkLookups(layer: DeltaLayer, entries: Entry[], seed: number, start: number, end: number, keysMax = Infinity): void {
  const rng = prng(seed)
  const keys = [...new Set(entries.map((e) => e.key))].filter((_, i) => i < keysMax)
  for (const key of keys) {
    const mine = entries.filter((e) => e.key === key)
    const ceilings = [start - 1, start, end - 1, end + 100, ...mine.map((e) => Number(e.lsn)), ...mine.map((e) => Number(e.lsn) - 1), randInt(rng, start, end)]
    for (const c of ceilings) {
      if (c < 0) continue
      const out: LsnValue[] = []
      const r = layer.getValues(key, L(c), out)
      const ref = refGetValues(entries, key, L(c))
      expect(out.map((v) => v.lsn)).toEqual(ref.values.map((v) => v.lsn))
      for (let i = 0; i < out.length; i++) expect(out[i]!.value.equals(ref.values[i]!.value)).toBe(true)
      expect(r).toBe(ref.complete ? 'complete' : 'incomplete')
    }
    // a floor cuts the walk even without a will-init value
    const floor = Number(mine[Math.floor(mine.length / 2)]!.lsn)
    const out: LsnValue[] = []
    layer.getValues(key, L(end), out, L(floor))
    expect(out.map((v) => v.lsn)).toEqual(refGetValues(entries, key, L(end), L(floor)).values.map((v) => v.lsn))
  }
}

describe('delta layer', () => {
  it('round-trips many keys and versions; lookups equal a brute-force reference (small index blocks)', async () => {
    await withTempDir('ps-delta-', async (dir) => {
      const entries = randomHistory(1, 300, 12, 0x1000, 0x9000, 300)
      const fin = await writeDelta(dir, entries, 0x1000, 0x9000, { indexBlockBytes: 256, chunkBytes: 4096, compression: 'lz4' })
      expect(fin.desc.kind).toBe('delta')
      expect(fin.desc.keyRange).toEqual({ start: MIN_KEY, end: MAX_KEY })
      expect(fin.path).toBe(join(dir, fin.desc.name))
      expect(fin.desc.name).toBe(`${MIN_KEY}-${MAX_KEY}__0000000000001000-0000000000009000`)
      expect(await readdir(dir)).toEqual([fin.desc.name])

      const layer = DeltaLayer.open(fin.path, { expectedName: fin.desc.name, expectedTenantId: TENANT, expectedTimelineId: TIMELINE })
      try {
        const s = layer.dumpSummary()
        expect(s).toMatchObject({ kind: 'delta', entryCount: entries.length, keyCount: 300, tenantId: TENANT, timelineId: TIMELINE, fileSizeBytes: fin.sizeBytes })
        expect(s.indexBlockCount).toBe(Math.ceil(entries.length / 6))
        checkLookups(layer, entries, 2, 0x1000, 0x9000)
        // absent keys between and around the present ones
        for (const key of [blockKey(1000, 1), blockKey(999, 0), blockKey(2000, 5), MIN_KEY]) {
          const out: LsnValue[] = []
          expect(layer.getValues(key, L(0xffff), out)).toBe('incomplete')
          expect(out).toEqual([])
        }
        const scanned = [...layer.entries()]
        expect(scanned.length).toBe(entries.length)
        for (let i = 0; i < entries.length; i++) {
          expect(scanned[i]!.key).toBe(entries[i]!.key)
          expect(scanned[i]!.lsn).toBe(entries[i]!.lsn)
          expect(scanned[i]!.willInit).toBe(entries[i]!.willInit)
          expect(scanned[i]!.value.equals(entries[i]!.value)).toBe(true)
        }
      } finally {
        layer.close()
      }
    })
  })

  it('round-trips with the default 4 KiB index blocks and, by default, no compression', async () => {
    await withTempDir('ps-delta-', async (dir) => {
      const entries = randomHistory(3, 2000, 4, 100, 5000, 120)
      const fin = await writeDelta(dir, entries, 100, 5000)
      const layer = DeltaLayer.open(fin.path)
      try {
        expect(layer.dumpSummary()).toMatchObject({ compressedCount: 0, indexBlockBytes: 4096, codec: 'none' })
        checkLookups(layer, entries, 4, 100, 5000, 150)
      } finally {
        layer.close()
      }
    })
  })

  it('follows a key whose versions span several index blocks, stopping at will-init', async () => {
    await withTempDir('ps-delta-', async (dir) => {
      const rng = prng(5)
      const key = blockKey(7, 7)
      const entries: Entry[] = [{ key: blockKey(7, 6), lsn: L(10), value: makeValue(rng, 10, true), willInit: true }]
      // 20 versions: an image at 20, records at 21..39 (none will-init) -> with 6 entries per block, 4 blocks
      entries.push({ key, lsn: L(20), value: makeValue(rng, 50, true), willInit: true })
      for (let l = 21; l < 40; l++) entries.push({ key, lsn: L(l), value: makeValue(rng, 30, false), willInit: false })
      entries.push({ key: blockKey(7, 8), lsn: L(15), value: makeValue(rng, 10, false), willInit: false })
      const fin = await writeDelta(dir, entries, 10, 50, { indexBlockBytes: 256 })
      const layer = DeltaLayer.open(fin.path)
      try {
        let out: LsnValue[] = []
        expect(layer.getValues(key, L(49), out)).toBe('complete')
        expect(out.map((v) => Number(v.lsn))).toEqual(Array.from({ length: 20 }, (_, i) => 39 - i))
        // block 0 holds entries 0..5: (7,6)@10, key@20..24; the walk from 39 crosses three block edges
        expect(layer.cacheStats.misses).toBeGreaterThanOrEqual(4)
        out = []
        expect(layer.getValues(key, L(25), out)).toBe('complete')
        expect(out.map((v) => Number(v.lsn))).toEqual([25, 24, 23, 22, 21, 20])
        out = []
        expect(layer.getValues(key, L(19), out)).toBe('incomplete')
        expect(out).toEqual([])
        out = []
        expect(layer.getValues(blockKey(7, 8), L(49), out)).toBe('incomplete')
        expect(out.map((v) => Number(v.lsn))).toEqual([15])
      } finally {
        layer.close()
      }
    })
  })

  it('compresses compressible large values with LZ4 and reads them back', async () => {
    await withTempDir('ps-delta-', async (dir) => {
      const rng = prng(6)
      const entries: Entry[] = []
      for (let i = 0; i < 50; i++) entries.push({ key: blockKey(1, i), lsn: L(100 + i), value: makeValue(rng, 8192, true, true), willInit: true })
      entries.push({ key: blockKey(1, 60), lsn: L(200), value: makeValue(rng, 8192, true, false), willInit: true }) // random: stays raw
      const fin = await writeDelta(dir, entries, 100, 300, { compression: 'lz4' })
      const layer = DeltaLayer.open(fin.path)
      try {
        const s = layer.dumpSummary()
        expect(s.codec).toBe('lz4')
        expect(s.compressedCount).toBe(50)
        expect(s.valueBytes).toBeLessThan(s.rawValueBytes / 2)
        for (const e of entries) {
          const out: LsnValue[] = []
          expect(layer.getValues(e.key, e.lsn, out)).toBe('complete')
          expect(out[0]!.value.equals(e.value)).toBe(true)
        }
      } finally {
        layer.close()
      }
    })
  })

  it('writes an L1 with a partial key range and an empty layer', async () => {
    await withTempDir('ps-delta-', async (dir) => {
      const rng = prng(7)
      const w = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, keyStart: blockKey(5, 0), lsnRange: { start: L(1), end: L(2) }, noSync: true })
      w.put(blockKey(5, 1), L(1), makeValue(rng, 5, true))
      const fin = await w.finish(blockKey(5, 10))
      expect(fin.desc.keyRange).toEqual({ start: blockKey(5, 0), end: blockKey(5, 10) })
      const layer = DeltaLayer.open(fin.path)
      expect(() => layer.getValues(blockKey(5, 10), L(1), [])).toThrow(AssertionFailure)
      layer.close()

      const empty = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(5), end: L(6) }, noSync: true })
      const fe = await empty.finish()
      const el = DeltaLayer.open(fe.path)
      expect(el.dumpSummary()).toMatchObject({ entryCount: 0, indexBlockCount: 0 })
      expect(el.getValues(blockKey(1, 1), L(5), [])).toBe('incomplete')
      expect([...el.entries()]).toEqual([])
      el.close()
    })
  })

  it('asserts the writer contract and abort removes the temp file', async () => {
    await withTempDir('ps-delta-', async (dir) => {
      const rng = prng(8)
      const w = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(10), end: L(20) }, noSync: true })
      w.put(blockKey(1, 2), L(12), makeValue(rng, 4, true))
      expect(() => w.put(blockKey(1, 2), L(12), makeValue(rng, 4, false))).toThrow(AssertionFailure) // same (key, lsn)
      expect(() => w.put(blockKey(1, 1), L(15), makeValue(rng, 4, false))).toThrow(/strictly increasing/)
      expect(() => w.put(blockKey(1, 3), L(20), makeValue(rng, 4, false))).toThrow(/outside the layer's LSN range/)
      expect(() => w.put(blockKey(1, 3), L(9), makeValue(rng, 4, false))).toThrow(AssertionFailure)
      expect(() => w.put(blockKey(1, 3), L(13), Buffer.alloc(1))).toThrow(/out of bounds/)
      const names = await readdir(dir)
      expect(names.length).toBe(1)
      expect(names[0]).toMatch(/___temp$/)
      await w.abort()
      expect(await readdir(dir)).toEqual([])
    })
  })

  it('honours backpressure with a small chunk size over large values', async () => {
    await withTempDir('ps-delta-', async (dir) => {
      const rng = prng(9)
      const entries: Entry[] = []
      for (let i = 0; i < 200; i++) entries.push({ key: blockKey(2, i), lsn: L(1000 + i), value: makeValue(rng, randInt(rng, 1000, 20000), true), willInit: true })
      const fin = await writeDelta(dir, entries, 1000, 2000, { chunkBytes: 1024, compression: 'none' })
      const layer = DeltaLayer.open(fin.path)
      try {
        const got = [...layer.entries()]
        expect(got.map((e) => e.value.length)).toEqual(entries.map((e) => e.value.length))
        expect(got.every((e, i) => e.value.equals(entries[i]!.value))).toBe(true)
      } finally {
        layer.close()
      }
    })
  })
})
