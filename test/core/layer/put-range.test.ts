// LayerFileWriter.putRange (the L0 flush's path: a value as a range of a slab, its LSN as a number) writes
// exactly the file `put` writes for the same entries, mixes with `put`, and asserts the same invariants.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { LayerFileWriter } from '../../../src/core/layer/layer-file-writer.js'
import { AssertionFailure } from '../../../src/core/lib/errors.js'
import { MIN_KEY } from '../../../src/core/model/key.js'
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
