/**
 * What a full backup streaming from `pageserver serve` costs everyone else: GetPage round trips on another
 * connection, one request at a time with a 1 ms pause between them, first with the server idle, then while
 * a client takes fullbackups back to back and reads them as fast as it can (loopback). The baseline is the
 * same server idle, in the same run.
 *
 * Why: pages from caches and image layers are read synchronously, and while the kernel takes every write a
 * backup's promises all resolve at once; a backup could then hold the event loop for as long as it was
 * producing (an audit measured other connections' round trips of 100–160 ms behind one 54 MB fullbackup).
 *
 * Data: the GetPage benchmark's cached timeline (support/getpage-data.ts; generated on first use), served by
 * `pageserver serve` (the built CLI, bin/run.js) on a copy of its workdir.
 *
 * Run: npm run build && npm run bench -- bench/backup-fairness.ts   (env BACKUP_FAIRNESS_RUNS=3, BACKUP_FAIRNESS_MS=4000)
 */
import { spawn } from 'node:child_process'
import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PageServiceClient } from '../src/core/page-service/client.js'
import type { PagestreamClient } from '../src/core/page-service/pagestream-client.js'
import type { RelTag } from '../src/core/pg/reltag.js'
import { ensureGetpageData } from './support/getpage-data.js'
import { formatTable, median, percentile, round } from './support/stats.js'

const RUNS = Number(process.env.BACKUP_FAIRNESS_RUNS ?? 3)
const PHASE_MS = Number(process.env.BACKUP_FAIRNESS_MS ?? 4000)
const CLI = fileURLToPath(new URL('../bin/run.js', import.meta.url))

interface Probe {
  n: number
  p50: number
  p99: number
  max: number
}

async function probe(s: PagestreamClient, rel: RelTag, pages: number, ms: number): Promise<Probe> {
  const lat: number[] = []
  const end = Date.now() + ms
  while (Date.now() < end) {
    const t = process.hrtime.bigint()
    await s.getPage(rel, lat.length % pages)
    lat.push(Number(process.hrtime.bigint() - t) / 1e6)
    await new Promise((r) => setTimeout(r, 1))
  }
  return { n: lat.length, p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), max: Math.max(...lat) }
}

async function main(): Promise<void> {
  const data = await ensureGetpageData()
  const scratch = mkdtempSync(join(tmpdir(), 'ps-fairness-'))
  const workdir = join(scratch, 'workdir')
  cpSync(data.workdir, workdir, { recursive: true })
  const server = spawn(process.execPath, [CLI, 'serve', '--workdir', workdir, '--json', '-c', 'listen_pg_addr=127.0.0.1:0', '-c', 'listen_http_addr=127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'ignore'] })
  const exited = new Promise((r) => server.once('exit', r))
  try {
    const first = await new Promise<string>((resolve) => server.stdout.once('data', (d: Buffer) => resolve(d.toString().split('\n')[0]!)))
    const pgAddr = (JSON.parse(first) as { listening: { pgAddr: string } }).listening.pgAddr
    const [host, port] = [pgAddr.slice(0, pgAddr.lastIndexOf(':')), Number(pgAddr.slice(pgAddr.lastIndexOf(':') + 1))]
    const rel: RelTag = { spcNode: 1663, dbNode: data.facts.dbNode, relNode: data.facts.imgRelNode, forkNum: 0 }
    const prober = await PageServiceClient.connect({ host, port })
    const stream = await prober.pagestream(data.tenantId, data.timelineId, { version: 3 })
    const backuper = await PageServiceClient.connect({ host, port })
    const rows: Array<{ phase: string; probe: Probe; backupMiBs: number | null }> = []
    await probe(stream, rel, data.facts.imgPages, 1000) // warm-up: caches, JIT
    for (let r = 0; r < RUNS; r++) {
      rows.push({ phase: 'idle (baseline)', probe: await probe(stream, rel, data.facts.imgPages, PHASE_MS), backupMiBs: null })
      let stop = false
      let bytes = 0
      const t0 = Date.now()
      const backups = (async () => {
        while (!stop) for await (const c of backuper.basebackup(data.tenantId, data.timelineId, { full: true })) bytes += c.length
      })()
      const during = await probe(stream, rel, data.facts.imgPages, PHASE_MS)
      stop = true
      await backups
      rows.push({ phase: 'during fullbackups', probe: during, backupMiBs: bytes / 1048576 / ((Date.now() - t0) / 1000) })
    }
    await prober.close()
    await backuper.close()
    const summary = ['idle (baseline)', 'during fullbackups'].map((phase) => {
      const xs = rows.filter((x) => x.phase === phase)
      const m = (f: (p: Probe) => number) => round(median(xs.map((x) => f(x.probe))), 2)
      return { phase, requests: m((p) => p.n), p50Ms: m((p) => p.p50), p99Ms: m((p) => p.p99), maxMs: m((p) => p.max), backupMiBs: phase === 'idle (baseline)' ? null : round(median(xs.map((x) => x.backupMiBs!)), 0) }
    })
    const base = summary[0]!
    console.log(JSON.stringify({ bench: 'backup-fairness', runs: RUNS, phaseMs: PHASE_MS, summary, perRun: rows }, null, 2))
    console.log()
    console.log(
      formatTable(
        ['phase', 'GetPage round trips', 'p50 ms', 'p99 ms', 'max ms', 'p99 x idle', 'fullbackup MiB/s'],
        summary.map((s) => [s.phase, s.requests, s.p50Ms, s.p99Ms, s.maxMs, round(s.p99Ms / base.p99Ms, 1), s.backupMiBs ?? '-']),
      ),
    )
    console.log(`medians of ${RUNS} runs of ${PHASE_MS} ms per phase`)
  } finally {
    server.kill('SIGTERM')
    await exited
    rmSync(scratch, { recursive: true, force: true })
  }
}

await main()
