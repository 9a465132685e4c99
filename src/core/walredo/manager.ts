/**
 * WalRedoManager: a pool of redo worker processes behind one `redo()` call.
 *
 * Why processes: a crash, an endless loop or a memory blow-up while redoing one page must never take the page
 * server down. Each worker speaks Neon's walredo pipe protocol (protocol.ts), so the manager does not care
 * what runs behind the command: our TypeScript engine (worker-main.ts, the default) or another program such
 * as Neon's `postgres --wal-redo`. SLRU pages travel under pseudo-forks of our own; a pool with another
 * program redoes them here instead (`slruInProcess`), as Neon's page server does.
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
 *   attempts in all. A redo error is deterministic: rethrown as the typed error it describes, never retried.
 *   Our workers answer it in band with an error page and live on (redo-error-page.ts); another program
 *   exits with a `pageserver-redo-error` line, or just exits. Retries go to the front of the queue and
 *   ignore `maxQueued` (they were admitted already, and their number is bounded by the in-flight capacity).
 * - Idle reaping: a worker idle for `idleTimeoutMs` gets EOF on stdin and SIGKILL after `stopGraceMs`.
 * - Server-wide cap (`budget`, process-budget.ts): a worker is spawned only with a slot of the budget; a pool
 *   with no worker waits for one while the budget takes a worker from another pool (its idle one, or one
 *   drained of its requests); a worker that goes idle while another pool waits is stopped for it.
 * - close(): refuses new work, fails queued requests (WALREDO_CLOSED), sends EOF to every worker (they answer
 *   what they hold), SIGKILLs survivors after `stopGraceMs`, and resolves once every child has exited.
 * - Aborting `{signal}` rejects the caller at once (InterruptedError WALREDO_ABORTED); a request already
 *   written stays in its worker's FIFO (replies are matched by position) and its reply is dropped.
 * - Long chains: a page's records beyond `chainStepRecords` (or CHAIN_STEP_BYTES of WAL) are redone in
 *   steps, each a request of its own whose page is the next one's base, so no chain is too long to serve
 *   (without compaction a page's chain grows with its history: an audit met a visibility-map page with
 *   158,882 records). Redo depends only on the page and each record in turn, so the result is the same.
 *
 * Per-request cost, kept small because a page's chain is often one record (GetPage, the pgbench mix): the
 * request is encoded once for all attempts (headers, small records; large records and the base page by
 * reference), without the full-page images of other pages its records carry (record-trim.ts), one promise per call, the worker calls the job back directly, requests of one tick share one
 * write, and timers are per worker (deadline, idle), never per request.
 */
import { InterruptedError, PageserverError, TimeoutError, UnavailableError, UsageError, errorOfKind } from '../lib/errors.js'
import { isSlruFork } from '../pg/slru.js'
import { encodePing, encodeRedoRequestChunks, type RedoRequestInput } from './protocol.js'
import { trimRecords } from './record-trim.js'
import { newRedoErrorMark, REDO_ERROR_MARK_ENV } from './redo-error-page.js'
import type { RedoBudgetMember, RedoProcessBudget } from './process-budget.js'
import { SKIP_RECORD_CRC_FLAG } from './worker-command.js'
import { WorkerFailure, WorkerProcess, closedError, type WalRedoLogger, type WorkerFailureReason } from './worker-process.js'
import { Job, RedoSendOptions, type JobHooks } from './redo-job.js'

export type { WalRedoLogger } from './worker-process.js'

