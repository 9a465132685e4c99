/**
 * GetPage@LSN through the real page server, against a loopback echo of the same message sizes and against
 * stock PostgreSQL returning the same page with pageinspect's get_raw_page, all in the same run.
 *
 * Data (support/getpage-data.ts, generated once and cached): one timeline imported from a PostgreSQL 15
 * primary with data checksums, then WAL ingested into L0 layers. `img_t` (2,000 pages) was written and
 * frozen before the import, so its pages are values of the import's image layer: an "image hit". `chain_t`
 * (1,000 pages) was written after: each page is a full-page image plus 20 records (10 HOT updates, 10
 * prunes) in the L0s, so serving it needs redo. Every request asks at the timeline's last record LSN
 * (request_lsn = not_modified_since = that LSN: no waiting).
 *
 * Systems; the servers run in one child process (support/getpage-server.ts), the clients in this one, so
 * each side has a core of a 2-core machine:
 *   - loopback echo (the baseline): bare `net` sockets moving the same bytes (47-byte CopyData out,
 *     8,239 back);
 *   - page service, fixed page: `PageServiceServer` with a backend answering one constant page: the
 *     protocol floor;
 *   - page server, image page / redo page: `PageServer` — what `pageserver serve` runs: repository, layer
 *     map, reader, the tenant's pool of redo worker processes — on a copy of the cached workdir; the image
 *     page once more with the page cache and the layer value cache bypassed (every page looked up in the
 *     layers, its value read and CRC-checked from the file, its checksum remembered or computed); the redo
 *     page with the page cache bypassed (every request redone by a worker), and once more with it (the
 *     page cache keeps pages rebuilt by redo: after the warm-up every request is a hit);
 *   - PostgreSQL get_raw_page: a stock PostgreSQL 15 started on a copy of the primary's data directory
 *     (the same pages, in its shared buffers after the warm-up), `SELECT get_raw_page('<table>', 'main',
 *     <blkno>)` over held-open connections. "prepared": parsed once, then Bind/Execute/Sync with a binary
 *     result (8,192 bytes back: the cheapest form PostgreSQL offers, and the one compared); "simple": a
 *     Query with the SQL text, the bytea back as hex text. Pipelining for PostgreSQL = writing the next
 *     requests before the answers arrive (it serves them in order, as libpq's pipeline mode), at the same
 *     depth as for the page service. PostgreSQL runs a backend process per connection, so at 8
 *     connections it uses both cores; the page server is one event loop.
 * Cases: 1 connection with 1 request in flight (latency), 8 connections with 1 each, 1 connection
 * pipelined 32 deep, 8 connections pipelined 4 deep; then 1 request in flight once more with the echo, image
 * pages and PostgreSQL (prepared) taking turns in blocks of GETPAGE_BENCH_BLOCK requests within each run
 * (support/alternated-runs.ts: this VM's phases of seconds then fall on all three alike). Every system runs the same sequence of blocks (a
 * shuffled cycle over its table). RUNS interleaved runs per case, each after a full garbage collection of
 * the client's heap (the servers are not forced: see run()); reported: medians over runs of
 * requests/s and of each run's p50 / p99 latency, server-side CPU per request (the page server's process
 * tree with its redo workers; PostgreSQL's backends of the bench connections) and client CPU per request.
 *
 * Before timing, every page of both tables is read through the page server and through PostgreSQL and
 * compared (masked as PostgreSQL's WAL consistency check masks: hint bits, unused space); checksums of
 * served pages are checked; and the server reports each page's history (image-layer hit, or the number of
 * records redone), so the timed work is the intended work.
 *
 * Run: npm run bench -- bench/getpage.ts      (env GETPAGE_BENCH_RUNS=5, GETPAGE_BENCH_REQUESTS=10000;
 * for profiling: GETPAGE_BENCH_ONLY=img,redo,... (system kinds), GETPAGE_BENCH_CASES=0,2 (case numbers),
 * GETPAGE_BENCH_SERVER_PROF=<dir> (a CPU profile of the server process), GETPAGE_BENCH_BLOCK=100 (0: no
 * alternated case))
 */
