// sortedEntries through a FlushScratch (the read buffer a timeline reuses for every flush): the same
// entries as with a fresh buffer; consecutive flushes share one allocation; a layer larger than the
// scratch falls back to a fresh buffer; a damaged value is found by the file-order CRC pass and named.
import { open } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { FlushScratch, InMemoryLayer, type InMemoryEntry } from '../../../src/core/layer/inmemory-layer.js'
import { AssertionFailure, CorruptionError } from '../../../src/core/lib/errors.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import { blockKey, makeValue, prng, randInt, withTempDir } from './helpers.js'

const L = (n: number): Lsn => BigInt(n) as Lsn

function filled(dir: string, fileId: number, seed: number, n: number): InMemoryLayer {
  const layer = InMemoryLayer.create({ dir, fileId, startLsn: L(1), writeBufferBytes: 1024 })
  const rng = prng(seed)
  let lsn = 1
  for (let i = 0; i < n; i++) {
    lsn += randInt(rng, 1, 9)
    layer.put(blockKey(7, randInt(rng, 0, 99)), L(lsn), makeValue(rng, rng() < 0.05 ? 8192 : randInt(rng, 0, 300), rng() < 0.1))
  }
  layer.freeze(L(lsn + 1))
  return layer
}

const plain = (es: InMemoryEntry[]) => es.map((e) => ({ key: e.key, lsn: e.lsn, value: Buffer.from(e.value).toString('hex'), willInit: e.willInit, crc: e.crc }))

describe('flush scratch', () => {
  it('gives the same entries as a fresh buffer and reuses one allocation across flushes', async () => {
    await withTempDir('ps-scratch-', async (dir) => {
      const a = filled(dir, 1, 41, 2000)
      const b = filled(dir, 2, 42, 1500)
      try {
        const scratch = new FlushScratch(4 * 1024 * 1024)
        const fresh = plain([...a.sortedEntries()])
        const viaScratch = [...a.sortedEntries(undefined, scratch)]
        expect(plain(viaScratch)).toEqual(fresh)
        const firstBuffer = viaScratch[0]!.value.buffer
        // The next flush overwrites the same memory (views of the first flush are dead by then).
        const second = [...b.sortedEntries(undefined, scratch)]
        expect(second[0]!.value.buffer).toBe(firstBuffer)
        expect(plain(second)).toEqual(plain([...b.sortedEntries()]))
      } finally {
        a.delete()
        b.delete()
      }
    })
  })

  it('falls back to a fresh buffer for a layer larger than the scratch, and refuses to over-take', async () => {
    await withTempDir('ps-scratch-', async (dir) => {
      const a = filled(dir, 3, 43, 500)
      try {
        const small = new FlushScratch(1024)
        expect(a.sizeBytes).toBeGreaterThan(1024)
        expect(plain([...a.sortedEntries(undefined, small)])).toEqual(plain([...a.sortedEntries()]))
        expect(() => small.take(1025)).toThrow(AssertionFailure)
        expect(small.take(1024).length).toBe(1024)
      } finally {
        a.delete()
      }
    })
  })

  it('names the key of a value damaged in the ephemeral file', async () => {
    await withTempDir('ps-scratch-', async (dir) => {
      const layer = InMemoryLayer.create({ dir, fileId: 4, startLsn: L(1), writeBufferBytes: 64 })
      try {
        const rng = prng(44)
        for (let i = 0; i < 20; i++) layer.put(blockKey(1, i), L(10 + i), makeValue(rng, 50, false))
        const fh = await open(layer.path, 'r+')
        await fh.write(Buffer.from([0xee]), 0, 1, 7 * 52 + 20) // inside the value of block 7
        await fh.close()
        layer.freeze(L(100))
        const scratch = new FlushScratch(1024 * 1024)
        expect(() => [...layer.sortedEntries(undefined, scratch)]).toThrow(CorruptionError)
        expect(() => [...layer.sortedEntries(undefined, scratch)]).toThrow(new RegExp(`value of ${blockKey(1, 7)} at .* fails its checksum`))
      } finally {
        layer.delete()
      }
    })
  })
})
