/**
 * WalRedoManager: a pool of redo worker processes behind one `redo()` call.
 *
 * Why processes: a crash, an endless loop or a memory blow-up while redoing one page must never take the page
 * server down. Each worker speaks Neon's walredo pipe protocol (protocol.ts), so the manager does not care
 * what runs behind the command: our TypeScript engine (worker-main.ts, the default) or Neon's
 * `postgres --wal-redo`.
 *
 * Policy, in one place:
 * - Pool: at most `poolSize` running workers, spawned lazily. A request goes to an idle worker, else to a new
 *   one while the pool can grow, else is pipelined to the least busy worker (at most `maxInFlightPerWorker`
 *   unanswered requests each). Workers dying or being reaped may briefly coexist with their replacements.
 * - Back-pressure: when every slot is taken a request waits in a FIFO of at most `maxQueued`; when that is
 *   full `redo()` rejects at once with UnavailableError WALREDO_OVERLOADED (the caller sheds load, e.g. the
 *   page service answers with an error, rather than piling up promises). A queued request waits at most
 *   `requestTimeoutMs` for a slot (TimeoutError WALREDO_TIMEOUT).
 * - Deadline: `requestTimeoutMs` per attempt, from the moment the request is written to a worker (it covers
 *   the requests pipelined before it on that worker, as Neon's wal_redo_timeout does).
 * - Retry: a request that caused a crash, a timeout or a malformed reply is retried once on another worker
 *   (the failed one is dead by then: an idle worker of the pool, else a freshly spawned one; workers keep no
 *   state between requests, so any other process is as good as a new one); a second such failure is final
 *   and keeps the failure's kind and code. Requests that merely stood
 *   behind a failing one in the same pipe are retried without spending that retry, up to REDO_ATTEMPTS_MAX
 *   attempts in all. A worker's `pageserver-redo-error` report is deterministic: it is rethrown as the typed
 *   error it describes, never retried. Retries go to the front of the queue and ignore `maxQueued` (they
 *   were admitted already, and their number is bounded by the in-flight capacity).
 * - Idle reaping: a worker idle for `idleTimeoutMs` gets EOF on stdin and SIGKILL after `stopGraceMs`.
 * - close(): refuses new work, fails queued requests (WALREDO_CLOSED), sends EOF to every worker (they answer
 *   what they hold), SIGKILLs survivors after `stopGraceMs`, and resolves once every child has exited.
 * - Aborting `{signal}` rejects the caller at once (InterruptedError WALREDO_ABORTED); a request already
 *   written stays in its worker's FIFO (replies are matched by position) and its reply is dropped.
 */
import { InterruptedError, PageserverError, TimeoutError, UnavailableError, UsageError } from '../lib/errors.js'
import { formatRedoTag } from './buffer-tag-codec.js'
import { encodePing, encodeRedoRequestChunks, type RedoRequestInput } from './protocol.js'
import { errorOfKind } from './redo-error-line.js'
import { WorkerFailure, WorkerProcess, closedError, type SendOptions, type WalRedoLogger, type WorkerFailureReason } from './worker-process.js'

export type { WalRedoLogger } from './worker-process.js'

/** Retries of a request that itself made a worker fail (crash, timeout, malformed reply). */
export const REDO_RETRIES_MAX = 1
/** Attempts of one request in all, counting those lost only because another request broke the worker. */
export const REDO_ATTEMPTS_MAX = 4
/** Upper bounds on the configuration, so a typo cannot fork a thousand processes. */
export const POOL_SIZE_MAX = 64
export const IN_FLIGHT_PER_WORKER_MAX = 64
export const QUEUED_MAX = 100_000
/** Default grace between EOF and SIGKILL when stopping a worker. */
export const STOP_GRACE_MS_DEFAULT = 1000
/** The whole environment of a worker unless the config adds to it: a fixed PATH (core never reads ours). */
export const DEFAULT_WORKER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export interface WalRedoManagerOptions {
  /** argv of a worker; see defaultWorkerCommand() in worker-command.ts. */
  command: readonly string[]
  /** Added to the worker's environment ({PATH} by default and nothing else). */
  env?: Readonly<Record<string, string>>
  cwd?: string
  poolSize: number
  /** wal_redo_timeout: the deadline of one attempt, and of the wait for a free slot. */
  requestTimeoutMs: number
  idleTimeoutMs: number
  maxQueued: number
  maxInFlightPerWorker: number
  logger?: WalRedoLogger
  stopGraceMs?: number
}

