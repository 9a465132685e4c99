/**
 * PageServiceConnection: one client connection's state machine.
 *
 *   startup --(SSLRequest/GSSENCRequest: 'N')--> startup
 *   startup --(CancelRequest)--> closed (no answer, as PostgreSQL for an unknown key)
 *   startup --(StartupMessage, trust)--> query            (AuthenticationOk, ParameterStatus, ReadyForQuery)
 *   startup --(StartupMessage, jwt)--> password --(valid token)--> query
 *   query --(pagestream_v2|v3)--> pagestream --(bad request / unexpected message)--> query
 *   query --(basebackup/fullbackup)--> busy (CopyOut) --> query
 *   any --(Terminate, EOF, protocol violation, handshake or idle timeout)--> closed
 *
 * Invariants:
 * - Frames are taken only while the state can take one (`canRead`): never while a command runs
 *   asynchronously (`busy`); in pagestream only while the session has room and the socket's write
 *   buffer plus the responses still to come hold less than about inFlightMax pages
 *   (`pagestreamBufferedMax`); in the other states only while the write buffer is below its high-water
 *   mark (a client that sends queries without reading the answers is held by TCP, not by our memory).
 * - While no frame can be taken the socket is still read, up to READ_AHEAD_BYTES, then paused: buffered
 *   input stays bounded, TCP back-pressure reaches the client, and a client that closes its connection
 *   while its requests wait (for WAL, for a backup's LSN) is seen going at once: EOF or a reset ends the
 *   connection and cancels what it waits for, instead of holding its slot until the wait times out. A
 *   client that half-closes must therefore have read its answers first (as PostgreSQL with
 *   client_connection_check_interval).
 * - Before authentication a message is at most a JWT long (a password message), not messageBytesMax.
 * - Every error a client can cause ends in an ErrorResponse (then ReadyForQuery if the connection stays
 *   usable, or a close); nothing a client sends throws out of this class.
 * - A command that fails with a typed error (PageserverError) answers with its kind as SQLSTATE, its code in
 *   the detail and its hint (error-wire.ts), so a client gets what the same command raises offline.
 * - Writes made in one tick are corked into one syscall (pipelined responses, CopyData header + body); those
 *   answering one read of the socket leave as soon as that read is handled.
 */
import type { Socket } from 'node:net'
import { TickCorkedWriter } from '../lib/tick-cork.js'
import { NotFoundError, PageserverError, messageOf } from '../lib/errors.js'
import { FrameReader, describeType, type Frame } from '../protocol/pg-frames.js'
import { BLCKSZ } from '../protocol/pagestream.js'
import {
  ENCRYPTION_REFUSED,
  FrontendType,
  authenticationCleartextPassword,
  authenticationOk,
  bindComplete,
  closeComplete,
  commandComplete,
  copyBothResponse,
  errorResponse,
  noData,
  parameterDescriptionEmpty,
  parameterStatus,
  parseCString,
  parseComplete,
  parseParseMessage,
  negotiateProtocolVersion,
  parseStartupPacket,
  protocolNegotiationNeeded,
  readyForQuery,
  type StartupPacket,
} from '../protocol/pg-backend-messages.js'
import type { TenantId } from '../model/ids.js'
import { SHUTTING_DOWN_CODE, type PageServiceBackend, type PageServiceTimeline } from './backend.js'
import { checkPermission, JWT_TOKEN_BYTES_MAX, type JwtClaims } from './auth.js'
import { parseCommand, type PageServiceCommand } from './commands.js'
import { PagestreamSession } from './pagestream-handler.js'
import { streamBackup } from './backup-stream.js'
import { detailWithCode, sqlstateOf, typedForWire } from './error-wire.js'
import type { PageServiceMetrics } from './metrics.js'
import type { ResolvedPageServiceOptions } from './options.js'

/** After our last message, how long a peer may take to close its side before the socket is destroyed. */
const LINGER_MS = 5_000
/**
 * The same while the server shuts down: long enough for the last message to be read, short enough that
 * connected clients do not hold the stop up to its deadline (a soak audit's stop took 5 s with three idle ones).
 */
const SHUTDOWN_LINGER_MS = 200

