/**
 * Child process of bench/ingest-rss.ts: ingests WAL files into a workdir (ingestWalFiles, the given config
 * overrides) and reports its own memory as one JSON line on stdout.
 *
 * Argument: one JSON object {workdir, overrides, tenantId, timelineId, walDir, endLsn?}. With `endLsn`
 * equal to the timeline's last_record_lsn nothing is ingested: the same start-up (modules, repository,
 * timeline, WAL files opened) with no data, i.e. the fixed overhead the ceiling is compared against.
 *
 * Reported: VmHWM (the kernel's peak RSS of this process), VmRSS at the end, and the largest
 * process.memoryUsage() sample (every SAMPLE_MS, taken between batches) with its breakdown (V8 heap,
 * ArrayBuffers and other external memory), to tell where a peak came from.
 */
import { loadConfig } from '../../src/core/config/index.js'
import { ingestWalFiles } from '../../src/core/app/ingest-files.js'
import { parseTenantId, parseTimelineId } from '../../src/core/model/ids.js'
import { parseLsn } from '../../src/core/pg/lsn.js'
import { procStatusBytes } from './stats.js'

const SAMPLE_MS = 20

interface ChildArgs {
  workdir: string
  overrides: string[]
  tenantId: string
  timelineId: string
  walDir: string
  endLsn?: string
}

const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs
let peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 }
const sample = (): void => {
  const m = process.memoryUsage()
  if (m.rss > peak.rss) peak = { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }
}
const timer = setInterval(sample, SAMPLE_MS)
const ctx = { config: await loadConfig({ workdir: args.workdir, overrides: args.overrides, env: {} }), env: process.env }
const t0 = process.hrtime.bigint()
const result = await ingestWalFiles(ctx, {
  tenantId: parseTenantId(args.tenantId),
  timelineId: parseTimelineId(args.timelineId),
  walPaths: [args.walDir],
  ...(args.endLsn !== undefined ? { endLsn: parseLsn(args.endLsn) } : {}),
  onProgress: sample,
})
const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9
sample()
clearInterval(timer)
process.stdout.write(
  JSON.stringify({
    vmHwmBytes: procStatusBytes('self', 'VmHWM'),
    vmRssEndBytes: procStatusBytes('self', 'VmRSS'),
    peakSample: peak,
    elapsedS,
    result,
    config: { maxInMemoryLayersBytes: ctx.config.maxInMemoryLayersBytes, checkpointDistanceBytes: ctx.config.checkpointDistanceBytes },
  }) + '\n',
)
