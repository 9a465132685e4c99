/**
 * Peak RSS while ingesting >= 1 GiB of WAL, against the configured ceiling (max_in_memory_layers_bytes)
 * plus a fixed overhead measured in the same run.
 *
 * Data (generated once, cached; support/ingest-data.ts): a timeline imported from a fresh primary, then
 * on the primary `pgbench -i -s SCALE` (bulk loads: large heap and index records) and pgbench TPC-B rounds
 * (small records, a CHECKPOINT before each round) until WAL_GIB of WAL.
 *
 * Each case ingests the whole WAL in a child process (support/ingest-child.ts, a fresh copy of the
 * workdir, fsync on) and is sampled from here every SAMPLE_MS through /proc/<pid>/status (VmRSS); the child
 * reports its VmHWM (the kernel's own peak) and the breakdown of its largest process.memoryUsage() sample.
 * Cases, interleaved, RUNS times:
 * - baseline: the same child with nothing to ingest (start-up: modules, repository, timeline, WAL files
 *   opened) — its VmHWM is the fixed overhead;
 * - default limits (max_in_memory_layers_bytes 512 MiB, checkpoint_distance 256 MiB);
 * - 64 MiB and 16 MiB ceilings (the bound should follow the setting).
 * Reported: medians of peak RSS, the bound (ceiling + overhead), peak / bound (at most 1 = within the bound),
 * what the peak holds beyond ceiling + start-up (the ingest machinery's own working set: a constant if the
 * bound follows the setting), and the ingest rate of each case.
 *
 * Run: npm run bench -- bench/ingest-rss.ts   (env: RSS_BENCH_RUNS=3, RSS_BENCH_SCALE=50, RSS_BENCH_WAL_GIB=1.1)
 */
import { spawn } from 'node:child_process'
import { chmodSync, cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureIngestData, pgbenchUntil } from './support/ingest-data.js'
import { formatTable, median, MiB, procStatusBytes, round } from './support/stats.js'

const RUNS = Number(process.env.RSS_BENCH_RUNS ?? 3)
const SCALE = Number(process.env.RSS_BENCH_SCALE ?? 50)
const WAL_GIB = Number(process.env.RSS_BENCH_WAL_GIB ?? 1.1)
const SAMPLE_MS = 20
/** A child that runs longer than this is killed (the bench fails rather than hangs). */
const CHILD_TIMEOUT_MS = 30 * 60_000
const GiB = 1024 * MiB

const data = await ensureIngestData({
  name: 'rss',
  version: `v1-s${SCALE}-${WAL_GIB}`,
  workload: async (pg, log) => {
    const start = await pg.insertLsn()
    log(`pgbench -i -s ${SCALE}`)
    await pg.pgbench(['-i', '-s', String(SCALE), '-q'], 'postgres', 1_800_000)
    const done = Number((await pg.insertLsn()) - start)
    await pgbenchUntil(pg, WAL_GIB * GiB - done, ['-c', '8', '-j', '2', '-t', '3000'], log)
  },
})

interface ChildReport {
  vmHwmBytes: number
  vmRssEndBytes: number
  peakSample: { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number }
  elapsedS: number
  result: { records: number; walBytes: number; layers: number }
  config: { maxInMemoryLayersBytes: number; checkpointDistanceBytes: number }
}

interface CaseSample {
  report: ChildReport
  /** Largest VmRSS seen from outside. */
  sampledPeakBytes: number
}

const childScript = join(dirname(fileURLToPath(import.meta.url)), 'support', 'ingest-child.ts')
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..')

async function runChild(work: string, name: string, overrides: string[], endLsn?: string): Promise<CaseSample> {
  const workdir = join(work, name)
  cpSync(data.workdir, workdir, { recursive: true })
  try {
    const arg = JSON.stringify({ workdir, overrides, tenantId: data.tenantId, timelineId: data.timelineId, walDir: data.walDir, endLsn })
    const child = spawn(process.execPath, ['--import', 'tsx', childScript, arg], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')))
    let sampledPeakBytes = 0
    const timer = setInterval(() => {
      const rss = procStatusBytes(child.pid!, 'VmRSS')
      if (rss !== null && rss > sampledPeakBytes) sampledPeakBytes = rss
    }, SAMPLE_MS)
    const killer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS)
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
    clearInterval(timer)
    clearTimeout(killer)
    if (code !== 0) throw new Error(`ingest child (${name}) exited with ${code}`)
    return { report: JSON.parse(out.trim().split('\n').pop()!) as ChildReport, sampledPeakBytes }
  } finally {
    rmSync(workdir, { recursive: true, force: true })
  }
}

