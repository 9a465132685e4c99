// L0 streams: an in-memory layer whose full slabs are written to its L0 file as it fills flushes to the
// same bytes as a layer written whole at the flush (values in slab order, format version 2, replaced
// versions left unreferenced), read back by lookups and by the full scan; slabs the stream has written are
// released (memory back to the pool, values read from the stream's file, a damaged byte there a corruption
// error) and not written twice; a spill that finds only slabs still being written drops the stream instead
// of breaking the memory bound; a dropped layer removes its stream's file; through the flush worker the
// stream gives the same file, and a worker that dies midway, after slabs were released, leaves a flush
// that writes every slab itself, the released ones read back through the layer's descriptor.
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { DeltaLayer } from '../../../src/core/layer/delta-layer.js'
import { FlushWorker } from '../../../src/core/layer/flush-worker.js'
import type { SlabStreamSink, StreamedSlab } from '../../../src/core/layer/inmemory-format.js'
import { InMemoryLayer } from '../../../src/core/layer/inmemory-layer.js'
import { writeL0 } from '../../../src/core/layer/l0-flush.js'
import { L0Stream, l0StreamTempPath, type L0StreamTarget } from '../../../src/core/layer/l0-stream.js'
import { HEADER_BYTES, LAYER_FORMAT_VERSION_PLACED } from '../../../src/core/layer/layer-format.js'
import type { LsnValue } from '../../../src/core/layer/layer-read.js'
import { SlabPool } from '../../../src/core/layer/value-slabs.js'
import { CorruptionError } from '../../../src/core/lib/errors.js'
import type { Key } from '../../../src/core/model/key.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import { TENANT, TIMELINE, blockKey, makeValue, prng, randInt, withTempDir } from './helpers.js'

const L = (n: number): Lsn => BigInt(n) as Lsn
const worker = new FlushWorker()
afterAll(() => worker.close())

/** A sink that runs the stream in this thread; `hold` keeps slabs unwritten (pending) until released. */
class InThreadSink implements SlabStreamSink {
  readonly id = 1
  readonly path: string
  alive = true
  aborted = false
  slabsSent = 0
  private chain: Promise<L0Stream>
  private held: Array<() => void> = []

  constructor(
    target: L0StreamTarget,
    private readonly hold = false,
  ) {
    this.path = l0StreamTempPath(target.dir, target.lsnStart)
    this.chain = L0Stream.open({ ...target, tempPath: this.path })
  }

  private outstanding = 0

  slabFull(index: number, slab: SharedArrayBuffer, used: number, firstEntry: number, endEntry: number, records: SharedArrayBuffer, written: (w: StreamedSlab | null) => void): void {
    this.slabsSent++
    this.outstanding++
    this.chain = this.chain.then((st) => {
      const done = (): void => {
        this.outstanding--
        written(st.streamed(index, firstEntry, endEntry))
      }
      st.addSlab(index, Buffer.from(slab, 0, used), records, firstEntry, endEntry, this.hold ? () => this.held.push(done) : done)
      return st
    })
  }

  /** Resolves once every slab sent is written. */
  async idle(): Promise<void> {
    while (this.outstanding > 0) await new Promise((r) => setTimeout(r, 1))
  }

  abort(): void {
    this.aborted = true
    this.alive = false
    this.chain = this.chain.then(async (st) => {
      await st.abort()
      return st
    })
  }

  release(): void {
    for (const w of this.held.splice(0)) w()
  }

  async stream(): Promise<L0Stream> {
    return this.chain
  }
}

interface Filled {
  layer: InMemoryLayer
  keys: Key[]
  end: Lsn
}

/**
 * The same puts for the same seed: random keys and sizes, some 8 KiB images, some versions replaced at the
 * same LSN; `pause(i)` is awaited after put i.
 */
