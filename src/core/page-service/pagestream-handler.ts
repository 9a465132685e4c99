/**
 * PagestreamSession: one connection's pagestream (after `pagestream_v2|v3 <tenant> <timeline>` and
 * CopyBothResponse). Requests are decoded as they arrive and executed concurrently (those the backend
 * answers at once complete as they are decoded); responses are written strictly in request order
 * (Neon's rule: the compute matches responses by position).
 *
 * Invariants:
 * - At most `inFlightMax` requests are between "decoded" and "written"; the connection stops reading
 *   the socket while the bound is reached or while the socket's write buffer and the requests in flight
 *   come to inFlightMax pages (`hasRoom`, the connection's `canRead`). So a client that sends without
 *   reading costs at most about inFlightMax responses of memory, then TCP back-pressure holds it.
 * - `queue` holds the in-flight requests in arrival order; a response is written only when every earlier
 *   one has been, so a fast request behind a slow one waits (head-of-line, by design of the protocol).
 * - Per-request failures (bad LSN, GC'd LSN, LSN timeout, read errors) become in-band Error responses
 *   (tag 103) and the stream continues; a typed error from the backend keeps its kind (Neon's class
 *   prefix, refined: "Read error: not found: ..."), code and hint (a trailer) in the message
 *   (error-wire.ts). "Server stopping" failures end the connection with ErrorResponse 57P01 once every
 *   earlier response is written.
 *
 * Shape: the session owns the ordering queue and the request semantics; the connection owns the socket,
 * framing and the state machine, and calls `onCopyData` / `finish` / `abort`; it asks `hasRoom` before
 * decoding the next message. A GetPage response goes out as its small frame head and then the page buffer
 * the backend returned (written as is, not copied into one frame; the connection corks both into one
 * writev), so the backend must not change a page after returning it.
 */
import { withEitherSignal } from '../lib/abort.js'
import { messageOf, PageserverError, TimeoutError } from '../lib/errors.js'
import { MAX_FORK_NUMBER } from '../pg/reltag.js'
import type { Lsn } from '../pg/lsn.js'
import {
  decodeRequest,
  encodeGetPageResponseHeadFrom,
  encodeResponseFrame,
  BLCKSZ,
  SLRU_PAGES_PER_SEGMENT,
  type PagestreamRequest,
  type PagestreamResponse,
  type PagestreamVersion,
} from '../protocol/pagestream.js'
import { SHUTTING_DOWN_CODE, type PageServiceTimeline } from './backend.js'
import { effectiveRequestLsn, lsnBeforeStart, lsnTimeoutMessage, PagestreamBadRequest } from './lsn-rules.js'
import { BAD_REQUEST_PREFIX, LSN_TIMEOUT_PREFIX, pagestreamErrorMessage, typedForWire } from './error-wire.js'
import type { PageServiceMetrics } from './metrics.js'

/** What the session needs from its connection. */
export interface PagestreamSink {
  /** Writes bytes to the socket (the connection tracks its write buffer for back-pressure). */
  write(bytes: Uint8Array): void
  /** Called when a slot frees up or the stream can take requests again (the connection re-pumps). */
  wake(): void
  /** A "server stopping" failure: write ErrorResponse 57P01 and close the connection. */
  fatal(sqlstate: string, message: string): void
}

export interface PagestreamSessionOptions {
  readonly version: PagestreamVersion
  readonly timeline: PageServiceTimeline
  readonly inFlightMax: number
  readonly waitLsnTimeoutMs: number
  readonly metrics: PageServiceMetrics
}

interface Slot {
  /** The encoded CopyData frame (for GetPage: up to the page), once the request completed. */
  frame: Buffer | null
  /** GetPage: the page, written right after `frame` (not copied into it). */
  page: Uint8Array | null
  /** Set instead of `frame` when the request ended the connection. */
  fatal: { sqlstate: string; message: string } | null
}

export class PagestreamSession {
  private readonly queue: Slot[] = []
  private readonly abortController = new AbortController()
  /** Aborted by a finish for shutdown: only the waits for WAL end (requests being read are answered). */
  private readonly waitsAbort = new AbortController()
  private drainWaiters: Array<() => void> = []
  private stopped = false

  constructor(
    private readonly sink: PagestreamSink,
    private readonly opts: PagestreamSessionOptions,
  ) {}

  /** Requests decoded but not yet written. */
  get inFlight(): number {
    return this.queue.length
  }