import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, cpSync, mkdtempSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { runAlternated } from './support/alternated-runs.js'
import { collectGarbageAndSettle } from './support/gc.js'
import { PageServiceClient } from '../src/core/page-service/client.js'
import { query } from '../src/core/protocol/pg-frontend-messages.js'
import type { PagestreamClient } from '../src/core/page-service/pagestream-client.js'
import { lsn, MAX_LSN, parseLsn, type Lsn } from '../src/core/pg/lsn.js'
import type { RelTag } from '../src/core/pg/reltag.js'
import { pageChecksum } from '../src/core/redo/page/checksum.js'
import type { TenantId, TimelineId } from '../src/core/model/ids.js'
import { isRoot, PgCluster } from '../test/support/pg-cluster.js'
import { maskForCompare } from '../test/support/page-compare.js'
import { ensureGetpageData, CHAIN_ROUNDS } from './support/getpage-data.js'
import { FIXED_REL, FIXED_TENANT, FIXED_TIMELINE, REQ_FRAME, RESP_FRAME, SERVER_SCRIPT, type ServeArgs, type ServerInfo } from './support/getpage-server.js'
import { bindExecuteSync, decodeHexBytea, PgRawPageClient } from './support/pg-raw-page-client.js'
import { pidsCpuSeconds, treeCpuSeconds } from './support/proc-tree.js'
import { formatTable, median, percentileOfSorted, round, shuffled } from './support/stats.js'

const RUNS = Number(process.env.GETPAGE_BENCH_RUNS ?? 5)
const REQUESTS = Number(process.env.GETPAGE_BENCH_REQUESTS ?? 10_000)
/** Redo costs ~10x an image hit: fewer requests keep each run near a second. */
const REDO_REQUESTS = Math.max(500, Math.round(REQUESTS / 4))
/** Warm-up per system and case: at least two passes over img_t (the value cache admits on a second read). */
const WARMUP_REQUESTS = 5000
/** Profiling aids: only these system kinds / case numbers (comma-separated); a CPU profile of the server process. */
const ONLY_KINDS = process.env.GETPAGE_BENCH_ONLY?.split(',') ?? null
const ONLY_CASES = process.env.GETPAGE_BENCH_CASES?.split(',').map(Number) ?? null
const SERVER_PROF_DIR = process.env.GETPAGE_BENCH_SERVER_PROF ?? null
/** Requests per turn in the alternated case (0: skip it). */
const ALTERNATE_BLOCK = Number(process.env.GETPAGE_BENCH_BLOCK ?? 100)

/** One echo connection: FIFO of waiting requests, answered per 8,239 bytes received. */
class EchoClient {
  private waiting: Array<() => void> = []
  private received = 0
  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length
      while (this.received >= RESP_FRAME.length) {
        this.received -= RESP_FRAME.length
        this.waiting.shift()!()
      }
    })
  }
  static async connect(port: number): Promise<EchoClient> {
    const s = connect({ host: '127.0.0.1', port, noDelay: true })
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve)
      s.once('error', reject)
    })
    return new EchoClient(s)
  }
  request(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve)
      this.socket.write(REQ_FRAME)
    })
  }
  close(): void {
    this.socket.destroy()
  }
}

interface Sample {
  reqPerS: number
  p50Us: number
  p99Us: number
  serverCpuUsPerReq: number
  clientCpuUsPerReq: number
}