async function fill(dir: string, pool: SlabPool, seed: number, n: number, fileId: number, stream?: SlabStreamSink, pause?: (i: number) => Promise<void>): Promise<Filled> {
  const layer = InMemoryLayer.create({ dir, fileId, startLsn: L(100), pool, ...(stream ? { stream } : {}) })
  const rng = prng(seed)
  const keys = new Set<Key>()
  let lsn = 100
  let key = blockKey(7, 0)
  for (let i = 0; i < n; i++) {
    // Now and then the previous key again at the same LSN: a replaced version.
    if (!(i > 0 && rng() < 0.03)) {
      key = blockKey(7, randInt(rng, 0, 200))
      lsn += randInt(rng, 1, 9)
    }
    keys.add(key)
    layer.put(key, L(lsn), makeValue(rng, rng() < 0.05 ? 8192 : randInt(rng, 0, 300), rng() < 0.1))
    await pause?.(i)
  }
  layer.freeze(L(lsn + 1))
  return { layer, keys: [...keys], end: L(lsn + 1) }
}

function target(dir: string): L0StreamTarget {
  return { dir, tenantId: TENANT, timelineId: TIMELINE, lsnStart: L(100), noSync: true }
}

function job(f: Filled, dir: string) {
  return { layer: f.layer.beginFlush(), dir, tenantId: TENANT, timelineId: TIMELINE, noSync: true }
}

/** Every key's versions from the in-memory layer, and the same from the L0 file by lookup and by scan. */
function expectSameReads(f: Filled, path: string): void {
  const l0 = DeltaLayer.open(path)
  try {
    let scanned = 0
    for (const key of f.keys) {
      const want: LsnValue[] = []
      const got: LsnValue[] = []
      f.layer.getValues(key, f.end, want)
      l0.getValues(key, f.end, got)
      expect(got.map((v) => [v.lsn, v.value.toString('hex')])).toEqual(want.map((v) => [v.lsn, v.value.toString('hex')]))
    }
    for (const e of l0.entries()) {
      scanned++
      const one: LsnValue[] = []
      l0.getValues(e.key, e.lsn, one, e.lsn)
      expect(one[0]!.value.equals(e.value)).toBe(true)
    }
    expect(scanned).toBe(f.layer.entryCount)
    expect(l0.dumpSummary().formatVersion).toBe(LAYER_FORMAT_VERSION_PLACED)
  } finally {
    l0.close()
  }
}