/** Bytes of one GetPage response (the page and its frame head, rounded up). */
const PAGE_RESPONSE_BYTES = BLCKSZ + 64

/** SSLRequest and GSSENCRequest may each come once before the StartupMessage (libpq tries both at most once). */
const ENCRYPTION_REQUESTS_MAX = 2

/** Input read ahead while no frame can be taken (see the invariants): EOF behind it is still seen. */
export const READ_AHEAD_BYTES = 64 * 1024

/** The largest password message: a JWT and its NUL. */
const PASSWORD_MESSAGE_BYTES_MAX = JWT_TOKEN_BYTES_MAX + 1

export const SqlState = {
  InternalError: 'XX000',
  ConnectionFailure: '08006',
  AdminShutdown: '57P01',
  TooManyConnections: '53300',
  ProtocolViolation: '08P01',
  DataCorrupted: 'XX001',
} as const

type State = 'startup' | 'password' | 'query' | 'pagestream' | 'busy' | 'closed'

export interface ConnectionContext {
  readonly backend: PageServiceBackend
  readonly options: ResolvedPageServiceOptions
  readonly metrics: PageServiceMetrics
}

export class PageServiceConnection {
  /** Resolves when the socket has closed and everything the connection started has stopped. */
  readonly closed: Promise<void>
  private resolveClosed!: () => void
  private state: State = 'startup'
  private readonly reader: FrameReader
  private session: PagestreamSession | null = null
  private claims: JwtClaims | null = null
  private encryptionRequests = 0
  private unnamedQuery = ''
  private pumping = false
  private shuttingDown = false
  private readonly abortController = new AbortController()
  /** While a backup waits for its LSN: ends that wait (graceful shutdown). */
  private backupWaitAbort: AbortController | null = null
  private drainWaiters: Array<() => void> = []
  private handshakeTimer: NodeJS.Timeout | null
  /** When the connection was accepted (the server evicts the oldest one still logging in when it is full). */
  readonly acceptedAtMs = Date.now()
  /** Writes of one tick leave in one writev (pipelined messages, a frame head and its page). */
  private readonly out: TickCorkedWriter
  /**
   * In pagestream, reading stops while the write buffer and the requests in flight (a page each) reach
   * this much: about inFlightMax pages, so that pipelined requests answered at once (their responses corked
   * until the end of the tick) do not stop at the socket's high-water mark after two pages. Never below
   * that mark: only crossing it brings 'drain'.
   */
  private readonly pagestreamBufferedMax: number
  /**
   * Reads and writes so far, and what the server's idle sweep last saw of them (`sweepIdle`): a connection
   * whose count stays the same for idleTimeoutMs is dropped. Counting here replaces the socket's own
   * timeout, which Node re-arms (a timer-list insert) on every read and write.
   */
  private activity = 0
  private activitySeen = -1
  private quietSinceMs = 0