/** Retries of a request that itself made a worker fail (crash, timeout, malformed reply). */
export const REDO_RETRIES_MAX = 1
/** Attempts of one request in all, counting those lost only because another request broke the worker. */
export const REDO_ATTEMPTS_MAX = 4
/** Upper bounds on the configuration, so a typo cannot fork a thousand processes. */
export const POOL_SIZE_MAX = 64
export const IN_FLIGHT_PER_WORKER_MAX = 64
export const QUEUED_MAX = 100_000
/** Records per redo request; a longer chain is redone in steps (see the header). Below the engine's limit. */
export const CHAIN_STEP_RECORDS = 50_000
/** WAL bytes per redo request, likewise (half of what one request may carry). */
export const CHAIN_STEP_BYTES = 64 * 1024 * 1024
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
  /** Cut the images of other pages out of records before sending them (record-trim.ts); default true. */
  trimImages?: boolean
  /** Records per request before a chain is redone in steps; default CHAIN_STEP_RECORDS (tests lower it). */
  chainStepRecords?: number
  /** The cap on worker processes this pool shares with others (the server's); none: only `poolSize`. */
  budget?: RedoProcessBudget
  /**
   * Redo SLRU pages (pseudo-forks, buffer-tag-codec.ts) in this process with the built-in engine instead of
   * sending them to the workers. For a custom worker command: the pseudo-forks are our extension of the
   * protocol, and Neon's `postgres --wal-redo` knows relation forks only (Neon's page server applies CLOG
   * and MultiXact changes itself, as this does). Default false.
   */
  slruInProcess?: boolean
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
  /** Workers stopped, or drained and stopped, so that another pool of the budget could start one. */
  reclaimed: number
  /** Workers lost, by the reason of the failure that ended them. */
  failures: Record<WorkerFailureReason, number>
  lastRedoAtMs: number | null
  closed: boolean
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
  private readonly opts: Required<Omit<WalRedoManagerOptions, 'cwd' | 'budget'>> & { cwd: string | undefined }
  /** Our workers answer a page they cannot redo with an error page carrying this (redo-error-page.ts). */
  private readonly errorMark = newRedoErrorMark()
  /** The built-in engine, loaded on the first SLRU page redone here (slruInProcess). */
  private engine: Promise<typeof import('../redo/engine.js')> | null = null
  private readonly budget: RedoProcessBudget | null
  private readonly env: Readonly<Record<string, string>>
  /** The workers check record CRCs (no --skip-record-crc): trimming then keeps a damaged record as it is. */
  private readonly workersCheckCrc: boolean
  private readonly workers = new Set<WorkerProcess>()
  /** Workers being stopped or killed, until their exit. */
  private readonly retiring = new Set<WorkerProcess>()
  /** Retiring workers given up for another pool of the budget that still answer what they hold. */
  private readonly draining = new Set<WorkerProcess>()
  /** Workers stopped or drained for another pool: their slot is promised to it (process-budget.ts). */
  private readonly givenUp = new Set<WorkerProcess>()
  private readonly queue: Job[] = []
  private readonly idleTimers = new Map<WorkerProcess, NodeJS.Timeout>()
  private readonly hooks: JobHooks = {
    reply: (job, page) => this.settle(job, page),
    // After the worker has finished failing (it may be removed from the pool first), as a rejection would.
    failure: (job, failure) => queueMicrotask(() => this.onAttemptFailed(job, failure)),
  }
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
    reclaimed: 0,
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
    checkInt('wal redo chain step (records)', options.chainStepRecords ?? CHAIN_STEP_RECORDS, 1, CHAIN_STEP_RECORDS)
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
      trimImages: options.trimImages ?? true,
      chainStepRecords: options.chainStepRecords ?? CHAIN_STEP_RECORDS,
      slruInProcess: options.slruInProcess ?? false,
    }
    this.env = { PATH: DEFAULT_WORKER_PATH, ...this.opts.env, [REDO_ERROR_MARK_ENV]: this.errorMark.toString('hex') }
    this.workersCheckCrc = !this.opts.command.includes(SKIP_RECORD_CRC_FLAG)
    this.budget = options.budget ?? null
    this.budget?.join(this.member)
  }

  /** This pool as the budget sees it (an object of its own, so the manager's API stays redo and close). */
  private readonly member: RedoBudgetMember = {
    liveWorkers: () => this.workers.size,
    oldestIdleSinceMs: (bornBefore) => {
      const w = this.oldestIdleWorker(bornBefore)
      return w === null ? null : w.lastUsedAtMs
    },
    reclaimIdleWorker: (bornBefore) => {
      const w = this.oldestIdleWorker(bornBefore)
      if (w === null) return false
      this.giveUp(w)
      return true
    },
    drainWorker: (bornBefore) => {
      let least: WorkerProcess | null = null
      for (const w of this.workers) if (w.startedAtMs <= bornBefore && (least === null || w.inFlight < least.inFlight)) least = w
      if (least === null) return false
      this.giveUp(least)
      return true
    },
    onSlotFree: () => this.pump(),
  }

  /** The 8192-byte page of `req.tag` after `req.records` on top of `req.base`. */
  redo(req: RedoRequestInput, callOptions: RedoCallOptions = {}): Promise<Buffer> {
    let chunks: Buffer[]
    try {
      this.throwIfClosed()
      throwIfAborted(callOptions.signal)
      if (this.opts.slruInProcess && isSlruFork(req.tag.forkNum)) return this.redoSlruHere(req)
      const records = this.opts.trimImages ? trimRecords(req.records, req.tag, this.workersCheckCrc) : req.records
      const trimmed = records === req.records ? req : { tag: req.tag, base: req.base, records }
      const steps = chainSteps(records, this.opts.chainStepRecords)
      if (steps.length > 1) return this.redoInSteps(trimmed, steps, callOptions)
      chunks = encodeRedoRequestChunks(trimmed)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.redoOne(req.tag, chunks, callOptions)
  }

  /**
   * An SLRU page redone in this process (slruInProcess). SLRU redo sets status bits and copies member
   * lists: no page is parsed, so there is nothing for isolation to contain; a long chain blocks this thread
   * for about a microsecond per record. Counted as a request like the others.
   */
  private async redoSlruHere(req: RedoRequestInput): Promise<Buffer> {
    this.countRequest()
    try {
      const { redoBlock } = await (this.engine ??= import('../redo/engine.js'))
      const page = redoBlock(req.tag, req.base, req.records, { hintBitsLogged: false, checkRecordCrc: this.workersCheckCrc })
      this.countOutcome(true)
      return page
    } catch (err) {
      this.countOutcome(false)
      throw err
    }
  }

  /** A redo request taken (through a worker or here), in this pool's counters and the server's totals. */
  private countRequest(): void {
    this.counters.requests++
    if (this.budget !== null) this.budget.totals.requests++
  }

  /** How a counted redo request ended. */
  private countOutcome(succeeded: boolean): void {
    if (succeeded) {
      this.counters.succeeded++
      this.counters.lastRedoAtMs = Date.now()
    } else {
      this.counters.failed++
      if (this.budget !== null) this.budget.totals.failed++
    }
  }

  /** A chain too long for one request, redone one step after another (see the header). */
  private async redoInSteps(req: RedoRequestInput, steps: ReadonlyArray<RedoRequestInput['records']>, callOptions: RedoCallOptions): Promise<Buffer> {
    let page = req.base
    for (const records of steps) {
      this.throwIfClosed()
      throwIfAborted(callOptions.signal)
      page = await this.redoOne(req.tag, encodeRedoRequestChunks({ tag: req.tag, base: page, records }), callOptions)
    }
    return page!
  }

  private redoOne(tag: RedoRequestInput['tag'], chunks: Buffer[], callOptions: RedoCallOptions): Promise<Buffer> {
    this.countRequest()
    const job = new Job(this.hooks, chunks, new RedoSendOptions(tag, this.opts.requestTimeoutMs), true, callOptions.signal)
    this.submit(job)
    return job.promise
  }

  /** One H round trip through a worker (spawning one if none runs). Not retried. */
  async ping(callOptions: RedoCallOptions = {}): Promise<void> {
    this.throwIfClosed()
    throwIfAborted(callOptions.signal)
    const job = new Job(this.hooks, [encodePing()], { kind: 'ping', what: 'a ping', timeoutMs: this.opts.requestTimeoutMs }, false, callOptions.signal)
    this.submit(job)
    await job.promise
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
      reclaimed: this.counters.reclaimed,
      failures: { ...this.counters.failures },
      lastRedoAtMs: this.counters.lastRedoAtMs,
      closed: this.closed,
    }
  }

  /** Stops every worker and waits for every child to exit. Idempotent. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing
    this.closed = true
    this.budget?.leave(this.member)
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

  private submit(job: Job): void {
    const signal = job.signal
    if (signal !== undefined) {
      job.onAbort = () => {
        this.unqueue(job)
        this.settle(job, abortedError(job.opts.what))
      }
      signal.addEventListener('abort', job.onAbort, { once: true })
    }
    this.dispatch(job, false)
  }

  /** The retry policy, after an attempt failed on a worker (see the module header). */
  private onAttemptFailed(job: Job, failure: WorkerFailure): void {
    if (job.settled) return
    job.reasons.push(failure.reason)
    if (failure.attributed) this.counters.failures[failure.reason]++
    if (failure.reason === 'closed' || this.closed) return this.settle(job, closedError())
    // Deterministic for the request that caused it; those pipelined behind it only lost their worker.
    if (failure.attributed && (failure.reason === 'redo_error' || failure.reason === 'spawn')) return this.settle(job, failure.error)
    if (failure.attributed) job.attributed++
    if (!job.retry) return this.settle(job, failure.error)
    if (job.attributed > REDO_RETRIES_MAX || job.attempt >= REDO_ATTEMPTS_MAX) {
      return this.settle(job, finalError(failure.error, job.opts.what, job.attempt, job.reasons))
    }
    this.counters.retried++
    this.opts.logger('warn', 'retrying wal redo on a fresh worker', { page: job.opts.what, attempt: job.attempt, reason: failure.reason, error: failure.error.message })
    job.attempt++
    this.dispatch(job, true)
  }

  /** Runs one attempt: on a worker now, or after waiting in the queue. */
  private dispatch(job: Job, isRetry: boolean): void {
    if (this.closed) {
      this.settle(job, closedError())
      return
    }
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
          hint: 'Retry shortly; if it persists, raise wal_redo_workers, or lower the load.',
          details: { queued: this.queue.length, maxQueued: this.opts.maxQueued, poolSize: this.opts.poolSize },
        }),
      )
      return
    }
    job.queueTimer = setTimeout(() => {
      this.unqueue(job)
      this.settle(job, this.queueTimeoutError(job))
    }, this.opts.requestTimeoutMs)
    if (isRetry) this.queue.unshift(job)
    else this.queue.push(job)
  }

  private unqueue(job: Job): void {
    const i = this.queue.indexOf(job)
    if (i >= 0) this.queue.splice(i, 1)
    if (this.queue.length === 0) this.budget?.withdraw(this.member)
  }

  /** Why a queued request gave up: this pool's workers were busy, or the server-wide cap left it none. */
  private queueTimeoutError(job: Job): TimeoutError {
    const details = { page: job.opts.what, timeoutMs: this.opts.requestTimeoutMs, queued: this.queue.length }
    if (this.workers.size === 0 && this.budget !== null) {
      const b = this.budget.stats()
      return new TimeoutError(
        'WALREDO_TIMEOUT',
        `WAL redo of ${job.opts.what} waited ${this.opts.requestTimeoutMs} ms for a redo worker: all ${b.max} redo processes the server may run (wal_redo_max_processes) were busy with other tenants`,
        { hint: 'Raise wal_redo_max_processes (each worker is a process of tens of MiB), or lower the load.', details: { ...details, maxProcesses: b.max } },
      )
    }
    return new TimeoutError('WALREDO_TIMEOUT', `WAL redo of ${job.opts.what} waited ${this.opts.requestTimeoutMs} ms for a free redo worker`, {
      hint: 'The redo workers are saturated; raise wal_redo_workers, or lower the load.',
      details,
    })
  }

  /** Ends a job with its page or error, once; later replies or failures of its attempts are ignored. */
  private settle(job: Job, result: Buffer | unknown): void {
    if (job.settled) return
    job.settled = true
    if (job.queueTimer !== undefined) clearTimeout(job.queueTimer)
    job.queueTimer = undefined
    if (job.onAbort !== undefined) job.signal!.removeEventListener('abort', job.onAbort)
    const ok = Buffer.isBuffer(result)
    if (job.opts.kind === 'redo') this.countOutcome(ok)
    if (ok) job.resolve(result)
    else job.reject(result)
  }

  private start(job: Job, worker: WorkerProcess): void {
    if (job.queueTimer !== undefined) clearTimeout(job.queueTimer)
    job.queueTimer = undefined
    worker.send(job.chunks, job.opts, job)
  }

  /** An idle worker, else a new one while the pool can grow, else the least busy one with room, else null. */
  private pick(): WorkerProcess | null {
    let best: WorkerProcess | null = null
    for (const w of this.workers) {
      if (!w.canAccept) continue
      if (best === null || w.inFlight < best.inFlight) best = w
    }
    if (best !== null && best.inFlight === 0) return best
    if (this.workers.size < this.opts.poolSize) {
      if (this.budget === null || this.budget.tryAcquire(this.member)) return this.spawn()
      if (this.workers.size === 0) this.budget.want(this.member)
    }
    return best
  }

  /** The idle worker started before `bornBefore` unused the longest, or null. */
  private oldestIdleWorker(bornBefore: number): WorkerProcess | null {
    let best: WorkerProcess | null = null
    for (const w of this.workers) {
      if (w.inFlight === 0 && w.canAccept && w.startedAtMs <= bornBefore && (best === null || w.lastUsedAtMs < best.lastUsedAtMs)) best = w
    }
    return best
  }

  /** Takes `w` out of the pool for another pool of the budget: stopped now if idle, else once drained. */
  private giveUp(w: WorkerProcess): void {
    this.workers.delete(w)
    const t = this.idleTimers.get(w)
    if (t !== undefined) clearTimeout(t)
    this.idleTimers.delete(w)
    this.retiring.add(w)
    this.givenUp.add(w)
    this.counters.reclaimed++ // the budget counts it in its totals, where it decided it
    this.opts.logger('debug', 'stopping a redo worker for another tenant', { worker: w.seq, pid: w.pid, inFlight: w.inFlight })
    if (w.inFlight === 0) void w.stop(this.opts.stopGraceMs, false)
    else this.draining.add(w)
  }

  private spawn(): WorkerProcess {
    this.seq++
    this.counters.spawned++
    if (this.budget !== null) this.budget.totals.spawned++
    const w = new WorkerProcess({
      command: this.opts.command,
      env: this.env,
      ...(this.opts.cwd === undefined ? {} : { cwd: this.opts.cwd }),
      maxInFlight: this.opts.maxInFlightPerWorker,
      logger: this.opts.logger,
      seq: this.seq,
      errorMark: this.errorMark,
      onChange: (worker) => this.onWorkerChange(worker),
    })
    this.workers.add(w)
    void w.exited.then(() => {
      this.retiring.delete(w)
      this.draining.delete(w)
      if (this.budget !== null) {
        this.budget.totals.exited++
        this.budget.release(this.givenUp.delete(w))
      }
    })
    return w
  }

  private onWorkerChange(w: WorkerProcess): void {
    if (!w.isRunning) {
      this.draining.delete(w)
      if (this.workers.delete(w)) {
        this.retiring.add(w)
        const t = this.idleTimers.get(w)
        if (t !== undefined) clearTimeout(t)
        this.idleTimers.delete(w)
      }
    }
    this.pump()
    if (!w.isRunning || w.inFlight > 0) return
    if (this.draining.delete(w)) {
      void w.stop(this.opts.stopGraceMs, false)
    } else if (this.workers.has(w)) {
      if (this.budget !== null && this.budget.yieldIdleWorker(this.member, w.startedAtMs)) this.giveUp(w)
      else if (!this.idleTimers.has(w)) this.armIdleTimer(w, this.opts.idleTimeoutMs)
    }
  }

  /**
   * The idle timer stays armed while the worker works (no timer per request): when it fires, a worker
   * used since gets a timer for the rest of its idle time, a busy one gets one when it is idle again.
   */
  private armIdleTimer(w: WorkerProcess, ms: number): void {
    const t = setTimeout(() => this.reap(w), ms)
    t.unref()
    this.idleTimers.set(w, t)
  }

  private reap(w: WorkerProcess): void {
    this.idleTimers.delete(w)
    if (!this.workers.has(w) || w.inFlight > 0) return
    const idleMs = Date.now() - w.lastUsedAtMs
    if (idleMs < this.opts.idleTimeoutMs) {
      this.armIdleTimer(w, this.opts.idleTimeoutMs - idleMs)
      return
    }
    this.workers.delete(w)
    this.retiring.add(w)
    this.counters.reaped++
    if (this.budget !== null) this.budget.totals.reaped++
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

/** `records` cut into steps of at most `maxRecords` records and CHAIN_STEP_BYTES of WAL (one step if it fits). */
function chainSteps(records: RedoRequestInput['records'], maxRecords: number): Array<RedoRequestInput['records']> {
  if (records.length <= maxRecords) {
    let bytes = 0
    for (const r of records) bytes += r.raw.length
    if (bytes <= CHAIN_STEP_BYTES) return [records]
  }
  const steps: Array<RedoRequestInput['records']> = []
  let start = 0
  let bytes = 0
  for (let i = 0; i < records.length; i++) {
    const len = records[i]!.raw.length
    if (i > start && (i - start === maxRecords || bytes + len > CHAIN_STEP_BYTES)) {
      steps.push(records.slice(start, i))
      start = i
      bytes = 0
    }
    bytes += len
  }
  steps.push(records.slice(start))
  return steps
}
