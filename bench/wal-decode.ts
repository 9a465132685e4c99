/**
 * WAL decoding speed against pg_waldump, on the same files, in the same run.
 *
 * Generates at least 256 MiB of real PostgreSQL 15 WAL once (pgbench on a cluster with data checksums, a
 * CHECKPOINT before each round so full-page images are common) and caches it under the OS temp directory,
 * keyed by a version string and the compression method; later runs reuse it. Then, `runs` times each,
 * interleaved: `pg_waldump --stats=record` over the files (the baseline: it reads, CRC-checks and decodes
 * every record), and our WalFileReader decoding every record (page checks, CRC, block references):
 *   - on one thread (file reads on the thread pool, every CRC on the decoding thread, as pg_waldump): the
 *     default with fresh read buffers,
 *   - with the files read and the CRCs checked on a worker thread, right after each read, while the
 *     decoding thread decodes,
 *   - both again with read buffers reused (reuseBuffers: for consumers that do not keep records, such as
 *     `wal dump`), where the worker is the default for reads of 32 MiB or more; with the worker, once with
 *     every CRC on it and once balanced (the default: the decoding thread checks a share of the chunks
 *     while it would otherwise wait for the worker),
 *   - the default, with every full-page image restored into an 8 KiB page.
 * Prints JSON, then a table with median MB/s, records/s and the ratio to pg_waldump (above 1 = faster), by
 * wall clock and by CPU time (user + system of every thread; on a shared machine the CPU figures are the
 * steadier ones), and the decoding thread's own CPU time. Every run's record count must equal pg_waldump's.
 *
 * Run: npm run bench -- bench/wal-decode.ts   (env: WAL_BENCH_COMPRESSION=off|pglz|lz4|zstd, WAL_BENCH_RUNS=5)
 */
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findPostgres } from '../src/core/postgres/install.js'
import { WalFileReader, type WalReadOptions } from '../src/core/pg/wal-files.js'
import { restoreBlockImage } from '../src/core/pg/wal-record.js'
import { PgCluster } from '../test/support/pg-cluster.js'
import { median } from './support/stats.js'

const DATA_VERSION = 'v1'
const WAL_TARGET_BYTES = 300 * 1024 * 1024
const compression = (process.env.WAL_BENCH_COMPRESSION ?? 'off') as 'off' | 'pglz' | 'lz4' | 'zstd'
const runs = Number(process.env.WAL_BENCH_RUNS ?? 5)
const cacheDir = join(tmpdir(), `pageserver-bench-wal-${DATA_VERSION}-${compression}`)
const walDir = join(cacheDir, 'pg_wal')

interface DataInfo {
  segments: number
  walBytes: number
  generatedMs: number
}

async function ensureWal(): Promise<DataInfo> {
  const marker = join(cacheDir, 'info.json')
  if (existsSync(marker)) return JSON.parse(readFileSync(marker, 'utf8')) as DataInfo
  rmSync(cacheDir, { recursive: true, force: true })
  mkdirSync(cacheDir, { recursive: true })
  const t0 = Date.now()
  process.stderr.write(`generating >= ${WAL_TARGET_BYTES >> 20} MiB of WAL in ${cacheDir} (once) ...\n`)
  const pg = await PgCluster.start({ checksums: true, walCompression: compression, name: 'bench' })
  try {
    const start = await pg.insertLsn()
    await pg.pgbench(['-i', '-s', '5', '-q'])
    let round = 0
    while (Number((await pg.insertLsn()) - start) < WAL_TARGET_BYTES) {
      await pg.checkpoint()
      await pg.pgbench(['-c', '2', '-j', '2', '-t', '3000', '-n', `--random-seed=${++round}`])
      if (round % 3 === 0) await pg.sql('VACUUM pgbench_accounts; CREATE INDEX IF NOT EXISTS bench_abal ON pgbench_accounts (abalance);')
    }
    await pg.stop()
    cpSync(pg.walDir, walDir, { recursive: true })
  } finally {
    await pg.destroy()
  }
  const segments = readdirSync(walDir).filter((f) => /^[0-9A-F]{24}$/.test(f)).length
  const info: DataInfo = { segments, walBytes: segments * 16 * 1024 * 1024, generatedMs: Date.now() - t0 }
  writeFileSync(marker, JSON.stringify(info))
  return info
}

