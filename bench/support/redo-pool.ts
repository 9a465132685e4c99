/** A started redo worker pool for the benchmarks (bench/redo.ts, redo-pool-once.ts), and a bounded job runner. */
import { WalRedoManager } from '../../src/core/walredo/manager.js'
import { procCpuSeconds } from './stats.js'

export interface BenchPoolOptions {
  /** The worker's argv. */
  readonly command: string[]
  readonly workers: number
  /** Requests pipelined per worker. */
  readonly inFlight: number
}

/** A started benchmark pool: the manager, the CPU seconds its workers have used so far (from /proc), close. */
export interface BenchPool {
  readonly m: WalRedoManager
  readonly workersCpuS: () => number
  close(): Promise<void>
}

/** A WalRedoManager whose workers are all spawned (pinged) before it is returned. */
export async function startBenchPool(o: BenchPoolOptions): Promise<BenchPool> {
  const m = new WalRedoManager({
    command: o.command,
    poolSize: o.workers,
    maxInFlightPerWorker: o.inFlight,
    maxQueued: o.workers * o.inFlight * 4,
    requestTimeoutMs: 120_000,
    idleTimeoutMs: 600_000,
  })
  try {
    await Promise.all(Array.from({ length: o.workers * o.inFlight }, () => m.ping()))
  } catch (err) {
    await m.close()
    throw err
  }
  const pids = m.stats().pids
  return { m, workersCpuS: () => pids.map(procCpuSeconds).reduce((a, c) => a + c, 0), close: () => m.close() }
}

/** Runs `fn` on a started pool (startBenchPool), then closes it. */
export async function withRedoPool<T>(o: BenchPoolOptions, fn: (m: WalRedoManager, workersCpuS: () => number) => Promise<T>): Promise<T> {
  const pool = await startBenchPool(o)
  try {
    return await fn(pool.m, pool.workersCpuS)
  } finally {
    await pool.close()
  }
}

/** Runs `job` on every item, with at most `limit` in flight. */
export async function bounded<T>(items: readonly T[], limit: number, job: (t: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await job(items[next++]!)
    }),
  )
}
