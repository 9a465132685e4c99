// A flipped byte anywhere in a layer file (header, values, index blocks, top-level index) is reported as a
// CorruptionError naming the file, and no lookup ever returns a wrong value; so are truncated and
// extended files. Offsets are sampled in every region (all of the header's first bytes and CRC, the first
// and last byte of each other region, and seeded random ones).
import { readFile, truncate, writeFile, appendFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DeltaLayer, DeltaLayerWriter } from '../../../src/core/layer/delta-layer.js'
import { ImageLayer, ImageLayerWriter } from '../../../src/core/layer/image-layer.js'
import { HEADER_BYTES, LAYER_FORMAT_VERSION_PLACED } from '../../../src/core/layer/layer-format.js'
import { LayerFileWriter } from '../../../src/core/layer/layer-file-writer.js'
import { crc32c } from '../../../src/core/lib/crc32c.js'
import { MAX_KEY, MIN_KEY, type Key } from '../../../src/core/model/key.js'
import type { LsnValue } from '../../../src/core/layer/layer-read.js'
import { CorruptionError, NotFoundError, UnsupportedError } from '../../../src/core/lib/errors.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import { TENANT, TIMELINE, blockKey, compareEntry, makeValue, prng, randInt, refGetValues, withTempDir, type Entry } from './helpers.js'

const L = (n: number): Lsn => BigInt(n) as Lsn

interface Regions {
  header: [number, number]
  values: [number, number]
  index: [number, number]
  top: [number, number]
}

function regionsOf(path: string, kind: 'delta' | 'image'): Regions {
  const layer = kind === 'delta' ? DeltaLayer.open(path) : ImageLayer.open(path)
  const s = layer.dumpSummary()
  layer.close()
  const indexOffset = HEADER_BYTES + s.valueBytes
  const topOffset = indexOffset + s.indexBlockCount * s.indexBlockBytes
  return { header: [0, HEADER_BYTES], values: [HEADER_BYTES, indexOffset], index: [indexOffset, topOffset], top: [topOffset, s.fileSizeBytes] }
}

function sampleOffsets(r: Regions, seed: number, perRegion: number): number[] {
  const rng = prng(seed)
  const out = new Set<number>()
  for (let i = 0; i < 200; i++) out.add(i) // magic, version, ids, ranges, counts, offsets
  for (let i = HEADER_BYTES - 8; i < HEADER_BYTES; i++) out.add(i) // padding end and header CRC
  for (const [a, b] of [r.header, r.values, r.index, r.top]) {
    out.add(a)
    out.add(b - 1)
    for (let i = 0; i < perRegion; i++) out.add(randInt(rng, a, b - 1))
  }
  return [...out].sort((x, y) => x - y)
}

/**
 * Reads everything: every key's lookup (compared with the reference) and the full scan. Returns the error,
 * or null when all reads succeeded; throws if any read returned a wrong value.
 */
function readAll(path: string, kind: 'delta' | 'image', entries: Entry[], keys: Key[]): unknown {
  let layer: DeltaLayer | ImageLayer | null = null
  try {
    layer = kind === 'delta' ? DeltaLayer.open(path) : ImageLayer.open(path)
    for (const key of keys) {
      const out: LsnValue[] = []
      layer.getValues(key, L(0xffffff), out)
      const ref = refGetValues(entries, key, L(0xffffff))
      if (out.length !== ref.values.length || out.some((v, i) => v.lsn !== ref.values[i]!.lsn || !v.value.equals(ref.values[i]!.value))) {
        throw new Error(`WRONG VALUE for ${key}`)
      }
    }
    let i = 0
    for (const e of layer.entries()) {
      const want = entries[i++]!
      if (e.key !== want.key || e.lsn !== want.lsn || !e.value.equals(want.value)) throw new Error(`WRONG ENTRY ${i}`)
    }
    return null
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('WRONG')) throw err
    return err
  } finally {
    layer?.close()
  }
}

async function checkEveryRegion(dir: string, path: string, kind: 'delta' | 'image', entries: Entry[], seed: number): Promise<number> {
  const keys = [...new Set(entries.map((e) => e.key))]
  expect(readAll(path, kind, entries, keys)).toBeNull()
  const original = await readFile(path)
  const regions = regionsOf(path, kind)
  for (const [a, b] of Object.values(regions)) expect(b).toBeGreaterThan(a)
  const damaged = join(dir, 'damaged')
  const offsets = sampleOffsets(regions, seed, 60)
  for (const off of offsets) {
    const copy = Buffer.from(original)
    copy[off] = copy[off]! ^ (1 << off % 8)
    await writeFile(damaged, copy)
    const err = readAll(damaged, kind, entries, keys)
    expect(err, `flip at offset ${off}`).toBeInstanceOf(CorruptionError)
    expect((err as Error).message).toContain(damaged)
    expect((err as CorruptionError).exitCode).toBe(5)
  }
  return offsets.length
}

/** 40 keys with 1-5 versions each (the first will-init), LSNs in 100..~450, some 8 KiB and compressible. */
function deltaEntries(rng: () => number): Entry[] {
  const entries: Entry[] = []
  for (let k = 0; k < 40; k++) {
    let lsn = randInt(rng, 100, 200)
    for (let v = 0; v < randInt(rng, 1, 6); v++) {
      const willInit = v === 0
      entries.push({ key: blockKey(3, k), lsn: L(lsn), value: makeValue(rng, rng() < 0.2 ? 8192 : randInt(rng, 0, 150), willInit, rng() < 0.5), willInit })
      lsn += randInt(rng, 1, 50)
    }
  }
  return entries
}

