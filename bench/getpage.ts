/**
 * GetPage through the page service protocol, against a loopback echo of the same message sizes, in the
 * same run: how much our libpq + pagestream layer (framing, decoding, ordering queue, back-pressure, the
 * client library) costs on top of moving the bytes. The backend is a fake that answers every GetPage
 * with one fixed 8 KiB page at once, so this is the protocol floor; real pages cost more.
 *
 * Servers (page service and echo) run in a child process, clients in this one, so each side has a core
 * on a 2-core machine, as a compute and a page server would.
 *
 * Cases: 1 connection with 1 request in flight (latency), 8 connections with 1 each, 1 connection
 * pipelined 32 deep, 8 connections pipelined 4 deep. Each case: `runs` interleaved runs (echo, then the
 * page service) of `requests` GetPage requests (pagestream v3: 47-byte CopyData out, 8,239 back).
 * Reported: median over runs of requests/s and of the per-run p50 / p99 latency; ratio = page service
 * throughput / echo throughput.
 *
 * Run: npm run bench -- bench/getpage.ts      (env GETPAGE_BENCH_RUNS=5, GETPAGE_BENCH_REQUESTS=20000)
 */
import { spawn } from 'node:child_process'
import { connect, createServer, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { PageServiceServer } from '../src/core/page-service/server.js'
import { PageServiceClient } from '../src/core/page-service/client.js'
import type { PageServiceBackend, PageServiceTimeline } from '../src/core/page-service/backend.js'
import { lsn, MAX_LSN, type Lsn } from '../src/core/pg/lsn.js'
import type { TenantId, TimelineId } from '../src/core/model/ids.js'
import { encodeRequestFrame, encodeResponseFrame, type GetPageRequest } from '../src/core/protocol/pagestream.js'

const TENANT = '0123456789abcdef0123456789abcdef' as TenantId
const TIMELINE = 'fedcba9876543210fedcba9876543210' as TimelineId
const REL = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0 }
const PAGE = Buffer.alloc(8192, 0x5a)

const REQ: GetPageRequest = { type: 'getpage', hdr: { reqid: 1n, request_lsn: MAX_LSN, not_modified_since: lsn(0) }, rel: REL, blkno: 7 }
const REQ_FRAME = encodeRequestFrame(REQ, 3)
const RESP_FRAME = encodeResponseFrame({ type: 'getpage', req: REQ, page: PAGE }, 3)

// ---- server side (child process) ----------------------------------------------------------------------

function fixedPageBackend(): PageServiceBackend {
  const last = lsn(0x1000_0000)
  const page = Promise.resolve(PAGE)
  const timeline: PageServiceTimeline = {
    lastRecordLsn: () => last,
    gcCutoffLsn: () => lsn(0),
    minReadableLsn: () => lsn(0),
    waitForLsn: async () => undefined,
    relExists: async () => true,
    relSize: async () => 1000,
    getPage: () => page,
    dbSize: async () => 0n,
    slruSegment: async () => Buffer.alloc(0),
    basebackup: async () => ({ lsn: last, tar: (async function* () {})() }),
  }
  return { timeline: () => timeline }
}

/** Reads 47-byte requests, answers each with the 8,239-byte response frame. */
function echoServer() {
  return createServer({ noDelay: true }, (socket) => {
    let pending = 0
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.length
      while (pending >= REQ_FRAME.length) {
        pending -= REQ_FRAME.length
        socket.write(RESP_FRAME)
      }
    })
    socket.on('error', () => undefined)
  })
}

async function serve(): Promise<void> {
  const ps = new PageServiceServer(fixedPageBackend(), { connectionsMax: 64 })
  await ps.listen('127.0.0.1', 0)
  const echo = echoServer()
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  const echoPort = (echo.address() as { port: number }).port
  process.stdout.write(JSON.stringify({ ps: ps.address.port, echo: echoPort }) + '\n')
  process.stdin.resume()
  process.stdin.on('end', () => {
    echo.close()
    void ps.close().then(() => process.exit(0))
  })
}

// ---- client side --------------------------------------------------------------------------------------

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
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
}

