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

/**
 * Runs `fn` on a WalRedoManager whose workers are all spawned (pinged) before `fn` starts, then closes it.
 * `fn` also gets the CPU seconds the workers have used so far (from /proc).
 */
export async function withRedoPool<T>(o: BenchPoolOptions, fn: (m: WalRedoManager, workersCpuS: () => number) => Promise<T>): Promise<T> {
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
    const pids = m.stats().pids
    return await fn(m, () => pids.map(procCpuSeconds).reduce((a, c) => a + c, 0))
  } finally {
    await m.close()
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