/** `requests` requests over `conns` connections with `depth` in flight each; `one(conn, i)` sends request i. */
async function runCase(requests: number, conns: number, depth: number, one: (conn: number, i: number) => Promise<unknown>, serverCpu: () => number): Promise<Sample> {
  const lat = new Float64Array(requests)
  let issued = 0
  let done = 0
  const cpu0 = serverCpu()
  const c0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: conns * depth }, async (_, w) => {
      const conn = w % conns
      while (issued < requests) {
        const i = issued++
        const s = process.hrtime.bigint()
        await one(conn, i)
        lat[done++] = Number(process.hrtime.bigint() - s) / 1000
      }
    }),
  )
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const c = process.cpuUsage(c0)
  const cpu = serverCpu() - cpu0
  const sorted = lat.subarray(0, done).sort()
  return {
    reqPerS: done / seconds,
    p50Us: percentileOfSorted(sorted, 0.5),
    p99Us: percentileOfSorted(sorted, 0.99),
    serverCpuUsPerReq: (cpu * 1e6) / done,
    clientCpuUsPerReq: (c.user + c.system) / done,
  }
}


/** One system under test, connected for one case. */
interface Connected {
  one: (conn: number, i: number) => Promise<unknown>
  serverCpu: () => number
  close: () => Promise<void>
}

interface SystemDef {
  name: string
  kind: 'baseline' | 'floor' | 'img' | 'img-uncached' | 'redo' | 'redo-cached' | 'pg-img' | 'pg-redo' | 'pg-simple'
  requests: number
  connect: (conns: number) => Promise<Connected>
  /** Around each of its runs (server settings for this system only). */
  before?: () => Promise<unknown>
  after?: () => Promise<unknown>
}

interface Row {
  case: string
  system: string
  kind: SystemDef['kind']
  reqPerS: number
  p50Us: number
  p99Us: number
  xEcho: number
  serverCpuUsPerReq: number
  clientCpuUsPerReq: number
}

