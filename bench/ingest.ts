/**
 * WAL ingest throughput — WAL segment files to durable L0 layers — beside PostgreSQL replaying the same
 * WAL in the same run (the baseline: the redo loop of a stock standby, run as crash recovery).
 *
 * Data (generated once, cached; see support/ingest-data.ts): a primary with data checksums, `pgbench -i -s
 * SCALE`, then a pg_basebackup copy and a `timeline import` (both before the workload), then pgbench TPC-B
 * rounds (8 clients, a CHECKPOINT before each round so full-page images are common) until WAL_MIB of WAL.
 *
 * Each run, interleaved, RUNS times:
 * - PostgreSQL: a copy of the base backup plus the WAL is started; its log gives the redo loop's elapsed
 *   and CPU time ("redo done ... elapsed") and the time until it is ready, which adds the end-of-recovery
 *   checkpoint (every replayed page written and fsynced) — see support/pg-replay.ts.
 * - ours: a copy of the imported workdir, then `ingestWalFiles` with the default config (fsync on,
 *   checkpoint_distance 256 MiB, max_in_memory_layers_bytes 512 MiB): decode + ingest + L0 flushes +
 *   the final flush, so every record is in a durable layer file when the clock stops.
 * - ours with no_sync=true (the same without fsync), and the decoder alone over the same files, to show
 *   where the time goes.
 * Reported: medians of wall time, MB/s, records/s, CPU time, and ratios to PostgreSQL's redo loop (above 1 =
 * faster than the standby) and to its durable time. MB/s counts the WAL bytes of each side's own range
 * (ours starts at the import's LSN, PostgreSQL's at its backup's redo point: a few records apart).
 *
 * Run: npm run bench -- bench/ingest.ts   (env: INGEST_BENCH_RUNS=3, INGEST_BENCH_SCALE=20, INGEST_BENCH_WAL_MIB=320)
 */
