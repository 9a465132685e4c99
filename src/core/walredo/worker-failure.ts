/**
 * How a request on a redo worker (WorkerProcess, worker-process.ts) fails: WorkerFailure, which names the
 * reason and whether this request caused it, and the typed errors it carries for each way a worker fails.
 *
 * Why apart from the process: the pool (manager.ts) and its jobs (redo-job.ts) decide retries on the reason
 * and attribution alone, and pool-stats.ts counts them; none of them needs the child process for that. The
 * error builders keep each failure's code, message and hint in one place; none runs on the request path
 * unless the request ends with that failure.
 */
import { CorruptionError, PageserverError, TimeoutError, UnavailableError } from '../lib/errors.js'

/** Why a request failed on a worker. */
export type WorkerFailureReason = 'timeout' | 'crash' | 'malformed' | 'redo_error' | 'spawn' | 'closed'

export class WorkerFailure extends Error {
  constructor(
    readonly reason: WorkerFailureReason,
    /** True when this request caused the failure; false when it only waited behind the one that did. */
    readonly attributed: boolean,
    readonly error: PageserverError,
  ) {
    super(error.message)
    this.name = 'WorkerFailure'
  }
}

/** The request `what` was not answered within its deadline of `timeoutMs`; the worker is killed for it. */
export function deadlineError(pid: number | undefined, what: string, timeoutMs: number): TimeoutError {
  return new TimeoutError('WALREDO_TIMEOUT', `WAL redo of ${what} did not finish within ${timeoutMs} ms; the redo worker was killed`, {
    hint: 'Raise wal_redo_timeout if pages have very long WAL chains; otherwise report the page and LSN (the redo engine may loop).',
    details: { pid, timeoutMs, page: what },
  })
}

/** The worker wrote bytes that are not a valid reply (unsolicited, a bad ping or error page, cut short). */
export function malformedReplyError(pid: number | undefined, message: string, details: Record<string, unknown>): CorruptionError {
  return new CorruptionError('WALREDO_MALFORMED_REPLY', message, {
    hint: 'The redo worker does not speak the walredo protocol correctly; check the wal redo worker command.',
    details: { pid, ...details },
  })
}

/** The worker's executable could not be started at all. */
export function spawnFailedError(command: readonly string[], err: Error): UnavailableError {
  return new UnavailableError('WALREDO_SPAWN_FAILED', `cannot start the redo worker "${command[0]}": ${err.message}`, {
    hint: 'Check the wal redo worker command: the executable must exist and be runnable by this user.',
    details: { command: command.join(' ') },
  })
}

/**
 * The worker died (`exit` says how: "was killed by SIGKILL") while `what` was the oldest request in flight;
 * `tail` is "; stderr: <the line most likely to name the cause>", or empty.
 */
export function crashedError(pid: number | undefined, exit: string, what: string, tail: string, details: Record<string, unknown>): UnavailableError {
  return new UnavailableError('WALREDO_WORKER_CRASHED', `the redo worker (pid ${pid}) ${exit} while redoing ${what}${tail}`, {
    hint: 'The redo worker crashed or ran out of memory; its stderr is in the log. Report the page and LSN if it repeats.',
    details,
  })
}

/** `what` only waited behind the request that failed (`cause`): not its fault, so the pool may retry it. */
export function lostError(pid: number | undefined, what: string, cause: string, details: Record<string, unknown>): UnavailableError {
  return new UnavailableError('WALREDO_WORKER_LOST', `the redo worker (pid ${pid}) was replaced while ${what} waited behind a request that failed (${cause})`, {
    hint: 'Retry the request; it did not cause the failure.',
    details,
  })
}

export function closedError(): UnavailableError {
  return new UnavailableError('WALREDO_CLOSED', 'the WAL redo manager is shut down', {
    hint: 'The page server is stopping; retry after it restarts.',
  })
}
