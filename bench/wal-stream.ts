/**
 * WAL streaming speed: our replication client against PostgreSQL's own pg_receivewal, in the same run.
 *
 * 1. Live: a cluster runs pgbench (2 clients) for `seconds` while a WalReceiver streams and decodes every
 *    record. Reported: the server's WAL generation rate over the pgbench window (insert LSN delta / time),
 *    what the receiver received and decoded in the same window, and its lag when pgbench stopped.
 * 2. Catch-up: the WAL written during the live phase is a backlog on the primary. `runs` times each,
 *    interleaved, the whole backlog is streamed as fast as possible by
 *      - pg_receivewal --no-sync (the baseline: PostgreSQL's C client, writes segment files, no decoding),
 *      - ReplicationConnection (chunks only: protocol + copies, no decoding),
 *      - WalReceiver (decodes every record: page headers, CRC, block references), as configured by default
 *        (crcWorker 'auto': CRCs on the receiving thread while it keeps up, on the shared worker thread
 *        once chunks queue up),
 *      - WalReceiver with crcWorker 'never' (every CRC on the receiving thread) and 'always' (every CRC on
 *        the worker thread), to show what the worker changes.
 *    Reported: median MB/s and records/s, and the ratio to pg_receivewal (above 1 = faster). On one machine
 *    the primary's walsender needs a core of its own, so a second thread of ours competes with it.
 *
 * Run: npm run bench -- bench/wal-stream.ts   (env: WAL_STREAM_SECONDS=10, WAL_STREAM_RUNS=5)
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findPostgres } from '../src/core/postgres/install.js'
import { formatLsn, type Lsn } from '../src/core/pg/lsn.js'
import { segmentNumber, walFileName } from '../src/core/pg/wal-page.js'
import { parseConnString } from '../src/core/protocol/conn-string.js'
import { ReplicationConnection } from '../src/core/walreceiver/replication-connection.js'
import { WalReceiver } from '../src/core/walreceiver/wal-receiver.js'
import { PgCluster } from '../test/support/pg-cluster.js'
import { median } from './support/stats.js'

const seconds = Number(process.env.WAL_STREAM_SECONDS ?? 10)
const runs = Number(process.env.WAL_STREAM_RUNS ?? 5)
const SEG = 16n * 1024n * 1024n

interface Sample {
  ms: number
  bytes: number
  records: number
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6

async function live(pg: PgCluster): Promise<{ startLsn: Lsn; endLsn: Lsn; report: Record<string, number> }> {
  const startLsn = (((await pg.insertLsn()) / SEG) * SEG) as Lsn
  const rx = new WalReceiver({ conn: parseConnString(pg.connString()), startLsn })
  let records = 0
  let bytes = 0
  const consumer = (async () => {
    for await (const batch of rx.batches()) {
      records += batch.length
      for (const r of batch) bytes += r.xl_tot_len
    }
  })()
  // Let the receiver catch up with the segment's existing WAL before the measured window.
  const ready = await pg.flushLsn()
  while (rx.stats.lastRecordEnd < ready) await new Promise((r) => setTimeout(r, 20))
  const lsn0 = await pg.insertLsn()
  const rx0 = { records, walBytes: rx.stats.walBytes }
  const t0 = now()
  await pg.pgbench(['-c', '2', '-j', '2', '-T', String(seconds), '-n'])
  const t1 = now()
  const lsn1 = await pg.insertLsn()
  const rx1 = { records, walBytes: rx.stats.walBytes, lag: Number(lsn1 - rx.stats.lastRecordEnd) }
  while (rx.stats.lastRecordEnd < lsn1) await new Promise((r) => setTimeout(r, 5))
  const caughtUpMs = now() - t1
  await rx.close()
  await consumer
  const windowS = (t1 - t0) / 1000
  return {
    startLsn,
    endLsn: lsn1,
    report: {
      windowSeconds: Math.round(windowS * 10) / 10,
      serverWalMBps: Number(lsn1 - lsn0) / 1e6 / windowS,
      receivedMBps: (rx1.walBytes - rx0.walBytes) / 1e6 / windowS,
      recordsPerSec: (rx1.records - rx0.records) / windowS,
      lagBytesAtEnd: rx1.lag,
      catchUpMs: Math.round(caughtUpMs),
      recordBytesShare: bytes / Math.max(rx.stats.walBytes, 1),
    },
  }
}

async function pgReceivewal(pg: PgCluster, binDir: string, startLsn: Lsn, endLsn: Lsn): Promise<Sample> {
  // pg_receivewal starts after the newest complete segment in its directory: seed a sparse one just before.
  const dir = mkdtempSync(join(tmpdir(), 'ps-bench-receivewal-'))
  const prev = walFileName(1, segmentNumber(startLsn) - 1n)
  writeFileSync(join(dir, prev), '')
  const { truncateSync } = await import('node:fs')
  truncateSync(join(dir, prev), Number(SEG))
  const t0 = now()
  await new Promise<void>((resolve, reject) => {
    const p = spawn(join(binDir, 'pg_receivewal'), ['-D', dir, '-h', pg.host, '-p', String(pg.port), '-U', 'postgres', '--no-loop', '--no-sync', '-E', formatLsn(endLsn)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let err = ''
    p.stderr.on('data', (d: Buffer) => (err += d.toString()))
    p.on('error', reject)
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`pg_receivewal exited ${code}: ${err}`))))
  })
  const ms = now() - t0
  rmSync(dir, { recursive: true, force: true })
  return { ms, bytes: Number(endLsn - startLsn), records: 0 }
}

async function chunksOnly(pg: PgCluster, startLsn: Lsn, endLsn: Lsn): Promise<Sample> {
  const t0 = now()
  const conn = await ReplicationConnection.connect(parseConnString(pg.connString()))
  const sys = await conn.identifySystem()
  const stream = await conn.startReplication({ startLsn, timeline: sys.timeline })
  let bytes = 0
  for await (const c of stream) {
    bytes += c.data.length
    if (c.dataStart + BigInt(c.data.length) >= endLsn) break
  }
  await conn.close()
  return { ms: now() - t0, bytes, records: 0 }
}

async function decoded(pg: PgCluster, startLsn: Lsn, endLsn: Lsn, crcWorker: 'auto' | 'always' | 'never' = 'auto'): Promise<Sample> {
  const t0 = now()
  const rx = new WalReceiver({ conn: parseConnString(pg.connString()), startLsn, crcWorker })
  let records = 0
  outer: for await (const batch of rx.batches()) {
    for (const r of batch) {
      records++
      if (r.endLsn >= endLsn) break outer
    }
  }
  await rx.close()
  return { ms: now() - t0, bytes: Number(endLsn - startLsn), records }
}

const inst = findPostgres(undefined, process.env)
const pg = await PgCluster.start({ name: 'bench-stream' })
try {
  await pg.pgbench(['-i', '-s', '5', '-q'])
  await pg.checkpoint()
  const liveResult = await live(pg)
  const { startLsn, endLsn } = liveResult

  // Warm-up, untimed.
  await decoded(pg, startLsn, endLsn)
  const samples = { receivewal: [] as Sample[], chunks: [] as Sample[], decoded: [] as Sample[], here: [] as Sample[], worker: [] as Sample[] }
  for (let i = 0; i < runs; i++) {
    samples.receivewal.push(await pgReceivewal(pg, inst.binDir, startLsn, endLsn))
    samples.chunks.push(await chunksOnly(pg, startLsn, endLsn))
    samples.decoded.push(await decoded(pg, startLsn, endLsn))
    samples.here.push(await decoded(pg, startLsn, endLsn, 'never'))
    samples.worker.push(await decoded(pg, startLsn, endLsn, 'always'))
  }
  const sum = (xs: Sample[]) => {
    const ms = median(xs.map((s) => s.ms))
    const { bytes, records } = xs[0]!
    const minMs = Math.round(Math.min(...xs.map((s) => s.ms)))
    const maxMs = Math.round(Math.max(...xs.map((s) => s.ms)))
    return { medianMs: Math.round(ms), minMs, maxMs, walBytes: bytes, mbPerSec: bytes / 1e6 / (ms / 1e3), recordsPerSec: records ? records / (ms / 1e3) : null, records: records || null }
  }
  const base = sum(samples.receivewal)
  const chunks = sum(samples.chunks)
  const dec = sum(samples.decoded)
  const here = sum(samples.here)
  const worker = sum(samples.worker)
  const result = {
    bench: 'wal-stream',
    node: process.version,
    postgres: inst.version,
    seconds,
    runs,
    live: liveResult.report,
    catchUp: {
      range: { start: formatLsn(startLsn), end: formatLsn(endLsn) },
      baseline: { name: 'pg_receivewal --no-sync', ...base },
      cases: [
        { name: 'ReplicationConnection (chunks, no decoding)', ...chunks, ratio: chunks.mbPerSec / base.mbPerSec },
        { name: 'WalReceiver (every record decoded)', ...dec, ratio: dec.mbPerSec / base.mbPerSec },
        { name: 'WalReceiver, crcWorker never', ...here, ratio: here.mbPerSec / base.mbPerSec },
        { name: 'WalReceiver, crcWorker always', ...worker, ratio: worker.mbPerSec / base.mbPerSec },
      ],
    },
  }
  console.log(JSON.stringify(result, null, 2))
  const { renderTable } = await import('../src/cli/render.js')
  const f1 = (n: number | null) => (n === null ? '-' : n.toFixed(1))
  const f0 = (n: number | null) => (n === null ? '-' : Math.round(n).toLocaleString('en-US'))
  console.log(
    await renderTable(
      ['live (pgbench -c 2, ' + seconds + ' s)', 'server WAL MB/s', 'received MB/s', 'records/s', 'lag at end (bytes)', 'catch-up ms'],
      [['WalReceiver', f1(liveResult.report.serverWalMBps!), f1(liveResult.report.receivedMBps!), f0(liveResult.report.recordsPerSec!), f0(liveResult.report.lagBytesAtEnd!), f0(liveResult.report.catchUpMs!)]],
    ),
  )
  console.log(
    await renderTable(
      ['catch-up (median of ' + runs + ')', 'MB/s', 'records/s', 'ms (range)', 'ratio'],
      [
        [result.catchUp.baseline.name, f1(base.mbPerSec), '-', `${base.medianMs} (${base.minMs}-${base.maxMs})`, '1.00'],
        ...result.catchUp.cases.map((c) => [c.name, f1(c.mbPerSec), f0(c.recordsPerSec), `${c.medianMs} (${c.minMs}-${c.maxMs})`, c.ratio.toFixed(2)]),
      ],
    ),
  )
} finally {
  await pg.destroy()
}