async function main(): Promise<void> {
  const data = await ensureGetpageData()
  const f = data.facts
  const img: RelTag = { spcNode: 1663, dbNode: f.dbNode, relNode: f.imgRelNode, forkNum: 0 }
  const chain: RelTag = { spcNode: 1663, dbNode: f.dbNode, relNode: f.chainRelNode, forkNum: 0 }
  const imgOrder = shuffled(Array.from({ length: f.imgPages }, (_, i) => i), 1)
  const chainOrder = shuffled(Array.from({ length: f.chainPages }, (_, i) => i), 2)

  const scratch = mkdtempSync(join(tmpdir(), 'ps-getpage-bench-'))
  chmodSync(scratch, 0o755)
  const workdir = join(scratch, 'workdir')
  cpSync(data.workdir, workdir, { recursive: true })
  const pgData = join(scratch, 'pgdata')
  execFileSync('cp', ['-a', data.primaryDir!, pgData])
  if (isRoot()) execFileSync('chown', ['-R', 'postgres:postgres', pgData])
  chmodSync(pgData, 0o700)

  let pg: PgCluster | null = null
  const serveArgs: ServeArgs = { workdir, tenantId: data.tenantId, timelineId: data.timelineId, importLsn: data.info.importLsn, rels: { img, imgPages: f.imgPages, chain, chainPages: f.chainPages } }
  const prof = SERVER_PROF_DIR !== null ? ['--cpu-prof', `--cpu-prof-dir=${SERVER_PROF_DIR}`] : []
  const child = spawn(process.execPath, [...process.execArgv, ...prof, SERVER_SCRIPT, JSON.stringify(serveArgs)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const childExit = new Promise((resolve) => child.once('exit', resolve))
  try {
    const replies: Array<(line: string) => void> = []
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`server process exited with ${code}`))))
    exited.catch(() => undefined)
    createInterface({ input: child.stdout }).on('line', (line) => replies.shift()?.(line))
    const nextLine = () => Promise.race([new Promise<string>((resolve) => replies.push(resolve)), exited])
    const command = async (line: string): Promise<unknown> => {
      const reply = nextLine()
      child.stdin.write(line + '\n')
      return JSON.parse(await reply) as unknown
    }
    const info = JSON.parse(await nextLine()) as ServerInfo
    const end = parseLsn(info.lastRecordLsn)
    const lsns = { requestLsn: end as Lsn, notModifiedSince: end as Lsn }
    pg = await PgCluster.startOnDataDir(pgData, { name: 'getpage-bench', settings: { fsync: false } })
    const childTreeCpu = () => treeCpuSeconds(child.pid!)

    const pageService = (port: number, tenant: TenantId, timeline: TimelineId, rel: RelTag, order: number[], fixedPage = false) => async (conns: number): Promise<Connected> => {
      const clients = await Promise.all(Array.from({ length: conns }, () => PageServiceClient.connect({ host: '127.0.0.1', port })))
      const streams: PagestreamClient[] = await Promise.all(clients.map((c) => c.pagestream(tenant, timeline, { version: 3 })))
      const fixedLsns = { requestLsn: MAX_LSN, notModifiedSince: lsn(0) as Lsn }
      return {
        one: fixedPage ? (c) => streams[c]!.getPage(FIXED_REL, 7, fixedLsns) : (c, i) => streams[c]!.getPage(rel, order[i % order.length]!, lsns),
        serverCpu: childTreeCpu,
        close: async () => void (await Promise.all(clients.map((c) => c.close()))),
      }
    }
    const pgPort = pg.port
    const postgres = (table: string, order: number[], form: 'prepared' | 'simple') => async (conns: number): Promise<Connected> => {
      const clients = await Promise.all(Array.from({ length: conns }, () => PgRawPageClient.connect({ host: '127.0.0.1', port: pgPort, user: 'postgres', database: 'postgres' })))
      if (form === 'prepared') await Promise.all(clients.map((c) => c.prepare('raw_page', `SELECT get_raw_page('${table}', 'main', $1)`)))
      const bytes = order.map((blk) => (form === 'prepared' ? bindExecuteSync('raw_page', [String(blk)]) : query(`SELECT get_raw_page('${table}', 'main', ${blk})`)))
      const pids = clients.map((c) => c.backendPid)
      return {
        one: (c, i) => clients[c]!.send(bytes[i % bytes.length]!),
        serverCpu: () => pidsCpuSeconds(pids),
        close: async () => clients.forEach((c) => c.close()),
      }
    }
    const allSystems: SystemDef[] = [
      {
        name: 'loopback echo (baseline)',
        kind: 'baseline',
        requests: REQUESTS,
        connect: async (conns) => {
          const echo = await Promise.all(Array.from({ length: conns }, () => EchoClient.connect(info.echo)))
          return { one: (c) => echo[c]!.request(), serverCpu: childTreeCpu, close: async () => echo.forEach((e) => e.close()) }
        },
      },
      { name: 'page service, fixed page (floor)', kind: 'floor', requests: REQUESTS, connect: pageService(info.fixed, FIXED_TENANT, FIXED_TIMELINE, FIXED_REL, [7], true) },
      { name: 'page server, image-layer page', kind: 'img', requests: REQUESTS, connect: pageService(info.server, data.tenantId, data.timelineId, img, imgOrder) },
      {
        name: 'page server, image page, caches bypassed',
        kind: 'img-uncached',
        requests: REQUESTS,
        connect: pageService(info.server, data.tenantId, data.timelineId, img, imgOrder),
        before: () => command('cache off'),
        after: () => command('cache on'),
      },
      {
        name: `page server, redo (${info.chainRecords.median} records)`,
        kind: 'redo',
        requests: REDO_REQUESTS,
        connect: pageService(info.server, data.tenantId, data.timelineId, chain, chainOrder),
        // Every request redone: the page cache, which keeps pages rebuilt by redo, is bypassed.
        before: () => command('pagecache off'),
        after: () => command('pagecache on'),
      },
      { name: 'page server, redo page, page cache hit', kind: 'redo-cached', requests: REQUESTS, connect: pageService(info.server, data.tenantId, data.timelineId, chain, chainOrder) },
      { name: 'PostgreSQL get_raw_page, img_t (prepared)', kind: 'pg-img', requests: REQUESTS, connect: postgres('img_t', imgOrder, 'prepared') },
      { name: 'PostgreSQL get_raw_page, chain_t (prepared)', kind: 'pg-redo', requests: REQUESTS, connect: postgres('chain_t', chainOrder, 'prepared') },
      { name: 'PostgreSQL get_raw_page, img_t (simple)', kind: 'pg-simple', requests: REQUESTS, connect: postgres('img_t', imgOrder, 'simple') },
    ]
    // The echo baseline always runs: every ratio is against it.
    const systems = allSystems.filter((s) => ONLY_KINDS === null || s.kind === 'baseline' || ONLY_KINDS.includes(s.kind))

    // ---- the timed work is the right work ----
    const correctness = await verify(info, lsns, img, f.imgPages, chain, f.chainPages, pgPort, data.tenantId, data.timelineId)

    const cases = [
      { name: '1 conn, 1 in flight', conns: 1, depth: 1 },
      { name: '8 conns, 1 in flight each', conns: 8, depth: 1 },
      { name: '1 conn, pipelined 32', conns: 1, depth: 32 },
      { name: '8 conns, pipelined 4 each', conns: 8, depth: 4 },
    ].filter((_, i) => ONLY_CASES === null || ONLY_CASES.includes(i))
    const rows: Row[] = []
    /** Each run's requests/s of every system, by case and kind: ratios taken within a run (same machine phase). */
    const runRates = new Map<string, number[]>()
    const record = (caseName: string, systemsRun: readonly SystemDef[], samples: Sample[][]): void => {
      systemsRun.forEach((sys, s) => runRates.set(`${caseName}|${sys.kind}`, samples[s]!.map((x) => x.reqPerS)))
      const med = (xs: Sample[], k: keyof Sample) => median(xs.map((x) => x[k]))
      const echoReqPerS = med(samples[0]!, 'reqPerS')
      systemsRun.forEach((sys, s) => {
        const xs = samples[s]!
        rows.push({
          case: caseName,
          system: sys.name,
          kind: sys.kind,
          reqPerS: med(xs, 'reqPerS'),
          p50Us: med(xs, 'p50Us'),
          p99Us: med(xs, 'p99Us'),
          xEcho: med(xs, 'reqPerS') / echoReqPerS,
          serverCpuUsPerReq: med(xs, 'serverCpuUsPerReq'),
          clientCpuUsPerReq: med(xs, 'clientCpuUsPerReq'),
        })
      })
    }
    for (const c of cases) {
      process.stderr.write(`[getpage] ${c.name} ...\n`)
      const connected = await Promise.all(systems.map((s) => s.connect(c.conns)))
      const samples: Sample[][] = systems.map(() => [])
      const run = async (s: number, requests: number): Promise<Sample> => {
        const sys = systems[s]!
        await sys.before?.()
        // Every run starts with the client's heap collected: the systems run in a fixed order and allocate
        // about the same per run, so a major collection would otherwise fall in the same system's runs
        // round after round (one row measured 40 % more client CPU than another doing the same work); the
        // collection's background work is let finish before timing. The servers are left alone: a forced
        // collection of the page server's heap made the next run of 2,500 redo requests spend ~50 % more
        // CPU per request (GC helper threads busy throughout, the main thread ~45 % slower), a state a
        // server that is not forced never reaches.
        await collectGarbageAndSettle()
        try {
          return await runCase(requests, c.conns, c.depth, connected[s]!.one, connected[s]!.serverCpu)
        } finally {
          await sys.after?.()
        }
      }
      for (let s = 0; s < systems.length; s++) await run(s, Math.min(WARMUP_REQUESTS, systems[s]!.requests))
      for (let r = 0; r < RUNS; r++) {
        for (let s = 0; s < systems.length; s++) samples[s]!.push(await run(s, systems[s]!.requests))
      }
      for (const x of connected) await x.close()
      record(c.name, systems, samples)
    }

    // ---- one request in flight, the echo, image pages and PostgreSQL taking turns in short blocks ----
    const alternated = systems.filter((s) => s.kind === 'baseline' || s.kind === 'img' || s.kind === 'pg-img')
    const alternatedName = `1 conn, 1 in flight, turns of ${ALTERNATE_BLOCK}`
    if (ALTERNATE_BLOCK > 0 && (ONLY_CASES === null || ONLY_CASES.includes(0)) && alternated.length > 1) {
      process.stderr.write(`[getpage] ${alternatedName} ...\n`)
      const connected = await Promise.all(alternated.map((s) => s.connect(1)))
      const samples: Sample[][] = alternated.map(() => [])
      await runAlternated(connected, WARMUP_REQUESTS, ALTERNATE_BLOCK)
      for (let r = 0; r < RUNS; r++) {
        await collectGarbageAndSettle()
        const run = await runAlternated(connected, REQUESTS, ALTERNATE_BLOCK)
        run.forEach((x, s) => samples[s]!.push(x))
      }
      for (const x of connected) await x.close()
      record(alternatedName, alternated, samples)
      cases.push({ name: alternatedName, conns: 1, depth: 1 })
    }

    // ---- targets ----
    const targets = cases.map((c) => {
      const of = (k: SystemDef['kind']) => rows.find((r) => r.case === c.name && r.kind === k) ?? null
      const ratio = (a: Row | null, b: Row | null, k: 'reqPerS' | 'p50Us') => (a !== null && b !== null ? round(a[k] / b[k], 2) : NaN)
      const im = of('img')
      const pgi = of('pg-img')
      // Image over PostgreSQL within each run, then the median and range of those ratios: a phase change of
      // this VM between two runs moves both systems of a run alike.
      const imgRates = runRates.get(`${c.name}|img`)
      const pgRates = runRates.get(`${c.name}|pg-img`)
      const perRun = imgRates !== undefined && pgRates !== undefined ? imgRates.map((x, i) => x / pgRates[i]!) : []
      return {
        case: c.name,
        imageXEcho: im !== null ? round(im.xEcho, 2) : NaN,
        imageWithin2xOfEcho: im !== null && im.xEcho >= 0.5,
        imageP50XEcho: ratio(im, of('baseline'), 'p50Us'),
        imageXPg: ratio(im, pgi, 'reqPerS'),
        imageP50XPg: ratio(im, pgi, 'p50Us'),
        imageFasterThanPg: im !== null && pgi !== null && im.reqPerS > pgi.reqPerS,
        imageXPgPerRun: perRun.length > 0 ? { median: round(median(perRun), 2), min: round(Math.min(...perRun), 2), max: round(Math.max(...perRun), 2) } : null,
        redoXPg: ratio(of('redo'), of('pg-redo'), 'reqPerS'),
        redoCachedXPg: ratio(of('redo-cached'), of('pg-redo'), 'reqPerS'),
      }
    })

    const serverCaches = await command('stats')
    const out = {
      bench: 'getpage',
      node: process.version,
      runs: RUNS,
      requests: { perRun: REQUESTS, redoPerRun: REDO_REQUESTS },
      data: { dir: data.dir, importLsn: data.info.importLsn, lastRecordLsn: info.lastRecordLsn, imgPages: f.imgPages, chainPages: f.chainPages, chainRounds: CHAIN_ROUNDS },
      history: { imgImageLayerHits: info.imgImageHits, chainRecords: info.chainRecords },
      correctness,
      serverCaches,
      rows: rows.map((r) => ({
        ...r,
        reqPerS: Math.round(r.reqPerS),
        p50Us: round(r.p50Us, 1),
        p99Us: round(r.p99Us, 1),
        xEcho: round(r.xEcho, 2),
        serverCpuUsPerReq: round(r.serverCpuUsPerReq, 1),
        clientCpuUsPerReq: round(r.clientCpuUsPerReq, 1),
      })),
      targets,
    }
    console.log(JSON.stringify(out, null, 2))
    console.log()
    console.log(
      formatTable(
        ['case', 'system', 'req/s', 'p50 µs', 'p99 µs', 'x echo', 'server CPU µs/req', 'client CPU µs/req'],
        out.rows.map((r) => [r.case, r.system, r.reqPerS, r.p50Us, r.p99Us, r.xEcho, r.serverCpuUsPerReq, r.clientCpuUsPerReq]),
      ),
    )
    console.log()
    console.log(
      formatTable(
        ['case', 'image req/s x echo (target >= 0.5)', 'image p50 x echo p50', 'image req/s x PG', 'image x PG within runs: median (range)', 'image p50 x PG p50', 'redo req/s x PG', 'redo, page cache hit, x PG'],
        targets.map((t) => [
          t.case,
          t.imageXEcho,
          t.imageP50XEcho,
          t.imageXPg,
          t.imageXPgPerRun === null ? '-' : `${t.imageXPgPerRun.median} (${t.imageXPgPerRun.min}-${t.imageXPgPerRun.max})`,
          t.imageP50XPg,
          t.redoXPg,
          t.redoCachedXPg,
        ]),
      ),
    )
    console.log(
      `\ncorrectness: ${correctness.pagesCompared} pages compared with PostgreSQL's (masked): ${correctness.maskedMismatches} differ, ${correctness.exactMatches} identical byte for byte; ` +
        `${correctness.badChecksums} bad checksums; simple-query pages equal prepared: ${correctness.simpleEqual}/${correctness.simpleCompared}`,
    )
    console.log(
      `history: ${info.imgImageHits}/${f.imgPages} img_t pages are image-layer hits; chain_t pages need ${info.chainRecords.min}-${info.chainRecords.max} records (median ${info.chainRecords.median}) above an image`,
    )
    console.log(`median of ${RUNS} runs; ${REQUESTS} requests per run (${REDO_REQUESTS} for redo); server CPU = page server process tree or PostgreSQL backends`)
  } finally {
    child.stdin.end()
    await childExit
    await pg?.destroy()
    rmSync(scratch, { recursive: true, force: true })
  }
}