/** `requests` requests over `conns` connections with `depth` in flight each. */
async function runCase(requests: number, conns: number, depth: number, one: (conn: number) => Promise<unknown>): Promise<Sample> {
  const lat = new Float64Array(requests)
  let issued = 0
  let done = 0
  const t0 = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: conns * depth }, async (_, w) => {
      const conn = w % conns
      while (issued < requests) {
        issued++
        const s = process.hrtime.bigint()
        await one(conn)
        lat[done++] = Number(process.hrtime.bigint() - s) / 1000
      }
    }),
  )
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const sorted = lat.subarray(0, done).sort()
  return { reqPerS: done / seconds, p50Us: percentile(sorted, 0.5), p99Us: percentile(sorted, 0.99) }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

interface Row {
  case: string
  system: string
  reqPerS: number
  p50Us: number
  p99Us: number
  ratio: number
}

async function main(): Promise<void> {
  const runs = Number(process.env.GETPAGE_BENCH_RUNS ?? 5)
  const requests = Number(process.env.GETPAGE_BENCH_REQUESTS ?? 20_000)
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--serve'], { stdio: ['pipe', 'pipe', 'inherit'] })
  const first = await new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve))
  const ports = JSON.parse(first) as { ps: number; echo: number }
  const cases = [
    { name: '1 conn, 1 in flight', conns: 1, depth: 1 },
    { name: '8 conns, 1 in flight each', conns: 8, depth: 1 },
    { name: '1 conn, pipelined 32', conns: 1, depth: 32 },
    { name: '8 conns, pipelined 4 each', conns: 8, depth: 4 },
  ]
  const rows: Row[] = []
  try {
    for (const c of cases) {
      const echoSamples: Sample[] = []
      const psSamples: Sample[] = []
      const echo = await Promise.all(Array.from({ length: c.conns }, () => EchoClient.connect(ports.echo)))
      const clients = await Promise.all(Array.from({ length: c.conns }, () => PageServiceClient.connect({ host: '127.0.0.1', port: ports.ps })))
      const streams = await Promise.all(clients.map((cl) => cl.pagestream(TENANT, TIMELINE, { version: 3 })))
      const lsns = { requestLsn: MAX_LSN, notModifiedSince: lsn(0) as Lsn }
      const echoOne = (i: number): Promise<void> => echo[i]!.request()
      const psOne = (i: number): Promise<Buffer> => streams[i]!.getPage(REL, 7, lsns)
      await runCase(Math.min(2000, requests), c.conns, c.depth, echoOne) // warm-up
      await runCase(Math.min(2000, requests), c.conns, c.depth, psOne)
      for (let r = 0; r < runs; r++) {
        echoSamples.push(await runCase(requests, c.conns, c.depth, echoOne))
        psSamples.push(await runCase(requests, c.conns, c.depth, psOne))
      }
      for (const e of echo) e.close()
      await Promise.all(clients.map((cl) => cl.close()))
      const summarize = (xs: Sample[]): Sample => ({ reqPerS: median(xs.map((x) => x.reqPerS)), p50Us: median(xs.map((x) => x.p50Us)), p99Us: median(xs.map((x) => x.p99Us)) })
      const e = summarize(echoSamples)
      const p = summarize(psSamples)
      rows.push({ case: c.name, system: 'loopback echo (baseline)', ...e, ratio: 1 })
      rows.push({ case: c.name, system: 'page service (fixed page)', ...p, ratio: p.reqPerS / e.reqPerS })
    }
  } finally {
    child.stdin.end()
    await new Promise((resolve) => child.once('exit', resolve))
  }
  const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d
  console.log(
    JSON.stringify(
      { bench: 'getpage', runs, requests, rows: rows.map((r) => ({ ...r, reqPerS: Math.round(r.reqPerS), p50Us: round(r.p50Us), p99Us: round(r.p99Us), ratio: round(r.ratio, 2) })) },
      null,
      2,
    ),
  )
  console.log()
  console.log(`${'case'.padEnd(28)} ${'system'.padEnd(27)} ${'req/s'.padStart(9)} ${'p50 µs'.padStart(8)} ${'p99 µs'.padStart(8)} ${'ratio'.padStart(6)}`)
  for (const r of rows) {
    console.log(
      `${r.case.padEnd(28)} ${r.system.padEnd(27)} ${Math.round(r.reqPerS).toLocaleString('en-US').padStart(9)} ${r.p50Us.toFixed(0).padStart(8)} ${r.p99Us.toFixed(0).padStart(8)} ${r.ratio.toFixed(2).padStart(6)}`,
    )
  }
}

if (process.argv.includes('--serve')) await serve()
else await main()
