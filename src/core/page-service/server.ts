/**
 * PageServiceServer: the libpq listener of the page service (Neon's `listen_pg_addr`, default
 * 127.0.0.1:64000). One PageServiceConnection per accepted socket; the backend answers the data.
 *
 * Lifecycle: `listen(host, port)` -> serving -> `close()`: stop accepting, ask every connection to finish
 * (pagestream responses in flight are written, then ErrorResponse 57P01 "shutdown"), and after
 * `closeDeadlineMs` destroy what is left; resolves when every socket has closed. `close()` is idempotent.
 *
 * Limits: at most `connectionsMax` live connections; one more is answered with ErrorResponse 53300
 * ("sorry, too many clients already", PostgreSQL's text) and closed, so it never holds a slot.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { UnavailableError, assert } from '../lib/errors.js'
import { errorResponse } from '../protocol/pg-backend-messages.js'
import type { PageServiceBackend } from './backend.js'
import { PageServiceConnection, SqlState } from './connection.js'
import { newPageServiceMetrics, type PageServiceMetrics } from './metrics.js'
import { resolvePageServiceOptions, type PageServiceOptions, type ResolvedPageServiceOptions } from './options.js'

/** A refused connection gets this long to read our error before its socket is destroyed. */
const REFUSED_LINGER_MS = 2_000

export class PageServiceServer {
  readonly metrics: PageServiceMetrics = newPageServiceMetrics()
  readonly options: ResolvedPageServiceOptions
  private readonly server: Server
  private readonly connections = new Set<PageServiceConnection>()
  private closing: Promise<void> | null = null

  constructor(
    private readonly backend: PageServiceBackend,
    options: PageServiceOptions = {},
  ) {
    this.options = resolvePageServiceOptions(options)
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket))
  }

  /** Starts listening; port 0 picks a free port (read it from `address`). */
  async listen(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(
          new UnavailableError('PAGE_SERVICE_LISTEN_FAILED', `cannot listen on ${host}:${port}: ${err.message}`, {
            hint: 'Choose another listen_pg_addr, or stop the process that holds the port.',
            cause: err,
          }),
        )
      }
      this.server.once('error', onError)
      this.server.listen(port, host, () => {
        this.server.off('error', onError)
        resolve()
      })
    })
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
    if (this.closing !== null || this.connections.size >= this.options.connectionsMax) {
      this.metrics.connectionsRefused++
      socket.on('error', () => undefined)
      const message = this.closing !== null ? 'the page server is shutting down' : 'sorry, too many clients already'
      const code = this.closing !== null ? SqlState.AdminShutdown : SqlState.TooManyConnections
      socket.end(errorResponse({ severity: 'FATAL', code, message }))
      socket.resume() // discard the startup packet so the client reads our error instead of a reset
      setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref()
      return
    }
    this.metrics.connectionsAccepted++
    const conn = new PageServiceConnection(socket, { backend: this.backend, options: this.options, metrics: this.metrics })
    this.connections.add(conn)
    this.metrics.connectionsLive = this.connections.size
    void conn.closed.then(() => {
      this.connections.delete(conn)
      this.metrics.connectionsLive = this.connections.size
    })
  }

  /** Stops accepting, ends connections gracefully within `closeDeadlineMs`, then destroys the rest. */
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
        for (const c of this.connections) c.destroy()
        await all
      }
      clearTimeout(timer)
      await stopped
    })()
    return this.closing
  }
}
