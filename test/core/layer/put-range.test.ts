// LayerFileWriter.putRange (the L0 flush's path: a value as a range of a slab, its LSN as a number) writes
// exactly the file `put` writes for the same entries, mixes with `put`, and asserts the same invariants;
// appendView + putPlaced (values where they were placed, format version 2) index values out of key order.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DeltaLayer } from '../../../src/core/layer/delta-layer.js'
import { LayerFileWriter } from '../../../src/core/layer/layer-file-writer.js'
import { LAYER_FORMAT_VERSION_PLACED } from '../../../src/core/layer/layer-format.js'
import { crc32c } from '../../../src/core/lib/crc32c.js'
import { AssertionFailure } from '../../../src/core/lib/errors.js'
import { MAX_KEY, MIN_KEY } from '../../../src/core/model/key.js'
import { encodedValueWillInit } from '../../../src/core/model/value.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import { mkdir } from 'node:fs/promises'
import { TENANT, TIMELINE, blockKey, makeValue, prng, randInt, withTempDir } from './helpers.js'

const L = (n: number): Lsn => BigInt(n) as Lsn

describe('LayerFileWriter.putRange', () => {
  it('writes the same file as put, alone and mixed with put', async () => {
    await withTempDir('ps-putrange-', async (dir) => {
      const rng = prng(71)
      const slab = Buffer.alloc(1 << 20)
      const entries: Array<{ key: ReturnType<typeof blockKey>; lsn: number; at: number; len: number }> = []
      let at = 0
      let lsn = 0x1_0000_0000 - 50 // LSNs crossing 2^32
      for (let k = 0; k < 300; k++) {
        for (let v = 0; v < randInt(rng, 1, 5); v++) {
          lsn += randInt(rng, 1, 30)
          const value = makeValue(rng, rng() < 0.05 ? 8192 : randInt(rng, 0, 200), rng() < 0.2)
          value.copy(slab, at)
          entries.push({ key: blockKey(3, k), lsn, at, len: value.length })
          at += value.length
        }
      }
      const range = { start: L(0x1_0000_0000 - 50), end: L(lsn + 1) }
      const files: Buffer[] = []
      for (const mode of ['put', 'putRange', 'mixed'] as const) {
        const sub = join(dir, mode)
        await mkdir(sub)
        const w = await LayerFileWriter.create('delta', MIN_KEY, range, { dir: sub, tenantId: TENANT, timelineId: TIMELINE, noSync: true, indexBlockBytes: 512 })
        for (const [i, e] of entries.entries()) {
          const value = slab.subarray(e.at, e.at + e.len)
          const willInit = encodedValueWillInit(value)
          const viaRange = mode === 'putRange' || (mode === 'mixed' && i % 3 !== 0)
          const ok = viaRange ? w.putRange(e.key, e.lsn, slab, e.at, e.at + e.len, willInit, -1) : w.put(e.key, L(e.lsn), value, willInit)
          if (!ok) await w.drain()
        }
        files.push(await readFile((await w.finish(blockKey(4, 0))).path))
      }
      expect(files[1]!.equals(files[0]!)).toBe(true)
      expect(files[2]!.equals(files[0]!)).toBe(true)
    })
  })

  it('asserts order, LSN range and value bounds', async () => {
    await withTempDir('ps-putrange-', async (dir) => {
      const w = await LayerFileWriter.create('delta', MIN_KEY, { start: L(100), end: L(200) }, { dir, tenantId: TENANT, timelineId: TIMELINE, noSync: true })
      const v = Buffer.from([1, 0, 7, 7])
      w.putRange(blockKey(1, 5), 150, v, 0, 4, false, -1)
      expect(() => w.putRange(blockKey(1, 5), 150, v, 0, 4, false, -1)).toThrow(AssertionFailure)
      expect(() => w.putRange(blockKey(1, 4), 160, v, 0, 4, false, -1)).toThrow(/increasing/)
      expect(() => w.put(blockKey(1, 5), L(149), v, false)).toThrow(/increasing/)
      expect(() => w.putRange(blockKey(1, 6), 200, v, 0, 4, false, -1)).toThrow(/outside/)
      expect(() => w.putRange(blockKey(1, 6), 160, v, 0, 1, false, -1)).toThrow(/out of bounds/)
      w.put(blockKey(1, 5), L(151), v, false)
      w.putRange(blockKey(1, 5), 152, v, 0, 4, false, -1)
      await w.abort()
      expect(() => w.putRange(blockKey(1, 7), 160, v, 0, 4, false, -1)).toThrow(/aborted/)
    })
  })
})

describe('LayerFileWriter.appendView / putPlaced', () => {
  it('indexes values where they were placed, in key order, and refuses what would break the format', async () => {
    await withTempDir('ps-placed-', async (dir) => {
      const rng = prng(72)
      const range = { start: L(10), end: L(1000) }
      const opts = { dir, tenantId: TENANT, timelineId: TIMELINE, noSync: true, compression: 'none' as const }
      const w = await LayerFileWriter.create('delta', MIN_KEY, { start: L(10), end: L(0xffff_ffff) }, opts)
      const a = makeValue(rng, 100, true)
      const b = makeValue(rng, 8192, true)
      const offA = w.appendView(a)
      const offB = w.appendView(b)
      expect(offB).toBe(offA + a.length)
      w.setLsnEnd(range.end)
      // b's key comes first: the index is in key order, the values are not.
      w.putPlaced(blockKey(1, 1), 20, offB, b.length, true, crc32c(b))
      w.putPlaced(blockKey(1, 2), 30, offA, a.length, true, crc32c(a))
      expect(() => w.putPlaced(blockKey(1, 2), 30, offA, a.length, true, crc32c(a))).toThrow(AssertionFailure)
      expect(() => w.putPlaced(blockKey(1, 3), 40, offB, b.length + 1, true, 0)).toThrow(/outside the values appended/)
      expect(() => w.putPlaced(blockKey(1, 3), 1000, offA, a.length, true, 0)).toThrow(/outside the layer's LSN range/)
      expect(() => w.setLsnEnd(L(2000))).toThrow(AssertionFailure)
      expect(() => w.put(blockKey(1, 9), L(50), a, true)).toThrow(AssertionFailure)
      const fin = await w.finish(MAX_KEY)
      expect(fin.desc.lsnRange).toEqual(range)
      const layer = DeltaLayer.open(fin.path)
      try {
        expect(layer.dumpSummary().formatVersion).toBe(LAYER_FORMAT_VERSION_PLACED)
        expect([...layer.entries()].map((e) => [e.key, e.lsn, e.value.equals(e.key === blockKey(1, 1) ? b : a)])).toEqual([
          [blockKey(1, 1), L(20), true],
          [blockKey(1, 2), L(30), true],
        ])
      } finally {
        layer.close()
      }
      const v1 = await LayerFileWriter.create('delta', MIN_KEY, range, opts)
      v1.put(blockKey(1, 1), L(20), a, true)
      expect(() => v1.appendView(b)).toThrow(/not be in key order/)
      await v1.abort()
    })
  })
})
