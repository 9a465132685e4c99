/**
 * WAL redo throughput and latency through the worker pool, beside PostgreSQL's own replay of the same WAL
 * measured in the same run (the baseline). Prints JSON, then tables. Run: npm run bench -- bench/redo.ts
 *
 * Setup: a PostgreSQL 15 primary (data checksums on, no wal_consistency_checking), `pgbench -i -s SCALE
 * --foreign-keys`, a base backup (pg_basebackup -X none), then `pgbench -c 8 -t TXNS` (TPC-B with foreign
 * keys). The WAL from the backup's redo point to the end is what both sides replay.
 *
 * PostgreSQL: a copy of the base backup, given the primary's pg_wal, is started (crash recovery from the
 * backup label: the same redo loop a standby runs); the "redo starts at ... / redo done at ... system usage:
 * CPU: user ... system ... elapsed ..." log lines give the replayed range, wall time and CPU time of the
 * startup process. Once per round, REDO_BENCH_RUNS rounds (default 5): each round runs PostgreSQL's replay
 * and then one timed pass of each of ours, and every ratio is taken within its round (this VM's speed drifts
 * by up to 2x within minutes); the tables give the medians of the rounds' ratios and, per core, their range.
 *
 * Ours: the same WAL grouped per page (block references and implicit VM targets; SLRU pages are not
 * relation pages and are left out, as PostgreSQL's CLOG work is in its figure), each page's chain starting
 * at its last full-page image or initialisation, else at the page in the base backup. "Mix": every page of
 * the range rebuilt at the end LSN through the pool (pool capacity in flight: as many requests pipelined per
 * worker as the page server's pool allows), after two warm-up passes, for pools of 1
 * and 2 workers whose workers skip the record CRC as the page server's do (the WAL decoder verified it
 * when the records were read), and for 2 workers that check it as `redo replay` does. Records/s and MB/s
 * use the same numerators as PostgreSQL's (all records and bytes of the range), so their ratio is a ratio
 * of times; per core, records per CPU-second of the parent plus the workers (read from /proc) against the
 * startup process's CPU time. "Engine in-process": the same chains redone by the engine in this process
 * (no IPC, no pool), the floor the workers' share could shrink to. A sample of our pages is compared,
 * masked, with the pages of the recovered copy, so the work measured is the right work.
 *
 * Chains of 1, 10, 100 records: pages whose chain has more than k records after its first; base = the page
 * after that first record (computed in-process), request = the next k records. Reported: pages/s and
 * records/s with the pool full, the latency of one request at a time (median, p99), and the in-process cost
 * of the same requests (no IPC) for scale.
 */
import { cpSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, chmodSync, rmSync, fstatSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, PgCluster } from '../test/support/pg-cluster.js'
import { runPgTool } from '../src/core/postgres/install.js'
import { formatLsn, parseLsn, type Lsn } from '../src/core/pg/lsn.js'
import type { BufferTag } from '../src/core/pg/reltag.js'
import { isSlruFork } from '../src/core/pg/slru.js'
import { WalFileReader } from '../src/core/pg/wal-files.js'
import type { DecodedRecord } from '../src/core/pg/wal-record.js'
import { redoBlock, type RedoOptions, type RedoRecord } from '../src/core/redo/engine.js'
import { maskPage, maskVmPage } from '../src/core/redo/mask/index.js'
import { classifyPage } from '../src/core/redo/page-summary.js'
import { implicitTargets } from '../src/core/redo/rmgr-redo.js'
import { RM } from '../src/core/pg/rmgr.js'
import { WalRedoManager } from '../src/core/walredo/manager.js'
import { WALREDO_IN_FLIGHT_PER_WORKER_MAX } from '../src/core/repository/tenant.js'
import { defaultWorkerCommand } from '../src/core/walredo/worker-command.js'
import { median, percentile, round } from './support/stats.js'
import { bounded, startBenchPool, withRedoPool, type BenchPool } from './support/redo-pool.js'

