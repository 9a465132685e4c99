/**
 * PageServiceClient: a small libpq client for the page service, shared by tests, benchmarks and
 * `pageserver getpage --server`. Speaks only what the page service needs: startup (optionally after an
 * SSLRequest that must be declined), trust or cleartext password (the JWT), simple queries, pagestream
 * v2/v3 with pipelining (pagestream-client.ts), and basebackup/fullbackup as CopyOut.
 *
 * One connection = one command at a time; after `pagestream()` the connection belongs to the stream
 * until `close()` (computes never leave pagestream mode either).
 *
 * Invariants: backend messages are framed with a length limit (`messageBytesMax`); messages the caller
 * has not consumed yet are bounded (`inboxBytesMax`: the socket is paused above it), so a basebackup
 * consumer that reads slowly slows the server down instead of filling memory. Every wait is bounded by
 * the connection closing; the handshake by `connectTimeoutMs`.
 */
import { connect as netConnect, type Socket } from 'node:net'
import { TickCorkedWriter } from '../lib/tick-cork.js'
import { CorruptionError, PageserverError, TimeoutError, UnavailableError, UnsupportedError, UsageError } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import type { PagestreamVersion } from '../protocol/pagestream.js'
import { AuthCode, BackendType } from '../protocol/pg-backend-messages.js'
import { FrameReader, describeType, type Frame } from '../protocol/pg-frames.js'
import {
  parseAuthCode,
  parseCStrings,
  parseDataRow,
  parseErrorFields,
  passwordMessage,
  query,
  sslRequest,
  startupMessage,
  terminateMessage,
} from '../protocol/pg-frontend-messages.js'
import { PageServiceServerError, connectionClosed } from './client-errors.js'
import { PagestreamClient } from './pagestream-client.js'

export interface PageServiceClientOptions {
  readonly host: string
  readonly port: number
  /** The JWT (sent as the cleartext password when the server asks for one). */
  readonly token?: string
  /** Same as token; for clients that think of it as a password. */
  readonly password?: string
  readonly user?: string
  readonly database?: string
  readonly applicationName?: string
  /** Send SSLRequest first (as libpq's sslmode=prefer) and go on in plain text when declined. */
  readonly sslRequest?: boolean
  readonly connectTimeoutMs?: number
  /** Largest backend message accepted (a GetSlruSegment response is 256 KiB + 42 bytes). */
  readonly messageBytesMax?: number
  /** Pipelined pagestream requests per connection. */
  readonly outstandingMax?: number
}

export const CLIENT_DEFAULTS = {
  user: 'pageserver',
  connectTimeoutMs: 10_000,
  messageBytesMax: 16 * 1024 * 1024,
  /** Unconsumed messages buffered before the socket is paused. */
  inboxBytesMax: 4 * 1024 * 1024,
} as const

export interface QueryResult {
  readonly commandTag: string | null
  readonly rows: ReadonlyArray<ReadonlyArray<string | null>>
}

export interface BackupOptions {
  readonly lsn?: Lsn
  readonly prevLsn?: Lsn
  readonly gzip?: boolean
  readonly full?: boolean
  readonly replica?: boolean
}

export class PageServiceClient {
  readonly serverParameters = new Map<string, string>()
  private readonly reader: FrameReader
  private inbox: Frame[] = []
  private inboxBytes = 0
  private waiter: { resolve: (f: Frame) => void; reject: (e: Error) => void } | null = null
  private closedWith: Error | null = null
  private stream: PagestreamClient | null = null
  private busy = false
  private sslWaiter: ((byte: number) => void) | null = null
  /** Writes of one tick leave in one writev (pipelined messages, a frame head and its page). */
  private readonly out: TickCorkedWriter

  private constructor(private readonly socket: Socket, private readonly opts: PageServiceClientOptions) {
    this.reader = new FrameReader({ messageBytesMax: opts.messageBytesMax ?? CLIENT_DEFAULTS.messageBytesMax, peer: 'server' })
    this.out = new TickCorkedWriter(socket)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', (err) => this.onClosed(err))
    socket.on('close', () => this.onClosed(null))
  }

