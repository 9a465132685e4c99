/**
 * One ingest of the cached ingest.ts data, for profiling (`node --cpu-prof --import tsx bench/support/ingest-once.ts`).
 * env: INGEST_ONCE_OVERRIDES (comma-separated config overrides), INGEST_BENCH_SCALE, INGEST_BENCH_WAL_MIB,
 * INGEST_ONCE_KEEP (a directory to move the resulting workdir to, for comparing layer files).
 * Prints one JSON line: wall and CPU seconds, the ingest result.
 */
import { cpSync, mkdtempSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/core/config/index.js'
import { ingestWalFiles } from '../../src/core/app/ingest-files.js'
import { parseTenantId, parseTimelineId } from '../../src/core/model/ids.js'

const SCALE = Number(process.env.INGEST_BENCH_SCALE ?? 20)
const WAL_MIB = Number(process.env.INGEST_BENCH_WAL_MIB ?? 320)
const dir = join(tmpdir(), `pageserver-bench-ingest-v1-s${SCALE}-${WAL_MIB}`)
const info = (await import(join(dir, 'info.json'), { with: { type: 'json' } })).default as { tenantId: string; timelineId: string }
const overrides = (process.env.INGEST_ONCE_OVERRIDES ?? '').split(',').filter((s) => s !== '')
const work = mkdtempSync(join(tmpdir(), 'ps-ingest-once-'))
try {
  const workdir = join(work, 'w')
  cpSync(join(dir, 'workdir'), workdir, { recursive: true })
  const ctx = { config: await loadConfig({ workdir, overrides, env: {} }), env: process.env }
  const c0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const result = await ingestWalFiles(ctx, { tenantId: parseTenantId(info.tenantId), timelineId: parseTimelineId(info.timelineId), walPaths: [join(dir, 'pg_wal')] })
  const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9
  const c = process.cpuUsage(c0)
  if (process.env.INGEST_ONCE_KEEP) renameSync(workdir, process.env.INGEST_ONCE_KEEP)
  console.log(JSON.stringify({ elapsedS, cpuS: (c.user + c.system) / 1e6, userS: c.user / 1e6, sysS: c.system / 1e6, result }))
} finally {
  rmSync(work, { recursive: true, force: true })
}
