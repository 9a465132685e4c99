/**
 * One ingest of the cached ingest.ts data, for profiling (`node --cpu-prof --import tsx bench/support/ingest-once.ts`).
 * env: INGEST_ONCE_OVERRIDES (comma-separated config overrides), INGEST_BENCH_SCALE, INGEST_BENCH_WAL_MIB,
 * INGEST_ONCE_KEEP (a directory to move the resulting workdir to, for comparing layer files).
 * Prints one JSON line: wall and CPU seconds, the ingest result.
 */
import { cpSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/core/config/index.js'
import { ingestWalFiles } from '../../src/core/app/ingest-files.js'
import { parseTenantId, parseTimelineId } from '../../src/core/model/ids.js'

const SCALE = Number(process.env.INGEST_BENCH_SCALE ?? 20)
const WAL_MIB = Number(process.env.INGEST_BENCH_WAL_MIB ?? 320)
const dir = join(tmpdir(), `pageserver-bench-ingest-v1-s${SCALE}-${WAL_MIB}`)
const info = (await import(join(dir, 'info.json'), { with: { type: 'json' } })).default as { tenantId: string; timelineId: string }
/** CPU seconds (user + system) of each thread of this process, main thread first. */
function threadCpuS(): number[] {
  const tick = 100 // USER_HZ
  return readdirSync('/proc/self/task')
    .sort((a, b) => (a === String(process.pid) ? -1 : b === String(process.pid) ? 1 : Number(a) - Number(b)))
    .map((t) => {
      const f = readFileSync(`/proc/self/task/${t}/stat`, 'utf8').split(') ')[1]!.split(' ')
      return (Number(f[11]) + Number(f[12])) / tick
    })
}

const overrides = (process.env.INGEST_ONCE_OVERRIDES ?? '').split(',').filter((s) => s !== '')
const work = mkdtempSync(join(tmpdir(), 'ps-ingest-once-'))
try {
  const workdir = join(work, 'w')
  cpSync(join(dir, 'workdir'), workdir, { recursive: true })
  const ctx = { config: await loadConfig({ workdir, overrides, env: {} }), env: process.env }
  const main0 = threadCpuS()[0]!
  const c0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const result = await ingestWalFiles(ctx, { tenantId: parseTenantId(info.tenantId), timelineId: parseTimelineId(info.timelineId), walPaths: [join(dir, 'pg_wal')] })
  const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9
  const c = process.cpuUsage(c0)
  const mainCpuS = threadCpuS()[0]! - main0
  if (process.env.INGEST_ONCE_KEEP) renameSync(workdir, process.env.INGEST_ONCE_KEEP)
  console.log(JSON.stringify({ elapsedS, cpuS: (c.user + c.system) / 1e6, userS: c.user / 1e6, sysS: c.system / 1e6, mainThreadCpuS: mainCpuS, threadsCpuS: threadCpuS(), result }))
} finally {
  rmSync(work, { recursive: true, force: true })
}
