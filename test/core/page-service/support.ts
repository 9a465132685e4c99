/**
 * Test support for the page service: start a server over a FakeBackend on a loopback port, and a raw
 * socket that speaks bytes (for malformed input) and reads backend frames.
 */
import { connect, type Socket } from 'node:net'
import { afterEach } from 'vitest'
import { PageServiceServer } from '../../../src/core/page-service/server.js'
import type { PageServiceOptions } from '../../../src/core/page-service/options.js'
import { PageServiceClient, type PageServiceClientOptions } from '../../../src/core/page-service/client.js'
import { FakeBackend } from './fake-backend.js'
import { parseErrorFields, query, startupMessage } from '../../../src/core/protocol/pg-frontend-messages.js'

export interface Running {
  readonly server: PageServiceServer
  readonly backend: FakeBackend
  readonly port: number
  client(opts?: Partial<PageServiceClientOptions>): Promise<PageServiceClient>
  /** `allowHalfOpen`: the client never closes its side by itself (as a client that stopped reading). */
  raw(opts?: { allowHalfOpen?: boolean }): Promise<RawSocket>
  stop(): Promise<void>
}

/**
 * For a test file whose tests each start one server: the `start` to call, and an afterEach (registered
 * here) that stops whatever the test started.
 */
export function serverPerTest(): (opts?: PageServiceOptions) => Promise<Running> {
  let running: Running | null = null
  afterEach(async () => {
    await running?.stop()
    running = null
  })
  return async (opts = {}) => {
    running = await startServer(opts)
    return running
  }
}

export async function startServer(options: PageServiceOptions = {}, backend = new FakeBackend()): Promise<Running> {
  const server = new PageServiceServer(backend, options)
  await server.listen('127.0.0.1', 0)
  const port = server.address.port
  const clients: PageServiceClient[] = []
  const raws: RawSocket[] = []
  return {
    server,
    backend,
    port,
    async client(opts = {}) {
      const c = await PageServiceClient.connect({ host: '127.0.0.1', port, ...opts })
      clients.push(c)
      return c
    },
    async raw(opts = {}) {
      const r = await RawSocket.connect(port, opts.allowHalfOpen === true)
      raws.push(r)
      return r
    },
    async stop() {
      for (const c of clients) c.destroy()
      for (const r of raws) r.socket.destroy()
      backend.stop()
      await server.close()
    },
  }
}

export interface RawFrame {
  readonly type: string
  readonly body: Buffer
}

/** Bytes in, frames out; no protocol logic, so tests can send anything. */
export class RawSocket {
  private buf = Buffer.alloc(0)
  private wake: (() => void) | null = null
  isClosed = false
  readonly closed: Promise<void>

  private constructor(readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.on('close', () => {
      this.isClosed = true
      this.wake?.()
      resolve()
    }))
    socket.on('data', (b: Buffer) => {
      this.buf = Buffer.concat([this.buf, b])
      this.wake?.()
    })
    socket.on('error', () => undefined)
  }

  static async connect(port: number, allowHalfOpen = false): Promise<RawSocket> {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen })
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve)
      s.once('error', reject)
    })
    return new RawSocket(s)
  }

  write(b: Buffer | string): void {
    this.socket.write(b)
  }

  get bufferedBytes(): number {
    return this.buf.length
  }

  private async waitFor(n: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.buf.length < n) {
      if (this.isClosed) throw new Error(`connection closed with ${this.buf.length} of ${n} bytes`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.buf.length})`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
      this.wake = null
    }
  }

  async byte(timeoutMs = 5000): Promise<string> {
    await this.waitFor(1, timeoutMs)
    const b = this.buf.subarray(0, 1).toString('latin1')
    this.buf = this.buf.subarray(1)
    return b
  }

  async frame(timeoutMs = 5000): Promise<RawFrame> {
    await this.waitFor(5, timeoutMs)
    const len = this.buf.readUInt32BE(1)
    await this.waitFor(1 + len, timeoutMs)
    const f = { type: String.fromCharCode(this.buf[0]!), body: this.buf.subarray(5, 1 + len) }
    this.buf = this.buf.subarray(1 + len)
    return f
  }

  /** Frames up to and including the next ReadyForQuery (or until the connection closes). */
  async untilReady(timeoutMs = 5000): Promise<RawFrame[]> {
    const out: RawFrame[] = []
    for (;;) {
      if (this.isClosed && this.buf.length === 0) return out
      const f = await this.frame(timeoutMs)
      out.push(f)
      if (f.type === 'Z') return out
    }
  }

  /** Startup with trust auth; returns once ReadyForQuery arrived. */
  async login(): Promise<void> {
    this.write(startupMessage({ user: 'test', database: 'postgres' }))
    const frames = await this.untilReady()
    if (frames.at(-1)?.type !== 'Z') throw new Error(`login failed: ${frames.map((f) => f.type).join('')}`)
  }

  async query(sql: string): Promise<RawFrame[]> {
    this.write(query(sql))
    return this.untilReady()
  }

  /** Waits for the server to close the connection; returns every frame still received before that. */
  async closedFrames(timeoutMs = 5000): Promise<RawFrame[]> {
    const out: RawFrame[] = []
    const deadline = Date.now() + timeoutMs
    while (!(this.isClosed && this.buf.length === 0)) {
      if (this.buf.length >= 5 && this.buf.length >= 1 + this.buf.readUInt32BE(1)) {
        out.push(await this.frame())
        continue
      }
      if (this.isClosed) break
      if (Date.now() > deadline) throw new Error('the server did not close the connection')
      await Promise.race([this.closed, new Promise((r) => setTimeout(r, 20))])
    }
    return out
  }
}

/** The M field of an ErrorResponse frame. */
export function errorMessage(f: RawFrame): string {
  if (f.type !== 'E') throw new Error(`expected ErrorResponse, got '${f.type}'`)
  return parseErrorFields(f.body).message
}

export function errorCode(f: RawFrame): string {
  return parseErrorFields(f.body).code
}
