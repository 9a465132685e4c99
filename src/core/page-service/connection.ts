/**
 * PageServiceConnection: one client connection's state machine (query mode and its commands: query-mode.ts).
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
 * - A command that fails with a typed error answers with its kind, code and hint (connection-errors.ts).
 * - Writes made in one tick leave in one syscall; those answering one read leave once it is handled
 *   (connection-output.ts, which also counts the traffic the idle timeout watches).
 */
import type { Socket } from 'node:net'
import { messageOf } from '../lib/errors.js'
import { FrameReader, describeType, type Frame } from '../protocol/pg-frames.js'
import { BLCKSZ } from '../protocol/pagestream.js'
import {
  ENCRYPTION_REFUSED,
  FrontendType,
  authenticationCleartextPassword,
  authenticationOk,
  errorResponse,
  parameterStatus,
  negotiateProtocolVersion,
  parseStartupPacket,
  protocolNegotiationNeeded,
  readyForQuery,
  type StartupPacket,
} from '../protocol/pg-backend-messages.js'
import type { PageServiceBackend } from './backend.js'
import { JWT_TOKEN_BYTES_MAX } from './auth.js'
import type { PagestreamSession } from './pagestream-handler.js'
import { SqlState } from './connection-errors.js'
import { ConnectionOutput } from './connection-output.js'
import { QueryMode } from './query-mode.js'
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
  /** Query mode: the client's queries and the commands they start; it keeps the client's claims. */
  private readonly query: QueryMode
  private encryptionRequests = 0
  private pumping = false
  private shuttingDown = false
  private readonly abortController = new AbortController()
  private handshakeTimer: NodeJS.Timeout | null
  /** When the connection was accepted (the server evicts the oldest one still logging in when it is full). */
  readonly acceptedAtMs = Date.now()
  /** Corked writes, drain waits and the traffic count of the idle timeout (connection-output.ts). */
  private readonly output: ConnectionOutput
  /**
   * In pagestream, reading stops while the write buffer and the requests in flight (a page each) reach
   * this much: about inFlightMax pages, so that pipelined requests answered at once (their responses corked
   * until the end of the tick) do not stop at the socket's high-water mark after two pages. Never below
   * that mark: only crossing it brings 'drain'.
   */
  private readonly pagestreamBufferedMax: number

  constructor(
    private readonly socket: Socket,
    private readonly ctx: ConnectionContext,
  ) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve))
    this.output = new ConnectionOutput(socket, ctx.metrics)
    this.pagestreamBufferedMax = Math.max(socket.writableHighWaterMark, ctx.options.inFlightMax * PAGE_RESPONSE_BYTES)
    this.reader = new FrameReader({
      messageBytesMax: ctx.options.messageBytesMax,
      startupPacketBytesMax: ctx.options.startupPacketBytesMax,
      peer: 'client',
    })
    this.reader.expectStartup = true
    this.query = new QueryMode(
      {
        write: (b) => this.write(b),
        wake: () => this.pump(),
        fatal: (code, message) => this.fatal(code, message),
        drained: () => this.writeDrained(),
        signal: this.abortController.signal,
        closed: () => this.state === 'closed',
        closeAfterFlush: () => this.destroyAfterFlush(),
        protocolViolation: (message) => this.protocolViolation(message),
        servePagestream: (session) => {
          this.session = session
          this.state = 'pagestream'
        },
        busy: () => {
          this.state = 'busy'
        },
        commandEnded: (done) => this.commandEnded(done),
      },
      ctx,
    )
    socket.setNoDelay(true)
    socket.on('drain', () => {
      this.output.wakeDrainWaiters()
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
    this.output.countRead()
    this.reader.push(chunk)
    if (this.reader.bufferedBytes > this.ctx.metrics.readBufferedBytesPeak) this.ctx.metrics.readBufferedBytesPeak = this.reader.bufferedBytes
    // The answers given at once to what this read brought leave in one write when the pump returns.
    this.output.hold()
    try {
      this.pump()
    } finally {
      this.output.release()
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
        this.query.shutdown()
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
        return this.query.onMessage(frame)
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
        this.query.claims = claims
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

  // ---- Query mode (query-mode.ts) -----------------------------------------------------------------------

  /** Back to query mode after an asynchronous command (or close, if shutdown was asked meanwhile). */
  private commandEnded(done: () => void): void {
    if (this.shuttingDown) return this.fatal(SqlState.AdminShutdown, 'shutdown')
    done()
    this.state = 'query'
    this.pump()
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
    // A client waiting for an answer the server is still working on (a request or a backup waiting for WAL
    // up to wait_lsn_timeout, a redo) is not silent: the timeout may be set below wait_lsn_timeout, and Neon
    // times out only the read of the next request. One that leaves our answers unread still is.
    if (this.waitingOnServer()) return this.output.countActivity()
    if (this.output.idle(nowMs, this.ctx.options.idleTimeoutMs)) this.destroy()
  }

  /** Whether the server owes this client an answer it is still working on, with nothing left unread. */
  private waitingOnServer(): boolean {
    if (this.socket.writableLength > 0) return false
    if (this.state === 'pagestream') return this.session!.inFlight > 0
    return this.state === 'busy'
  }

  private write(bytes: Uint8Array): void {
    if (this.state === 'closed') return
    this.output.write(bytes)
  }

  /** Resolves once the write buffer is below its high-water mark, or the connection closed. */
  private writeDrained(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve()
    return this.output.drained()
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
    this.output.endAfterFlush(lingerMs)
  }

  private onClosed(): void {
    this.state = 'closed'
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer)
    this.session?.abort()
    this.abortController.abort()
    this.output.wakeDrainWaiters()
    this.resolveClosed()
  }
}
