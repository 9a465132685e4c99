/**
 * Full backups (fullbackup / `timeline export`) against PostgreSQL's own BASE_BACKUP of the same data, in
 * the same run: how fast we produce a data directory tar at an LSN, and how much memory it takes.
 *
 * Setup: a primary with data checksums, `pgbench -i -s SCALE` loaded before the import (so the repository
 * holds those pages as images), imported with `timeline import` and synced; then `pgbench -t` transactions
 * and a sync, so part of the pages must be rebuilt by redo at the last LSN.
 *
 * Cases, each `runs` times interleaved, median reported:
 *   - baseline: `pg_basebackup -D - -Ft -X none` of the primary to a counting sink (PostgreSQL reading its
 *     own files and sending them over the replication protocol);
 *   - ours at the import LSN (images only) and at the last LSN (images + redo through the worker pool):
 *     the tar from `prepareBasebackup(..., 'full')`, bytes counted and dropped;
 *   - ours written to disk with `exportTimeline` (no fsync), at the last LSN.
 * Reported: MB/s of tar (or file) bytes, ratio to the baseline, and the process's peak RSS growth during
 * our runs (the memory bound: a backup must not hold a relation in memory).
 *
 * Run: npm run bench -- bench/basebackup.ts     (env BASEBACKUP_BENCH_SCALE=10, BASEBACKUP_BENCH_RUNS=3,
 *      BASEBACKUP_BENCH_TXNS=2000)
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initWorkdir, loadConfig } from '../src/core/config/index.js'
import { withRepository, type AppContext } from '../src/core/app/context.js'
import { createTenant } from '../src/core/app/timelines.js'
import { importTimeline } from '../src/core/app/import.js'
import { syncTimeline } from '../src/core/app/sync.js'
import { exportTimeline, resolveBackupLsn } from '../src/core/app/export.js'
import { readerFor } from '../src/core/app/pages.js'
import { prepareBasebackup } from '../src/core/datadir/basebackup.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../src/core/model/ids.js'
import { formatLsn, parseLsn, type Lsn } from '../src/core/pg/lsn.js'
import { PgCluster } from '../test/support/pg-cluster.js'
import { median, procStatusBytes, round } from './support/stats.js'

const SCALE = Number(process.env.BASEBACKUP_BENCH_SCALE ?? 10)
const RUNS = Number(process.env.BASEBACKUP_BENCH_RUNS ?? 3)
const TXNS = Number(process.env.BASEBACKUP_BENCH_TXNS ?? 2000)

interface Sample {
  seconds: number
  bytes: number
}

async function pgBasebackup(pg: PgCluster): Promise<Sample> {
  const t0 = performance.now()
  const child = spawn(join(pg.inst.binDir, 'pg_basebackup'), ['-h', pg.host, '-p', String(pg.port), '-U', 'postgres', '-D', '-', '-Ft', '-X', 'none', '-c', 'fast'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let bytes = 0
  child.stdout.on('data', (b: Buffer) => (bytes += b.length))
  let err = ''
  child.stderr.on('data', (b: Buffer) => (err += b.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (code !== 0) throw new Error(`pg_basebackup failed: ${err}`)
  return { seconds: (performance.now() - t0) / 1000, bytes }
}

async function ourTar(ctx: AppContext, tenantId: TenantId, timelineId: TimelineId, at: Lsn): Promise<Sample> {
  return withRepository(ctx, async (repo) => {
    const tenant = await repo.tenant(tenantId)
    const tl = await tenant.timeline(timelineId)
    const t0 = performance.now()
    const prepared = prepareBasebackup(readerFor(tenant, tl), { ...resolveBackupLsn(tl, at, null), flavour: 'full' })
    let bytes = 0
    for await (const chunk of prepared.tar()) bytes += chunk.length
    return { seconds: (performance.now() - t0) / 1000, bytes }
  })
}

async function ourExport(ctx: AppContext, tenantId: TenantId, timelineId: TimelineId, root: string, run: number): Promise<Sample> {
  const dir = join(root, `export-${run}`)
  const t0 = performance.now()
  const r = await exportTimeline(ctx, { tenantId, timelineId, dir })
  const seconds = (performance.now() - t0) / 1000
  rmSync(dir, { recursive: true, force: true })
  return { seconds, bytes: r.bytes }
}

async function main(): Promise<void> {
  const pg = await PgCluster.start({ name: 'bench-backup', checksums: true })
  const root = mkdtempSync(join(tmpdir(), 'ps-bench-backup-'))
  chmodSync(root, 0o755)
  try {
    await pg.pgbench(['-i', '-s', String(SCALE), '-q'])
    await pg.checkpoint()
    // Commands need an existing workdir (as `pageserver init` makes it).
    await initWorkdir({ workdir: join(root, '.neon'), overrides: ['no_sync=true'], env: {} })
    const ctx: AppContext = { config: await loadConfig({ workdir: join(root, '.neon'), overrides: ['no_sync=true'], env: {} }), env: process.env }
    const tenantId = parseTenantId((await createTenant(ctx)).tenantId)
    const timelineId = parseTimelineId((await importTimeline(ctx, { tenantId, connString: pg.connString() })).timelineId)
    await syncTimeline(ctx, { tenantId, timelineId, until: await pg.insertLsn() })
    const importLsn = parseLsn((await syncTimeline(ctx, { tenantId, timelineId })).lastRecordLsn)
    await pg.pgbench(['-c', '2', '-j', '2', '-t', String(TXNS), '-n'])
    await pg.checkpoint()
    const lastLsn = parseLsn((await syncTimeline(ctx, { tenantId, timelineId, until: await pg.insertLsn() })).lastRecordLsn)

    const samples: Record<string, Sample[]> = { baseline: [], imagesOnly: [], withRedo: [], exportToDisk: [] }
    // RSS sampled while our cases run (VmHWM would include the import and sync before).
    const rssNow = () => procStatusBytes('self', 'VmRSS') ?? 0
    let rssBase = 0
    let rssPeak = 0
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssNow())), 20)
    for (let run = 0; run < RUNS; run++) {
      samples.baseline!.push(await pgBasebackup(pg))
      rssBase = Math.max(rssBase, rssNow())
      samples.imagesOnly!.push(await ourTar(ctx, tenantId, timelineId, importLsn))
      samples.withRedo!.push(await ourTar(ctx, tenantId, timelineId, lastLsn))
      samples.exportToDisk!.push(await ourExport(ctx, tenantId, timelineId, root, run))
    }
    clearInterval(sampler)
    const peakGrowthMiB = Math.max(0, rssPeak - rssBase) / 1024 / 1024

    const rate = (s: Sample[]) => median(s.map((x) => x.bytes / 1024 / 1024 / x.seconds))
    const base = rate(samples.baseline!)
    const rows = Object.entries(samples).map(([name, s]) => ({
      case: name,
      mib: round(median(s.map((x) => x.bytes)) / 1024 / 1024, 1),
      seconds: round(median(s.map((x) => x.seconds)), 2),
      mibPerSec: round(rate(s), 1),
      xBaseline: round(rate(s) / base, 2),
    }))
    const result = { scale: SCALE, runs: RUNS, txns: TXNS, importLsn: formatLsn(importLsn), lastLsn: formatLsn(lastLsn), peakRssGrowthMiB: round(peakGrowthMiB, 1), rows }
    process.stdout.write(JSON.stringify(result, null, 2) + '\n\n')
    process.stdout.write('| case | MiB | s (median) | MiB/s | x pg_basebackup |\n|---|---|---|---|---|\n')
    for (const r of rows) process.stdout.write(`| ${r.case} | ${r.mib} | ${r.seconds} | ${r.mibPerSec} | ${r.xBaseline} |\n`)
    process.stdout.write(`\npeak RSS of this process during our runs, above its RSS before them: ${round(peakGrowthMiB, 1)} MiB\n`)
  } finally {
    await pg.destroy()
    rmSync(root, { recursive: true, force: true })
  }
}

await main()
