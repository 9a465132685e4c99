/**
 * One redo worker child process and the requests pipelined to it.
 *
 * The child gets a clean environment (only what the owner passes, typically PATH), piped stdio, and is
 * replaced rather than repaired: on a deadline miss, an EOF or exit, or a malformed reply it is killed with
 * SIGKILL, waited for, and every request still in flight fails. Replies carry no framing, so requests are
 * matched FIFO: the k-th 8192-byte block on stdout answers the k-th request written.
 *
 * Invariants:
 * - At most `maxInFlight` requests are written and unanswered; the owner checks `canAccept` first.
 * - A request settles exactly once. Failures settle only after the child has exited (or did not exit within
 *   KILL_WAIT_MAX_MS after SIGKILL, which is logged): no caller retries while the old child still runs.
 * - Every failure is a WorkerFailure (worker-failure.ts) naming its reason and whether this request caused
 *   it (`attributed`): the request a deadline fired for, or the oldest one in flight when the child died;
 *   the others only stood behind it in the pipe.
 * - Stderr goes to a WorkerStderr (worker-stderr.ts): logged line by line, its first and last lines kept
 *   for error messages. A `pageserver-redo-error:` line there marks the oldest request's failure as a
 *   deterministic redo error.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { TickCorkedWriter } from '../lib/tick-cork.js'
import { PageserverError, assert, messageOf } from '../lib/errors.js'
import { PAGE_BYTES } from './protocol.js'
import { redoRequestError } from './redo-error-line.js'
import { decodeRedoErrorPage, isRedoErrorPage } from './redo-error-page.js'
import {
  WorkerFailure,
  closedError,
  crashedError,
  deadlineError,
  lostError,
  malformedReplyError,
  spawnFailedError,
} from './worker-failure.js'
import { WorkerStderr } from './worker-stderr.js'

export type WalRedoLogLevel = 'debug' | 'info' | 'warn' | 'error'
export type WalRedoLogger = (level: WalRedoLogLevel, message: string, fields?: Record<string, unknown>) => void

/** After SIGKILL, how long to wait for the exit before giving up on the child (logged, never hangs us). */
export const KILL_WAIT_MAX_MS = 5000
/** After the child exited, how long its pipes may stay open (a grandchild holding them) before we close them. */
export const EXIT_STDIO_GRACE_MS = 500

export interface WorkerProcessOptions {
  /** argv; the first element is the executable. */
  command: readonly string[]
  /** The child's whole environment. */
  env: Readonly<Record<string, string>>
  cwd?: string
  maxInFlight: number
  logger: WalRedoLogger
  /** A number for logs (the pool's spawn counter). */
  seq: number
  /** Called after a request settles or the worker ends: capacity may have changed. */
  onChange?: (worker: WorkerProcess) => void
  /** Replies starting with this are error pages (redo-error-page.ts); null: every reply is a page. */
  errorMark?: Buffer | null
}

export interface SendOptions {
  timeoutMs: number
  /** Ping replies must be all zeros. */
  kind: 'redo' | 'ping'
  /** For error messages: "1663/5/16384 blk 7". */
  what: string
}

export interface WorkerExit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** Called back exactly once per request written to a worker: its reply page, or why there is none. */
export interface RequestHandler {
  /** The 8 KiB page: the handler's to keep or change (it may be a view of a larger read buffer). */
  onReply(page: Buffer): void
  onFailure(failure: WorkerFailure): void
}

interface InFlight {
  readonly opts: SendOptions
  readonly handler: RequestHandler
  /** Date.now() value at which this attempt times out. */
  readonly deadlineAtMs: number
}

type State = 'running' | 'stopping' | 'dead'

/** What a ping must answer; compared with Buffer#equals (a per-byte callback costs tens of µs). */
const ZERO_PAGE = Buffer.alloc(PAGE_BYTES)

