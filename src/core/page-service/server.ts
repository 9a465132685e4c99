/**
 * PageServiceServer: the libpq listener of the page service (Neon's `listen_pg_addr`, default
 * 127.0.0.1:64000). One PageServiceConnection per accepted socket; the backend answers the data.
 *
 * Lifecycle: `listen(host, port)` -> serving -> `close()`: stop accepting, ask every connection to finish
 * (pagestream responses in flight are written, then ErrorResponse 57P01 "shutdown"), and after
 * `closeDeadlineMs` terminate what is left (FATAL 57P01 after the bytes already buffered: best effort, a
 * reader too slow to take them in 200 ms is cut off); resolves when every socket has closed. Idempotent.
 *
 * Limits: at most `connectionsMax` live connections; one more is answered with ErrorResponse 53300
 * ("sorry, too many clients already", PostgreSQL's text) after its startup packet and closed; it never
 * holds a slot.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { assert } from '../lib/errors.js'
import { listenOn } from '../lib/host-port.js'
import { adoptWithReadBuffer, newReadBuffer } from '../lib/socket-read-buffer.js'
import { ENCRYPTION_REFUSED, errorResponse, parseStartupPacket } from '../protocol/pg-backend-messages.js'
import { FrameReader } from '../protocol/pg-frames.js'
import type { PageServiceBackend } from './backend.js'
import { PageServiceConnection } from './connection.js'
import { SqlState } from './connection-errors.js'
import { newPageServiceMetrics, type PageServiceMetrics } from './metrics.js'
import { resolvePageServiceOptions, type PageServiceOptions, type ResolvedPageServiceOptions } from './options.js'

/** A refused connection gets this long to send its startup packet and read our error. */
const REFUSED_LINGER_MS = 2_000
/** SSLRequest / GSSENCRequest answered on a refused connection before its StartupMessage. */
const REFUSED_ENCRYPTION_REQUESTS_MAX = 2
/** The idle sweep runs every quarter of idleTimeoutMs, within these bounds. */
const IDLE_SWEEP_MIN_MS = 10
const IDLE_SWEEP_MAX_MS = 5_000

/**
 * Refuses a connection the way PostgreSQL does for "too many clients": decline SSL/GSS encryption,
 * read the StartupMessage, then send the error and close. libpq does not show an error sent in reply to
 * SSLRequest (CVE-2024-10977), so answering at once would hide the reason from psql. Bounded: one small
 * packet at a time, a deadline, and nothing kept after the socket closes.
 */
function refuseConnection(socket: Socket, error: Buffer): void {
  const reader = new FrameReader({ messageBytesMax: 0, peer: 'client' })
  reader.expectStartup = true
  let encryptionRequests = 0
  const finish = (reply: Buffer | null): void => {
    socket.removeAllListeners('data')
    socket.resume()
    if (reply) socket.end(reply)
    else socket.end()
  }
  socket.on('error', () => undefined)
  socket.resume() // accepted paused (pauseOnConnect)
  socket.on('data', (chunk: Buffer) => {
    try {
      reader.push(chunk)
      for (let f = reader.next(); f !== null; f = reader.next()) {
        const pkt = parseStartupPacket(f.body)
        if ((pkt.kind === 'ssl' || pkt.kind === 'gssenc') && ++encryptionRequests <= REFUSED_ENCRYPTION_REQUESTS_MAX) {
          socket.write(ENCRYPTION_REFUSED)
          continue
        }
        return finish(pkt.kind === 'startup' ? error : null)
      }
    } catch {
      finish(error)
    }
  })
  setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref()
}

export class PageServiceServer {
  readonly metrics: PageServiceMetrics = newPageServiceMetrics()
  readonly options: ResolvedPageServiceOptions
  private readonly server: Server
  private readonly connections = new Set<PageServiceConnection>()
  /** Every connection's reads land here first (each read's bytes are copied out before the next). */
  private readonly readBuffer = newReadBuffer()
  private closing: Promise<void> | null = null
  /** One timer for every connection's idle timeout (PageServiceConnection.sweepIdle), while any is live. */
  private idleSweep: NodeJS.Timeout | null = null

