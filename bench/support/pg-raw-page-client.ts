/**
 * A minimal PostgreSQL v3 client for the GetPage benchmark: one connection, requests written at once and
 * answered in order (several may be in flight: PostgreSQL reads the next message only after it answered
 * the previous one, so writing ahead is libpq's pipeline mode without the bookkeeping).
 *
 * Two request forms, both `get_raw_page(<rel>, 'main', <blkno>)` from pageinspect:
 *   - simple:   a Query message with the whole SQL text; the bytea comes back as text ("\x" + 16,384 hex
 *               digits) — what psql or a naive client pays;
 *   - prepared: the statement parsed once (`Parse`), then per request Bind (blkno as a text parameter,
 *               binary result) + Execute + Sync; the bytea comes back as its 8,192 raw bytes — the cheapest
 *               form PostgreSQL offers, and the one compared with the page service.
 * Each request's bytes are built once per block beforehand, so the timed loop only writes and reads, as
 * the page service client's loop does. A response resolves with the DataRow's column (a view, not copied;
 * decoded from hex only on request), after ReadyForQuery. Trust authentication only (the harness's).
 */
import { connect, type Socket } from 'node:net'
import { FrameReader } from '../../src/core/protocol/pg-frames.js'
import { BackendType, FrontendType } from '../../src/core/protocol/pg-backend-messages.js'
import { cstr, parseErrorFields, startupMessage, syncMessage, typed } from '../../src/core/protocol/pg-frontend-messages.js'

/** Largest backend message accepted (a DataRow with a hex-encoded page is ~16 KiB). */
const MESSAGE_BYTES_MAX = 1 << 20

/** Parse of a named statement, no parameter types given (the server infers them). */
export function parseMessage(name: string, sql: string): Buffer {
  return typed(FrontendType.Parse, Buffer.concat([cstr(name), cstr(sql), Buffer.from([0, 0])]))
}

/** Bind (unnamed portal) of `stmt` with text parameters and every result column in binary; then Execute and Sync. */
export function bindExecuteSync(stmt: string, params: string[]): Buffer {
  const parts: Buffer[] = [cstr(''), cstr(stmt), Buffer.from([0, 0])] // portal, statement, 0 param formats (all text)
  const n = Buffer.allocUnsafe(2)
  n.writeUInt16BE(params.length)
  parts.push(n)
  for (const p of params) {
    const v = Buffer.from(p, 'utf8')
    const len = Buffer.allocUnsafe(4)
    len.writeInt32BE(v.length)
    parts.push(len, v)
  }
  parts.push(Buffer.from([0, 1, 0, 1])) // 1 result format code: binary
  const bind = typed(FrontendType.Bind, Buffer.concat(parts))
  const execute = typed(FrontendType.Execute, Buffer.concat([cstr(''), Buffer.from([0, 0, 0, 0])]))
  return Buffer.concat([bind, execute, syncMessage()])
}

/** The first column of a DataRow body (a view), or null for SQL NULL. */
function firstColumn(body: Buffer): Buffer | null {
  const len = body.readInt32BE(2)
  return len < 0 ? null : body.subarray(6, 6 + len)
}

/** A text-format bytea ("\x" + hex) as bytes. */
export function decodeHexBytea(text: Buffer): Buffer {
  if (text[0] !== 0x5c || text[1] !== 0x78) throw new Error('bytea text does not start with \\x')
  return Buffer.from(text.toString('latin1', 2), 'hex')
}

interface Waiting {
  resolve: (v: Buffer | null) => void
  reject: (e: Error) => void
  row: Buffer | null
  error: Error | null
}

export class PgRawPageClient {
  private readonly frames = new FrameReader({ messageBytesMax: MESSAGE_BYTES_MAX, peer: 'server' })
  private readonly waiting: Waiting[] = []
  private startup: { resolve: () => void; reject: (e: Error) => void } | null = null
  /** The backend's process id (BackendKeyData): its CPU time is read from /proc. */
  backendPid = 0

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', (e) => this.failAll(e))
    socket.on('close', () => this.failAll(new Error('connection closed')))
  }

  static async connect(o: { host: string; port: number; user: string; database: string }): Promise<PgRawPageClient> {
    const s = connect({ host: o.host, port: o.port, noDelay: true })
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve)
      s.once('error', reject)
    })
    const c = new PgRawPageClient(s)
    await new Promise<void>((resolve, reject) => {
      c.startup = { resolve, reject }
      s.write(startupMessage({ user: o.user, database: o.database, application_name: 'getpage-bench' }))
    })
    return c
  }

  /** Parses a named statement once. */
  async prepare(name: string, sql: string): Promise<void> {
    await this.send(Buffer.concat([parseMessage(name, sql), syncMessage()]))
  }

  /** Writes one request (a Query, or Bind+Execute+Sync) and resolves with the first column of its row. */
  send(bytes: Buffer): Promise<Buffer | null> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject, row: null, error: null })
      this.socket.write(bytes)
    })
  }

  close(): void {
    this.socket.end(typed(FrontendType.Terminate, Buffer.alloc(0)))
    this.socket.destroy()
  }

  private onData(chunk: Buffer): void {
    this.frames.push(chunk)
    for (let f = this.frames.next(); f !== null; f = this.frames.next()) {
      const startup = this.startup
      if (startup !== null) {
        if (f.type === BackendType.Authentication && f.body.readUInt32BE(0) !== 0) startup.reject(new Error('only trust authentication is supported'))
        else if (f.type === BackendType.BackendKeyData) this.backendPid = f.body.readInt32BE(0)
        else if (f.type === BackendType.ErrorResponse) startup.reject(new Error(parseErrorFields(f.body).message))
        else if (f.type === BackendType.ReadyForQuery) {
          this.startup = null
          startup.resolve()
        }
        continue
      }
      const head = this.waiting[0]
      if (head === undefined) continue // NoticeResponse or ParameterStatus between requests
      if (f.type === BackendType.DataRow) head.row = firstColumn(f.body)
      else if (f.type === BackendType.ErrorResponse) head.error = new Error(parseErrorFields(f.body).message)
      else if (f.type === BackendType.ReadyForQuery) {
        this.waiting.shift()
        if (head.error !== null) head.reject(head.error)
        else head.resolve(head.row)
      }
    }
  }

  private failAll(e: Error): void {
    this.startup?.reject(e)
    this.startup = null
    for (const w of this.waiting.splice(0)) w.reject(e)
  }
}