export class WorkerProcess {
  readonly pid: number | undefined
  readonly seq: number
  private readonly child: ChildProcessWithoutNullStreams
  private state: State = 'running'
  private readonly fifo: InFlight[] = []
  private reply: Buffer | null = null
  private replyFilled = 0
  /** A failure we detected ourselves (deadline, bad bytes) and the request it belongs to. */
  private initiated: { reason: 'timeout' | 'malformed'; culprit: InFlight | null; error: PageserverError } | null = null
  private killSent = false
  private closing = false
  private spawnError: Error | null = null
  private exitInfo: WorkerExit = { code: null, signal: null }
  /** The child's stderr lines; logged through this worker's `log` (one closure per worker). */
  private readonly stderr = new WorkerStderr((level, message, fields) => this.log(level, message, fields))
  private finalized = false
  private readonly timers = new Set<NodeJS.Timeout>()
  /**
   * One timer per worker for all deadlines (a timer per request cost more than a small redo): armed for the
   * earliest deadline, it checks the requests in flight when it fires and re-arms for the next one.
   */
  private deadlineTimer: NodeJS.Timeout | undefined = undefined
  private deadlineTimerAtMs = Number.POSITIVE_INFINITY
  /** stdin, corked until the end of this tick: the requests written meanwhile go out in one writev. */
  private readonly stdin: TickCorkedWriter
  private resolveExited!: (exit: WorkerExit) => void
  /** Resolves once the child has exited and every request has settled. Never rejects. */
  readonly exited: Promise<WorkerExit>
  lastUsedAtMs = Date.now()
  /** When it was spawned (Date.now()): the budget lets another pool take it only after a while (process-budget.ts). */
  readonly startedAtMs = Date.now()
  requestsServed = 0

  constructor(private readonly opts: WorkerProcessOptions) {
    assert(opts.command.length > 0, 'worker command is empty')
    assert(opts.maxInFlight >= 1, 'maxInFlight must be at least 1')
    this.seq = opts.seq
    this.exited = new Promise((resolve) => (this.resolveExited = resolve))
    const [file, ...args] = opts.command
    this.child = spawn(file!, args, {
      env: { ...opts.env },
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    })
    this.pid = this.child.pid
    this.stdin = new TickCorkedWriter(this.child.stdin)
    this.child.on('error', (err) => this.onChildError(err))
    this.child.on('exit', (code, signal) => this.onExit(code, signal))
    this.child.on('close', () => this.finalize())
    // EPIPE after the child died: the exit handler reports it; the write error itself says nothing more.
    this.child.stdin.on('error', (err) => this.log('debug', 'redo worker stdin error', { error: messageOf(err) }))
    this.child.stdout.on('data', (chunk: Buffer) => this.onStdout(chunk))
    this.child.stdout.on('end', () => this.onStdoutEnd())
    this.child.stderr.on('data', (chunk: Buffer) => this.stderr.write(chunk))
    this.child.stderr.on('end', () => this.stderr.flushPartial())
    this.log('debug', 'redo worker started', { command: opts.command.join(' ') })
  }

  get inFlight(): number {
    return this.fifo.length
  }

  get isRunning(): boolean {
    return this.state === 'running' && this.initiated === null && !this.killSent
  }

  get canAccept(): boolean {
    return this.isRunning && this.fifo.length < this.opts.maxInFlight
  }

  /** The first and the last stderr lines (oldest first; "..." where lines were skipped). */
  stderrLines(): string[] {
    return this.stderr.lines()
  }

  /**
   * Writes one encoded request (the whole `B [P] A* G` or `H`, as the buffers of encodeRedoRequestChunks);
   * `handler` gets its 8192-byte reply, or a WorkerFailure. The caller must have checked `canAccept`, and
   * must not change the buffers until then (they may be written later in this tick).
   *
   * Requests sent in the same tick are written together: stdin is corked at the first and uncorked on the
   * next tick, so a batch of requests (say, the callers woken by one read of replies) costs one writev.
   */
  send(request: readonly Buffer[], opts: SendOptions, handler: RequestHandler): void {
    assert(this.canAccept, () => `redo worker ${this.seq} cannot take a request (state ${this.state}, ${this.fifo.length} in flight)`)
    const now = Date.now()
    const entry: InFlight = { opts, handler, deadlineAtMs: now + opts.timeoutMs }
    this.fifo.push(entry)
    this.lastUsedAtMs = now
    this.armDeadline(entry.deadlineAtMs)
    for (let i = 0; i < request.length; i++) this.stdin.write(request[i]!)
  }

  private armDeadline(atMs: number): void {
    if (this.deadlineTimer !== undefined) {
      if (this.deadlineTimerAtMs <= atMs) return
      clearTimeout(this.deadlineTimer)
    }
    this.deadlineTimerAtMs = atMs
    this.deadlineTimer = setTimeout(() => this.onDeadlineTimer(), Math.max(0, atMs - Date.now()))
    // In-flight requests keep the process alive through the child's pipes; the timer alone must not.
    this.deadlineTimer.unref()
  }