describe('layer file corruption', () => {
  it('detects a flipped byte in every region of a delta layer', async () => {
    await withTempDir('ps-corrupt-', async (dir) => {
      const entries = deltaEntries(prng(21))
      entries.sort(compareEntry)
      const w = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(100), end: L(1000) }, noSync: true, indexBlockBytes: 512, compression: 'lz4' })
      for (const e of entries) w.put(e.key, e.lsn, e.value)
      const fin = await w.finish()
      const n = await checkEveryRegion(dir, fin.path, 'delta', entries, 22)
      expect(n).toBeGreaterThan(300)
    })
  })

  it('detects a flipped byte in every region of a delta layer whose values were placed (format version 2)', async () => {
    await withTempDir('ps-corrupt-', async (dir) => {
      const entries = deltaEntries(prng(26))
      // Values in LSN order, as an L0 holds them; the index in key order says where each lies.
      const byLsn = [...entries].sort((a, b) => (a.lsn < b.lsn ? -1 : a.lsn > b.lsn ? 1 : 0))
      const w = await LayerFileWriter.create('delta', MIN_KEY, { start: L(100), end: L(1000) }, { dir, tenantId: TENANT, timelineId: TIMELINE, noSync: true, indexBlockBytes: 512, compression: 'none' })
      const at = new Map<Entry, number>()
      for (const e of byLsn) at.set(e, w.appendView(e.value))
      entries.sort(compareEntry)
      for (const e of entries) w.putPlaced(e.key, Number(e.lsn), at.get(e)!, e.value.length, e.willInit, crc32c(e.value))
      const fin = await w.finish(MAX_KEY)
      expect(DeltaLayer.open(fin.path).dumpSummary().formatVersion).toBe(LAYER_FORMAT_VERSION_PLACED)
      const n = await checkEveryRegion(dir, fin.path, 'delta', entries, 27)
      expect(n).toBeGreaterThan(300)
    })
  })

  it('detects a flipped byte in every region of an image layer', async () => {
    await withTempDir('ps-corrupt-', async (dir) => {
      const rng = prng(23)
      const entries: Entry[] = []
      const w = await ImageLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsn: L(777), noSync: true, indexBlockBytes: 256 })
      for (let k = 0; k < 60; k++) {
        const e = { key: blockKey(4, k * 2), lsn: L(777), value: makeValue(rng, k % 4 === 0 ? 8192 : 100, true, k % 2 === 0), willInit: true }
        entries.push(e)
        w.put(e.key, e.value)
      }
      const fin = await w.finish(blockKey(5, 0))
      await checkEveryRegion(dir, fin.path, 'image', entries, 24)
    })
  })

  it('reports truncated, extended, foreign and missing files', async () => {
    await withTempDir('ps-corrupt-', async (dir) => {
      const rng = prng(25)
      const w = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(1), end: L(100) }, noSync: true })
      for (let k = 0; k < 30; k++) w.put(blockKey(1, k), L(10), makeValue(rng, 300, true))
      const fin = await w.finish()
      const original = await readFile(fin.path)
      const p = join(dir, 'copy')
      for (const len of [0, 1, 100, HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + 1000, original.length - 1]) {
        await writeFile(p, original)
        await truncate(p, len)
        expect(() => DeltaLayer.open(p), `truncated to ${len}`).toThrow(CorruptionError)
        expect(() => DeltaLayer.open(p)).toThrow(p)
      }
      await writeFile(p, original)
      await appendFile(p, Buffer.from([0]))
      expect(() => DeltaLayer.open(p)).toThrow(/truncated or extended/)
      await writeFile(p, Buffer.alloc(4096, 0x41))
      expect(() => DeltaLayer.open(p)).toThrow(/not a layer file/)
      expect(() => DeltaLayer.open(join(dir, 'nope'))).toThrow(NotFoundError)
      // a layer file under another layer's name
      await writeFile(p, original)
      // (intact, so LAYER_MISPLACED with its own hint, not damage to restore)
      expect(() => DeltaLayer.open(p, { expectedName: fin.desc.name.replace('__0000000000000001', '__0000000000000002') })).toThrow(
        expect.objectContaining({ code: 'LAYER_MISPLACED', message: expect.stringMatching(/header describes layer/), hint: expect.stringContaining('Its contents are intact') }),
      )
      expect(() => DeltaLayer.open(p, { expectedTimelineId: TENANT as never })).toThrow(expect.objectContaining({ code: 'LAYER_MISPLACED', message: expect.stringMatching(/belongs to timeline/) }))
    })
  })

  it('a header with a valid CRC and a newer format version is unsupported (exit 8), not corrupt; version 0 is corrupt', async () => {
    await withTempDir('ps-corrupt-version-', async (dir) => {
      const w = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(1), end: L(100) }, noSync: true })
      w.put(blockKey(1, 0), L(10), makeValue(prng(3), 300, true))
      const original = await readFile((await w.finish()).path)
      const p = join(dir, 'versioned')
      const withVersion = (v: number): Buffer => {
        const b = Buffer.from(original)
        b.writeUInt16BE(v, 4)
        b.writeUInt32BE(crc32c(b.subarray(0, HEADER_BYTES - 4)), HEADER_BYTES - 4)
        return b
      }
      await writeFile(p, withVersion(LAYER_FORMAT_VERSION_PLACED + 1))
      let err: unknown = null
      try {
        DeltaLayer.open(p)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(UnsupportedError)
      expect(err).toMatchObject({ code: 'LAYER_FORMAT_UNSUPPORTED', exitCode: 8 })
      expect((err as Error).message).toContain(p)
      expect((err as UnsupportedError).hint).toMatch(/newer pageserver/)
      await writeFile(p, withVersion(0))
      expect(() => DeltaLayer.open(p)).toThrow(CorruptionError)
    })
  })
})
