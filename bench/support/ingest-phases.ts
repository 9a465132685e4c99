/**
 * Where the wall time of a file ingest goes: the loop over the WAL batches, then the final checkpoint
 * (the flush of what is still in memory, serial after the last record). Runs `INGEST_PHASES_RUNS` ingests
 * of the cached ingest.ts data in this one process, as bench/ingest.ts does (the first pays for fresh slab
 * memory and the flush worker's start), and prints one JSON line per run.
 * Run: node --import tsx bench/support/ingest-phases.ts   (env: INGEST_PHASES_RUNS=4, INGEST_BENCH_SCALE, INGEST_BENCH_WAL_MIB)
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/core/config/index.js'
import { ingestWalFiles } from '../../src/core/app/ingest-files.js'
import { parseTenantId, parseTimelineId } from '../../src/core/model/ids.js'

const SCALE = Number(process.env.INGEST_BENCH_SCALE ?? 20)
const WAL_MIB = Number(process.env.INGEST_BENCH_WAL_MIB ?? 320)
const RUNS = Number(process.env.INGEST_PHASES_RUNS ?? 4)
const dir = join(tmpdir(), `pageserver-bench-ingest-v1-s${SCALE}-${WAL_MIB}`)
const info = (await import(join(dir, 'info.json'), { with: { type: 'json' } })).default as { tenantId: string; timelineId: string }

for (let run = 0; run < RUNS; run++) {
  const work = mkdtempSync(join(tmpdir(), 'ps-ingest-phases-'))
  try {
    const workdir = join(work, 'w')
    cpSync(join(dir, 'workdir'), workdir, { recursive: true })
    const ctx = { config: await loadConfig({ workdir, overrides: [], env: {} }), env: process.env }
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    let lastBatchMs = 0
    await ingestWalFiles(ctx, {
      tenantId: parseTenantId(info.tenantId),
      timelineId: parseTimelineId(info.timelineId),
      walPaths: [join(dir, 'pg_wal')],
      onProgress: () => {
        lastBatchMs = performance.now() - t0
      },
    })
    const totalMs = performance.now() - t0
    const c = process.cpuUsage(c0)
    console.log(JSON.stringify({ run, totalMs: Math.round(totalMs), loopMs: Math.round(lastBatchMs), tailMs: Math.round(totalMs - lastBatchMs), cpuS: (c.user + c.system) / 1e6, sysS: c.system / 1e6 }))
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
