// The in-memory layer: values in slabs, spilled to its ephemeral file beyond the pool's budget and read
// back from either place; lookups equal a brute-force reference before and after freeze and spills; the L0
// flush (writeL0) of it answers the same lookups, from slabs, from the file and from a mix; values encoded
// in place (putRecord, reserveImage + commit) equal encodeValue's; same-LSN puts replace; the lifecycle is
// asserted; a damaged spill file is corruption naming the file, never a wrong value; ephemeral files go.
import { mkdir as mkdirP, open, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DeltaLayer } from '../../../src/core/layer/delta-layer.js'
import { InMemoryLayer, removeEphemeralFiles } from '../../../src/core/layer/inmemory-layer.js'
import { writeL0 } from '../../../src/core/layer/l0-flush.js'
import type { LsnValue } from '../../../src/core/layer/layer-read.js'
import { SlabPool } from '../../../src/core/layer/value-slabs.js'
import { AssertionFailure, CorruptionError } from '../../../src/core/lib/errors.js'
import { keyPrefixOf, type Key } from '../../../src/core/model/key.js'
import { encodeValue, imageValue, recordValue } from '../../../src/core/model/value.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import { TENANT, TIMELINE, blockKey, compareEntry, makeValue, prng, randInt, refGetValues, withTempDir, type Entry } from './helpers.js'

const L = (n: number): Lsn => BigInt(n) as Lsn

/** Puts `n` random values: a global LSN that only grows, keys drawn at random from `keysN`. */
function fill(layer: InMemoryLayer, seed: number, n: number, keysN: number, startLsn: number): Entry[] {
  const rng = prng(seed)
  const entries: Entry[] = []
  let lsn = startLsn
  for (let i = 0; i < n; i++) {
    lsn += randInt(rng, 1, 40)
    const key = blockKey(100, randInt(rng, 0, keysN - 1))
    const willInit = rng() < 0.2
    const len = rng() < 0.02 ? randInt(rng, 1000, 64 * 1024) : randInt(rng, 0, 200)
    const value = makeValue(rng, len, willInit)
    layer.put(key, L(lsn), value)
    entries.push({ key, lsn: L(lsn), value, willInit })
  }
  return entries.sort(compareEntry)
}

function checkAgainstRef(layer: { getValues(k: Key, c: Lsn, out: LsnValue[], f?: Lsn): string }, entries: Entry[], seed: number, keysN: number, maxLsn: number): void {
  const rng = prng(seed)
  for (let i = 0; i < 400; i++) {
    const key = blockKey(100, randInt(rng, 0, keysN))
    const ceil = L(randInt(rng, 0, maxLsn + 10))
    const out: LsnValue[] = []
    const r = layer.getValues(key, ceil, out)
    const ref = refGetValues(entries, key, ceil)
    expect(out.map((v) => v.lsn)).toEqual(ref.values.map((v) => v.lsn))
    expect(out.every((v, j) => v.value.equals(ref.values[j]!.value))).toBe(true)
    expect(r).toBe(ref.complete ? 'complete' : 'incomplete')
  }
}

const maxLsnOf = (entries: Entry[]) => Number(entries.reduce((m, e) => (e.lsn > m ? e.lsn : m), 0n))

/** Flushes a frozen layer in-thread; returns the delta layer file opened. */
async function flush(layer: InMemoryLayer, dir: string): Promise<DeltaLayer> {
  const fin = await writeL0({ layer: layer.beginFlush(), dir, tenantId: TENANT, timelineId: TIMELINE, noSync: true })
  return DeltaLayer.open(fin.path)
}

/** Entries in a form vitest compares quickly (values as hex). */
const plain = (es: Entry[]) => es.map((e) => ({ key: e.key, lsn: e.lsn, value: e.value.toString('hex'), willInit: e.willInit }))

function allEntries(delta: DeltaLayer): Entry[] {
  return [...delta.entries()].map((e) => ({ key: e.key, lsn: e.lsn, value: Buffer.from(e.value), willInit: e.willInit }))
}

