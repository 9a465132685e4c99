/**
 * The errors a redo worker pool (WalRedoManager, manager.ts) raises itself, as opposed to those a worker
 * reports (worker-failure.ts, redo-error-line.ts, redo-error-page.ts): the caller gave up, the queue is
 * full, the wait for a worker ran out, or every attempt failed.
 *
 * Each says what to do in its hint; the policy that raises them is in the header of manager.ts. None is
 * built on the request path unless the request ends with it.
 */
import { InterruptedError, PageserverError, TimeoutError, UnavailableError, errorOfKind } from '../lib/errors.js'
import type { RedoProcessBudget } from './process-budget.js'
import type { WorkerFailureReason } from './worker-failure.js'

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedError('the request')
}

export function abortedError(what: string): InterruptedError {
  return new InterruptedError('WALREDO_ABORTED', `WAL redo of ${what} was cancelled`, {
    hint: 'The caller gave up on this page (client disconnected or shutdown); nothing to do.',
  })
}

/** A new request finds every slot taken and `maxQueued` requests waiting already. */
export function overloadedError(queued: number, maxQueued: number, poolSize: number): UnavailableError {
  return new UnavailableError('WALREDO_OVERLOADED', `WAL redo is overloaded: ${queued} requests already wait for a redo worker`, {
    hint: 'Retry shortly; if it persists, raise wal_redo_workers, or lower the load.',
    details: { queued, maxQueued, poolSize },
  })
}

/**
 * Why a queued request gave up after `timeoutMs`: this pool's workers were busy, or (no worker at all in a
 * pool under a budget) the server-wide cap left it none.
 */
export function queueTimeoutError(what: string, timeoutMs: number, queued: number, liveWorkers: number, budget: RedoProcessBudget | null): TimeoutError {
  const details = { page: what, timeoutMs, queued }
  if (liveWorkers === 0 && budget !== null) {
    const b = budget.stats()
    return new TimeoutError(
      'WALREDO_TIMEOUT',
      `WAL redo of ${what} waited ${timeoutMs} ms for a redo worker: all ${b.max} redo processes the server may run (wal_redo_max_processes) were busy with other tenants`,
      { hint: 'Raise wal_redo_max_processes (each worker is a process of tens of MiB), or lower the load.', details: { ...details, maxProcesses: b.max } },
    )
  }
  return new TimeoutError('WALREDO_TIMEOUT', `WAL redo of ${what} waited ${timeoutMs} ms for a free redo worker`, {
    hint: 'The redo workers are saturated; raise wal_redo_workers, or lower the load.',
    details,
  })
}

/** The error of a request that failed on two workers: the last failure's kind and code, the whole story. */
export function finalError(last: PageserverError, what: string, attempts: number, reasons: WorkerFailureReason[]): PageserverError {
  return errorOfKind(last.kind, last.code, `WAL redo of ${what} failed ${attempts} times (${reasons.join(', ')}); last: ${last.message}`, {
    ...(last.hint === undefined ? {} : { hint: last.hint }),
    details: { ...last.details, attempts, reasons },
    cause: last,
  })
}