const SCALE = Number(process.env.REDO_BENCH_SCALE ?? 10)
const TXNS_PER_CLIENT = Number(process.env.REDO_BENCH_TXNS ?? 4000)
const CLIENTS = 8
/** Rounds: a PostgreSQL replay, then one timed pass of each of ours (REDO_BENCH_RUNS). */
const RUNS = Number(process.env.REDO_BENCH_RUNS ?? 5)
/** Requests pipelined per worker: the page server's depth, unless REDO_BENCH_IN_FLIGHT says otherwise. */
const IN_FLIGHT_PER_WORKER = Number(process.env.REDO_BENCH_IN_FLIGHT ?? WALREDO_IN_FLIGHT_PER_WORKER_MAX)
/** Chain segments sent in one request; longer chains are redone in segments, each on the previous result. */
const SEGMENT_RECORDS_MAX = 10_000
const CHAIN_LENGTHS = [1, 10, 100]
const SAMPLE_REQUESTS = 400
const COMPARE_PAGES_MAX = 2000

interface PageChain {
  tag: BufferTag
  base: Buffer | null
  records: RedoRecord[]
}

function keyOf(t: BufferTag): string {
  return `${t.spcNode}/${t.dbNode}/${t.relNode}/${t.forkNum}/${t.blkno}`
}

/** A page of a relation file in a data directory, or null when the file or block does not exist. */
function readDataPage(dataDir: string, t: BufferTag): Buffer | null {
  const relDir = t.spcNode === 1664 ? join(dataDir, 'global') : join(dataDir, 'base', String(t.dbNode))
  const suffix = t.forkNum === 0 ? '' : `_${['main', 'fsm', 'vm', 'init'][t.forkNum]}`
  const segBlocks = 131072
  const seg = Math.floor(t.blkno / segBlocks)
  const path = join(relDir, `${t.relNode}${suffix}${seg === 0 ? '' : `.${seg}`}`)
  if (!existsSync(path)) return null
  const fd = openSync(path, 'r')
  try {
    const off = (t.blkno % segBlocks) * 8192
    if (fstatSync(fd).size < off + 8192) return null
    const b = Buffer.alloc(8192)
    readSync(fd, b, 0, 8192, off)
    return b
  } finally {
    closeSync(fd)
  }
}

/** Groups records per page; chains start at the last APPLY image / init, else at the base backup's page. */
function groupChains(records: DecodedRecord[], backupDir: string): { chains: PageChain[]; noBase: number } {
  const pages = new Map<string, PageChain & { fixed: boolean }>()
  const touch = (tag: BufferTag, fixes: boolean, rec: DecodedRecord): void => {
    const k = keyOf(tag)
    const r: RedoRecord = { endLsn: rec.endLsn, raw: rec.raw }
    const c = pages.get(k)
    if (fixes) pages.set(k, { tag, base: null, records: [r], fixed: true })
    else if (c) c.records.push(r)
    else pages.set(k, { tag, base: readDataPage(backupDir, tag), records: [r], fixed: false })
  }
  for (const rec of records) {
    for (const b of rec.blocks) {
      if (isSlruFork(b.forkNum)) continue
      touch({ ...b.rel, forkNum: b.forkNum, blkno: b.blkno }, (b.hasImage && b.applyImage) || b.willInit, rec)
    }
    for (const t of implicitTargets(rec)) if (!isSlruFork(t.tag.forkNum)) touch(t.tag, t.willInit, rec)
  }
  const all = [...pages.values()]
  // A chain that neither starts by restoring or initialising its page nor has a page in the backup.
  const usable = all.filter((c) => c.fixed || c.base !== null)
  return { chains: usable.map(({ tag, base, records }) => ({ tag, base, records: contiguous(records) })), noBase: all.length - usable.length }
}

/**
 * A page's records copied into one buffer, as the page server holds them when it asks for redo: read
 * together from a layer file, just now. Left as views of the WAL read buffers they would be scattered over
 * the whole WAL, and encoding a request would mostly wait for cache misses the server does not have.
 */
function contiguous(records: RedoRecord[]): RedoRecord[] {
  const all = Buffer.concat(records.map((r) => r.raw))
  let off = 0
  return records.map((r) => {
    const raw = all.subarray(off, off + r.raw.length)
    off += r.raw.length
    // A fresh bigint too: the decoder's sit with the decoded records, all over the heap.
    return { endLsn: (r.endLsn + 0n) as Lsn, raw }
  })
}

