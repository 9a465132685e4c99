/**
 * The per-page chains of the cached benchmark WAL (`redo-chains.ts`, the same ones `redo-engine-once.ts`
 * redoes in-process) through a WalRedoManager of 1 and of 2 worker processes, as the page server runs it
 * (its pipeline depth, workers that skip the record CRC): what the request path costs beside the engine,
 * without PostgreSQL. Prints one JSON line for the engine alone in this process (the floor, measured in the
 * same run because this VM's speed drifts between runs), then one per pool size: the median pass's wall
 * milliseconds, records per second, and per pass the CPU milliseconds of this (the parent) process and of
 * the workers (from /proc), the parent's garbage-collection pauses, and records per CPU-second of both
 * together.
 *
 *   node --import tsx bench/support/redo-pool-once.ts [pg_wal dir]
 * env: REDO_ONCE_WORKERS (pool sizes, default 1,2), REDO_ONCE_PASSES (default 5, after 2 warm-up passes),
 * REDO_ONCE_IN_FLIGHT (default: the page server's depth), REDO_ONCE_HINT_BITS (0/1, default 1), REDO_ONCE_WORKER_PROF (a directory: a CPU profile
 * of each worker, written when its pool closes; profile this process with --cpu-prof).
 */
import { WALREDO_IN_FLIGHT_PER_WORKER_MAX } from '../../src/core/repository/tenant.js'
import { WalRedoManager } from '../../src/core/walredo/manager.js'
import { defaultWorkerCommand } from '../../src/core/walredo/worker-command.js'
import { ArenaRedo, DEFAULT_WAL_DIR, loadRedoChains } from './redo-chains.js'
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import { median } from './stats.js'
import { bounded, withRedoPool } from './redo-pool.js'

const PASSES = Number(process.env.REDO_ONCE_PASSES ?? 5)
const IN_FLIGHT = Number(process.env.REDO_ONCE_IN_FLIGHT ?? WALREDO_IN_FLIGHT_PER_WORKER_MAX)
const hintBitsLogged = process.env.REDO_ONCE_HINT_BITS !== '0'
/** A directory for a CPU profile of each worker (written when the pool closes). */
const WORKER_PROF_DIR = process.env.REDO_ONCE_WORKER_PROF ?? null

const chains = loadRedoChains(process.argv[2] ?? DEFAULT_WAL_DIR)
const recordCount = chains.reduce((s, c) => s + c.records.length, 0)

// The floor, in this process and this run (the machine's speed drifts between runs): the engine alone over
// the same chains, as a worker runs it.
{
  const engine = new ArenaRedo(chains)
  const opts = { hintBitsLogged, checkRecordCrc: false }
  const cpuMs: number[] = []
  for (let p = 0; p < PASSES + 2; p++) {
    const c0 = process.cpuUsage()
    engine.pass(opts)
    const c = process.cpuUsage(c0)
    if (p >= 2) cpuMs.push((c.user + c.system) / 1000)
  }
  const cpu = median(cpuMs)
  console.log(JSON.stringify({ workers: 0, case: 'engine in-process', records: recordCount, cpuMsPerPass: Math.round(cpu), recordsPerCpuS: Math.round(recordCount / (cpu / 1000)) }))
}

/** Garbage collections in this process (start time, ms), to charge each pass its own. */
const gcEntries: PerformanceEntry[] = []
const gcObserver = new PerformanceObserver((list) => void gcEntries.push(...list.getEntries()))
gcObserver.observe({ entryTypes: ['gc'] })
const gcMsBetween = (t0: number, t1: number) => gcEntries.filter((e) => e.startTime >= t0 && e.startTime < t1).reduce((s, e) => s + e.duration, 0)

function workerCommand(): string[] {
  const [node, ...args] = defaultWorkerCommand({ hintBitsLogged, checkRecordCrc: false })
  return WORKER_PROF_DIR === null ? [node!, ...args] : [node!, '--cpu-prof', `--cpu-prof-dir=${WORKER_PROF_DIR}`, ...args]
}

/** Every chain redone through `m`, with at most `limit` requests in flight. */
function pass(m: WalRedoManager, limit: number): Promise<void> {
  return bounded(chains, limit, async (c) => void (await m.redo({ tag: c.tag, base: null, records: c.records })))
}

for (const workers of (process.env.REDO_ONCE_WORKERS ?? '1,2').split(',').map(Number)) {
  await withRedoPool({ command: workerCommand(), workers, inFlight: IN_FLIGHT }, async (m, workersCpuS) => {
    for (let w = 0; w < 2; w++) await pass(m, workers * IN_FLIGHT)
    const wallMs: number[] = []
    const parentMs: number[] = []
    const workerMs: number[] = []
    const windows: Array<[number, number]> = []
    for (let p = 0; p < PASSES; p++) {
      const c0 = process.cpuUsage()
      const w0 = workersCpuS()
      const t0 = performance.now()
      await pass(m, workers * IN_FLIGHT)
      const t1 = performance.now()
      wallMs.push(t1 - t0)
      windows.push([t0, t1])
      const c = process.cpuUsage(c0)
      parentMs.push((c.user + c.system) / 1000)
      workerMs.push((workersCpuS() - w0) * 1000)
    }
    await new Promise((resolve) => setImmediate(resolve)) // the observer's last entries
    const wall = median(wallMs)
    const cpu = median(parentMs) + median(workerMs)
    console.log(
      JSON.stringify({
        workers,
        inFlightPerWorker: IN_FLIGHT,
        pages: chains.length,
        records: recordCount,
        medianMs: Math.round(wall),
        recordsPerS: Math.round(recordCount / (wall / 1000)),
        parentCpuMsPerPass: Math.round(median(parentMs)),
        parentGcMsPerPass: Math.round(median(windows.map(([a, b]) => gcMsBetween(a, b)))),
        workersCpuMsPerPass: Math.round(median(workerMs)),
        recordsPerCpuS: Math.round(recordCount / (cpu / 1000)),
      }),
    )
  })
}
gcObserver.disconnect()