const cases = [
  { name: 'defaults (512 MiB ceiling)', overrides: [] as string[] },
  { name: '64 MiB ceiling', overrides: ['max_in_memory_layers_bytes=64MiB'] },
  { name: '16 MiB ceiling', overrides: ['max_in_memory_layers_bytes=16MiB'] },
]

const work = mkdtempSync(join(tmpdir(), 'ps-bench-rss-'))
chmodSync(work, 0o777)
try {
  const idle: CaseSample[] = []
  const samples: CaseSample[][] = cases.map(() => [])
  for (let i = 0; i < RUNS; i++) {
    process.stderr.write(`run ${i + 1}/${RUNS}: start-up only\n`)
    idle.push(await runChild(work, `idle-${i}`, [], data.info.importLsn))
    for (const [k, c] of cases.entries()) {
      process.stderr.write(`run ${i + 1}/${RUNS}: ${c.name}\n`)
      samples[k]!.push(await runChild(work, `case-${k}-${i}`, c.overrides))
    }
  }
  const overheadBytes = median(idle.map((s) => s.report.vmHwmBytes))
  const rows = cases.map((c, k) => {
    const ss = samples[k]!
    const peak = median(ss.map((s) => Math.max(s.report.vmHwmBytes, s.sampledPeakBytes)))
    const mid = [...ss].sort((a, b) => a.report.vmHwmBytes - b.report.vmHwmBytes)[Math.floor(ss.length / 2)]!
    const ceiling = mid.report.config.maxInMemoryLayersBytes
    const bound = ceiling + overheadBytes
    const elapsedS = median(ss.map((s) => s.report.elapsedS))
    return {
      case: c.name,
      ceilingMiB: round(ceiling / MiB, 0),
      peakRssMiB: round(peak / MiB, 0),
      boundMiB: round(bound / MiB, 0),
      peakOverBound: round(peak / bound),
      peakAboveOverheadMiB: round((peak - overheadBytes) / MiB, 0),
      beyondBoundMiB: round((peak - bound) / MiB, 0),
      peakSampleBreakdownMiB: {
        rss: round(mid.report.peakSample.rss / MiB, 0),
        v8HeapUsed: round(mid.report.peakSample.heapUsed / MiB, 0),
        v8HeapTotal: round(mid.report.peakSample.heapTotal / MiB, 0),
        arrayBuffers: round(mid.report.peakSample.arrayBuffers / MiB, 0),
        external: round(mid.report.peakSample.external / MiB, 0),
      },
      elapsedS: round(elapsedS),
      mbPerS: round(mid.report.result.walBytes / 1e6 / elapsedS, 1),
      layers: mid.report.result.layers,
      runs: ss.map((s) => ({ vmHwmMiB: round(s.report.vmHwmBytes / MiB, 0), sampledPeakMiB: round(s.sampledPeakBytes / MiB, 0), elapsedS: round(s.report.elapsedS) })),
    }
  })
  const walBytes = samples[0]![0]!.report.result.walBytes
  const out = {
    bench: 'ingest-rss',
    node: process.version,
    runs: RUNS,
    data: { dir: data.dir, scale: SCALE, ...data.info },
    ingested: { walBytes, records: samples[0]![0]!.report.result.records },
    baseline: { case: 'start-up, nothing ingested', vmHwmMiB: round(overheadBytes / MiB, 0), runs: idle.map((s) => round(s.report.vmHwmBytes / MiB, 0)) },
    cases: rows,
  }
  console.log(JSON.stringify(out, null, 2))
  console.log()
  console.log(
    formatTable(
      ['case', 'ceiling MiB', 'peak RSS MiB', 'bound MiB', 'peak / bound', 'peak - bound MiB', 'V8 heap MiB', 'MB/s', 'L0 files'],
      [
        ['start-up, nothing ingested (overhead)', '-', out.baseline.vmHwmMiB, '-', '-', '-', '-', '-', '-'],
        ...rows.map((r) => [r.case, r.ceilingMiB, r.peakRssMiB, r.boundMiB, r.peakOverBound, r.beyondBoundMiB, r.peakSampleBreakdownMiB.v8HeapTotal, r.mbPerS, r.layers]),
      ],
    ),
  )
  console.log(`\n${(walBytes / GiB).toFixed(2)} GiB of WAL, ${out.ingested.records} records; bound = ceiling + start-up VmHWM; median of ${RUNS}`)
} finally {
  rmSync(work, { recursive: true, force: true })
}
