// LayerFileWriter.appendView / appendCopy + putPlaced (the L0 flush's path: values where they were placed,
// format version 2, LSNs as numbers) index values out of key order, and assert the index's invariants.
import { describe, expect, it } from 'vitest'
import { DeltaLayer } from '../../../src/core/layer/delta-layer.js'
import { LayerFileWriter } from '../../../src/core/layer/layer-file-writer.js'
import { LAYER_FORMAT_VERSION_PLACED } from '../../../src/core/layer/layer-format.js'
import { crc32c } from '../../../src/core/lib/crc32c.js'
import { AssertionFailure } from '../../../src/core/lib/errors.js'
import { MAX_KEY, MIN_KEY } from '../../../src/core/model/key.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import { TENANT, TIMELINE, blockKey, makeValue, prng, withTempDir } from './helpers.js'

const L = (n: number): Lsn => BigInt(n) as Lsn

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

  it('asserts order, LSN range and value bounds, and nothing after abort', async () => {
    await withTempDir('ps-placed-', async (dir) => {
      const w = await LayerFileWriter.create('delta', MIN_KEY, { start: L(100), end: L(200) }, { dir, tenantId: TENANT, timelineId: TIMELINE, noSync: true })
      const v = Buffer.from([1, 0, 7, 7])
      const at = await w.appendCopy(v)
      v.fill(0) // copied: the file keeps the bytes
      w.putPlaced(blockKey(1, 5), 150, at, 4, false, 0)
      expect(() => w.putPlaced(blockKey(1, 5), 150, at, 4, false, 0)).toThrow(AssertionFailure)
      expect(() => w.putPlaced(blockKey(1, 4), 160, at, 4, false, 0)).toThrow(/increasing/)
      expect(() => w.putPlaced(blockKey(1, 6), 200, at, 4, false, 0)).toThrow(/outside/)
      expect(() => w.putPlaced(blockKey(1, 6), 160, at, 1, false, 0)).toThrow(/out of bounds/)
      w.putPlaced(blockKey(1, 5), 151, at, 4, false, 0)
      await w.abort()
      expect(() => w.putPlaced(blockKey(1, 7), 160, at, 4, false, 0)).toThrow(/aborted/)
      expect(() => w.appendView(v)).toThrow(/aborted/)
    })
  })
})