import { chmodSync, cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../src/core/config/index.js'
import { ingestWalFiles, type IngestFilesResult } from '../src/core/app/ingest-files.js'
import { formatLsn, parseLsn, type Lsn } from '../src/core/pg/lsn.js'
import { WalFileReader } from '../src/core/pg/wal-files.js'
import { findPostgres } from '../src/core/postgres/install.js'
import { ensureIngestData, pgbenchUntil } from './support/ingest-data.js'
import { pgReplay, type PgReplay } from './support/pg-replay.js'
import { formatTable, median, MiB, round } from './support/stats.js'

const RUNS = Number(process.env.INGEST_BENCH_RUNS ?? 3)
const SCALE = Number(process.env.INGEST_BENCH_SCALE ?? 20)
const WAL_MIB = Number(process.env.INGEST_BENCH_WAL_MIB ?? 320)

const data = await ensureIngestData({
  name: 'ingest',
  version: `v1-s${SCALE}-${WAL_MIB}`,
  backup: true,
  prepare: async (pg) => {
    await pg.pgbench(['-i', '-s', String(SCALE), '-q'], 'postgres', 1_800_000)
  },
  workload: async (pg, log) => {
    await pgbenchUntil(pg, WAL_MIB * MiB, ['-c', '8', '-j', '2', '-t', '2000'], log)
  },
})
const inst = findPostgres(undefined, process.env)

interface OursSample {
  elapsedS: number
  cpuS: number
  result: IngestFilesResult
}

async function oursOnce(work: string, n: number, overrides: string[]): Promise<OursSample> {
  const workdir = join(work, `ours-${n}`)
  cpSync(data.workdir, workdir, { recursive: true })
  try {
    const ctx = { config: await loadConfig({ workdir, overrides, env: {} }), env: process.env }
    const c0 = process.cpuUsage()
    const t0 = process.hrtime.bigint()
    const result = await ingestWalFiles(ctx, { tenantId: data.tenantId, timelineId: data.timelineId, walPaths: [data.walDir] })
    const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9
    const c = process.cpuUsage(c0)
    return { elapsedS, cpuS: (c.user + c.system) / 1e6, result }
  } finally {
    rmSync(workdir, { recursive: true, force: true })
  }
}

/** Records and bytes of [start, end] (end: start LSN of the last record, as PostgreSQL's "redo done at"). */
async function walRange(start: Lsn, lastStart: Lsn | null): Promise<{ records: number; bytes: number; elapsedS: number; cpuS: number }> {
  const c0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const reader = await WalFileReader.open([data.walDir], { startLsn: start })
  let records = 0
  let endLsn = start
  for await (const batch of reader.recordBatches()) {
    for (const r of batch) {
      if (lastStart !== null && r.lsn > lastStart) continue
      records++
      endLsn = r.endLsn
    }
  }
  const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9
  const c = process.cpuUsage(c0)
  return { records, bytes: Number(endLsn - start), elapsedS, cpuS: (c.user + c.system) / 1e6 }
}

const work = mkdtempSync(join(tmpdir(), 'ps-bench-ingest-'))
chmodSync(work, 0o777)
try {
  const pgRuns: PgReplay[] = []
  const ours: OursSample[] = []
  const oursNoSync: OursSample[] = []
  const decode: Array<{ elapsedS: number; cpuS: number }> = []
  for (let i = 0; i < RUNS; i++) {
    process.stderr.write(`run ${i + 1}/${RUNS}: PostgreSQL replay\n`)
    const { replay, dataDir } = await pgReplay(inst, data.backupDir!, data.walDir, work, i)
    rmSync(dataDir, { recursive: true, force: true })
    pgRuns.push(replay)
    process.stderr.write(`run ${i + 1}/${RUNS}: ours (fsync on)\n`)
    ours.push(await oursOnce(work, i, []))
    process.stderr.write(`run ${i + 1}/${RUNS}: ours (no_sync)\n`)
    oursNoSync.push(await oursOnce(work, i, ['no_sync=true']))
    const d = await walRange(parseLsn(ours[0]!.result.startLsn), null)
    decode.push({ elapsedS: d.elapsedS, cpuS: d.cpuS })
  }
  const pgFirst = pgRuns[0]!
  const pgRange = await walRange(pgFirst.startLsn, pgFirst.endLsn)
  const pgElapsed = median(pgRuns.map((r) => r.elapsedS))
  const pgDurable = median(pgRuns.map((r) => r.durableS))
  const pgCpu = median(pgRuns.map((r) => r.cpuS))
  const ourRecords = ours[0]!.result.records
  const ourBytes = ours[0]!.result.walBytes
  const row = (name: string, samples: Array<{ elapsedS: number; cpuS: number }>, records: number, bytes: number) => {
    const e = median(samples.map((s) => s.elapsedS))
    const c = median(samples.map((s) => s.cpuS))
    const mbPerS = bytes / 1e6 / e
    return {
      case: name,
      elapsedS: round(e),
      cpuS: round(c),
      mbPerS: round(mbPerS, 1),
      recordsPerS: Math.round(records / e),
      mbPerCpuS: round(bytes / 1e6 / c, 1),
      vsPgRedo: round(mbPerS / (pgRange.bytes / 1e6 / pgElapsed)),
      vsPgDurable: round(mbPerS / (pgRange.bytes / 1e6 / pgDurable)),
    }
  }
  const pgRow = {
    case: 'PostgreSQL crash recovery: redo loop (baseline)',
    elapsedS: pgElapsed,
    cpuS: round(pgCpu),
    mbPerS: round(pgRange.bytes / 1e6 / pgElapsed, 1),
    recordsPerS: Math.round(pgRange.records / pgElapsed),
    mbPerCpuS: round(pgRange.bytes / 1e6 / pgCpu, 1),
    vsPgRedo: 1,
    vsPgDurable: round(pgDurable / pgElapsed),
  }
  const pgDurableRow = {
    case: 'PostgreSQL: redo + end-of-recovery checkpoint',
    elapsedS: round(pgDurable),
    cpuS: NaN,
    mbPerS: round(pgRange.bytes / 1e6 / pgDurable, 1),
    recordsPerS: Math.round(pgRange.records / pgDurable),
    mbPerCpuS: NaN,
    vsPgRedo: round(pgElapsed / pgDurable),
    vsPgDurable: 1,
  }
  const rows = [
    pgRow,
    pgDurableRow,
    row('ours: WAL files -> durable L0 layers (defaults, fsync on)', ours, ourRecords, ourBytes),
    row('ours: same, no_sync=true', oursNoSync, ourRecords, ourBytes),
    row('ours: decode only (WalFileReader)', decode, ourRecords, ourBytes),
  ]
  const out = {
    bench: 'ingest',
    node: process.version,
    postgres: inst.version,
    runs: RUNS,
    data: { dir: data.dir, scale: SCALE, ...data.info },
    postgresRange: { startLsn: formatLsn(pgFirst.startLsn), lastRecordLsn: formatLsn(pgFirst.endLsn), records: pgRange.records, bytes: pgRange.bytes },
    oursRange: { startLsn: ours[0]!.result.startLsn, lastRecordLsn: ours[0]!.result.lastRecordLsn, records: ourRecords, bytes: ourBytes, layers: ours[0]!.result.layers },
    postgresRuns: pgRuns.map((r) => ({ elapsedS: r.elapsedS, durableS: round(r.durableS), cpuS: round(r.cpuS) })),
    oursRuns: ours.map((s) => ({ elapsedS: round(s.elapsedS), cpuS: round(s.cpuS) })),
    oursNoSyncRuns: oursNoSync.map((s) => ({ elapsedS: round(s.elapsedS), cpuS: round(s.cpuS) })),
    rows,
  }
  console.log(JSON.stringify(out, null, 2))
  console.log()
  console.log(
    formatTable(
      ['case', 'elapsed s', 'CPU s', 'MB/s', 'records/s', 'MB/CPU-s', 'x PG redo', 'x PG durable'],
      rows.map((r) => [r.case, r.elapsedS, Number.isNaN(r.cpuS) ? '-' : r.cpuS, r.mbPerS, r.recordsPerS, Number.isNaN(r.mbPerCpuS) ? '-' : r.mbPerCpuS, r.vsPgRedo, r.vsPgDurable]),
    ),
  )
  console.log(
    `\nPostgreSQL range ${out.postgresRange.startLsn}..${out.postgresRange.lastRecordLsn}: ${pgRange.records} records, ${(pgRange.bytes / MiB).toFixed(0)} MiB; ` +
      `ours ${out.oursRange.startLsn}..${out.oursRange.lastRecordLsn}: ${ourRecords} records, ${(ourBytes / MiB).toFixed(0)} MiB, ${out.oursRange.layers} layer files; median of ${RUNS}`,
  )
} finally {
  rmSync(work, { recursive: true, force: true })
}