describe('in-memory layer', () => {
  it('keeps values in slabs without a file while under budget, and flushes them into an equal L0', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      const pool = new SlabPool({ slabBytes: 4096, residentBytesMax: 64 * 1024 * 1024 })
      const layer = InMemoryLayer.create({ dir, fileId: 1, startLsn: L(0x100), pool })
      const entries = fill(layer, 34, 5000, 400, 0x100)
      expect(layer.entryCount).toBe(5000)
      expect(layer.keyCount).toBe(new Set(entries.map((e) => e.key)).size)
      expect(layer.sizeBytes).toBe(entries.reduce((s, e) => s + e.value.length, 0))
      expect(layer.spilledBytes).toBe(0)
      expect(await readdir(dir)).toEqual([])
      const end = maxLsnOf(entries) + 1
      checkAgainstRef(layer, entries, 35, 400, end)
      layer.freeze(L(end))
      const delta = await flush(layer, dir)
      // the frozen layer answers reads until it is deleted
      checkAgainstRef(layer, entries, 36, 400, end)
      layer.delete()
      expect(pool.residentBytes).toBe(0)
      try {
        expect(plain(allEntries(delta))).toEqual(plain(entries))
        checkAgainstRef(delta, entries, 37, 400, end)
      } finally {
        delta.close()
      }
      expect(await readdir(dir)).toEqual([delta.desc.name])
    })
  })

  it('spills slabs beyond the budget to its ephemeral file and reads them back, open, frozen and in the flush', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      // The budget counts the layer's index (its 4096-entry record array, keys) as well as its slabs.
      const budget = 16 * 4096 + 4096 * 32 + 1024 * 16 + 150 * 96
      const pool = new SlabPool({ slabBytes: 4096, residentBytesMax: budget })
      const layer = InMemoryLayer.create({ dir, fileId: 7, startLsn: L(1000), pool })
      try {
        expect(layer.path).toBe(join(dir, 'ephemeral-7'))
        const entries = fill(layer, 31, 3000, 150, 1000)
        const maxLsn = maxLsnOf(entries)
        const valueBytes = entries.reduce((s, e) => s + e.value.length, 0)
        expect(layer.sizeBytes).toBe(valueBytes)
        // most values went to the file; memory stayed within the budget (plus one large value's slab)
        expect(layer.spilledBytes).toBeGreaterThan(valueBytes - 16 * 4096 - 65 * 1024)
        expect((await stat(layer.path)).size).toBe(layer.spilledBytes)
        expect(pool.stats.overBudget).toBe(0)
        expect(pool.residentBytes + pool.pooledBytes + layer.indexBytes).toBeLessThanOrEqual(budget)
        checkAgainstRef(layer, entries, 32, 150, maxLsn)
        layer.freeze(L(maxLsn + 1))
        expect(layer.lsnRange).toEqual({ start: L(1000), end: L(maxLsn + 1) })
        checkAgainstRef(layer, entries, 33, 150, maxLsn)
        expect(() => layer.put(blockKey(100, 1), L(maxLsn + 5), Buffer.alloc(2))).toThrow(AssertionFailure)
        const delta = await flush(layer, dir)
        try {
          expect(plain(allEntries(delta))).toEqual(plain(entries))
        } finally {
          delta.close()
        }
      } finally {
        layer.delete()
      }
      expect((await readdir(dir)).filter((n) => n.startsWith('ephemeral'))).toEqual([])
    })
  })

  it('a frozen layer waiting for its flush spills before the open one, and not while it is flushed', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      // The two layers' indexes (records and key heads at their first capacity, and their keys), measured
      // on layers holding the same keys, and 8 slabs.
      const indexBytes = async (blocks: number[]): Promise<number> => {
        const probe = InMemoryLayer.create({ dir, fileId: 99, startLsn: L(1), pool: new SlabPool({ slabBytes: 1024 }) })
        for (const b of blocks) probe.put(blockKey(1, b), L(1), makeValue(prng(1), 10, false))
        const n = probe.indexBytes
        probe.delete()
        return n
      }
      const budget = (await indexBytes([0, 1, 2, 3, 4, 5])) + (await indexBytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 20])) + 8 * 1024
      const pool = new SlabPool({ slabBytes: 1024, residentBytesMax: budget })
      const rng = prng(40)
      const a = InMemoryLayer.create({ dir, fileId: 1, startLsn: L(1), pool })
      for (let i = 0; i < 6; i++) a.put(blockKey(1, i), L(1 + i), makeValue(rng, 900, true))
      a.freeze(L(100))
      const b = InMemoryLayer.create({ dir, fileId: 2, startLsn: L(100), pool })
      for (let i = 0; i < 4; i++) b.put(blockKey(1, i), L(100 + i), makeValue(rng, 900, false))
      expect(a.spilledBytes).toBeGreaterThan(0) // the frozen layer went first
      expect(b.spilledBytes).toBe(0)
      a.endFlush() // no-op unless flushing
      const data = a.beginFlush()
      const resident = a.residentSlabBytesNow
      for (let i = 4; i < 12; i++) b.put(blockKey(1, i), L(100 + i), makeValue(rng, 900, false))
      expect(a.residentSlabBytesNow).toBe(resident) // never spilled while flushing
      expect(b.spilledBytes).toBeGreaterThan(0) // the open layer spilled its own old slabs instead
      expect(data.slabs.filter((s) => s !== null).length * 1024).toBe(resident)
      a.endFlush() // a failed flush: spillable again
      b.put(blockKey(1, 20), L(200), makeValue(rng, 900, false))
      expect(a.residentSlabBytesNow).toBeLessThan(resident)
      a.delete()
      b.delete()
      expect(pool.residentBytes).toBe(0)
    })
  })

  it('encodes records and images in place exactly as encodeValue does', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      const pool = new SlabPool({ slabBytes: 1024 })
      const layer = InMemoryLayer.create({ dir, fileId: 1, startLsn: L(1), pool })
      try {
        const raw = Buffer.from('a WAL record')
        layer.putRecord(blockKey(1, 1), L(5), raw, false)
        layer.putRecord(blockKey(1, 2), L(5), raw, true)
        const page = Buffer.alloc(3000, 0x5a) // larger than a slab: a slab of its own
        layer.reserveImage(page.length).set(page)
        layer.commit(blockKey(1, 3), L(6))
        // an abandoned reservation is overwritten by the next value
        layer.reserveImage(10).fill(1)
        layer.putRecord(blockKey(1, 4), L(7), raw, false)
        expect(() => layer.commit(blockKey(1, 5), L(8))).toThrow(/without a reservation/)
        const get = (blk: number) => {
          const out: LsnValue[] = []
          layer.getValues(blockKey(1, blk), L(10), out)
          return out.map((v) => v.value)
        }
        expect(get(1)).toEqual([encodeValue(recordValue(raw, false))])
        expect(get(2)).toEqual([encodeValue(recordValue(raw, true))])
        expect(get(3)).toEqual([encodeValue(imageValue(page))])
        expect(get(4)).toEqual([encodeValue(recordValue(raw, false))])
        expect(layer.getValues(blockKey(1, 2), L(10), [])).toBe('complete')
        expect(layer.getValues(blockKey(1, 1), L(10), [])).toBe('incomplete')
      } finally {
        layer.delete()
      }
    })
  })

  it('addresses a key the same given whole or as prefix and field6, and flushes it under its whole name', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      const layer = InMemoryLayer.create({ dir, fileId: 3, startLsn: L(1), pool: new SlabPool({ slabBytes: 1024 }) })
      try {
        const raw = Buffer.from('a WAL record')
        const prefix = keyPrefixOf(blockKey(1, 0))
        layer.putRecordAt(prefix, 7, L(2), raw, true)
        layer.putRecord(blockKey(1, 7), L(3), raw, false) // the same key, whole
        layer.reserveImage(8).fill(0x11)
        layer.commitAt(prefix, 7, L(4))
        layer.putRecordAt(prefix, 0xffff_ffff, L(4), raw, false) // a size-like key, beyond the paged range
        const out: LsnValue[] = []
        expect(layer.getValues(blockKey(1, 7), L(10), out)).toBe('complete')
        expect(out.map((v) => v.lsn)).toEqual([L(4)])
        const all: LsnValue[] = []
        layer.getValues(blockKey(1, 7), L(3), all)
        expect(all.map((v) => v.lsn)).toEqual([L(3), L(2)])
        expect(layer.keyCount).toBe(2)
        expect(() => layer.putRecordAt(prefix, 7, L(3), raw, false)).toThrow(/older than its version/)
        layer.freeze(L(10))
        expect(layer.beginFlush().keys).toEqual([blockKey(1, 7), blockKey(1, 0xffff_ffff)])
      } finally {
        layer.delete()
      }
    })
  })

  it('replaces a version put again at the same LSN and asserts the LSN order and the lifecycle', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      const rng = prng(36)
      const layer = InMemoryLayer.create({ dir, fileId: 2, startLsn: L(10), pool: new SlabPool({ slabBytes: 256 }) })
      try {
        const k = blockKey(1, 1)
        const a = makeValue(rng, 10, true)
        const b = makeValue(rng, 20, false)
        const c = makeValue(rng, 30, false)
        layer.put(k, L(10), a)
        layer.put(k, L(12), b)
        layer.put(k, L(12), c) // replaces b
        expect(layer.entryCount).toBe(2)
        const out: LsnValue[] = []
        expect(layer.getValues(k, L(100), out)).toBe('complete')
        expect(out.map((v) => v.lsn)).toEqual([L(12), L(10)])
        expect(out[0]!.value.equals(c)).toBe(true)
        expect(out[1]!.value.equals(a)).toBe(true)
        // values handed out are copies: the slab may be reused later
        expect(out[0]!.value.buffer).not.toBeInstanceOf(SharedArrayBuffer)
        expect(() => layer.put(k, L(11), b)).toThrow(/older than its version/)
        expect(() => layer.put(blockKey(1, 2), L(9), b)).toThrow(/below the layer start/)
        expect(() => layer.put(blockKey(1, 2), L(20), Buffer.alloc(1))).toThrow(/out of bounds/)
        expect(() => layer.freeze(L(12))).toThrow(/below a put/)
        expect(() => layer.beginFlush()).toThrow(/flush of a open/)
        const big = makeValue(rng, 1000, true) // larger than a slab
        layer.put(blockKey(1, 3), L(13), big)
        const o2: LsnValue[] = []
        layer.getValues(blockKey(1, 3), L(13), o2)
        expect(o2[0]!.value.equals(big)).toBe(true)
        layer.freeze(L(14))
        expect(() => layer.freeze(L(15))).toThrow(/freeze of a frozen/)
        const delta = await flush(layer, dir)
        try {
          expect(allEntries(delta).map((e) => [e.key, e.lsn])).toEqual([
            [k, L(10)],
            [k, L(12)],
            [blockKey(1, 3), L(13)],
          ])
        } finally {
          delta.close()
        }
      } finally {
        layer.delete()
      }
      expect(() => layer.getValues(blockKey(1, 1), L(20), [])).toThrow(/closed/)
    })
  })

  it('reports a damaged spill file as corruption naming it, never a wrong value, in reads and in the flush', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      const rng = prng(37)
      const pool = new SlabPool({ slabBytes: 256, residentBytesMax: 256 })
      const layer = InMemoryLayer.create({ dir, fileId: 4, startLsn: L(1), pool })
      try {
        // 52-byte values, four per 256-byte slab; all slabs but the current one are spilled
        for (let i = 0; i < 20; i++) layer.put(blockKey(1, i), L(10 + i), makeValue(rng, 50, i % 2 === 0))
        expect(layer.spilledBytes).toBe(4 * 208)
        const fh = await open(layer.path, 'r+')
        await fh.write(Buffer.from([0xee]), 0, 1, 5 * 52 + 10) // inside the value of block 5
        await fh.close()
        expect(layer.getValues(blockKey(1, 4), L(100), [])).toBe('complete')
        expect(() => layer.getValues(blockKey(1, 5), L(100), [])).toThrow(CorruptionError)
        expect(() => layer.getValues(blockKey(1, 5), L(100), [])).toThrow(new RegExp(`ephemeral-4: value of ${blockKey(1, 5)} at .* fails its checksum`))
        layer.freeze(L(100))
        await expect(writeL0({ layer: layer.beginFlush(), dir, tenantId: TENANT, timelineId: TIMELINE, noSync: true })).rejects.toThrow(CorruptionError)
        // nothing half-written is left behind
        expect((await readdir(dir)).sort()).toEqual(['ephemeral-4'])
      } finally {
        layer.delete()
      }
      expect(await readdir(dir)).toEqual([])
    })
  })

  it('removeEphemeralFiles removes only ephemeral files; a layer whose spill file exists fails to spill', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      await writeFile(join(dir, 'ephemeral-3'), 'x')
      const pool = new SlabPool({ slabBytes: 256, residentBytesMax: 256 })
      const a = InMemoryLayer.create({ dir, fileId: 3, startLsn: L(1), pool })
      const rng = prng(38)
      a.put(blockKey(1, 1), L(2), makeValue(rng, 200, true))
      expect(() => a.put(blockKey(1, 2), L(3), makeValue(rng, 200, true))).toThrow(/ephemeral-3 failed/)
      a.close()
      await writeFile(join(dir, 'ephemeral-99'), 'x')
      await writeFile(join(dir, 'metadata'), 'x')
      expect((await removeEphemeralFiles(dir)).sort()).toEqual(['ephemeral-3', 'ephemeral-99'])
      expect(await readdir(dir)).toEqual(['metadata'])
    })
  })
})