  private onDeadlineTimer(): void {
    this.deadlineTimer = undefined
    this.deadlineTimerAtMs = Number.POSITIVE_INFINITY
    if (this.initiated !== null || this.finalized) return
    const now = Date.now()
    let next = Number.POSITIVE_INFINITY
    for (const e of this.fifo) {
      if (e.deadlineAtMs <= now) {
        this.onDeadline(e)
        return
      }
      if (e.deadlineAtMs < next) next = e.deadlineAtMs
    }
    if (next !== Number.POSITIVE_INFINITY) this.armDeadline(next)
  }

  /**
   * Graceful stop: EOF on stdin (the worker answers what it has and exits), SIGKILL after `graceMs`.
   * `closing` marks requests that were still unanswered as failed by shutdown, not by the worker.
   */
  stop(graceMs: number, closing: boolean): Promise<WorkerExit> {
    if (closing) this.closing = true
    if (this.state === 'running') {
      this.state = 'stopping'
      this.child.stdin.end()
      this.addTimer(() => this.kill('stop grace period over'), graceMs)
    }
    return this.exited
  }

  /** SIGKILL now and wait. Unanswered requests fail (reason `closed` when `closing`). */
  terminate(closing: boolean): Promise<WorkerExit> {
    if (closing) this.closing = true
    this.kill('terminated')
    return this.exited
  }

  private log(level: Parameters<WalRedoLogger>[0], message: string, fields: Record<string, unknown> = {}): void {
    this.opts.logger(level, message, { worker: this.seq, pid: this.pid, ...fields })
  }