interface Correctness {
  pagesCompared: number
  maskedMismatches: number
  exactMatches: number
  badChecksums: number
  simpleCompared: number
  simpleEqual: number
}

/** Every page of both tables through the page server and through PostgreSQL, compared. */
async function verify(
  info: ServerInfo,
  lsns: { requestLsn: Lsn; notModifiedSince: Lsn },
  img: RelTag,
  imgPages: number,
  chain: RelTag,
  chainPages: number,
  pgPort: number,
  tenantId: TenantId,
  timelineId: TimelineId,
): Promise<Correctness> {
  const ps = await PageServiceClient.connect({ host: '127.0.0.1', port: info.server })
  const pgc = await PgRawPageClient.connect({ host: '127.0.0.1', port: pgPort, user: 'postgres', database: 'postgres' })
  const out: Correctness = { pagesCompared: 0, maskedMismatches: 0, exactMatches: 0, badChecksums: 0, simpleCompared: 0, simpleEqual: 0 }
  try {
    const stream = await ps.pagestream(tenantId, timelineId, { version: 3 })
    await pgc.prepare('img', "SELECT get_raw_page('img_t', 'main', $1)")
    await pgc.prepare('chain', "SELECT get_raw_page('chain_t', 'main', $1)")
    for (const [rel, pages, stmt] of [[img, imgPages, 'img'], [chain, chainPages, 'chain']] as const) {
      for (let blk = 0; blk < pages; blk++) {
        const ours = Buffer.from(await stream.getPage(rel, blk, lsns))
        const theirs = Buffer.from((await pgc.send(bindExecuteSync(stmt, [String(blk)])))!)
        out.pagesCompared++
        if (!maskForCompare(ours, blk, 0).equals(maskForCompare(theirs, blk, 0))) out.maskedMismatches++
        if (ours.equals(theirs)) out.exactMatches++
        if (pageChecksum(ours, blk) !== ours.readUInt16LE(8)) out.badChecksums++
        if (stmt === 'img' && blk % 10 === 0) {
          out.simpleCompared++
          const text = (await pgc.send(query(`SELECT get_raw_page('img_t', 'main', ${blk})`)))!
          if (decodeHexBytea(text).equals(theirs)) out.simpleEqual++
        }
      }
    }
  } finally {
    pgc.close()
    await ps.close()
  }
  return out
}

await main()
