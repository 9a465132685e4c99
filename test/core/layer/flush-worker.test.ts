// The flush worker thread: the L0 it writes from shared memory is byte-identical to the in-thread writeL0
// of the same layer (slabs resident and spilled); two jobs at once both finish; errors come back as the
// same typed errors (a damaged spill file is a CorruptionError naming it); a stopped worker fails its
// pending job and the next job starts a new one; errors survive the wire with kind, code and hint; slabs
// allocated over there (prefault) arrive whole and usable.
import { mkdir, open, readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { FlushWorker, errorFromWire, errorToWire } from '../../../src/core/layer/flush-worker.js'
import { InMemoryLayer } from '../../../src/core/layer/inmemory-layer.js'
import { writeL0 } from '../../../src/core/layer/l0-flush.js'
import { SlabPool } from '../../../src/core/layer/value-slabs.js'
import { AssertionFailure, CorruptionError, NotFoundError, PageserverError } from '../../../src/core/lib/errors.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import { FatalIoError } from '../../../src/core/storage/io-errors.js'
import { TENANT, TIMELINE, blockKey, makeValue, prng, randInt, withTempDir } from './helpers.js'

const L = (n: number): Lsn => BigInt(n) as Lsn
const worker = new FlushWorker()
afterAll(() => worker.close())

function filledLayer(dir: string, pool: SlabPool, seed: number, n: number, fileId = 1): InMemoryLayer {
  const layer = InMemoryLayer.create({ dir, fileId, startLsn: L(100), pool })
  const rng = prng(seed)
  let lsn = 100
  for (let i = 0; i < n; i++) {
    lsn += randInt(rng, 1, 9)
    layer.put(blockKey(7, randInt(rng, 0, 300)), L(lsn), makeValue(rng, rng() < 0.05 ? 8192 : randInt(rng, 0, 300), rng() < 0.1))
  }
  layer.freeze(L(lsn + 1))
  return layer
}

describe('flush worker', () => {
  it('writes the same file as the in-thread flush, from slabs and from the spill file, two jobs at once', async () => {
    await withTempDir('ps-flushw-', async (dir) => {
      for (const sub of ['inline', 'worker', 'worker2']) await mkdir(join(dir, sub))
      // a budget far below the data: most slabs spilled
      const pool = new SlabPool({ slabBytes: 4096, residentBytesMax: 64 * 1024 })
      const layer = filledLayer(dir, pool, 51, 3000)
      const other = filledLayer(dir, new SlabPool(), 52, 2000, 2)
      try {
        expect(layer.spilledBytes).toBeGreaterThan(0)
        const data = layer.beginFlush()
        const job = (sub: string) => ({ layer: data, dir: join(dir, sub), tenantId: TENANT, timelineId: TIMELINE, noSync: true })
        const inline = await writeL0(job('inline'))
        const [viaWorker, second] = await Promise.all([
          worker.run(job('worker')),
          worker.run({ layer: other.beginFlush(), dir: join(dir, 'worker2'), tenantId: TENANT, timelineId: TIMELINE, noSync: true }),
        ])
        expect(worker.pendingJobs).toBe(0)
        expect(viaWorker.desc).toEqual(inline.desc)
        expect(viaWorker.sizeBytes).toBe(inline.sizeBytes)
        expect((await readFile(viaWorker.path)).equals(await readFile(inline.path))).toBe(true)
        expect(await readdir(join(dir, 'worker2'))).toEqual([second.desc.name])
      } finally {
        layer.delete()
        other.delete()
      }
    })
  })

  it('returns typed errors: a damaged spill file is corruption naming it; nothing is left behind', async () => {
    await withTempDir('ps-flushw-', async (dir) => {
      const pool = new SlabPool({ slabBytes: 256, residentBytesMax: 256 })
      const layer = InMemoryLayer.create({ dir, fileId: 9, startLsn: L(1), pool })
      const rng = prng(53)
      try {
        for (let i = 0; i < 12; i++) layer.put(blockKey(1, i), L(10 + i), makeValue(rng, 50, true))
        const fh = await open(layer.path, 'r+')
        await fh.write(Buffer.from([0xee]), 0, 1, 2 * 52 + 10)
        await fh.close()
        layer.freeze(L(100))
        const data = layer.beginFlush()
        const err = await worker.run({ layer: data, dir, tenantId: TENANT, timelineId: TIMELINE, noSync: true }).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(CorruptionError)
        expect((err as CorruptionError).code).toBe('EPHEMERAL_CORRUPT')
        expect((err as CorruptionError).message).toMatch(/ephemeral-9: value of .* fails its checksum/)
        expect(await readdir(dir)).toEqual(['ephemeral-9'])
        const missing = await worker.run({ layer: data, dir: join(dir, 'nope'), tenantId: TENANT, timelineId: TIMELINE, noSync: true }).catch((e: unknown) => e)
        expect(missing).toBeInstanceOf(NotFoundError)
      } finally {
        layer.delete()
      }
    })
  })

  it('a stopped worker fails its pending job; the next job starts a new worker', async () => {
    await withTempDir('ps-flushw-', async (dir) => {
      const w = new FlushWorker()
      const layer = filledLayer(dir, new SlabPool(), 54, 500)
      try {
        const data = layer.beginFlush()
        const job = { layer: data, dir, tenantId: TENANT, timelineId: TIMELINE, noSync: true }
        const pending = w.run(job).catch((e: unknown) => e)
        await w.close()
        expect(await pending).toMatchObject({ code: 'FLUSH_WORKER_STOPPED' })
        const done = await w.run(job)
        expect(await readdir(dir)).toContain(done.desc.name)
      } finally {
        layer.delete()
        await w.close()
      }
    })
  })

  it('errors cross the thread boundary with their class, code, hint and details', () => {
    const c = errorFromWire(errorToWire(new CorruptionError('X_BAD', 'bad bytes', { hint: 'fix it', details: { path: '/a' } })))
    expect(c).toBeInstanceOf(CorruptionError)
    expect(c).toMatchObject({ code: 'X_BAD', message: 'bad bytes', hint: 'fix it', details: { path: '/a' } })
    const f = errorFromWire(errorToWire(new FatalIoError('FSYNC_FAILED', 'fsync of /a failed', new Error('EIO'), '/a')))
    expect(f).toBeInstanceOf(FatalIoError)
    expect((f as FatalIoError).fatal).toBe(true)
    expect((f as PageserverError).details).toEqual({ path: '/a' })
    expect(errorFromWire(errorToWire(new TypeError('boom')))).toBeInstanceOf(AssertionFailure)
    expect(errorFromWire(errorToWire('odd')).message).toMatch(/odd/)
  })

  it('allocates touched slabs on the worker thread for the slab pool', async () => {
    const slabs = await worker.allocSlabs(3, 64 * 1024)
    expect(slabs.length).toBe(3)
    for (const s of slabs) {
      expect(s).toBeInstanceOf(SharedArrayBuffer)
      expect(s.byteLength).toBe(64 * 1024)
      const b = Buffer.from(s)
      b.fill(7)
      expect(b[b.length - 1]).toBe(7)
    }
  })
})