describe('in-memory layer flush of spilled slabs', () => {
  it('reads spilled slabs back whole when the pool has memory free, else value by value: the same L0', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      const pool = new SlabPool({ slabBytes: 4096, residentBytesMax: 32 * 4096 })
      const spilled = InMemoryLayer.create({ dir, fileId: 1, startLsn: L(1000), pool })
      const entries = fill(spilled, 61, 2000, 100, 1000)
      const end = maxLsnOf(entries) + 1
      spilled.freeze(L(end))
      expect(spilled.spilledBytes).toBeGreaterThan(0)
      // With the budget taken by another layer's slabs, nothing is lent: values are read one by one.
      const other = InMemoryLayer.create({ dir, fileId: 2, startLsn: L(end), pool })
      for (let i = 0; i < 40; i++) other.put(blockKey(200, i), L(end + i), Buffer.alloc(3000, 1))
      const first = spilled.beginFlush()
      expect(first.reloadSlabs.every((r) => r === null)).toBe(true)
      await mkdirP(join(dir, 'a'))
      const a = await writeL0({ layer: first, dir: join(dir, 'a'), tenantId: TENANT, timelineId: TIMELINE, noSync: true })
      spilled.endFlush()
      // With that memory free again, spilled slabs are read back whole.
      other.delete()
      const second = spilled.beginFlush()
      expect(second.reloadSlabs.filter((r) => r !== null).length).toBeGreaterThan(0)
      await mkdirP(join(dir, 'b'))
      const b = await writeL0({ layer: second, dir: join(dir, 'b'), tenantId: TENANT, timelineId: TIMELINE, noSync: true })
      spilled.delete()
      expect(pool.residentBytes).toBe(0) // lent slabs came back with the layer's
      expect((await readFile(a.path)).equals(await readFile(b.path))).toBe(true)
      const delta = DeltaLayer.open(b.path)
      try {
        expect(plain(allEntries(delta))).toEqual(plain(entries))
      } finally {
        delta.close()
      }
    })
  })
})