  /** May another request be decoded now? */
  get hasRoom(): boolean {
    return !this.stopped && this.queue.length < this.opts.inFlightMax
  }

  /**
   * One CopyData payload. Returns an error message if it is not a valid request (the connection then
   * ends the stream once the earlier responses are out), or null. A request the backend answers at once
   * (a page from the page cache or an image layer) completes here, without a promise; one that waits for
   * WAL or redo completes when that settles. Either way it is written in request order.
   */
  onCopyData(payload: Buffer): string | null {
    let req: PagestreamRequest
    try {
      req = decodeRequest(payload, this.opts.version)
    } catch (err) {
      return messageOf(err)
    }
    const slot: Slot = { frame: null, page: null, fatal: null }
    this.queue.push(slot)
    this.opts.metrics.requestsStarted++
    let answer: PagestreamResponse | Promise<PagestreamResponse>
    try {
      answer = this.run(req)
    } catch (err) {
      this.settleFailed(req, slot, err)
      this.flush()
      return null
    }
    if (answer instanceof Promise) {
      answer.then(
        (resp) => this.settle(req, payload, slot, resp),
        (err: unknown) => this.settleFailed(req, slot, err),
      ).then(() => this.flush())
    } else {
      this.settle(req, payload, slot, answer)
      this.flush()
    }
    return null
  }

