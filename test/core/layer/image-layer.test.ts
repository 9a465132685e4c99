// Image layer files: every key's image at one LSN; present keys are 'complete', keys in range but absent
// are 'missing' (they do not exist at that LSN), LSNs below the image are 'incomplete'; writer assertions.
import { describe, expect, it } from 'vitest'
import { DeltaLayer } from '../../../src/core/layer/delta-layer.js'
import { ImageLayer, ImageLayerWriter } from '../../../src/core/layer/image-layer.js'
import type { LsnValue } from '../../../src/core/layer/layer-read.js'
import { AssertionFailure, CorruptionError } from '../../../src/core/lib/errors.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import { TENANT, TIMELINE, blockKey, makeValue, prng, randInt, withTempDir } from './helpers.js'

const L = (n: number): Lsn => BigInt(n) as Lsn

describe('image layer', () => {
  it('round-trips 8 KiB images and tells present, missing and below-the-LSN apart', async () => {
    await withTempDir('ps-image-', async (dir) => {
      const rng = prng(11)
      const lsn = L(0x16b3748)
      const w = await ImageLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, keyStart: blockKey(10, 0), lsn, noSync: true, indexBlockBytes: 512 })
      const present = new Map<string, Buffer>()
      for (let blk = 0; blk < 1000; blk++) {
        if (blk % 3 === 1) continue // holes: keys in range that do not exist
        const v = makeValue(rng, blk % 10 === 0 ? randInt(rng, 0, 300) : 8192, true, rng() < 0.7)
        present.set(blockKey(10, blk), v)
        if (!w.put(blockKey(10, blk), v)) await w.drain()
      }
      const fin = await w.finish(blockKey(11, 0))
      expect(fin.desc.name).toBe(`${blockKey(10, 0)}-${blockKey(11, 0)}__00000000016B3748`)
      expect(fin.desc.lsnRange).toEqual({ start: lsn, end: lsn + 1n })

      const layer = ImageLayer.open(fin.path, { expectedName: fin.desc.name })
      try {
        expect(layer.dumpSummary()).toMatchObject({ kind: 'image', entryCount: present.size, keyCount: present.size })
        expect(layer.dumpSummary().compressedCount).toBeGreaterThan(0)
        for (let blk = 0; blk < 1000; blk++) {
          const key = blockKey(10, blk)
          const out: LsnValue[] = []
          const r = layer.getValues(key, L(0xffffffff), out)
          if (present.has(key)) {
            expect(r).toBe('complete')
            expect(out.length).toBe(1)
            expect(out[0]!.lsn).toBe(lsn)
            expect(out[0]!.value.equals(present.get(key)!)).toBe(true)
            expect(layer.containsKey(key)).toBe(true)
          } else {
            expect(r).toBe('missing')
            expect(out).toEqual([])
            expect(layer.containsKey(key)).toBe(false)
          }
          expect(layer.getValues(key, (lsn - 1n) as Lsn, [])).toBe('incomplete')
          expect(layer.getValues(key, lsn, [], (lsn + 1n) as Lsn)).toBe('incomplete')
        }
        // a key after the last present one but inside the range
        expect(layer.getValues(blockKey(10, 5000), lsn, [])).toBe('missing')
        expect(() => layer.getValues(blockKey(11, 0), lsn, [])).toThrow(AssertionFailure)
        const scanned = [...layer.entries()]
        expect(scanned.map((e) => e.key)).toEqual([...present.keys()])
        expect(scanned.every((e) => e.lsn === lsn && e.willInit && e.value.equals(present.get(e.key)!))).toBe(true)
      } finally {
        layer.close()
      }
      // the wrong reader refuses the file
      expect(() => DeltaLayer.open(fin.path)).toThrow(CorruptionError)
    })
  })

  it('asserts increasing keys and will-init values', async () => {
    await withTempDir('ps-image-', async (dir) => {
      const rng = prng(12)
      const w = await ImageLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsn: L(5), noSync: true })
      w.put(blockKey(1, 5), makeValue(rng, 10, true))
      expect(() => w.put(blockKey(1, 5), makeValue(rng, 10, true))).toThrow(/strictly increasing/)
      expect(() => w.put(blockKey(1, 6), makeValue(rng, 10, false))).toThrow(/not will-init/)
      await w.abort()
    })
  })
})