export interface RedoCallOptions {
  signal?: AbortSignal
}

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
  /** Workers lost, by the reason of the failure that ended them. */
  failures: Record<WorkerFailureReason, number>
  lastRedoAtMs: number | null
  closed: boolean
}

interface Job {
  readonly chunks: readonly Buffer[]
  readonly opts: SendOptions
  settled: boolean
  resolve(page: Buffer): void
  reject(err: unknown): void
  queueTimer: NodeJS.Timeout | undefined
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new UsageError('WALREDO_BAD_CONFIG', `${name} is ${v}, it must be an integer from ${min} to ${max}`, {
      hint: `Fix ${name} in pageserver.toml (or the -c override).`,
    })
  }
}

const noopLogger: WalRedoLogger = () => {}

export class WalRedoManager {
  private readonly opts: Required<Omit<WalRedoManagerOptions, 'cwd'>> & { cwd: string | undefined }
  private readonly env: Readonly<Record<string, string>>
  private readonly workers = new Set<WorkerProcess>()
  /** Workers being stopped or killed, until their exit. */
  private readonly retiring = new Set<WorkerProcess>()
  private readonly queue: Job[] = []
  private readonly idleTimers = new Map<WorkerProcess, NodeJS.Timeout>()
  private seq = 0
  private closed = false
  private closing: Promise<void> | null = null
  private readonly counters = {
    spawned: 0,
    requests: 0,
    succeeded: 0,
    failed: 0,
    retried: 0,
    overloaded: 0,
    reaped: 0,
    lastRedoAtMs: null as number | null,
    failures: { timeout: 0, crash: 0, malformed: 0, redo_error: 0, spawn: 0, closed: 0 } as Record<WorkerFailureReason, number>,
  }

  constructor(options: WalRedoManagerOptions) {
    if (options.command.length === 0 || options.command.some((a) => typeof a !== 'string' || a === '')) {
      throw new UsageError('WALREDO_BAD_CONFIG', 'the wal redo worker command is empty', {
        hint: 'Leave the worker command unset to use the built-in worker, or give the executable and its arguments.',
      })
    }
    checkInt('wal_redo_pool_size', options.poolSize, 1, POOL_SIZE_MAX)
    checkInt('wal_redo_max_in_flight', options.maxInFlightPerWorker, 1, IN_FLIGHT_PER_WORKER_MAX)
    checkInt('wal_redo_max_queued', options.maxQueued, 0, QUEUED_MAX)
    checkInt('wal_redo_timeout (ms)', options.requestTimeoutMs, 1, 2 ** 31 - 1)
    checkInt('wal_redo_idle_timeout (ms)', options.idleTimeoutMs, 1, 2 ** 31 - 1)
    checkInt('wal redo stop grace (ms)', options.stopGraceMs ?? STOP_GRACE_MS_DEFAULT, 0, 2 ** 31 - 1)
    this.opts = {
      command: [...options.command],
      env: options.env ?? {},
      cwd: options.cwd,
      poolSize: options.poolSize,
      requestTimeoutMs: options.requestTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      maxQueued: options.maxQueued,
      maxInFlightPerWorker: options.maxInFlightPerWorker,
      logger: options.logger ?? noopLogger,
      stopGraceMs: options.stopGraceMs ?? STOP_GRACE_MS_DEFAULT,
    }
    this.env = { PATH: DEFAULT_WORKER_PATH, ...this.opts.env }
  }

  /** The 8192-byte page of `req.tag` after `req.records` on top of `req.base`. */
  async redo(req: RedoRequestInput, callOptions: RedoCallOptions = {}): Promise<Buffer> {
    this.throwIfClosed()
    throwIfAborted(callOptions.signal)
    const chunks = encodeRedoRequestChunks(req)
    this.counters.requests++
    // Formatted only when a message needs it.
    const opts: SendOptions = {
      kind: 'redo',
      timeoutMs: this.opts.requestTimeoutMs,
      get what() {
        return formatRedoTag(req.tag)
      },
    }
    try {
      const page = await this.withRetries(chunks, opts, callOptions.signal, true)
      this.counters.succeeded++
      this.counters.lastRedoAtMs = Date.now()
      return page
    } catch (err) {
      this.counters.failed++
      throw err
    }
  }

