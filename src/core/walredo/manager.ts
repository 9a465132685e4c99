/**
 * WalRedoManager: a pool of redo worker processes behind one `redo()` call.
 *
 * Why processes: a crash, an endless loop or a memory blow-up while redoing one page must never take the page
 * server down. Each worker speaks Neon's walredo pipe protocol (protocol.ts), so the manager does not care
 * what runs behind the command: our TypeScript engine (worker-main.ts, the default) or another program such
 * as Neon's `postgres --wal-redo`. SLRU pages travel under pseudo-forks of our own; a pool with another
 * program redoes them here instead (`slruInProcess`, slru-in-process.ts), as Neon's page server does.
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
 *   (chain-steps.ts). Redo depends only on the page and each record in turn, so the result is the same.
 *
 * Per-request cost, kept small because a page's chain is often one record (GetPage, the pgbench mix): the
 * request is encoded once for all attempts (headers, small records; large records and the base page by
 * reference), without the full-page images of other pages its records carry (record-trim.ts), one promise
 * per call, the worker calls the job back directly, requests of one tick share one write, and timers are per
 * worker (deadline, idle), never per request.
 *
 * Where it lives: this file holds the pool itself, whose parts call each other on every request: the queue
 * and dispatch (FIFO, back-pressure, the retry policy) and the workers' lifecycle (spawn, idle reaping,
 * giving workers up to the budget). Beside it, each named after what it holds: pool-options.ts (the options,
 * their limits and defaults), pool-stats.ts (the counters and stats()), pool-errors.ts (the errors the pool
 * raises itself), chain-steps.ts (long chains cut into steps), slru-in-process.ts (SLRU pages redone here),
 * redo-job.ts (one call across its attempts), worker-process.ts (one worker; how a request on it fails:
 * worker-failure.ts), process-budget.ts (the cap).
 */
import { isSlruFork } from '../pg/slru.js'
import { chainSteps } from './chain-steps.js'
import { abortedError, finalError, overloadedError, queueTimeoutError, throwIfAborted } from './pool-errors.js'
import { DEFAULT_WORKER_PATH, resolvePoolOptions, type RedoCallOptions, type ResolvedPoolOptions, type WalRedoManagerOptions } from './pool-options.js'
import { PoolCounters, type WalRedoStats } from './pool-stats.js'
import { encodePing, encodeRedoRequestChunks, type RedoRequestInput } from './protocol.js'
import { trimRecords } from './record-trim.js'
import { newRedoErrorMark, REDO_ERROR_MARK_ENV } from './redo-error-page.js'
import type { RedoBudgetMember, RedoProcessBudget } from './process-budget.js'
import { InProcessSlruRedo } from './slru-in-process.js'
import { SKIP_RECORD_CRC_FLAG } from './worker-command.js'
import { WorkerFailure, closedError } from './worker-failure.js'
import { WorkerProcess } from './worker-process.js'
import { Job, RedoSendOptions, type JobHooks } from './redo-job.js'

// What other modules import from here (the pool's API), wherever it is defined.
export type { WalRedoLogger } from './worker-process.js'
export { CHAIN_STEP_BYTES, CHAIN_STEP_RECORDS } from './chain-steps.js'
export {
  DEFAULT_WORKER_PATH,
  IN_FLIGHT_PER_WORKER_MAX,
  POOL_SIZE_MAX,
  QUEUED_MAX,
  STOP_GRACE_MS_DEFAULT,
  type RedoCallOptions,
  type WalRedoManagerOptions,
} from './pool-options.js'
export type { WalRedoStats } from './pool-stats.js'

/** Retries of a request that itself made a worker fail (crash, timeout, malformed reply). */
export const REDO_RETRIES_MAX = 1
/** Attempts of one request in all, counting those lost only because another request broke the worker. */
export const REDO_ATTEMPTS_MAX = 4

export class WalRedoManager {
  private readonly opts: ResolvedPoolOptions
  /** Our workers answer a page they cannot redo with an error page carrying this (redo-error-page.ts). */
  private readonly errorMark = newRedoErrorMark()
  /** SLRU pages redone here instead of in a worker (slruInProcess), else null. */
  private readonly slruHere: InProcessSlruRedo | null
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
  private readonly counters: PoolCounters

  constructor(options: WalRedoManagerOptions) {
    this.opts = resolvePoolOptions(options)
    this.env = { PATH: DEFAULT_WORKER_PATH, ...this.opts.env, [REDO_ERROR_MARK_ENV]: this.errorMark.toString('hex') }
    this.workersCheckCrc = !this.opts.command.includes(SKIP_RECORD_CRC_FLAG)
    this.budget = options.budget ?? null
    this.counters = new PoolCounters(this.budget === null ? null : this.budget.totals)
    this.slruHere = this.opts.slruInProcess ? new InProcessSlruRedo(this.counters, this.workersCheckCrc) : null
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
      if (this.slruHere !== null && isSlruFork(req.tag.forkNum)) return this.slruHere.redo(req)
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

  /** A chain too long for one request, redone one step after another (chain-steps.ts). */
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
    this.counters.countRequest()
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
    return this.counters.stats(this.workers, this.queue.length, this.closed)
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
      this.settle(job, overloadedError(this.queue.length, this.opts.maxQueued, this.opts.poolSize))
      return
    }
    job.queueTimer = setTimeout(() => {
      this.unqueue(job)
      this.settle(job, queueTimeoutError(job.opts.what, this.opts.requestTimeoutMs, this.queue.length, this.workers.size, this.budget))
    }, this.opts.requestTimeoutMs)
    if (isRetry) this.queue.unshift(job)
    else this.queue.push(job)
  }

  private unqueue(job: Job): void {
    const i = this.queue.indexOf(job)
    if (i >= 0) this.queue.splice(i, 1)
    if (this.queue.length === 0) this.budget?.withdraw(this.member)
  }

  /** Ends a job with its page or error, once; later replies or failures of its attempts are ignored. */
  private settle(job: Job, result: Buffer | unknown): void {
    if (job.settled) return
    job.settled = true
    if (job.queueTimer !== undefined) clearTimeout(job.queueTimer)
    job.queueTimer = undefined
    if (job.onAbort !== undefined) job.signal!.removeEventListener('abort', job.onAbort)
    const ok = Buffer.isBuffer(result)
    if (job.opts.kind === 'redo') this.counters.countOutcome(ok)
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
    this.counters.countSpawn()
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
    this.counters.countReap()
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