interface Sample {
  /** wall clock */
  ms: number
  /** user + system CPU time (ours: this process, all threads; pg_waldump: via /usr/bin/time) */
  cpuMs: number
  /** CPU time of the decoding (main) thread alone (Linux; NaN elsewhere and for pg_waldump) */
  mainCpuMs: number
  /** the worker's busy time reading and checking (its event loop's active time) */
  workerMs: number
  records: number
  bytes: number
}

/** CPU time of the calling thread from /proc (ns precision), or NaN where there is no such file. */
function threadCpuMs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6
  } catch {
    return NaN
  }
}

async function decodeOnce(opts: WalReadOptions, restore: boolean): Promise<Sample> {
  const c0 = process.cpuUsage()
  const m0 = threadCpuMs()
  const t0 = process.hrtime.bigint()
  const reader = await WalFileReader.open([walDir], opts)
  const page = Buffer.allocUnsafe(8192)
  let records = 0
  let images = 0
  const gen = reader.recordBatches()
  let r = await gen.next()
  while (!r.done) {
    records += r.value.length
    if (restore) {
      for (const rec of r.value) {
        for (const b of rec.blocks) {
          if (b.hasImage) {
            restoreBlockImage(rec, b, page)
            images++
          }
        }
      }
    }
    r = await gen.next()
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  const cpu = process.cpuUsage(c0)
  if (restore && images === 0) throw new Error('no full-page images in the benchmark WAL')
  return {
    ms,
    cpuMs: (cpu.user + cpu.system) / 1000,
    mainCpuMs: threadCpuMs() - m0,
    workerMs: reader.stats?.crcWorkerBusyMs ?? 0,
    records,
    bytes: Number(r.value.endLsn - reader.startLsn),
  }
}

const TIME_BIN = '/usr/bin/time'
const haveTime = existsSync(TIME_BIN)

function waldumpOnce(bin: string, first: string, last: string): Sample {
  const t0 = process.hrtime.bigint()
  const args = ['--stats=record', first, last]
  const res = haveTime
    ? spawnSync(TIME_BIN, ['-f', 'cpu %U %S', bin, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })
    : spawnSync(bin, args, { encoding: 'utf8', maxBuffer: 64 << 20 })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  const cpu = /cpu ([\d.]+) ([\d.]+)/.exec(res.stderr)
  const cpuMs = cpu ? (Number(cpu[1]) + Number(cpu[2])) * 1000 : NaN
  const m = /Total\s+(\d+)/.exec(res.stdout)
  const range = /between ([0-9A-F]+)\/([0-9A-F]+) and ([0-9A-F]+)\/([0-9A-F]+)/.exec(res.stdout)
  if (!m || !range) throw new Error(`pg_waldump --stats failed: ${res.stderr}`)
  const lsnOf = (hi: string, lo: string) => parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16)
  return { ms, cpuMs, mainCpuMs: NaN, workerMs: 0, records: Number(m[1]), bytes: lsnOf(range[3]!, range[4]!) - lsnOf(range[1]!, range[2]!) }
}

const info = await ensureWal()
const pgInst = findPostgres(undefined, process.env)
const segs = readdirSync(walDir).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort()
const waldumpBin = join(pgInst.binDir, 'pg_waldump')
const first = join(walDir, segs[0]!)
const last = join(walDir, segs[segs.length - 1]!)

const cases = [
  { key: 'oneThread', name: 'decode, one thread (default)', opts: {} as WalReadOptions, restore: false },
  { key: 'worker', name: 'decode, read + CRC on a worker', opts: { crcWorker: true } as WalReadOptions, restore: false },
  { key: 'oneThreadReuse', name: 'decode, one thread, reused buffers', opts: { crcWorker: false, reuseBuffers: true } as WalReadOptions, restore: false },
  { key: 'workerReuseFixed', name: 'decode, reused buffers, worker, every CRC on it (no balance)', opts: { reuseBuffers: true, crcWorkerBalance: false } as WalReadOptions, restore: false },
  { key: 'workerReuse', name: 'decode, reused buffers (default): read + CRC on a worker, balanced', opts: { reuseBuffers: true } as WalReadOptions, restore: false },
  { key: 'restore', name: 'decode (default) + restore every image', opts: {} as WalReadOptions, restore: true },
]