  /** One H round trip through a worker (spawning one if none runs). Not retried. */
  async ping(callOptions: RedoCallOptions = {}): Promise<void> {
    this.throwIfClosed()
    throwIfAborted(callOptions.signal)
    await this.withRetries([encodePing()], { kind: 'ping', what: 'a ping', timeoutMs: this.opts.requestTimeoutMs }, callOptions.signal, false)
  }

  stats(): WalRedoStats {
    let inFlight = 0
    const pids: number[] = []
    for (const w of this.workers) {
      inFlight += w.inFlight
      if (w.pid !== undefined) pids.push(w.pid)
    }
    return {
      workers: this.workers.size,
      pids,
      inFlight,
      queued: this.queue.length,
      spawned: this.counters.spawned,
      requests: this.counters.requests,
      succeeded: this.counters.succeeded,
      failed: this.counters.failed,
      retried: this.counters.retried,
      overloaded: this.counters.overloaded,
      reaped: this.counters.reaped,
      failures: { ...this.counters.failures },
      lastRedoAtMs: this.counters.lastRedoAtMs,
      closed: this.closed,
    }
  }

  /** Stops every worker and waits for every child to exit. Idempotent. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing
    this.closed = true
    for (const job of this.queue.splice(0)) this.settle(job, closedError())
    for (const t of this.idleTimers.values()) clearTimeout(t)
    this.idleTimers.clear()
    const all = [...this.workers, ...this.retiring]
    for (const w of this.workers) this.retiring.add(w)
    this.workers.clear()
    this.closing = Promise.all(all.map((w) => w.stop(this.opts.stopGraceMs, true))).then(() => {
      this.opts.logger('debug', 'wal redo manager closed', { workers: all.length })
    })
    return this.closing
  }

  private throwIfClosed(): void {
    if (this.closed) throw closedError()
  }

  private async withRetries(chunks: readonly Buffer[], opts: SendOptions, signal: AbortSignal | undefined, retry: boolean): Promise<Buffer> {
    let attributed = 0
    const reasons: WorkerFailureReason[] = []
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.dispatch(chunks, opts, attempt > 1, signal)
      } catch (err) {
        if (!(err instanceof WorkerFailure)) throw err
        reasons.push(err.reason)
        if (err.attributed) this.counters.failures[err.reason]++
        if (err.reason === 'closed' || this.closed) throw closedError()
        // Deterministic for the request that caused it; those pipelined behind it only lost their worker.
        if (err.attributed && (err.reason === 'redo_error' || err.reason === 'spawn')) throw err.error
        if (err.attributed) attributed++
        if (!retry) throw err.error
        if (attributed > REDO_RETRIES_MAX || attempt >= REDO_ATTEMPTS_MAX) throw finalError(err.error, opts.what, attempt, reasons)
        this.counters.retried++
        this.opts.logger('warn', 'retrying wal redo on a fresh worker', { page: opts.what, attempt, reason: err.reason, error: err.error.message })
      }
    }
  }

  /** Runs one attempt: on a worker now, or after waiting in the queue. */
  private dispatch(chunks: readonly Buffer[], opts: SendOptions, isRetry: boolean, signal: AbortSignal | undefined): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      if (this.closed) {
        reject(closedError())
        return
      }
      const onAbort = (): void => {
        const i = this.queue.indexOf(job)
        if (i >= 0) this.queue.splice(i, 1)
        this.settle(job, abortedError(opts.what))
      }
      const job: Job = {
        chunks,
        opts,
        settled: false,
        queueTimer: undefined,
        resolve: (page) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(page)
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort)
          reject(err)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      const worker = this.pick()
      if (worker !== null) {
        this.start(job, worker)
        return
      }
      if (!isRetry && this.queue.length >= this.opts.maxQueued) {
        this.counters.overloaded++
        this.settle(
          job,
          new UnavailableError('WALREDO_OVERLOADED', `WAL redo is overloaded: ${this.queue.length} requests already wait for a redo worker`, {
            hint: 'Retry shortly; if it persists, raise wal_redo_pool_size or wal_redo_max_queued.',
            details: { queued: this.queue.length, maxQueued: this.opts.maxQueued, poolSize: this.opts.poolSize },
          }),
        )
        return
      }
      job.queueTimer = setTimeout(() => {
        const i = this.queue.indexOf(job)
        if (i >= 0) this.queue.splice(i, 1)
        this.settle(
          job,
          new TimeoutError('WALREDO_TIMEOUT', `WAL redo of ${opts.what} waited ${this.opts.requestTimeoutMs} ms for a free redo worker`, {
            hint: 'The redo workers are saturated; raise wal_redo_pool_size, or lower the load.',
            details: { page: opts.what, timeoutMs: this.opts.requestTimeoutMs, queued: this.queue.length },
          }),
        )
      }, this.opts.requestTimeoutMs)
      if (isRetry) this.queue.unshift(job)
      else this.queue.push(job)
    })
  }

  private settle(job: Job, result: Buffer | unknown): void {
    if (job.settled) return
    job.settled = true
    if (job.queueTimer !== undefined) clearTimeout(job.queueTimer)
    if (Buffer.isBuffer(result)) job.resolve(result)
    else job.reject(result)
  }

  private start(job: Job, worker: WorkerProcess): void {
    if (job.queueTimer !== undefined) clearTimeout(job.queueTimer)
    job.queueTimer = undefined
    const idle = this.idleTimers.get(worker)
    if (idle !== undefined) {
      clearTimeout(idle)
      this.idleTimers.delete(worker)
    }
    worker.send(job.chunks, job.opts).then(
      (page) => this.settle(job, page),
      (err: unknown) => this.settle(job, err),
    )
  }

  /** An idle worker, else a new one while the pool can grow, else the least busy one with room, else null. */
  private pick(): WorkerProcess | null {
    let best: WorkerProcess | null = null
    for (const w of this.workers) {
      if (!w.canAccept) continue
      if (best === null || w.inFlight < best.inFlight) best = w
    }
    if (best !== null && best.inFlight === 0) return best
    if (this.workers.size < this.opts.poolSize) return this.spawn()
    return best
  }

  private spawn(): WorkerProcess {
    this.seq++
    this.counters.spawned++
    const w = new WorkerProcess({
      command: this.opts.command,
      env: this.env,
      ...(this.opts.cwd === undefined ? {} : { cwd: this.opts.cwd }),
      maxInFlight: this.opts.maxInFlightPerWorker,
      logger: this.opts.logger,
      seq: this.seq,
      onChange: (worker) => this.onWorkerChange(worker),
    })
    this.workers.add(w)
    void w.exited.then(() => this.retiring.delete(w))
    return w
  }

  private onWorkerChange(w: WorkerProcess): void {
    if (!w.isRunning) {
      if (this.workers.delete(w)) {
        this.retiring.add(w)
        const t = this.idleTimers.get(w)
        if (t !== undefined) clearTimeout(t)
        this.idleTimers.delete(w)
      }
    } else if (w.inFlight === 0 && !this.idleTimers.has(w)) {
      const t = setTimeout(() => this.reap(w), this.opts.idleTimeoutMs)
      t.unref()
      this.idleTimers.set(w, t)
    }
    this.pump()
  }

  private reap(w: WorkerProcess): void {
    this.idleTimers.delete(w)
    if (!this.workers.has(w) || w.inFlight > 0) return
    this.workers.delete(w)
    this.retiring.add(w)
    this.counters.reaped++
    this.opts.logger('debug', 'stopping idle redo worker', { worker: w.seq, pid: w.pid, idleMs: this.opts.idleTimeoutMs })
    void w.stop(this.opts.stopGraceMs, false)
  }

  /** Starts queued jobs while there is capacity. */
  private pump(): void {
    while (this.queue.length > 0 && !this.closed) {
      const worker = this.pick()
      if (worker === null) return
      this.start(this.queue.shift()!, worker)
    }
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedError('the request')
}

function abortedError(what: string): InterruptedError {
  return new InterruptedError('WALREDO_ABORTED', `WAL redo of ${what} was cancelled`, {
    hint: 'The caller gave up on this page (client disconnected or shutdown); nothing to do.',
  })
}

/** The error of a request that failed on two workers: the last failure's kind and code, the whole story. */
function finalError(last: PageserverError, what: string, attempts: number, reasons: WorkerFailureReason[]): PageserverError {
  return errorOfKind(last.kind, last.code, `WAL redo of ${what} failed ${attempts} times (${reasons.join(', ')}); last: ${last.message}`, {
    ...(last.hint === undefined ? {} : { hint: last.hint }),
    details: { ...last.details, attempts, reasons },
    cause: last,
  })
}
