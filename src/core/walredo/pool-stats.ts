/**
 * What a redo worker pool (WalRedoManager, manager.ts) counts, and the stats() it reports.
 *
 * PoolCounters holds this pool's counters since it was made. The events the server also totals across its
 * pools (requests, failed requests, workers spawned and reaped: RedoTotals in process-budget.ts) are counted
 * through the count* methods, which add each to both in one place, so the two never drift apart; the budget
 * counts reclaimed workers itself, where it decides them, and the pool counts exited ones in the totals only
 * (manager.ts, where it learns of the exit). Counting is on the request path: plain fields of one object, no
 * allocation.
 */
import type { RedoTotals } from './process-budget.js'
import type { WorkerFailureReason } from './worker-failure.js'
import type { WorkerProcess } from './worker-process.js'

export interface WalRedoStats {
  /** Running workers (not counting those being stopped). */
  workers: number
  pids: number[]
  inFlight: number
  queued: number
  spawned: number
  requests: number
  succeeded: number
  failed: number
  retried: number
  overloaded: number
  reaped: number
  /** Workers stopped, or drained and stopped, so that another pool of the budget could start one. */
  reclaimed: number
  /** Workers lost, by the reason of the failure that ended them. */
  failures: Record<WorkerFailureReason, number>
  lastRedoAtMs: number | null
  closed: boolean
}

export class PoolCounters {
  spawned = 0
  requests = 0
  succeeded = 0
  failed = 0
  retried = 0
  overloaded = 0
  reaped = 0
  reclaimed = 0
  lastRedoAtMs: number | null = null
  readonly failures: Record<WorkerFailureReason, number> = { timeout: 0, crash: 0, malformed: 0, redo_error: 0, spawn: 0, closed: 0 }

  /** `totals`: the server's, when the pool shares a budget; null: this pool's counters only. */
  constructor(private readonly totals: RedoTotals | null) {}

  /** A redo request taken (through a worker or in process), in this pool's counters and the server's totals. */
  countRequest(): void {
    this.requests++
    if (this.totals !== null) this.totals.requests++
  }

  /** How a counted redo request ended. */
  countOutcome(succeeded: boolean): void {
    if (succeeded) {
      this.succeeded++
      this.lastRedoAtMs = Date.now()
    } else {
      this.failed++
      if (this.totals !== null) this.totals.failed++
    }
  }

  countSpawn(): void {
    this.spawned++
    if (this.totals !== null) this.totals.spawned++
  }

  countReap(): void {
    this.reaped++
    if (this.totals !== null) this.totals.reaped++
  }

  /** The pool's stats: these counters, and the running `workers` (their pids and requests in flight). */
  stats(workers: ReadonlySet<WorkerProcess>, queued: number, closed: boolean): WalRedoStats {
    let inFlight = 0
    const pids: number[] = []
    for (const w of workers) {
      inFlight += w.inFlight
      if (w.pid !== undefined) pids.push(w.pid)
    }
    return {
      workers: workers.size,
      pids,
      inFlight,
      queued,
      spawned: this.spawned,
      requests: this.requests,
      succeeded: this.succeeded,
      failed: this.failed,
      retried: this.retried,
      overloaded: this.overloaded,
      reaped: this.reaped,
      reclaimed: this.reclaimed,
      failures: { ...this.failures },
      lastRedoAtMs: this.lastRedoAtMs,
      closed,
    }
  }
}