  /**
   * Takes no more requests; resolves once every in-flight response is written (or the session aborted).
   * `shutdown`: the server is stopping, and requests still waiting for WAL cannot be answered once it stops
   * streaming it: they end the connection as "shutdown" now, instead of holding the shutdown up to
   * wait_lsn_timeout or its deadline. Otherwise (the client ended the stream) they are answered as usual,
   * like those before them; a client that goes away meanwhile aborts them (`abort`).
   */
  finish(o: { shutdown: boolean }): Promise<void> {
    this.stopped = true
    if (o.shutdown) this.waitsAbort.abort()
    if (this.queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }

  /** The client went away or the server stops now: cancel waits; later completions are dropped. */
  abort(): void {
    this.stopped = true
    this.abortController.abort()
    this.queue.length = 0
    this.resolveDrained()
  }

  private resolveDrained(): void {
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w()
  }

  /** Writes every completed response at the head of the queue, in order. */
  private flush(): void {
    let wrote = false
    while (this.queue.length > 0) {
      const head = this.queue[0]!
      if (head.fatal) {
        this.queue.length = 0
        this.stopped = true
        this.abortController.abort()
        this.sink.fatal(head.fatal.sqlstate, head.fatal.message)
        this.resolveDrained()
        return
      }
      if (head.frame === null) break
      this.queue.shift()
      this.sink.write(head.frame)
      if (head.page !== null) this.sink.write(head.page)
      this.opts.metrics.requestsCompleted++
      wrote = true
    }
    if (this.queue.length === 0) this.resolveDrained()
    if (wrote) this.sink.wake()
  }

  /**
   * Leaves the encoded response in `slot` (a failure to encode it is answered as the request's failure). A
   * GetPage response's head echoes `payload`, the request as received (it stays valid: each read of the
   * socket is a copy).
   */
  private settle(req: PagestreamRequest, payload: Buffer, slot: Slot, resp: PagestreamResponse): void {
    const v = this.opts.version
    try {
      if (resp.type === 'getpage') {
        if (resp.page.length !== BLCKSZ) throw new Error(`the repository returned a page of ${resp.page.length} bytes`)
        slot.frame = encodeGetPageResponseHeadFrom(payload, v)
        slot.page = resp.page
      } else {
        slot.frame = encodeResponseFrame(resp, v)
      }
    } catch (err) {
      this.settleFailed(req, slot, err)
    }
  }

  /**
   * A request failed: an in-band Error response in `slot`, or, for "server stopping" failures and what
   * cannot be answered in-band, `slot.fatal` (the connection ends once the earlier responses are out).
   */
  private settleFailed(req: PagestreamRequest, slot: Slot, err: unknown): void {
    if (this.abortController.signal.aborted || err instanceof WaitEndedByShutdown || (err instanceof PageserverError && err.code === SHUTTING_DOWN_CODE)) {
      slot.fatal = { sqlstate: '57P01', message: 'shutdown' }
      return
    }
    if (err instanceof TimelineDeleted || this.opts.timeline.deleted?.() === true) {
      // Its files are gone: nothing more can be read on this stream (the earlier answers go out first).
      slot.fatal = { sqlstate: '3D000', message: 'Tenant or timeline not found: the timeline was deleted' }
      return
    }
    this.opts.metrics.requestErrors++
    let message: string
    if (err instanceof PagestreamBadRequest) message = `${BAD_REQUEST_PREFIX}${err.message}`
    else if (err instanceof LsnTimeout) message = `${LSN_TIMEOUT_PREFIX}${err.message}`
    else {
      const typed = typedForWire(err)
      // A refused request (UsageError: "Bad request") is not a failed read: the log is not told of it.
      if (typed.kind !== 'usage') this.opts.timeline.readFailed?.(err)
      // Neon's class ("Bad request", "Read error"), refined by kind so that clients tell a missing relation,
      // an unsupported record or damaged files (retrying will not help) from an outage; then code and hint.
      message = pagestreamErrorMessage(typed)
    }
    try {
      slot.frame = encodeResponseFrame({ type: 'error', hdr: req.hdr, message }, this.opts.version)
    } catch (encodeErr) {
      slot.fatal = { sqlstate: 'XX000', message: messageOf(encodeErr) }
    }
  }

  /** The request's answer: at once when the backend has it, else a promise (a wait for WAL, redo). */
  private run(req: PagestreamRequest): PagestreamResponse | Promise<PagestreamResponse> {
    const tl = this.opts.timeline
    if (tl.deleted?.() === true) throw new TimelineDeleted()
    const eff = effectiveRequestLsn(tl, req.hdr)
    if ((req.type === 'exists' || req.type === 'nblocks' || req.type === 'getpage') && req.rel.forkNum > MAX_FORK_NUMBER) {
      throw new PagestreamBadRequest(`invalid fork number ${req.rel.forkNum}`)
    }
    if (req.type === 'slru' && req.kind > 2) throw new PagestreamBadRequest('invalid SLRU kind')
    // Below the first readable LSN (an imported timeline's start) nothing is known: refused as offline.
    const minReadable = tl.minReadableLsn()
    if (eff.lsn < minReadable) throw lsnBeforeStart(eff.lsn, minReadable, tl.lastRecordLsn())
    if (eff.waitFor !== null) return this.waitForLsn(eff.waitFor).then(() => this.read(req, eff.lsn))
    return this.read(req, eff.lsn)
  }

  private read(req: PagestreamRequest, lsn: Lsn): PagestreamResponse | Promise<PagestreamResponse> {
    const tl = this.opts.timeline
    switch (req.type) {
      case 'exists':
        return answered(tl.relExists(req.rel, lsn), (exists) => ({ type: 'exists', req, exists }))
      case 'nblocks':
        return answered(tl.relSize(req.rel, lsn), (n_blocks) => ({ type: 'nblocks', req, n_blocks }))
      case 'getpage':
        return answered(tl.getPage(req.rel, req.blkno, lsn), (page) => ({ type: 'getpage', req, page }))
      case 'dbsize':
        return answered(tl.dbSize(req.dbnode, lsn), (db_size) => ({ type: 'dbsize', req, db_size }))
      case 'slru':
        return answered(tl.slruSegment(req.kind as 0 | 1 | 2, req.segno, lsn), (segment) => {
          if (segment.length % BLCKSZ !== 0 || segment.length > SLRU_PAGES_PER_SEGMENT * BLCKSZ) {
            throw new Error(`the repository returned an SLRU segment of ${segment.length} bytes, not whole 8 KiB pages`)
          }
          return { type: 'slru', req, segment }
        })
    }
  }

  private async waitForLsn(lsn: Lsn): Promise<void> {
    if (this.waitsAbort.signal.aborted) throw new WaitEndedByShutdown()
    try {
      await withEitherSignal(this.abortController.signal, this.waitsAbort.signal, (either) => this.opts.timeline.waitForLsn(lsn, this.opts.waitLsnTimeoutMs, either))
    } catch (err) {
      if (err instanceof TimeoutError) throw new LsnTimeout(lsnTimeoutMessage(this.opts.timeline, lsn))
      if (this.waitsAbort.signal.aborted) throw new WaitEndedByShutdown()
      throw err
    }
  }
}

class LsnTimeout extends Error {}
class WaitEndedByShutdown extends Error {}
class TimelineDeleted extends Error {}

/** `f` of a value the backend gave at once, or of the value its promise resolves with. */
function answered<T>(v: T | Promise<T>, f: (v: T) => PagestreamResponse): PagestreamResponse | Promise<PagestreamResponse> {
  return v instanceof Promise ? v.then(f) : f(v)
}