/** Runs `fn` on a started pool of our workers at the benchmark's depth, then closes the pool. */
function withPool<T>(workers: number, hintBitsLogged: boolean, checkRecordCrc: boolean, fn: (m: WalRedoManager, cpu: () => number) => Promise<T>): Promise<T> {
  return withRedoPool({ command: defaultWorkerCommand({ hintBitsLogged, checkRecordCrc }), workers, inFlight: IN_FLIGHT_PER_WORKER }, fn)
}

/** The same segments as redoChain, redone in this process. */
function redoChainInProcess(c: PageChain, opts: RedoOptions): Buffer {
  let page = c.base
  for (let i = 0; i < c.records.length; i += SEGMENT_RECORDS_MAX) {
    page = redoBlock(c.tag, page, c.records.slice(i, i + SEGMENT_RECORDS_MAX), opts)
  }
  return page!
}

async function redoChain(m: WalRedoManager, c: PageChain): Promise<Buffer> {
  let page = c.base
  for (let i = 0; i < c.records.length; i += SEGMENT_RECORDS_MAX) {
    page = await m.redo({ tag: c.tag, base: page, records: c.records.slice(i, i + SEGMENT_RECORDS_MAX) })
  }
  return page!
}

interface PgReplay {
  elapsedS: number
  cpuS: number
  startLsn: Lsn
  endLsn: Lsn
}