  constructor(
    private readonly backend: PageServiceBackend,
    options: PageServiceOptions = {},
  ) {
    this.options = resolvePageServiceOptions(options)
    // Paused, so that an accepted socket reads nothing before it is given its read buffer.
    this.server = createServer({ noDelay: true, pauseOnConnect: true }, (socket) => this.accept(socket))
  }

  /** Starts listening; port 0 picks a free port (read it from `address`). */
  async listen(host: string, port: number): Promise<void> {
    await listenOn(this.server, host, port, { setting: 'listen_pg_addr', code: 'PAGE_SERVICE_LISTEN_FAILED' })
    // From now on a listener error (EMFILE on accept) must not crash the process: count it.
    this.server.on('error', () => this.metrics.acceptErrors++)
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo | null
    assert(a !== null && typeof a === 'object', 'the page service is not listening')
    return { host: a.address, port: a.port }
  }

  get liveConnections(): number {
    return this.connections.size
  }

  private accept(socket: Socket): void {
    // Full: a connection still logging in makes room (the oldest one), so that connections that never send a
    // valid login (no token needed to open a socket) cannot keep clients that can from logging in. A client
    // that logs in takes milliseconds; only a connection that idles in the handshake is ever the oldest one.
    if (this.closing === null && this.connections.size >= this.options.connectionsMax) this.evictOldestLoggingIn()
    if (this.closing !== null || this.connections.size >= this.options.connectionsMax) {
      this.metrics.connectionsRefused++
      const refusal =
        this.closing !== null
          ? { severity: 'FATAL' as const, code: SqlState.AdminShutdown, message: 'the page server is shutting down' }
          : { severity: 'FATAL' as const, code: SqlState.TooManyConnections, message: 'sorry, too many clients already' }
      refuseConnection(socket, errorResponse(refusal))
      return
    }
    this.metrics.connectionsAccepted++
    let conn: PageServiceConnection | null = null
    const adopted = adoptWithReadBuffer(socket, this.readBuffer, (bytes) => conn!.receive(bytes))
    conn = new PageServiceConnection(adopted, { backend: this.backend, options: this.options, metrics: this.metrics })
    this.connections.add(conn)
    this.metrics.connectionsLive = this.connections.size
    this.idleSweep ??= this.startIdleSweep()
    void conn.closed.then(() => {
      this.connections.delete(conn)
      this.metrics.connectionsLive = this.connections.size
    })
  }

  private evictOldestLoggingIn(): void {
    let oldest: PageServiceConnection | null = null
    for (const c of this.connections) if (c.loggingIn && (oldest === null || c.acceptedAtMs < oldest.acceptedAtMs)) oldest = c
    if (oldest === null) return
    this.metrics.handshakesEvicted++
    // Removed from the count now: its socket closes once the error is written (or after a 200 ms linger).
    this.connections.delete(oldest)
    oldest.evict()
  }

  private startIdleSweep(): NodeJS.Timeout {
    const periodMs = Math.min(IDLE_SWEEP_MAX_MS, Math.max(IDLE_SWEEP_MIN_MS, Math.floor(this.options.idleTimeoutMs / 4)))
    const timer = setInterval(() => {
      const now = Date.now()
      for (const c of this.connections) c.sweepIdle(now)
      if (this.connections.size === 0) {
        clearInterval(timer)
        this.idleSweep = null
      }
    }, periodMs)
    timer.unref()
    return timer
  }

  /** Stops accepting, ends connections gracefully within `closeDeadlineMs`, then terminates the rest (57P01). */
  close(): Promise<void> {
    if (this.closing) return this.closing
    this.closing = (async () => {
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()))
      for (const c of this.connections) c.shutdown()
      const all = Promise.all([...this.connections].map((c) => c.closed))
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), this.options.closeDeadlineMs)
      })
      if ((await Promise.race([all.then(() => 'done' as const), deadline])) === 'deadline') {
        // Still busy (a backup streaming to a slow reader, say): told 57P01 after what is already buffered,
        // then closed after a short linger; a bare close left the client with "closed unexpectedly".
        for (const c of this.connections) c.terminate()
        await all
      }
      clearTimeout(timer)
      if (this.idleSweep !== null) clearInterval(this.idleSweep)
      this.idleSweep = null
      await stopped
    })()
    return this.closing
  }
}
