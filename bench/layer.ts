/**
 * Layer storage: writing and reading delta and image layer files, and the in-memory layer.
 * Prints JSON, then a table. Run: npm run bench -- bench/layer.ts
 * Env: LAYER_BENCH_KEYS (default 10000 keys), LAYER_BENCH_LOOKUPS (default 20000), LAYER_BENCH_PUTS
 * (default 1000000), LAYER_BENCH_RUNS (default 3).
 *
 * Data, shaped like a flushed L0: per key one 8 KiB page image (about 5 KiB of tuple-like random bytes and
 * a 3 KiB zeroed hole, so LZ4 saves about a third) followed by 9 WAL records of 100 bytes.
 *
 * Baselines, measured in the same run on the same file:
 *   - lookups: one 8 KiB pread at a random offset of the layer file (the floor of any lookup that reads a
 *     page) — so "x pread" says what the index search, CRC checks and decompression add;
 *   - writing: fs.writeFile of the same raw bytes in one call (no index, no CRC, no compression);
 *   - in-memory puts: copying the same values into one big buffer (memcpy, no index). The layer's slab pool
 *     is shared by the runs (as a timeline's is by its layers), so from the second run on its slabs are
 *     recycled memory, like the baseline's buffer after its first run.
 * Lookup latencies are timed one by one (median and p99 of LAYER_BENCH_LOOKUPS); throughputs are the median
 * of LAYER_BENCH_RUNS runs.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runInNewContext } from 'node:vm'
import { setFlagsFromString } from 'node:v8'
import { DeltaLayer, DeltaLayerWriter } from '../src/core/layer/delta-layer.js'
import { ImageLayer, ImageLayerWriter } from '../src/core/layer/image-layer.js'
import { InMemoryLayer } from '../src/core/layer/inmemory-layer.js'
import { writeL0 } from '../src/core/layer/l0-flush.js'
import { SlabPool } from '../src/core/layer/value-slabs.js'
import type { LsnValue } from '../src/core/layer/layer-read.js'
import { keyFromBytes, keyFromFields, keyToBytes, type Key } from '../src/core/model/key.js'
import type { TenantId, TimelineId } from '../src/core/model/ids.js'
import type { Lsn } from '../src/core/pg/lsn.js'
import { PositionalFile } from '../src/core/storage/positional-file.js'
import { median, percentile } from './support/stats.js'

setFlagsFromString('--expose_gc')
const gc = runInNewContext('gc') as () => void

const KEYS = Number(process.env.LAYER_BENCH_KEYS ?? 10000)
const LOOKUPS = Number(process.env.LAYER_BENCH_LOOKUPS ?? 20000)
const PUTS = Number(process.env.LAYER_BENCH_PUTS ?? 1_000_000)
const RUNS = Number(process.env.LAYER_BENCH_RUNS ?? 3)
const RECORDS_PER_KEY = 9
const TENANT = '0123456789abcdef0123456789abcdef' as TenantId
const TIMELINE = 'fedcba9876543210fedcba9876543210' as TimelineId

let seed = 42
function rand(): number {
  seed = (seed * 1103515245 + 12345) >>> 0
  return seed / 4294967296
}

const key = (blk: number): Key => keyFromFields({ field1: 0, field2: 1663, field3: 5, field4: 16384, field5: 0, field6: blk })

function pageValue(): Buffer {
  const v = Buffer.alloc(2 + 8192)
  v[0] = 0 // image
  for (let i = 2; i < 2 + 200; i++) v[i] = Math.floor(rand() * 256) // header and line pointers
  for (let i = 2 + 3200; i < v.length; i++) v[i] = Math.floor(rand() * 256) // tuples at the end of the page
  return v
}

function recordValue(willInit = false): Buffer {
  const v = Buffer.allocUnsafe(2 + 100)
  v[0] = 1
  v[1] = willInit ? 1 : 0
  for (let i = 2; i < v.length; i++) v[i] = Math.floor(rand() * 256)
  return v
}

function timeEach(n: number, fn: (i: number) => void): number[] {
  for (let i = 0; i < Math.min(n, 2000); i++) fn(i) // warm-up (JIT, caches)
  const samples = new Array<number>(n)
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint()
    fn(i)
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000
  }
  return samples
}

const lsnOf = (k: number, v: number): Lsn => BigInt(0x1000000 + k * 16 + v) as Lsn

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ps-bench-layer-'))
  const results: Record<string, unknown> = {}
  try {
    // ---- data ----
    const images = Array.from({ length: 64 }, pageValue)
    const records = Array.from({ length: 256 }, () => recordValue())
    const keys = Array.from({ length: KEYS }, (_, i) => key(i))
    const entries: Array<{ k: number; v: number; value: Buffer }> = []
    for (let k = 0; k < KEYS; k++) {
      entries.push({ k, v: 0, value: images[k % images.length]! })
      for (let v = 1; v <= RECORDS_PER_KEY; v++) entries.push({ k, v, value: records[(k * 7 + v) % records.length]! })
    }
    const rawBytes = entries.reduce((s, e) => s + e.value.length, 0)
    const lsnEnd = lsnOf(KEYS, 0)

    // ---- delta layer write vs writeFile ----
    const writeMs: number[] = []
    const baseWriteMs: number[] = []
    let deltaPath = ''
    let deltaSize = 0
    const raw = Buffer.concat(entries.slice(0, 2000).map((e) => e.value))
    for (let r = 0; r < RUNS; r++) {
      let t0 = performance.now()
      const base = join(dir, `raw-${r}`)
      // the same byte count, written with one call per 1/50 of it (writeFile of one huge buffer would need it all in memory)
      const parts = Math.ceil(rawBytes / raw.length)
      const chunks: Buffer[] = []
      for (let i = 0; i < parts; i++) chunks.push(raw)
      await writeFile(base, chunks)
      baseWriteMs.push(performance.now() - t0)
      await rm(base)

      t0 = performance.now()
      const w = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: lsnOf(0, 0), end: lsnEnd }, noSync: true })
      for (const e of entries) if (!w.put(keys[e.k]!, lsnOf(e.k, e.v), e.value)) await w.drain()
      const fin = await w.finish()
      writeMs.push(performance.now() - t0)
      deltaPath = fin.path
      deltaSize = fin.sizeBytes
    }
    const mb = rawBytes / 1e6
    results.deltaWrite = {
      entries: entries.length,
      rawMB: Number(mb.toFixed(1)),
      fileMB: Number((deltaSize / 1e6).toFixed(1)),
      layerMBps: Number((mb / (median(writeMs) / 1000)).toFixed(0)),
      writeFileMBps: Number((mb / (median(baseWriteMs) / 1000)).toFixed(0)),
      ratioToWriteFile: Number((median(baseWriteMs) / median(writeMs)).toFixed(2)),
    }

    // ---- baseline: 8 KiB pread at random offsets of the layer file ----
    const pf = PositionalFile.open(deltaPath)
    const buf = Buffer.allocUnsafe(8192)
    const offsets = Array.from({ length: LOOKUPS }, () => Math.floor(rand() * (pf.sizeBytes - 8192)))
    const preadUs = timeEach(LOOKUPS, (i) => pf.readInto(buf, 0, 8192, offsets[i]!))
    pf.close()
    const preadMedian = median(preadUs)
    results.baselinePread8k = { medianUs: Number(preadMedian.toFixed(2)), p99Us: Number(percentile(preadUs, 0.99).toFixed(2)) }

    // ---- delta lookups ----
    const queries = Array.from({ length: LOOKUPS }, () => {
      const k = Math.floor(rand() * KEYS)
      return { key: keys[k]!, lsn: lsnOf(k, Math.floor(rand() * (RECORDS_PER_KEY + 1))) }
    })
    const lookupCase = (name: string, cacheMax: number, q: Array<{ key: Key; lsn: Lsn }>): void => {
      const layer = DeltaLayer.open(deltaPath, { indexBlockCacheMax: cacheMax })
      let values = 0
      const out: LsnValue[] = []
      const us = timeEach(q.length, (i) => {
        out.length = 0
        layer.getValues(q[i]!.key, q[i]!.lsn, out)
        values += out.length
      })
      results[name] = {
        medianUs: Number(median(us).toFixed(2)),
        p99Us: Number(percentile(us, 0.99).toFixed(2)),
        ratioToPread: Number((median(us) / preadMedian).toFixed(2)),
        valuesPerLookup: Number((values / (q.length + Math.min(q.length, 2000))).toFixed(2)),
        indexBlockCacheMax: cacheMax,
        cacheHitRatio: Number((layer.cacheStats.hits / Math.max(1, layer.cacheStats.hits + layer.cacheStats.misses)).toFixed(3)),
      }
      layer.close()
    }
    lookupCase('deltaLookupHot', 1 << 20, queries)
    lookupCase('deltaLookupDefaultCache', 128, queries)
    lookupCase(
      'deltaLookupLatestHot',
      1 << 20,
      queries.map((q) => ({ key: q.key, lsn: lsnEnd })),
    )

    // ---- image layer ----
    const iw = await ImageLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsn: lsnEnd, noSync: true })
    for (let k = 0; k < KEYS; k++) if (!iw.put(keys[k]!, images[k % images.length]!)) await iw.drain()
    const ifin = await iw.finish(key(KEYS + 1))
    const il = ImageLayer.open(ifin.path, { indexBlockCacheMax: 1 << 20 })
    const out: LsnValue[] = []
    const imgUs = timeEach(LOOKUPS, (i) => {
      out.length = 0
      il.getValues(queries[i]!.key, lsnEnd, out)
    })
    results.imageLookupHot = {
      medianUs: Number(median(imgUs).toFixed(2)),
      p99Us: Number(percentile(imgUs, 0.99).toFixed(2)),
      ratioToPread: Number((median(imgUs) / preadMedian).toFixed(2)),
      fileMB: Number((ifin.sizeBytes / 1e6).toFixed(1)),
      compressed: il.dumpSummary().compressedCount,
    }
    il.close()

    // ---- in-memory layer: puts, heap per entry, lookups, flush ----
    const putValues = Array.from({ length: 512 }, (_, i) => (i % 64 === 0 ? pageValue() : recordValue(i % 16 === 0)))
    const putKeysN = Math.max(1, Math.floor(PUTS / 10))
    const putMs: number[] = []
    const copyMs: number[] = []
    let putBytes = 0
    for (let i = 0; i < PUTS; i++) putBytes += putValues[i % putValues.length]!.length
    let heapPerEntry = 0
    let keyStringBytes = 0
    let estimatePerEntry = 0
    let last: InMemoryLayer | null = null
    const pool = new SlabPool({ residentBytesMax: 2 * putBytes + 64 * 1024 * 1024 })
    for (let r = 0; r < RUNS; r++) {
      let slab: Buffer | null = Buffer.allocUnsafe(putBytes)
      let t0 = performance.now()
      let off = 0
      for (let i = 0; i < PUTS; i++) off += putValues[i % putValues.length]!.copy(slab, off)
      copyMs.push(performance.now() - t0)
      slab = null

      last?.delete()
      last = null
      gc()
      await new Promise((resolve) => setTimeout(resolve, 50)) // let freed ArrayBuffers (the copy slab) go
      gc()
      const m0 = process.memoryUsage()
      // Flat strings, as keyFromBytes makes them (keyFromFields concatenates: a rope until first hashed)
      const putKeys = Array.from({ length: putKeysN }, (_, i) => keyFromBytes(keyToBytes(key(i))))
      gc()
      const m1 = process.memoryUsage()
      const slabs1 = pool.residentBytes + pool.pooledBytes
      t0 = performance.now()
      const layer = InMemoryLayer.create({ dir, fileId: r, startLsn: 1n as Lsn, pool })
      for (let i = 0; i < PUTS; i++) layer.put(putKeys[(i * 7919) % putKeysN]!, BigInt(16 + i * 8) as Lsn, putValues[i % putValues.length]!)
      putMs.push(performance.now() - t0)
      gc()
      const m2 = process.memoryUsage()
      const used = (m: NodeJS.MemoryUsage): number => m.heapUsed + m.arrayBuffers
      // minus the value slabs (SharedArrayBuffers of the layer, not index)
      heapPerEntry = (used(m2) - used(m1) - (pool.residentBytes + pool.pooledBytes - slabs1)) / PUTS
      keyStringBytes = (m1.heapUsed - m0.heapUsed - putKeysN * 8) / putKeysN
      estimatePerEntry = layer.indexBytes / PUTS
      last = layer
    }
    results.inMemoryPut = {
      puts: PUTS,
      keys: putKeysN,
      MB: Number((putBytes / 1e6).toFixed(1)),
      putMBps: Number((putBytes / 1e6 / (median(putMs) / 1000)).toFixed(0)),
      putsPerSec: Math.round(PUTS / (median(putMs) / 1000)),
      copyMBps: Number((putBytes / 1e6 / (median(copyMs) / 1000)).toFixed(0)),
      ratioToCopy: Number((median(copyMs) / median(putMs)).toFixed(3)),
      heapBytesPerEntry: Number(heapPerEntry.toFixed(1)),
      keyStringBytesPerKey: Number(keyStringBytes.toFixed(1)),
      indexBytesEstimatePerEntry: Number(estimatePerEntry.toFixed(1)),
    }
    const layer = last!
    const memUs = timeEach(LOOKUPS, (i) => {
      out.length = 0
      layer.getValues(key((i * 104729) % putKeysN), BigInt(16 + PUTS * 8) as Lsn, out)
    })
    results.inMemoryLookup = { medianUs: Number(median(memUs).toFixed(2)), p99Us: Number(percentile(memUs, 0.99).toFixed(2)), ratioToPread: Number((median(memUs) / preadMedian).toFixed(2)) }

    layer.freeze(BigInt(16 + PUTS * 8 + 1) as Lsn)
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const ffin = await writeL0({ layer: layer.beginFlush(), dir, tenantId: TENANT, timelineId: TIMELINE, noSync: true })
    const flushMs = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    results.flushToL0 = {
      entries: PUTS,
      MB: Number((putBytes / 1e6).toFixed(1)),
      ms: Math.round(flushMs),
      // CPU time is steadier than wall time on a shared machine
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      MBps: Number((putBytes / 1e6 / (flushMs / 1000)).toFixed(0)),
      fileMB: Number((ffin.sizeBytes / 1e6).toFixed(1)),
    }
    layer.delete()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }

  console.log(JSON.stringify({ bench: 'layer', keys: KEYS, lookups: LOOKUPS, puts: PUTS, runs: RUNS, results }, null, 2))
  console.log('')
  const r = results as Record<string, Record<string, number>>
  const rows: Array<[string, string, string]> = [
    ['8 KiB pread, random offset (baseline)', `${r.baselinePread8k!.medianUs} µs (p99 ${r.baselinePread8k!.p99Us})`, '1.00'],
    ['delta lookup, hot index cache', `${r.deltaLookupHot!.medianUs} µs (p99 ${r.deltaLookupHot!.p99Us})`, String(r.deltaLookupHot!.ratioToPread)],
    ['delta lookup, 128-block cache', `${r.deltaLookupDefaultCache!.medianUs} µs (p99 ${r.deltaLookupDefaultCache!.p99Us})`, String(r.deltaLookupDefaultCache!.ratioToPread)],
    ['delta lookup at the latest LSN (10 values)', `${r.deltaLookupLatestHot!.medianUs} µs (p99 ${r.deltaLookupLatestHot!.p99Us})`, String(r.deltaLookupLatestHot!.ratioToPread)],
    ['image lookup, hot index cache', `${r.imageLookupHot!.medianUs} µs (p99 ${r.imageLookupHot!.p99Us})`, String(r.imageLookupHot!.ratioToPread)],
    ['in-memory layer lookup', `${r.inMemoryLookup!.medianUs} µs (p99 ${r.inMemoryLookup!.p99Us})`, String(r.inMemoryLookup!.ratioToPread)],
  ]
  console.log('lookup'.padEnd(46) + 'median'.padStart(26) + 'x pread'.padStart(10))
  for (const [a, b, c] of rows) console.log(a.padEnd(46) + b.padStart(26) + c.padStart(10))
  console.log('')
  console.log('throughput'.padEnd(46) + 'MB/s'.padStart(26) + 'x baseline'.padStart(12))
  console.log('fs.writeFile of the raw bytes (baseline)'.padEnd(46) + String(r.deltaWrite!.writeFileMBps).padStart(26) + '1.00'.padStart(12))
  console.log('DeltaLayerWriter (index, CRCs, no LZ4)'.padEnd(46) + String(r.deltaWrite!.layerMBps).padStart(26) + String(r.deltaWrite!.ratioToWriteFile).padStart(12))
  console.log('Buffer.copy of the values (baseline)'.padEnd(46) + String(r.inMemoryPut!.copyMBps).padStart(26) + '1.00'.padStart(12))
  console.log('InMemoryLayer.put'.padEnd(46) + String(r.inMemoryPut!.putMBps).padStart(26) + String(r.inMemoryPut!.ratioToCopy).padStart(12))
  console.log('flush: writeL0 (in-thread)'.padEnd(46) + String(r.flushToL0!.MBps).padStart(26) + '-'.padStart(12))
  console.log('')
  console.log(
    `in-memory layer: ${r.inMemoryPut!.heapBytesPerEntry} heap bytes per entry measured with ${r.inMemoryPut!.puts / r.inMemoryPut!.keys} entries per key ` +
      `(indexBytes estimates ${r.inMemoryPut!.indexBytesEstimatePerEntry}), plus ${r.inMemoryPut!.keyStringBytesPerKey} bytes per key string; ${r.inMemoryPut!.putsPerSec} puts/s`,
  )
  console.log(`delta layer: ${r.deltaWrite!.entries} entries, ${r.deltaWrite!.rawMB} MB raw -> ${r.deltaWrite!.fileMB} MB file`)
  console.log(`flush: ${r.flushToL0!.entries} entries, ${r.flushToL0!.MB} MB in ${r.flushToL0!.ms} ms (${r.flushToL0!.cpuMs} ms CPU) -> ${r.flushToL0!.fileMB} MB L0`)
}

await main()
