/**
 * WAL-redo IPC: what a round trip through a redo worker process costs, per request, against the baseline of
 * doing the protocol work in-process (encode the request, decode it, build the reply page) in the same run.
 * Prints JSON, then a table. Run: npm run bench -- bench/walredo-ipc.ts
 *
 * Cases: ping (5 bytes out, 8 KiB back) through our worker (worker-main, run from source under tsx) and an
 * echo request (base page + 3 records, ~8.4 KiB out, 8 KiB back) through the test echo worker, with 1 and N
 * requests in flight, on one worker and on a pool of two. Each case is `batch` requests, `runs` times; the
 * median microseconds per request is reported. Workers are started (and warmed) before timing.
 */
import { fileURLToPath } from 'node:url'
import { lsn } from '../src/core/pg/lsn.js'
import { WalRedoManager } from '../src/core/walredo/manager.js'
import { RedoMessageDecoder, encodeRedoRequest, type RedoRequestInput } from '../src/core/walredo/protocol.js'
import { defaultWorkerCommand } from '../src/core/walredo/worker-command.js'
import { median } from './support/stats.js'

const runs = 7
const batch = 2000

function rec(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len, seed)
  b.writeUInt32LE(len, 0)
  return b
}

const REQ: RedoRequestInput = {
  tag: { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0, blkno: 7 },
  base: Buffer.alloc(8192, 0x11),
  records: [
    { endLsn: lsn(0x1000n), raw: rec(80, 1) },
    { endLsn: lsn(0x1050n), raw: rec(120, 2) },
    { endLsn: lsn(0x10d0n), raw: rec(60, 3) },
  ],
}

/** Median µs per request of `batch` requests issued by `inFlight` concurrent loops. */
async function timeAsync(inFlight: number, one: () => Promise<unknown>): Promise<number> {
  const round = async (): Promise<number> => {
    const t0 = process.hrtime.bigint()
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        for (let i = 0; i < batch / inFlight; i++) await one()
      }),
    )
    return Number(process.hrtime.bigint() - t0) / 1000 / batch
  }
  await round() // warm-up
  const samples: number[] = []
  for (let r = 0; r < runs; r++) samples.push(await round())
  return median(samples)
}

function timeSync(fn: () => void): number {
  for (let i = 0; i < batch; i++) fn()
  const samples: number[] = []
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < batch; i++) fn()
    samples.push(Number(process.hrtime.bigint() - t0) / 1000 / batch)
  }
  return median(samples)
}

/** The protocol work of one request without a process: encode, decode every message, build the page. */
function inProcess(): void {
  const bytes = encodeRedoRequest(REQ)
  const d = new RedoMessageDecoder()
  d.push(bytes)
  let page: Buffer | null = null
  for (let m = d.next(); m !== null; m = d.next()) if (m.type === 'P') page = Buffer.from(m.page)
  if (page === null || page.length !== 8192) throw new Error('bad decode')
}

const echoWorker = [process.execPath, fileURLToPath(new URL('../test/core/walredo/fixtures/echo-worker.mjs', import.meta.url))]
const ourWorker = defaultWorkerCommand({ hintBitsLogged: false })

async function withPool<T>(command: string[], poolSize: number, maxInFlight: number, fn: (m: WalRedoManager) => Promise<T>): Promise<T> {
  const m = new WalRedoManager({ command, poolSize, maxInFlightPerWorker: maxInFlight, maxQueued: 1000, requestTimeoutMs: 60_000, idleTimeoutMs: 600_000 })
  try {
    await Promise.all(Array.from({ length: poolSize * maxInFlight }, () => m.ping())) // start every worker
    return await fn(m)
  } finally {
    await m.close()
  }
}

interface Row {
  case: string
  inFlight: number
  workers: number
  usPerRequest: number
  ratio: number
}

async function main(): Promise<void> {
  const N = 8
  const baseline = timeSync(inProcess)
  const rows: Row[] = [{ case: 'in-process protocol work (baseline)', inFlight: 1, workers: 0, usPerRequest: baseline, ratio: 1 }]
  const add = (name: string, inFlight: number, workers: number, us: number): void => {
    rows.push({ case: name, inFlight, workers, usPerRequest: us, ratio: us / baseline })
  }
  add('ping, worker-main', 1, 1, await withPool(ourWorker, 1, 1, (m) => timeAsync(1, () => m.ping())))
  add('ping, worker-main', N, 1, await withPool(ourWorker, 1, N, (m) => timeAsync(N, () => m.ping())))
  add('ping, echo worker', 1, 1, await withPool(echoWorker, 1, 1, (m) => timeAsync(1, () => m.ping())))
  add('echo request, echo worker', 1, 1, await withPool(echoWorker, 1, 1, (m) => timeAsync(1, () => m.redo(REQ))))
  add('echo request, echo worker', N, 1, await withPool(echoWorker, 1, N, (m) => timeAsync(N, () => m.redo(REQ))))
  add('echo request, echo workers', 2 * N, 2, await withPool(echoWorker, 2, N, (m) => timeAsync(2 * N, () => m.redo(REQ))))

  const round = (x: number): number => Math.round(x * 100) / 100
  console.log(JSON.stringify({ bench: 'walredo-ipc', runs, batch, rows: rows.map((r) => ({ ...r, usPerRequest: round(r.usPerRequest), ratio: round(r.ratio) })) }, null, 2))
  console.log()
  console.log(`${'case'.padEnd(38)} ${'in flight'.padStart(9)} ${'workers'.padStart(7)} ${'µs/request'.padStart(11)} ${'ratio'.padStart(8)}`)
  for (const r of rows) {
    console.log(`${r.case.padEnd(38)} ${String(r.inFlight).padStart(9)} ${String(r.workers).padStart(7)} ${r.usPerRequest.toFixed(2).padStart(11)} ${r.ratio.toFixed(1).padStart(8)}`)
  }
}

await main()