  /** Connects and logs in; resolves when the server is ready for commands. */
  static async connect(opts: PageServiceClientOptions): Promise<PageServiceClient> {
    const timeoutMs = opts.connectTimeoutMs ?? CLIENT_DEFAULTS.connectTimeoutMs
    const socket = netConnect({ host: opts.host, port: opts.port })
    const client = new PageServiceClient(socket, opts)
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new TimeoutError('PAGE_SERVICE_CONNECT_TIMEOUT', `could not connect to the page service at ${opts.host}:${opts.port} within ${timeoutMs} ms`, {
            hint: 'Check the address and that the page server is running.',
          }),
        )
      }, timeoutMs)
    })
    const login = (async () => {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve)
        socket.once('error', reject)
      })
      await client.handshake()
    })()
    login.catch(() => undefined) // when the timeout wins, the login's own failure is not interesting
    try {
      await Promise.race([login, timeout])
      return client
    } catch (err) {
      socket.destroy()
      // A socket error (ECONNREFUSED, EHOSTUNREACH) is not ours: say where we tried to connect.
      if (err instanceof Error && !(err instanceof PageserverError)) throw connectFailed(opts, err)
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  private async handshake(): Promise<void> {
    if (this.opts.sslRequest) {
      const answer = await new Promise<number>((resolve, reject) => {
        this.sslWaiter = resolve
        this.waiter = { resolve: () => undefined, reject }
        this.write(sslRequest())
      })
      this.waiter = null
      if (answer !== 0x4e) {
        throw new UnsupportedError('PAGE_SERVICE_TLS', `the server answered ${describeType(answer)} to SSLRequest; TLS is not supported by this client`, {
          hint: 'Connect without sslRequest, or disable TLS on the page service.',
        })
      }
    }
    const params: Record<string, string> = { user: this.opts.user ?? CLIENT_DEFAULTS.user, database: this.opts.database ?? 'postgres' }
    if (this.opts.applicationName) params.application_name = this.opts.applicationName
    this.write(startupMessage(params))
    for (;;) {
      const f = await this.next()
      switch (f.type) {
        case BackendType.Authentication: {
          const code = parseAuthCode(f.body)
          if (code === AuthCode.Ok) break
          if (code !== AuthCode.CleartextPassword) {
            throw new UnsupportedError('PAGE_SERVICE_AUTH_METHOD', `the server asks for authentication method ${code}; only trust and cleartext (JWT) are supported`, {
              hint: 'Point the client at a page service (pg_auth_type Trust or NeonJWT).',
            })
          }
          const secret = this.opts.token ?? this.opts.password
          if (secret === undefined) {
            throw new UsageError('PAGE_SERVICE_TOKEN_REQUIRED', 'the page service requires a JWT token', {
              hint: 'Pass a token signed for this tenant (--token, or NEON_AUTH_TOKEN).',
            })
          }
          this.write(passwordMessage(secret))
          break
        }
        case BackendType.ParameterStatus: {
          const [k, v] = parseCStrings(f.body, 'ParameterStatus')
          if (k !== undefined && v !== undefined) this.serverParameters.set(k, v)
          break
        }
        case BackendType.BackendKeyData:
        case BackendType.NoticeResponse:
          break
        case BackendType.ErrorResponse:
          throw new PageServiceServerError(parseErrorFields(f.body), 'the page service refused the connection')
        case BackendType.ReadyForQuery:
          return
        default:
          throw unexpected(f, 'during login')
      }
    }
  }

  /** Runs a simple query that returns rows or just a tag (e.g. `set x`). */
  async simpleQuery(sql: string): Promise<QueryResult> {
    this.claim()
    try {
      this.write(query(sql))
      const rows: Array<Array<string | null>> = []
      let commandTag: string | null = null
      let error: PageServiceServerError | null = null
      for (;;) {
        // A server that closes after its ErrorResponse (FATAL: a shutdown) is explained by that error.
        const f: Frame = error === null ? await this.next() : await this.nextOr(error)
        if (f.type === BackendType.DataRow) rows.push(parseDataRow(f.body))
        else if (f.type === BackendType.CommandComplete) commandTag = parseCStrings(f.body, 'CommandComplete')[0] ?? null
        else if (f.type === BackendType.ErrorResponse) error = new PageServiceServerError(parseErrorFields(f.body), `query "${sql}" failed`)
        else if (f.type === BackendType.ReadyForQuery) break
        else if (f.type !== BackendType.RowDescription && f.type !== BackendType.NoticeResponse && f.type !== BackendType.ParameterStatus) {
          throw this.failWith(unexpected(f, `in reply to "${sql}"`))
        }
      }
      if (error) throw error
      return { commandTag, rows }
    } finally {
      this.busy = false
    }
  }

  /** Enters pagestream mode; the connection then belongs to the returned stream. */
  async pagestream(tenantId: TenantId, timelineId: TimelineId, opts: { version?: PagestreamVersion } = {}): Promise<PagestreamClient> {
    const version = opts.version ?? 3
    this.claim()
    const sql = `pagestream_v${version} ${tenantId} ${timelineId}`
    this.write(query(sql))
    const f = await this.next()
    if (f.type === BackendType.ErrorResponse) {
      const err = new PageServiceServerError(parseErrorFields(f.body), `${sql.split(' ')[0]} refused`)
      await this.untilReady(err)
      this.busy = false
      throw err
    }
    if (f.type !== BackendType.CopyBothResponse) throw this.failWith(unexpected(f, `in reply to ${sql.split(' ')[0]}`))
    const stream = new PagestreamClient({ write: (b) => this.write(b), fail: (e) => this.failWith(e) }, version, this.opts.outstandingMax)
    this.stream = stream
    // Frames that arrived together with CopyBothResponse belong to the stream.
    while (this.inbox.length > 0) stream.onFrame(this.shift())
    return stream
  }

  /**
   * basebackup (or fullbackup with `full`): the bytes the server sends, as they arrive: a tar, or a
   * gzip of it with `gzip`. Breaking out of the iteration early closes the connection (COPY OUT
   * cannot be cancelled in the protocol).
   */
  async *basebackup(tenantId: TenantId, timelineId: TimelineId, opts: BackupOptions = {}): AsyncGenerator<Buffer, void, undefined> {
    this.claim()
    const lsn = opts.lsn === undefined ? null : formatLsn(opts.lsn)
    let sql: string
    if (opts.full) {
      sql = `fullbackup ${tenantId} ${timelineId}${lsn ? ` ${lsn}` : ''}${lsn && opts.prevLsn !== undefined ? ` ${formatLsn(opts.prevLsn)}` : ''}`
    } else {
      sql = `basebackup ${tenantId} ${timelineId}${lsn ? ` ${lsn}` : ''}${opts.gzip ? ' --gzip' : ''}${opts.replica ? ' --replica' : ''}`
    }
    let complete = false
    try {
      this.write(query(sql))
      let f = await this.next()
      if (f.type === BackendType.ErrorResponse) {
        const err = new PageServiceServerError(parseErrorFields(f.body), `${opts.full ? 'fullbackup' : 'basebackup'} refused`)
        await this.untilReady(err)
        complete = true
        throw err
      }
      if (f.type !== BackendType.CopyOutResponse) throw this.failWith(unexpected(f, 'in reply to basebackup'))
      for (;;) {
        f = await this.next()
        if (f.type === BackendType.CopyData) {
          yield f.body
        } else if (f.type === BackendType.CopyDone) {
          break
        } else if (f.type === BackendType.ErrorResponse) {
          const err = new PageServiceServerError(parseErrorFields(f.body), `${opts.full ? 'fullbackup' : 'basebackup'} failed`)
          await this.untilReady(err)
          complete = true
          throw err
        } else {
          throw this.failWith(unexpected(f, 'during COPY OUT'))
        }
      }
      f = await this.next()
      if (f.type !== BackendType.CommandComplete) throw this.failWith(unexpected(f, 'after CopyDone'))
      await this.untilReady()
      complete = true
    } finally {
      this.busy = false
      if (!complete) this.destroy()
    }
  }

  /** Sends Terminate and closes the connection. */
  async close(): Promise<void> {
    if (this.socket.destroyed) return
    this.stream?.end(connectionClosed('(closed by the client)'))
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()))
    this.socket.end(terminateMessage())
    const timer = setTimeout(() => this.socket.destroy(), 2000)
    await closed
    clearTimeout(timer)
  }

  /** Closes at once without Terminate. */
  destroy(): void {
    this.socket.destroy()
  }

  // ---- plumbing ----------------------------------------------------------------------------------------

  private claim(): void {
    if (this.closedWith) throw this.closedWith
    if (this.busy || this.stream) {
      throw new UsageError('PAGE_SERVICE_CLIENT_BUSY', 'this connection is already running a command or a pagestream', {
        hint: 'Open another PageServiceClient for concurrent commands.',
      })
    }
    this.busy = true
  }

  /**
   * Skips to ReadyForQuery. After an ErrorResponse (`after`), a close instead of ReadyForQuery (a FATAL
   * error: the server is shutting down, a protocol violation) fails with that error, which says why, not
   * with "closed unexpectedly".
   */
  private async untilReady(after?: PageServiceServerError): Promise<void> {
    for (;;) {
      const f = after === undefined ? await this.next() : await this.nextOr(after)
      if (f.type === BackendType.ReadyForQuery) return
    }
  }

  /** The next frame; if the connection closes first, `err` (the server's last word) instead. */
  private async nextOr(err: PageServiceServerError): Promise<Frame> {
    try {
      return await this.next()
    } catch {
      throw err
    }
  }

  private write(bytes: Buffer): void {
    if (this.socket.destroyed) return
    this.out.write(bytes)
  }

  private onData(chunk: Buffer): void {
    if (this.sslWaiter) {
      const w = this.sslWaiter
      this.sslWaiter = null
      w(chunk[0]!)
      chunk = chunk.subarray(1)
    }
    this.reader.push(chunk)
    try {
      for (let f = this.reader.next(); f !== null; f = this.reader.next()) {
        if (this.stream && this.stream.onFrame(f)) continue
        this.inbox.push(f)
        this.inboxBytes += f.body.length
        if (this.waiter) {
          const w = this.waiter
          this.waiter = null
          w.resolve(this.shift())
        }
      }
    } catch (err) {
      this.failWith(err as Error)
      return
    }
    if (this.inboxBytes > CLIENT_DEFAULTS.inboxBytesMax) this.socket.pause()
  }

  private shift(): Frame {
    const f = this.inbox.shift()!
    this.inboxBytes -= f.body.length
    if (this.inboxBytes <= CLIENT_DEFAULTS.inboxBytesMax && this.socket.isPaused()) this.socket.resume()
    return f
  }

  private next(): Promise<Frame> {
    if (this.inbox.length > 0) return Promise.resolve(this.shift())
    if (this.closedWith) return Promise.reject(this.closedWith)
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject }
    })
  }

  private failWith(err: Error): Error {
    this.onClosed(err)
    this.socket.destroy()
    return err
  }

  private onClosed(err: Error | null): void {
    if (this.closedWith === null) this.closedWith = err instanceof PageserverError ? err : connectionClosed(err ? `(${err.message})` : 'unexpectedly')
    // Frames already received stay readable (an ErrorResponse before the close explains it).
    if (this.waiter && this.inbox.length === 0) {
      const w = this.waiter
      this.waiter = null
      w.reject(this.closedWith)
    }
    this.stream?.end(this.closedWith)
  }
}

function unexpected(f: Frame, where: string): CorruptionError {
  return new CorruptionError('PAGE_SERVICE_PROTOCOL', `the server sent message ${describeType(f.type)} ${where}`, {
    hint: 'Check that host and port point to a page service.',
  })
}

function connectFailed(opts: PageServiceClientOptions, err: Error): UnavailableError {
  return new UnavailableError('PAGE_SERVICE_CONNECT_FAILED', `cannot connect to the page service at ${opts.host}:${opts.port}: ${err.message}`, {
    hint: 'Check the address (--server HOST:PORT) and that the page server is running.',
    cause: err,
  })
}