  constructor(
    private readonly socket: Socket,
    private readonly ctx: ConnectionContext,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve))
    this.out = new TickCorkedWriter(socket)
    this.pagestreamBufferedMax = Math.max(socket.writableHighWaterMark, ctx.options.inFlightMax * PAGE_RESPONSE_BYTES)
    this.reader = new FrameReader({
      messageBytesMax: ctx.options.messageBytesMax,
      startupPacketBytesMax: ctx.options.startupPacketBytesMax,
      peer: 'client',
    })
    this.reader.expectStartup = true
    socket.setNoDelay(true)
    socket.on('drain', () => {
      this.wakeDrainWaiters()
      this.pump()
    })
    socket.on('end', () => this.destroy())
    socket.on('error', () => this.destroy())
    socket.on('close', () => this.onClosed())
    this.handshakeTimer = setTimeout(() => this.destroy(), ctx.options.handshakeTimeoutMs)
    this.handshakeTimer.unref()
    socket.resume()
  }

  /** Bytes read from the socket (the server's read callback; the bytes are ours to keep). */
  receive(chunk: Buffer): void {
    if (this.state === 'closed') return // lingering after our last message: discard
    this.activity++
    this.reader.push(chunk)
    if (this.reader.bufferedBytes > this.ctx.metrics.readBufferedBytesPeak) this.ctx.metrics.readBufferedBytesPeak = this.reader.bufferedBytes
    // The answers given at once to what this read brought leave in one write when the pump returns.
    this.out.hold()
    try {
      this.pump()
    } finally {
      this.out.release()
    }
  }

  /** Graceful stop: finish in-flight pagestream responses, tell the client (57P01), close. */
  shutdown(): void {
    if (this.state === 'closed' || this.shuttingDown) return
    this.shuttingDown = true
    switch (this.state) {
      case 'startup':
      case 'password':
        this.destroy()
        return
      case 'query':
        this.fatal(SqlState.AdminShutdown, 'shutdown')
        return
      case 'pagestream': {
        const session = this.session!
        this.state = 'busy'
        void session.finish({ shutdown: true }).then(() => this.fatal(SqlState.AdminShutdown, 'shutdown'))
        return
      }
      case 'busy':
        // The running command checks `shuttingDown` when it ends; a backup still waiting for its LSN, or a
        // pagestream ending with requests that wait for WAL, stops waiting now.
        this.backupWaitAbort?.abort()
        if (this.session !== null) void this.session.finish({ shutdown: true })
        return
    }
  }

  /**
   * Made to leave while still logging in, to make room at the connection cap: told so in PostgreSQL's words
   * (53300) before the close, not just reset (a concurrency audit's clients saw ECONNRESET with no reason).
   */
  evict(): void {
    if (this.state === 'closed') return
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer)
    this.handshakeTimer = null
    // A short linger: the evicted socket no longer counts against the cap, so it must not hold its
    // descriptor for long (a flood of silent sockets would otherwise pile them up past the cap).
    this.fatal(SqlState.TooManyConnections, 'sorry, too many clients already', SHUTDOWN_LINGER_MS)
  }

  /**
   * The server's shutdown deadline passed with this connection still busy: whatever it was doing stops (a
   * backup's later chunks are dropped), and the client gets FATAL 57P01 after the bytes already buffered,
   * then the close (SHUTDOWN_LINGER_MS later at most).
   */
  terminate(): void {
    if (this.state === 'closed') {
      // Already closing (after a Terminate, a protocol error): its linger may be the long one; not past this.
      if (!this.socket.destroyed) setTimeout(() => this.socket.destroy(), SHUTDOWN_LINGER_MS).unref()
      return
    }
    this.shuttingDown = true
    this.fatal(SqlState.AdminShutdown, 'terminating connection due to administrator command')
  }

  /** Hard stop: cancel everything and drop the socket. */
  destroy(): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.session?.abort()
    this.abortController.abort()
    this.socket.destroy()
  }

  // ---- Reading ------------------------------------------------------------------------------------------

  private canRead(): boolean {
    switch (this.state) {
      case 'startup':
      case 'password':
      case 'query':
        // Each message may bring an answer: none is taken while the client leaves the answers unread.
        return this.socket.writableLength < this.socket.writableHighWaterMark
      case 'pagestream':
        // Responses still to come count as written: buffered + pending stays within about inFlightMax pages.
        return this.session!.hasRoom && this.socket.writableLength + this.session!.inFlight * PAGE_RESPONSE_BYTES < this.pagestreamBufferedMax
      default:
        return false
    }
  }

  private pump(): void {
    if (this.pumping || this.state === 'closed') return
    this.pumping = true
    try {
      while (this.canRead()) {
        const frame = this.reader.next()
        if (frame === null) break
        this.dispatch(frame)
      }
    } catch (err) {
      this.protocolViolation(messageOf(err))
    } finally {
      this.pumping = false
    }
    if ((this.state as State) === 'closed') return
    if (this.canRead() || this.reader.bufferedBytes < READ_AHEAD_BYTES) this.socket.resume()
    else this.socket.pause()
  }

  private dispatch(frame: Frame): void {
    switch (this.state) {
      case 'startup':
        return this.onStartup(parseStartupPacket(frame.body))
      case 'password':
        return this.onPassword(frame)
      case 'query':
        return this.onQueryMessage(frame)
      case 'pagestream':
        return this.onCopyMessage(frame)
    }
  }

  // ---- Startup and authentication -----------------------------------------------------------------------

  private onStartup(pkt: StartupPacket): void {
    switch (pkt.kind) {
      case 'ssl':
      case 'gssenc':
        if (++this.encryptionRequests > ENCRYPTION_REQUESTS_MAX) throw new Error('too many encryption requests before the startup message')
        this.write(ENCRYPTION_REFUSED)
        return
      case 'cancel':
        // We hand out no cancel keys, so no request can match one; PostgreSQL closes such connections silently.
        this.ctx.metrics.cancelRequests++
        this.destroyAfterFlush()
        return
      case 'startup': {
        this.reader.expectStartup = false
        const negotiation = protocolNegotiationNeeded(pkt)
        if (negotiation !== null) this.write(negotiateProtocolVersion(0, negotiation.unrecognizedOptions))
        if (this.ctx.options.authType === 'trust') {
          this.loginComplete()
        } else {
          this.state = 'password'
          this.reader.messageBytesMax = Math.min(PASSWORD_MESSAGE_BYTES_MAX, this.ctx.options.messageBytesMax)
          this.write(authenticationCleartextPassword())
        }
      }
    }
  }

  private onPassword(frame: Frame): void {
    if (frame.type !== FrontendType.Password) {
      this.protocolViolation(`unexpected message ${describeType(frame.type)} while waiting for the password`)
      return
    }
    // The payload is the JWT; drop a trailing NUL (Neon strips the last byte).
    const body = frame.body.length > 0 && frame.body[frame.body.length - 1] === 0 ? frame.body.subarray(0, -1) : frame.body
    const token = body.toString('utf8')
    this.state = 'busy'
    this.ctx.options.jwtAuth!.verify(token).then(
      (claims) => {
        if (this.state === 'closed') return
        if (this.shuttingDown) return this.destroy()
        this.claims = claims
        this.loginComplete()
        this.pump()
      },
      (err: unknown) => {
        if (this.state === 'closed') return
        this.ctx.metrics.authFailures++
        this.write(errorResponse({ severity: 'FATAL', code: SqlState.InternalError, message: 'JWT authentication error', detail: messageOf(err) }))
        this.destroyAfterFlush()
      },
    )
  }

  /** Whether the client has not completed its login yet (startup or password message pending). */
  get loggingIn(): boolean {
    return this.state === 'startup' || this.state === 'password'
  }

  private loginComplete(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer)
    this.handshakeTimer = null
    this.state = 'query'
    this.reader.messageBytesMax = this.ctx.options.messageBytesMax
    this.write(authenticationOk())
    this.write(parameterStatus('client_encoding', 'UTF8'))
    this.write(parameterStatus('integer_datetimes', 'on'))
    // Drivers want a server_version; Neon reports 14.1 and so do we, for the same clients.
    this.write(parameterStatus('server_version', '14.1'))
    this.write(readyForQuery())
  }

  // ---- Query mode ----------------------------------------------------------------------------------------

  private onQueryMessage(frame: Frame): void {
    switch (frame.type) {
      case FrontendType.Query:
        return this.runQuery(parseCString(frame.body, 'Query'), true)
      case FrontendType.Parse:
        this.unnamedQuery = parseParseMessage(frame.body)
        return this.write(parseComplete())
      case FrontendType.Bind:
        return this.write(bindComplete())
      case FrontendType.Describe:
        this.write(parameterDescriptionEmpty())
        return this.write(noData())
      case FrontendType.Close:
        return this.write(closeComplete())
      case FrontendType.Execute:
        // As Neon: run the remembered query; no ReadyForQuery (Sync brings it).
        return this.runQuery(this.unnamedQuery, false)
      case FrontendType.Sync:
        return this.write(readyForQuery())
      case FrontendType.Flush:
        return
      case FrontendType.Terminate:
        return this.destroyAfterFlush()
      default:
        return this.protocolViolation(`unexpected message type ${describeType(frame.type)}`)
    }
  }

  private runQuery(text: string, sendReady: boolean): void {
    const done = (): void => {
      if (sendReady) this.write(readyForQuery())
    }
    const fail = (message: string, detail?: string, o: { code?: string; hint?: string | undefined } = {}): void => {
      this.write(errorResponse({ severity: 'ERROR', code: o.code ?? SqlState.InternalError, message, ...(detail === undefined ? {} : { detail }), ...(o.hint === undefined ? {} : { hint: o.hint }) }))
      done()
    }
    const failTyped = (err: PageserverError, message = err.message): void => {
      this.write(typedErrorResponse(err, message))
      done()
    }
    let cmd: PageServiceCommand
    try {
      cmd = parseCommand(text)
    } catch (err) {
      return failTyped(typedForWire(err))
    }
    if (cmd.kind === 'set') {
      this.write(commandComplete('SELECT 1'))
      return done()
    }
    const refusal = this.permissionFor(cmd.tenantId)
    if (refusal !== null) return fail('JWT authentication error', refusal)
    let timeline: PageServiceTimeline
    try {
      timeline = this.ctx.backend.timeline(cmd.tenantId, cmd.timelineId)
    } catch (err) {
      if (err instanceof PageserverError && err.code === SHUTTING_DOWN_CODE) return this.fatal(SqlState.AdminShutdown, 'shutdown')
      // Neon's text for an unknown tenant or timeline ("Not found: ..."). Any other refusal (a timeline that
      // failed to load: data_corrupted when the cause is damaged files) as it is. Both typed.
      if (err instanceof PageserverError) return failTyped(err, err.kind === 'not_found' ? `Not found: ${err.message}` : err.message)
      return fail(`Not found: ${messageOf(err)}`)
    }
    if (cmd.kind === 'pagestream') {
      this.write(copyBothResponse())
      this.session = new PagestreamSession(
        { write: (b) => this.write(b), wake: () => this.pump(), fatal: (code, message) => this.fatal(code, message) },
        {
          version: cmd.version,
          timeline,
          inFlightMax: this.ctx.options.inFlightMax,
          waitLsnTimeoutMs: this.ctx.options.waitLsnTimeoutMs,
          metrics: this.ctx.metrics,
        },
      )
      this.state = 'pagestream'
      return
    }
    this.state = 'busy'
    this.ctx.metrics.backupsStarted++
    const waitAbort = (this.backupWaitAbort = new AbortController())
    const sink = { write: (b: Buffer) => this.write(b), drained: () => this.writeDrained(), signal: this.abortController.signal, waitSignal: waitAbort.signal }
    const req =
      cmd.kind === 'basebackup'
        ? { lsn: cmd.lsn, prevLsn: null, full: false, gzip: cmd.gzip, replica: cmd.replica }
        : { lsn: cmd.lsn, prevLsn: cmd.prevLsn, full: true, gzip: false, replica: false }
    streamBackup(sink, timeline, req, this.ctx.options).then(
      () => {
        if (this.state === 'closed') return
        this.write(commandComplete('SELECT 1'))
        this.commandEnded(done)
      },
      (err: unknown) => {
        if (this.state === 'closed') return
        if ((err instanceof PageserverError && err.code === SHUTTING_DOWN_CODE) || waitAbort.signal.aborted) return this.fatal(SqlState.AdminShutdown, 'shutdown')
        // A timeline deleted under the backup fails it on a closed file: say why, not which file.
        const failure = timeline.deleted?.() === true ? timelineDeletedDuringBackup() : typedForWire(err)
        this.write(typedErrorResponse(failure))
        this.commandEnded(done)
      },
    )
  }

  /** Back to query mode after an asynchronous command (or close, if shutdown was asked meanwhile). */
  private commandEnded(done: () => void): void {
    this.backupWaitAbort = null
    if (this.shuttingDown) return this.fatal(SqlState.AdminShutdown, 'shutdown')
    done()
    this.state = 'query'
    this.pump()
  }

  private permissionFor(tenantId: TenantId): string | null {
    if (this.ctx.options.authType === 'trust') return null
    const refusal = checkPermission(this.claims!, tenantId)
    return refusal === null ? null : refusal.message
  }

  // ---- Pagestream mode ----------------------------------------------------------------------------------

  private onCopyMessage(frame: Frame): void {
    const session = this.session!
    if (frame.type === FrontendType.CopyData) {
      const bad = session.onCopyData(frame.body)
      if (bad !== null) this.endPagestream(bad)
      return
    }
    if (frame.type === FrontendType.Terminate) {
      this.state = 'busy'
      void session.finish({ shutdown: false }).then(() => this.destroyAfterFlush())
      return
    }
    this.endPagestream(`unexpected message: ${describeType(frame.type)} during COPY`)
  }

  /** Ends the stream after every earlier response is out: ErrorResponse + ReadyForQuery, back to query mode. */
  private endPagestream(message: string): void {
    const session = this.session!
    this.state = 'busy'
    this.ctx.metrics.protocolErrors++
    void session.finish({ shutdown: false }).then(() => {
      if (this.state === 'closed') return
      this.session = null
      this.write(errorResponse({ severity: 'ERROR', code: SqlState.InternalError, message }))
      this.commandEnded(() => this.write(readyForQuery()))
    })
  }

  // ---- Writing and closing ------------------------------------------------------------------------------

  /**
   * Called by the server every so often (at most a quarter of idleTimeoutMs apart): drops the connection
   * once no byte was read or written for idleTimeoutMs (to within one sweep period).
   */
  sweepIdle(nowMs: number): void {
    if (this.activity !== this.activitySeen) {
      this.activitySeen = this.activity
      this.quietSinceMs = nowMs
    } else if (nowMs - this.quietSinceMs >= this.ctx.options.idleTimeoutMs) {
      this.destroy()
    }
  }

  private write(bytes: Uint8Array): void {
    if (this.state === 'closed' || this.socket.destroyed) return
    this.activity++
    this.out.write(bytes)
    const pending = this.socket.writableLength
    if (pending > this.ctx.metrics.writeBufferedBytesPeak) this.ctx.metrics.writeBufferedBytesPeak = pending
  }

  /** Resolves once the write buffer is below its high-water mark, or the connection closed. */
  private writeDrained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.state === 'closed') return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w()
  }

  /** An error that ends the connection: ErrorResponse, then close once it is written. */
  private fatal(sqlstate: string, message: string, lingerMs?: number): void {
    if (this.state === 'closed') return
    this.write(errorResponse({ severity: sqlstate === SqlState.InternalError ? 'ERROR' : 'FATAL', code: sqlstate, message }))
    this.destroyAfterFlush(lingerMs)
  }

  private protocolViolation(message: string): void {
    this.ctx.metrics.protocolErrors++
    this.fatal(SqlState.ProtocolViolation, message)
  }

  /** Stop reading, send what is buffered, then close; a peer that does not read is cut off by the idle timeout. */
  private destroyAfterFlush(lingerMs = this.shuttingDown ? SHUTDOWN_LINGER_MS : LINGER_MS): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.session?.abort()
    this.abortController.abort()
    this.reader.expectStartup = false
    this.socket.end()
    // Keep consuming input so the peer gets our last message instead of a reset.
    this.socket.resume()
    setTimeout(() => this.socket.destroy(), lingerMs).unref()
  }

  private onClosed(): void {
    this.state = 'closed'
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer)
    this.session?.abort()
    this.abortController.abort()
    this.wakeDrainWaiters()
    this.resolveClosed()
  }
}

/** A typed error's ErrorResponse: SQLSTATE from its kind, its code in D, its hint in H; `message` as the client reads it. */
function typedErrorResponse(err: PageserverError, message = err.message): Buffer {
  return errorResponse({ severity: 'ERROR', code: sqlstateOf(err), message, detail: detailWithCode(err.code), ...(err.hint === undefined ? {} : { hint: err.hint }) })
}

/** What a backup whose timeline was deleted under it fails with (not the closed file it failed to read). */
function timelineDeletedDuringBackup(): NotFoundError {
  return new NotFoundError('TIMELINE_NOT_FOUND', 'Tenant or timeline not found: the timeline was deleted during the backup', {
    hint: 'The timeline was deleted while the backup ran; list the timelines (pageserver timeline list) and back up one that exists.',
  })
}