  private addTimer(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t)
      fn()
    }, ms)
    this.timers.add(t)
  }

  private kill(why: string): void {
    if (this.finalized || this.killSent) return
    this.killSent = true
    if (this.state === 'running') this.state = 'stopping'
    this.log('debug', 'killing redo worker', { why })
    try {
      this.child.kill('SIGKILL')
    } catch (err) {
      this.log('warn', 'kill of redo worker failed', { error: messageOf(err) })
    }
    this.addTimer(() => {
      this.log('error', 'redo worker did not exit after SIGKILL; giving up on it', { waitedMs: KILL_WAIT_MAX_MS })
      this.finalize()
    }, KILL_WAIT_MAX_MS)
  }

  private onDeadline(entry: InFlight): void {
    if (this.initiated !== null || this.finalized) return
    this.initiated = { reason: 'timeout', culprit: entry, error: deadlineError(this.pid, entry.opts.what, entry.opts.timeoutMs) }
    this.kill('deadline')
  }

  private malformed(culprit: InFlight | null, message: string, details: Record<string, unknown>): void {
    if (this.initiated !== null || this.finalized) return
    this.initiated = { reason: 'malformed', culprit, error: malformedReplyError(this.pid, message, details) }
    this.kill('malformed reply')
  }

  private onStdout(chunk: Buffer): void {
    let off = 0
    while (off < chunk.length) {
      if (this.initiated !== null || this.finalized) return
      const head = this.fifo[0]
      if (head === undefined) {
        this.malformed(null, `the redo worker (pid ${this.pid}) wrote ${chunk.length - off} bytes that answer no request`, {
          unsolicitedBytes: chunk.length - off,
        })
        return
      }
      let page: Buffer
      if (this.reply === null && chunk.length - off >= PAGE_BYTES) {
        // Whole in this read: the page is a view of it (each read is fresh memory, and no other reply
        // shares these bytes), not a copy.
        page = chunk.subarray(off, off + PAGE_BYTES)
        off += PAGE_BYTES
      } else {
        if (this.reply === null) {
          this.reply = Buffer.allocUnsafe(PAGE_BYTES)
          this.replyFilled = 0
        }
        const n = Math.min(PAGE_BYTES - this.replyFilled, chunk.length - off)
        chunk.copy(this.reply, this.replyFilled, off, off + n)
        this.replyFilled += n
        off += n
        if (this.replyFilled < PAGE_BYTES) return
        page = this.reply
        this.reply = null
        this.replyFilled = 0
      }
      if (head.opts.kind === 'ping' && !page.equals(ZERO_PAGE)) {
        this.malformed(head, `the redo worker (pid ${this.pid}) answered a ping with a non-zero page`, {})
        return
      }
      const mark = this.opts.errorMark
      const report = mark != null && isRedoErrorPage(page, mark) ? decodeRedoErrorPage(page) : undefined
      if (report === null) {
        this.malformed(head, `the redo worker (pid ${this.pid}) answered ${head.opts.what} with an error page that does not parse`, {})
        return
      }
      this.fifo.shift()
      this.requestsServed++
      this.lastUsedAtMs = Date.now()
      if (report === undefined) head.handler.onReply(page)
      // A redo error in band: this request's, final; the worker goes on with the next.
      else head.handler.onFailure(new WorkerFailure('redo_error', true, redoRequestError(report, head.opts.what, { pid: this.pid })))
      this.opts.onChange?.(this)
    }
  }

  private onStdoutEnd(): void {
    // The child closed stdout (exiting, or broken): nothing more can be answered. Make sure it is gone;
    // the reason is decided once it has exited (its stderr may still name a redo error).
    if (this.fifo.length > 0 || this.state === 'running') this.kill('stdout closed')
  }

  private onChildError(err: Error): void {
    if (this.pid === undefined && this.spawnError === null) {
      this.spawnError = err
      this.log('error', 'cannot start redo worker', { error: err.message })
      // No process exists: nothing else will come ('close' may or may not follow, depending on the error).
      this.finalize()
      return
    }
    this.log('warn', 'redo worker process error', { error: err.message })
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.exitInfo = { code, signal }
    if (this.state === 'running') this.state = 'stopping'
    this.log(code === 0 && this.fifo.length === 0 ? 'debug' : 'warn', 'redo worker exited', { code, signal })
    // 'close' follows once stdout/stderr are drained; do not wait forever for pipes a grandchild may hold.
    this.addTimer(() => {
      this.child.stdout.destroy()
      this.child.stderr.destroy()
      this.finalize()
    }, EXIT_STDIO_GRACE_MS)
  }

  private describeExit(): string {
    const { code, signal } = this.exitInfo
    if (signal !== null) return `was killed by ${signal}`
    if (code !== null) return `exited with code ${code}`
    return 'stopped answering'
  }

  /** Decides every unanswered request's fate, once, after the child is gone. */
  private finalize(): void {
    if (this.finalized) return
    this.finalized = true
    this.state = 'dead'
    this.stderr.flushPartial()
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer)
    this.deadlineTimer = undefined
    const pending = this.fifo.splice(0)
    const head = pending[0]
    const cause = this.stderr.cause()
    const tail = cause === undefined ? '' : `; stderr: ${cause}`
    const details = { pid: this.pid, code: this.exitInfo.code, signal: this.exitInfo.signal, stderr: this.stderr.lines() }

    let culprit: InFlight | null = null
    let failure: WorkerFailure | null = null
    if (this.spawnError !== null) {
      const error = spawnFailedError(this.opts.command, this.spawnError)
      for (const e of pending) e.handler.onFailure(new WorkerFailure('spawn', true, error))
      this.done()
      return
    }
    const redoError = this.stderr.redoError
    if (redoError !== null && head !== undefined) {
      culprit = head
      failure = new WorkerFailure('redo_error', true, redoRequestError(redoError, head.opts.what, { pid: this.pid }))
    } else if (this.initiated !== null) {
      culprit = this.initiated.culprit
      failure = new WorkerFailure(this.initiated.reason, true, this.initiated.error)
    } else if (this.closing) {
      culprit = null
    } else if (head !== undefined && this.replyFilled > 0) {
      culprit = head
      failure = new WorkerFailure(
        'malformed',
        true,
        malformedReplyError(this.pid, `the redo worker (pid ${this.pid}) ${this.describeExit()} after ${this.replyFilled} of ${PAGE_BYTES} bytes of the reply for ${head.opts.what}${tail}`, {
          ...details,
          replyBytes: this.replyFilled,
        }),
      )
    } else if (head !== undefined) {
      culprit = head
      failure = new WorkerFailure('crash', true, crashedError(this.pid, this.describeExit(), head.opts.what, tail, details))
    }

    for (const e of pending) {
      if (e === culprit && failure !== null) {
        e.handler.onFailure(failure)
      } else if (this.closing && failure === null) {
        e.handler.onFailure(new WorkerFailure('closed', false, closedError()))
      } else {
        e.handler.onFailure(new WorkerFailure(failure?.reason ?? 'crash', false, lostError(this.pid, e.opts.what, failure?.error.message ?? this.describeExit(), details)))
      }
    }
    this.done()
  }

  private done(): void {
    this.resolveExited(this.exitInfo)
    this.opts.onChange?.(this)
  }
}