// Warm the page cache and the JIT once, untimed.
const warm = waldumpOnce(waldumpBin, first, last)
for (const c of cases) {
  const got = await decodeOnce(c.opts, c.restore)
  if (got.records !== warm.records) throw new Error(`${c.name}: ${got.records} records, pg_waldump counts ${warm.records}`)
}

const samples = { waldump: [] as Sample[], ...Object.fromEntries(cases.map((c) => [c.key, [] as Sample[]])) } as Record<string, Sample[]>
for (let i = 0; i < runs; i++) {
  samples.waldump!.push(waldumpOnce(waldumpBin, first, last))
  for (const c of cases) {
    const got = await decodeOnce(c.opts, c.restore)
    if (got.records !== warm.records) throw new Error(`${c.name}: ${got.records} records, pg_waldump counts ${warm.records}`)
    samples[c.key]!.push(got)
  }
}

function summary(xs: Sample[]) {
  const ms = median(xs.map((s) => s.ms))
  const cpuMs = median(xs.map((s) => s.cpuMs))
  const { records, bytes } = xs[0]!
  return {
    medianMs: Math.round(ms),
    minMs: Math.round(Math.min(...xs.map((s) => s.ms))),
    maxMs: Math.round(Math.max(...xs.map((s) => s.ms))),
    medianCpuMs: Math.round(cpuMs),
    medianMainCpuMs: Math.round(median(xs.map((s) => s.mainCpuMs))),
    medianWorkerMs: Math.round(median(xs.map((s) => s.workerMs))),
    records,
    walBytes: bytes,
    mbPerSec: bytes / 1e6 / (ms / 1e3),
    recordsPerSec: records / (ms / 1e3),
    cpuMbPerSec: bytes / 1e6 / (cpuMs / 1e3),
  }
}
const base = summary(samples.waldump!)
const result = {
  bench: 'wal-decode',
  node: process.version,
  postgres: pgInst.version,
  compression,
  runs,
  data: { dir: walDir, ...info },
  baseline: { name: 'pg_waldump --stats=record', ...base },
  cases: cases.map((c) => {
    const s = summary(samples[c.key]!)
    return { name: c.name, options: c.opts, restoreImages: c.restore, ...s, ratio: s.mbPerSec / base.mbPerSec, cpuRatio: s.cpuMbPerSec / base.cpuMbPerSec }
  }),
}
process.stdout.write(JSON.stringify(result, null, 2) + '\n')

const num = (n: number) => (Number.isFinite(n) ? String(n) : '-')
const rows = [
  ['pg_waldump --stats=record', `${base.medianMs} (${base.minMs}-${base.maxMs})`, base.mbPerSec.toFixed(0), Math.round(base.recordsPerSec), '1.00', base.medianCpuMs, base.cpuMbPerSec.toFixed(0), '1.00', '-', '-'],
  ...result.cases.map((c) => [
    c.name,
    `${c.medianMs} (${c.minMs}-${c.maxMs})`,
    c.mbPerSec.toFixed(0),
    Math.round(c.recordsPerSec),
    c.ratio.toFixed(2),
    c.medianCpuMs,
    c.cpuMbPerSec.toFixed(0),
    c.cpuRatio.toFixed(2),
    num(c.medianMainCpuMs),
    c.medianWorkerMs ? String(c.medianWorkerMs) : '-',
  ]),
]
const head = ['case', 'wall ms (range)', 'MB/s', 'records/s', 'x pg_waldump', 'cpu ms', 'MB/cpu-s', 'x (cpu)', 'main cpu ms', 'worker ms']
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
const line = (cells: Array<string | number>) => cells.map((c, i) => String(c).padEnd(widths[i]!)).join('  ')
process.stdout.write(`\n${line(head)}\n${line(widths.map((w) => '-'.repeat(w)))}\n${rows.map(line).join('\n')}\n`)
process.stdout.write(`\n${(base.walBytes / 1048576).toFixed(0)} MiB of WAL, ${base.records} records, ${info.segments} segments, wal_compression=${compression}\n`)