describe('L0 stream', () => {
  it('writes the same file slab by slab as the flush writes at once; replaced versions stay unreferenced', async () => {
    await withTempDir('ps-l0s-', async (dir) => {
      for (const sub of ['whole', 'streamed']) await mkdir(join(dir, sub))
      const whole = await fill(dir, new SlabPool({ slabBytes: 4096 }), 61, 3000, 1)
      const sink = new InThreadSink(target(join(dir, 'streamed')))
      const streamed = await fill(dir, new SlabPool({ slabBytes: 4096 }), 61, 3000, 2, sink)
      try {
        expect(sink.slabsSent).toBeGreaterThan(50)
        const a = await writeL0(job(whole, join(dir, 'whole')))
        const st = await sink.stream()
        expect(st.slabsWritten).toBe(sink.slabsSent)
        const b = await writeL0(job(streamed, join(dir, 'streamed')), st)
        expect(b.desc).toEqual(a.desc)
        expect((await readFile(b.path)).equals(await readFile(a.path))).toBe(true)
        expect(await readdir(join(dir, 'streamed'))).toEqual([b.desc.name])
        expectSameReads(streamed, b.path)
        // Values are the slabs back to back, the replaced versions' bytes included.
        const s = DeltaLayer.open(b.path).dumpSummary()
        expect(s.valueBytes).toBe(streamed.layer.sizeBytes)
        expect(s.rawValueBytes).toBeLessThan(s.valueBytes)
        expect(s.fileSizeBytes).toBeGreaterThan(HEADER_BYTES + s.valueBytes)
      } finally {
        whole.layer.delete()
        streamed.layer.delete()
      }
    })
  })

  it('releases slabs once written; with only slabs still being written, drops the stream and keeps the bound', async () => {
    await withTempDir('ps-l0s-', async (dir) => {
      for (const sub of ['whole', 'a', 'b']) await mkdir(join(dir, sub))
      const whole = await fill(dir, new SlabPool({ slabBytes: 4096 }), 62, 2500, 1)
      // Written while the layer fills (the puts wait for the writes now and then): written slabs are
      // released (a budget far below the data) and not written again.
      const sinkA = new InThreadSink(target(join(dir, 'a')))
      const poolA = new SlabPool({ slabBytes: 4096, residentBytesMax: 256 * 1024 })
      const a = await fill(dir, poolA, 62, 2500, 2, sinkA, async (i) => {
        if (i % 100 === 0) await sinkA.idle()
      })
      // Held: every slab still pending when the pool needs room.
      const sinkB = new InThreadSink(target(join(dir, 'b')), true)
      const poolB = new SlabPool({ slabBytes: 4096, residentBytesMax: 256 * 1024 })
      const b = await fill(dir, poolB, 62, 2500, 3, sinkB)
      try {
        expect(sinkA.aborted).toBe(false)
        expect(poolA.stats.released).toBeGreaterThan(10)
        expect(poolA.stats.overBudget).toBe(0)
        expect(poolA.residentBytes + poolA.pooledBytes).toBeLessThanOrEqual(256 * 1024)
        expect(sinkB.aborted).toBe(true)
        expect(poolB.stats.released).toBe(0)
        expect(poolB.stats.spilled).toBeGreaterThan(10)
        expect(poolB.stats.overBudget).toBe(0)
        expect(poolB.residentBytes + poolB.pooledBytes).toBeLessThanOrEqual(256 * 1024)
        sinkB.release()
        const ref = await writeL0(job(whole, join(dir, 'whole')))
        const fa = await writeL0(job(a, join(dir, 'a')), await sinkA.stream())
        const dataB = b.layer.beginFlush()
        expect(dataB.streamId).toBeNull()
        const fb = await writeL0({ layer: dataB, dir: join(dir, 'b'), tenantId: TENANT, timelineId: TIMELINE, noSync: true })
        for (const f of [fa, fb]) expect((await readFile(f.path)).equals(await readFile(ref.path))).toBe(true)
        await sinkB.stream()
        expect(await readdir(join(dir, 'b'))).toEqual([fb.desc.name])
        expectSameReads(a, fa.path)
      } finally {
        for (const f of [whole, a, b]) f.layer.delete()
      }
    })
  })

  it('reads released slabs from the stream file: the same values, and a damaged byte is a corruption error', async () => {
    await withTempDir('ps-l0s-', async (dir) => {
      await mkdir(join(dir, 's'))
      const ref = await fill(dir, new SlabPool({ slabBytes: 4096 }), 65, 2000, 1)
      const sink = new InThreadSink(target(join(dir, 's')))
      const pool = new SlabPool({ slabBytes: 4096 })
      const f = await fill(dir, pool, 65, 2000, 2, sink, async (i) => {
        if (i % 200 === 199) await sink.idle()
      })
      try {
        await sink.idle()
        // Every slab the stream wrote went back to the pool: only the last few stay in memory.
        expect(pool.stats.released).toBeGreaterThan(sink.slabsSent - 30)
        expect(f.layer.residentSlabBytesNow).toBeLessThan(30 * 4096)
        const versions = (l: InMemoryLayer, key: Key): string[] => {
          const out: LsnValue[] = []
          l.getValues(key, f.end, out)
          return out.map((v) => `${v.lsn}:${v.value.toString('hex')}`)
        }
        for (const key of ref.keys) expect(versions(f.layer, key)).toEqual(versions(ref.layer, key))
        // Damage the values of the stream's file here and there: each read either fails naming the file
        // or returns exactly what it should; never a wrong value.
        const temp = (await readdir(join(dir, 's'))).find((n) => n.endsWith('___temp'))!
        const path = join(dir, 's', temp)
        const bytes = await readFile(path)
        for (let at = HEADER_BYTES + 100; at < bytes.length; at += 1500) bytes[at] = bytes[at]! ^ 0x20
        await writeFile(path, bytes)
        let failed = 0
        for (const key of ref.keys) {
          let got: string[]
          try {
            got = versions(f.layer, key)
          } catch (e) {
            expect(e).toBeInstanceOf(CorruptionError)
            expect((e as CorruptionError).code).toBe('EPHEMERAL_CORRUPT')
            expect((e as Error).message).toContain(temp)
            failed++
            continue
          }
          expect(got).toEqual(versions(ref.layer, key))
        }
        expect(failed).toBeGreaterThan(10)
      } finally {
        ref.layer.delete()
        f.layer.delete()
        await sink.stream()
      }
    })
  })

  it('a layer dropped without its flush removes its stream file', async () => {
    await withTempDir('ps-l0s-', async (dir) => {
      const sink = new InThreadSink(target(dir))
      const f = await fill(dir, new SlabPool({ slabBytes: 4096 }), 63, 1000, 1, sink)
      await sink.stream()
      expect((await readdir(dir)).some((n) => n.endsWith('___temp'))).toBe(true)
      f.layer.delete()
      expect(sink.aborted).toBe(true)
      await sink.stream()
      expect(await readdir(dir)).toEqual([])
    })
  })

  it('through the flush worker gives the same file; a worker that dies midway leaves a flush that writes every slab', async () => {
    await withTempDir('ps-l0s-', async (dir) => {
      for (const sub of ['whole', 'worker', 'died']) await mkdir(join(dir, sub))
      const whole = await fill(dir, new SlabPool({ slabBytes: 4096 }), 64, 3000, 1)
      const viaWorker = await fill(dir, new SlabPool({ slabBytes: 4096 }), 64, 3000, 2, worker.openStream(target(join(dir, 'worker'))))
      const sink = worker.openStream(target(join(dir, 'died')))
      const diedPool = new SlabPool({ slabBytes: 4096 })
      try {
        const ref = await writeL0(job(whole, join(dir, 'whole')))
        const w = await worker.run(job(viaWorker, join(dir, 'worker')))
        expect((await readFile(w.path)).equals(await readFile(ref.path))).toBe(true)
        expect(await readdir(join(dir, 'worker'))).toEqual([w.desc.name])
        // The same puts, the worker stopped halfway once it had written (and the layer released) the first
        // slabs: the stream is lost, the flush writes every slab, the released ones read back from the
        // removed file through the layer's descriptor.
        const died = await fill(dir, diedPool, 64, 3000, 3, sink, async (i) => {
          if (i === 1000) {
            for (let t = 0; t < 600 && diedPool.stats.released === 0; t++) await new Promise((r) => setTimeout(r, 5))
            expect(diedPool.stats.released).toBeGreaterThan(0)
          }
          if (i !== 1500) return
          expect(sink.alive).toBe(true)
          await worker.close()
        })
        try {
          expect(sink.alive).toBe(false)
          expect(await readdir(join(dir, 'died'))).toEqual([])
          const data = died.layer.beginFlush()
          expect(data.streamId).toBeNull()
          const d = await worker.run({ layer: data, dir: join(dir, 'died'), tenantId: TENANT, timelineId: TIMELINE, noSync: true })
          expect((await readFile(d.path)).equals(await readFile(ref.path))).toBe(true)
          expectSameReads(died, d.path)
        } finally {
          died.layer.delete()
        }
      } finally {
        whole.layer.delete()
        viaWorker.layer.delete()
      }
    })
  })
})