/** Crash recovery of a copy of the base backup with the primary's WAL; figures from the startup log lines. */
async function pgReplay(pg: PgCluster, backupDir: string, work: string, n: number): Promise<{ replay: PgReplay; dataDir: string }> {
  const dataDir = join(work, `replay-${n}`)
  cpSync(backupDir, dataDir, { recursive: true, verbatimSymlinks: true })
  for (const f of pg.walSegments()) cpSync(join(pg.walDir, f), join(dataDir, 'pg_wal', f))
  chmodSync(dataDir, 0o700)
  const port = await freePort()
  const log = join(work, `replay-${n}.log`)
  await runChown(dataDir)
  const opts = `-p ${port} -k ${work} -c log_min_messages=log -c listen_addresses='' -c wal_consistency_checking=''`
  await runPgTool(pg.inst, 'pg_ctl', ['-D', dataDir, '-l', log, '-w', '-t', '600', '-o', opts, 'start'], { asPostgresUser: true, timeoutMs: 660_000 })
  await runPgTool(pg.inst, 'pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '120', 'stop'], { asPostgresUser: true, timeoutMs: 180_000, okCodes: [1] })
  const text = readFileSync(log, 'utf8')
  const starts = /redo starts at ([0-9A-F]+\/[0-9A-F]+)/.exec(text)
  const done = /redo done at ([0-9A-F]+\/[0-9A-F]+) system usage: CPU: user: ([\d.]+) s, system: ([\d.]+) s, elapsed: ([\d.]+) s/.exec(text)
  if (!starts || !done) throw new Error(`no redo timing in the recovery log:\n${text}`)
  return {
    replay: { startLsn: parseLsn(starts[1]!), endLsn: parseLsn(done[1]!), cpuS: Number(done[2]) + Number(done[3]), elapsedS: Number(done[4]) },
    dataDir,
  }
}

async function runChown(dir: string): Promise<void> {
  if (process.getuid?.() !== 0) return
  const { execFileSync } = await import('node:child_process')
  execFileSync('chown', ['-R', 'postgres:postgres', dir])
}

/** Our pages vs the recovered copy's, masked; a sample of heap and btree main-fork pages and VM pages. */
function comparePages(results: Map<string, { tag: BufferTag; page: Buffer }>, dataDir: string): { compared: number; mismatches: number } {
  let compared = 0
  let mismatches = 0
  for (const { tag, page } of results.values()) {
    if (compared >= COMPARE_PAGES_MAX) break
    const theirs = readDataPage(dataDir, tag)
    if (theirs === null) continue
    const kind = classifyPage(page, tag.forkNum)
    let a: Buffer
    let b: Buffer
    if (kind === 'vm') {
      a = Buffer.from(page)
      b = Buffer.from(theirs)
      maskVmPage(a)
      maskVmPage(b)
    } else if (kind === 'heap' || kind === 'btree') {
      const rm = kind === 'heap' ? RM.HEAP : RM.BTREE
      a = maskPage(rm, page, tag.blkno)
      b = maskPage(rm, theirs, tag.blkno)
    } else continue
    compared++
    if (!a.equals(b)) mismatches++
  }
  return { compared, mismatches }
}

/** "min-max" of per-round ratios. */
function rangeOf(xs: number[]): string {
  return `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'ps-bench-redo-'))
  chmodSync(work, 0o777)
  const pg = await PgCluster.start({ checksums: true, name: 'bench-redo' })
  try {
    await pg.pgbench(['-i', '-s', String(SCALE), '--foreign-keys', '-q'])
    const backupDir = join(work, 'backup')
    await runPgTool(pg.inst, 'pg_basebackup', ['-h', pg.socketDir, '-p', String(pg.port), '-U', 'postgres', '-D', backupDir, '-X', 'none', '-c', 'fast'], {
      asPostgresUser: true,
      timeoutMs: 600_000,
    })
    await pg.pgbench(['-c', String(CLIENTS), '-j', '2', '-t', String(TXNS_PER_CLIENT), '-n'])
    await pg.checkpoint()
    await pg.switchWal()

    // PostgreSQL's first replay gives the range both sides replay, and the recovered copy our pages are
    // compared with; the later ones run round by round between ours (below).
    const pgRuns: PgReplay[] = []
    const firstReplay = await pgReplay(pg, backupDir, work, 0)
    pgRuns.push(firstReplay.replay)
    const recoveredDir = firstReplay.dataDir
    const first = pgRuns[0]!
    // The same range for us: from the redo start to the last replayed record (inclusive).
    const reader = await WalFileReader.open([pg.walDir], { startLsn: first.startLsn })
    const decoded: DecodedRecord[] = []
    for await (const batch of reader.recordBatches()) {
      for (const r of batch) if (r.lsn <= first.endLsn) decoded.push(r)
    }
    const walStartLsn = decoded[0]!.lsn
    const walEndLsn = decoded[decoded.length - 1]!.endLsn
    const walBytes = Number(walEndLsn - walStartLsn)
    const recordCount = decoded.length
    const { chains, noBase } = groupChains(decoded, backupDir)
    // The chains keep only each record's bytes and end LSN: the decoded objects would otherwise sit in this
    // process's heap, which every full garbage collection of the timed runs would mark.
    decoded.length = 0
    const applications = chains.reduce((n, c) => n + c.records.length, 0)
    const hint = true // data checksums on

    // Our systems, each timed once per round right after that round's PostgreSQL replay: this VM's speed
    // drifts by up to 2x within minutes, so each ratio is taken within its round and the rounds' ratios are
    // reported by their median. The engine alone, in this process (no IPC, no pool): what the workers' share
    // could shrink to. The pgbench mix through the pool: as the page server runs it (records CRC-checked by
    // the decoder, not again in the worker), and with the worker checking every record's CRC as `redo
    // replay` does.
    const engineOpts = { hintBitsLogged: hint, checkRecordCrc: false }
    const poolDefs = [
      { workers: 1, checkRecordCrc: false },
      { workers: 2, checkRecordCrc: false },
      { workers: 2, checkRecordCrc: true },
    ] as const
    const pools: BenchPool[] = []
    let compare = { compared: 0, mismatches: 0 }
    const samples: Array<Array<{ elapsedS: number; cpuS: number; parentCpuS: number; round: number }>> = [[], ...poolDefs.map(() => [])]
    try {
      for (const d of poolDefs) pools.push(await startBenchPool({ command: defaultWorkerCommand({ hintBitsLogged: hint, checkRecordCrc: d.checkRecordCrc }), workers: d.workers, inFlight: IN_FLIGHT_PER_WORKER }))
      // Two untimed passes warm the engine's and the workers' JIT on this very mix.
      for (let pass = 0; pass < 2; pass++) {
        for (const c of chains) redoChainInProcess(c, engineOpts)
        for (let i = 0; i < pools.length; i++) await bounded(chains, poolDefs[i]!.workers * IN_FLIGHT_PER_WORKER, async (c) => void (await redoChain(pools[i]!.m, c)))
      }
      for (let round = 0; round < RUNS; round++) {
        if (round > 0) {
          const { replay, dataDir } = await pgReplay(pg, backupDir, work, round)
          rmSync(dataDir, { recursive: true, force: true })
          pgRuns.push(replay)
        }
        {
          const c0 = process.cpuUsage()
          const t0 = process.hrtime.bigint()
          for (const c of chains) redoChainInProcess(c, engineOpts)
          const t = process.cpuUsage(c0)
          const cpuS = (t.user + t.system) / 1e6
          samples[0]!.push({ elapsedS: Number(process.hrtime.bigint() - t0) / 1e9, cpuS, parentCpuS: cpuS, round })
        }
        for (let i = 0; i < pools.length; i++) {
          const { m, workersCpuS } = pools[i]!
          const results = new Map<string, { tag: BufferTag; page: Buffer }>()
          const keep = round === 0 && i === 0
          const parent0 = process.cpuUsage()
          const workers0 = workersCpuS()
          const t0 = process.hrtime.bigint()
          await bounded(chains, poolDefs[i]!.workers * IN_FLIGHT_PER_WORKER, async (c) => {
            const page = await redoChain(m, c)
            if (keep) results.set(keyOf(c.tag), { tag: c.tag, page })
          })
          const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9
          const p = process.cpuUsage(parent0)
          const parentCpuS = (p.user + p.system) / 1e6
          samples[i + 1]!.push({ elapsedS, cpuS: parentCpuS + workersCpuS() - workers0, parentCpuS, round })
          if (keep) compare = comparePages(results, recoveredDir)
        }
      }
    } finally {
      for (const pool of pools) await pool.close()
    }
    const pgElapsed = median(pgRuns.map((r) => r.elapsedS))
    const pgCpu = median(pgRuns.map((r) => r.cpuS))
    const names = ['engine in-process, no IPC', ...poolDefs.map((d) => `pgbench mix, ${d.workers} worker${d.workers > 1 ? 's' : ''}${d.checkRecordCrc ? ', record CRC' : ''}`)]
    const mixRows: Array<Record<string, number | string | number[]>> = samples.map((xs, i) => {
      const e = median(xs.map((x) => x.elapsedS))
      const c = median(xs.map((x) => x.cpuS))
      return {
        case: names[i]!,
        pages: chains.length,
        elapsedS: round(e),
        pagesPerS: Math.round(chains.length / e),
        recordsPerS: Math.round(recordCount / e),
        mbPerS: round(walBytes / 1e6 / e),
        recordsPerCpuS: Math.round(recordCount / c),
        cpuS: round(c),
        parentCpuS: round(median(xs.map((x) => x.parentCpuS))),
        // Same records on both sides: ratios of times, taken within each round, median over the rounds.
        ratioVsPg: round(median(xs.map((x) => pgRuns[x.round]!.elapsedS / x.elapsedS))),
        perCoreRatioVsPg: round(median(xs.map((x) => pgRuns[x.round]!.cpuS / x.cpuS))),
        perRoundPerCore: xs.map((x) => round(pgRuns[x.round]!.cpuS / x.cpuS)),
      }
    })

    // Chains of k records: base = the page after the first record, then k records.
    const chainRows: Array<Record<string, number | string>> = []
    for (const k of CHAIN_LENGTHS) {
      const picked = chains.filter((c) => c.records.length > k).slice(0, SAMPLE_REQUESTS)
      if (picked.length === 0) continue
      const opts = { hintBitsLogged: hint, checkRecordCrc: false }
      const reqs = picked.map((c) => ({ tag: c.tag, base: redoBlock(c.tag, c.base, c.records.slice(0, 1), opts), records: c.records.slice(1, 1 + k) }))
      const inProc: number[] = []
      for (const r of reqs) redoBlock(r.tag, r.base, r.records, opts) // warm-up
      for (let run = 0; run < RUNS; run++) {
        const t0 = process.hrtime.bigint()
        for (const r of reqs) redoBlock(r.tag, r.base, r.records, opts)
        inProc.push(Number(process.hrtime.bigint() - t0) / 1e3 / reqs.length)
      }
      const value = await withPool(2, hint, false, async (m) => {
        const through: number[] = []
        await bounded(reqs, 2 * IN_FLIGHT_PER_WORKER, async (r) => void (await m.redo(r))) // warm-up
        for (let run = 0; run < RUNS; run++) {
          const t0 = process.hrtime.bigint()
          await bounded(reqs, 2 * IN_FLIGHT_PER_WORKER, async (r) => void (await m.redo(r)))
          through.push(Number(process.hrtime.bigint() - t0) / 1e9)
        }
        const lat: number[] = []
        for (const r of reqs) {
          const t0 = process.hrtime.bigint()
          await m.redo(r)
          lat.push(Number(process.hrtime.bigint() - t0) / 1e3)
        }
        return { through: median(through), lat }
      })
      chainRows.push({
        case: `chain of ${k}`,
        requests: reqs.length,
        pagesPerS: Math.round(reqs.length / value.through),
        recordsPerS: Math.round((reqs.length * k) / value.through),
        latencyMedianUs: round(median(value.lat)),
        latencyP99Us: round(percentile(value.lat, 0.99)),
        inProcessUs: round(median(inProc)),
      })
    }

    const out = {
      bench: 'redo',
      scale: SCALE,
      transactions: CLIENTS * TXNS_PER_CLIENT,
      wal: { startLsn: formatLsn(walStartLsn), endLsn: formatLsn(walEndLsn), records: recordCount, bytes: walBytes },
      pages: chains.length,
      pagesWithoutBase: noBase,
      recordApplications: applications,
      postgres: {
        runs: pgRuns.map((r) => ({ elapsedS: r.elapsedS, cpuS: round(r.cpuS) })),
        elapsedS: pgElapsed,
        recordsPerS: Math.round(recordCount / pgElapsed),
        mbPerS: round(walBytes / 1e6 / pgElapsed),
        recordsPerCpuS: Math.round(recordCount / pgCpu),
      },
      ours: mixRows,
      chains: chainRows,
      correctness: compare,
    }
    console.log(JSON.stringify(out, null, 2))
    console.log()
    console.log(`WAL ${out.wal.startLsn}..${out.wal.endLsn}: ${recordCount} records, ${round(walBytes / 1e6)} MB, ${chains.length} pages, ${applications} record applications`)
    console.log(`${'case'.padEnd(28)} ${'elapsed s'.padStart(9)} ${'records/s'.padStart(10)} ${'MB/s'.padStart(7)} ${'rec/CPU-s'.padStart(10)} ${'vs PG'.padStart(6)} ${'per core'.padStart(8)} ${'per core, rounds'.padStart(16)}`)
    console.log(
      `${'PostgreSQL replay (baseline)'.padEnd(28)} ${pgElapsed.toFixed(2).padStart(9)} ${String(out.postgres.recordsPerS).padStart(10)} ${out.postgres.mbPerS.toFixed(1).padStart(7)} ${String(out.postgres.recordsPerCpuS).padStart(10)} ${'1.00'.padStart(6)} ${'1.00'.padStart(8)}`,
    )
    for (const r of mixRows) {
      console.log(
        `${String(r.case).padEnd(28)} ${Number(r.elapsedS).toFixed(2).padStart(9)} ${String(r.recordsPerS).padStart(10)} ${Number(r.mbPerS).toFixed(1).padStart(7)} ${String(r.recordsPerCpuS).padStart(10)} ${Number(r.ratioVsPg).toFixed(2).padStart(6)} ${Number(r.perCoreRatioVsPg).toFixed(2).padStart(8)} ${rangeOf(r.perRoundPerCore as number[]).padStart(16)}`,
      )
    }
    console.log()
    console.log(`${'case'.padEnd(14)} ${'requests'.padStart(8)} ${'pages/s'.padStart(9)} ${'records/s'.padStart(10)} ${'lat p50 µs'.padStart(11)} ${'lat p99 µs'.padStart(11)} ${'in-proc µs'.padStart(11)}`)
    for (const r of chainRows) {
      console.log(
        `${String(r.case).padEnd(14)} ${String(r.requests).padStart(8)} ${String(r.pagesPerS).padStart(9)} ${String(r.recordsPerS).padStart(10)} ${Number(r.latencyMedianUs).toFixed(0).padStart(11)} ${Number(r.latencyP99Us).toFixed(0).padStart(11)} ${Number(r.inProcessUs).toFixed(1).padStart(11)}`,
      )
    }
    console.log(`\ncorrectness: ${compare.compared} pages compared with the recovered copy (masked), ${compare.mismatches} differ`)
  } finally {
    await pg.destroy()
    rmSync(work, { recursive: true, force: true })
  }
}

await main()
