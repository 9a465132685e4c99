// The in-memory layer: values spill through a small write buffer to its ephemeral file and read back;
// lookups equal a brute-force reference before and after freeze; sortedEntries equals what was put, in
// (key, lsn) order, through both read paths; a flush of it into a delta layer answers the same lookups;
// same-LSN puts replace; the lifecycle is asserted; ephemeral files are removed.
import { open, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DeltaLayer, DeltaLayerWriter } from '../../../src/core/layer/delta-layer.js'
import { InMemoryLayer, removeEphemeralFiles } from '../../../src/core/layer/inmemory-layer.js'
import type { LsnValue } from '../../../src/core/layer/layer-read.js'
import { AssertionFailure, CorruptionError } from '../../../src/core/lib/errors.js'
import type { Key } from '../../../src/core/model/key.js'
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

describe('in-memory layer', () => {
  it('spills through a small write buffer and reads everything back, before and after freeze', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      const layer = InMemoryLayer.create({ dir, fileId: 7, startLsn: L(1000), writeBufferBytes: 4096 })
      try {
        expect(layer.path).toBe(join(dir, 'ephemeral-7'))
        const entries = fill(layer, 31, 3000, 150, 1000)
        const maxLsn = Number(entries.reduce((m, e) => (e.lsn > m ? e.lsn : m), 0n))
        expect(layer.entryCount).toBe(3000)
        expect(layer.keyCount).toBe(new Set(entries.map((e) => e.key)).size)
        const valueBytes = entries.reduce((s, e) => s + e.value.length, 0)
        expect(layer.sizeBytes).toBe(valueBytes)
        // spilled: the file holds all but at most one write buffer of the values
        const onDisk = (await stat(layer.path)).size
        expect(onDisk).toBeGreaterThan(valueBytes - 4096)
        expect(onDisk).toBeLessThanOrEqual(valueBytes)
        checkAgainstRef(layer, entries, 32, 150, maxLsn)
        expect(layer.endLsn).toBeNull()
        layer.freeze(L(maxLsn + 1))
        expect(layer.lsnRange).toEqual({ start: L(1000), end: L(maxLsn + 1) })
        checkAgainstRef(layer, entries, 33, 150, maxLsn)
        expect(() => layer.put(blockKey(100, 1), L(maxLsn + 5), Buffer.alloc(2))).toThrow(AssertionFailure)

        for (const readAllMax of [Infinity, 0]) {
          const got = [...layer.sortedEntries(readAllMax)]
          expect(got.length).toBe(entries.length)
          for (let i = 0; i < got.length; i++) {
            expect(got[i]!.key).toBe(entries[i]!.key)
            expect(got[i]!.lsn).toBe(entries[i]!.lsn)
            expect(got[i]!.willInit).toBe(entries[i]!.willInit)
            expect(got[i]!.value.equals(entries[i]!.value)).toBe(true)
          }
        }
      } finally {
        layer.delete()
      }
      expect(await readdir(dir)).toEqual([])
    })
  })

  it('flushes into a delta layer that answers the same lookups', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      const layer = InMemoryLayer.create({ dir, fileId: 1, startLsn: L(0x100) })
      const entries = fill(layer, 34, 5000, 400, 0x100)
      const end = Number(entries.reduce((m, e) => (e.lsn > m ? e.lsn : m), 0n)) + 1
      layer.freeze(L(end))
      const w = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(0x100), end: L(end) }, noSync: true })
      for (const e of layer.sortedEntries()) if (!w.put(e.key, e.lsn, e.value, e.crc)) await w.drain()
      const fin = await w.finish()
      layer.delete()
      const delta = DeltaLayer.open(fin.path)
      try {
        checkAgainstRef(delta, entries, 35, 400, end)
      } finally {
        delta.close()
      }
      expect(await readdir(dir)).toEqual([fin.desc.name])
    })
  })

  it('replaces a version put again at the same LSN and asserts the LSN order', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      const rng = prng(36)
      const layer = InMemoryLayer.create({ dir, fileId: 2, startLsn: L(10), writeBufferBytes: 64 })
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
        expect(() => layer.put(k, L(11), b)).toThrow(/older than its version/)
        expect(() => layer.put(blockKey(1, 2), L(9), b)).toThrow(/below the layer start/)
        expect(() => layer.put(blockKey(1, 2), L(20), Buffer.alloc(1))).toThrow(/out of bounds/)
        expect(() => layer.freeze(L(12))).toThrow(/below a put/)
        expect(() => layer.sortedEntries().next()).toThrow(/not frozen/)
        // a value larger than the write buffer goes straight to the file
        const big = makeValue(rng, 1000, true)
        layer.put(blockKey(1, 3), L(13), big)
        const o2: LsnValue[] = []
        layer.getValues(blockKey(1, 3), L(13), o2)
        expect(o2[0]!.value.equals(big)).toBe(true)
        layer.freeze(L(14))
        expect([...layer.sortedEntries()].map((e) => [e.key, e.lsn])).toEqual([
          [k, L(10)],
          [k, L(12)],
          [blockKey(1, 3), L(13)],
        ])
      } finally {
        layer.delete()
      }
    })
  })

  it('reports a damaged ephemeral file as corruption, never a wrong value', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      const rng = prng(37)
      const layer = InMemoryLayer.create({ dir, fileId: 4, startLsn: L(1), writeBufferBytes: 64 })
      try {
        for (let i = 0; i < 20; i++) layer.put(blockKey(1, i), L(10 + i), makeValue(rng, 50, true))
        const fh = await open(layer.path, 'r+')
        await fh.write(Buffer.from([0xee]), 0, 1, 5 * 52 + 10) // inside the value of key 5
        await fh.close()
        expect(layer.getValues(blockKey(1, 4), L(100), [])).toBe('complete')
        expect(() => layer.getValues(blockKey(1, 5), L(100), [])).toThrow(/ephemeral-4: value of .* fails its checksum/)
        layer.freeze(L(100))
        expect(() => [...layer.sortedEntries()]).toThrow(CorruptionError)
      } finally {
        layer.delete()
      }
    })
  })

  it('removeEphemeralFiles removes only ephemeral files; a second layer with the same id is refused', async () => {
    await withTempDir('ps-inmem-', async (dir) => {
      const a = InMemoryLayer.create({ dir, fileId: 3, startLsn: L(1) })
      expect(() => InMemoryLayer.create({ dir, fileId: 3, startLsn: L(1) })).toThrow(/failed|exists/)
      a.close()
      await writeFile(join(dir, 'ephemeral-99'), 'x')
      await writeFile(join(dir, 'metadata'), 'x')
      expect((await removeEphemeralFiles(dir)).sort()).toEqual(['ephemeral-3', 'ephemeral-99'])
      expect(await readdir(dir)).toEqual(['metadata'])
    })
  })
})
