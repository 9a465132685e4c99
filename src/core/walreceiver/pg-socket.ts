/**
 * PgSocket: the socket under a replication connection (ReplicationConnection, replication-connection.ts),
 * and the framing of what arrives on it.
 *
 * It dials TCP, or a Unix socket when the host is a directory (`<dir>/.s.PGSQL.<port>`, as libpq), sends
 * the StartupMessage once connected, and ends the socket when the connection is done with it. Every chunk
 * received is checked by a FrameGuard (no frame longer than `messageBytesMax` is buffered) and parsed by
 * pg-protocol; each message goes to `onMessage` synchronously, inside the data callback, so the connection
 * answers keepalives even while its consumer is busy. The bytes of a message handed over (a CopyData
 * chunk) are a view of pg-protocol's reused parse buffer: what is kept past the call must be copied.
 *
 * Shape: the three callbacks are made once, by the owner; per message the path is the parser's callback
 * straight into the owner's handler, with nothing allocated here. Anything thrown while parsing or handling
 * a chunk, the guard's and the parser's errors included, becomes a typed error given to `onFailure`.
 */
import { connect as netConnect, type Socket } from 'node:net'
import { join } from 'node:path'
import { Parser } from 'pg-protocol/dist/parser.js'
import type { BackendMessage } from 'pg-protocol/dist/messages.js'
import type { PageserverError } from '../lib/errors.js'
import type { ConnParams } from '../protocol/conn-string.js'
import { FrameGuard } from './frame-guard.js'
import { toProtocolError } from './connection-errors.js'

export class PgSocket {
  private socket: Socket | undefined
  private readonly parser = new Parser()
  private readonly guard: FrameGuard
  /** The first error the socket reported: what its close is explained with. */
  error: Error | undefined

  constructor(
    messageBytesMax: number,
    private readonly onMessage: (msg: BackendMessage) => void,
    private readonly onFailure: (err: PageserverError) => void,
    private readonly onClose: () => void,
  ) {
    this.guard = new FrameGuard(messageBytesMax)
  }

  /** Connects to the server of `params` and sends `startup` as soon as the socket is connected. */
  dial(params: ConnParams, startup: Buffer): void {
    const socket = params.host.startsWith('/')
      ? netConnect({ path: join(params.host, `.s.PGSQL.${params.port}`) })
      : netConnect({ host: params.host, port: params.port })
    this.socket = socket
    socket.setNoDelay(true)
    socket.on('connect', () => {
      socket.setKeepAlive(true, 10_000)
      socket.write(startup)
    })
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', (err) => {
      this.error ??= err
    })
    socket.on('close', () => this.onClose())
  }

  private onData(chunk: Buffer): void {
    try {
      this.guard.feed(chunk)
      this.parser.parse(chunk, this.onMessage)
    } catch (e) {
      this.onFailure(toProtocolError(e))
    }
  }

  /** Sends `buf` unless the socket is gone (what is lost then is reported by the close). */
  write(buf: Buffer): void {
    if (this.socket && !this.socket.destroyed && this.socket.writable) this.socket.write(buf)
  }

  pause(): void {
    this.socket?.pause()
  }

  resume(): void {
    this.socket?.resume()
  }

  /** The part of a message received so far, when the stream stopped mid-message (FrameGuard.partialFrame). */
  get partialFrame(): { received: number; total: number } | null {
    return this.guard.partialFrame
  }

  /** After an error at once, else after our side is flushed and closed (`end`). */
  end(hard: boolean, closeTimeoutMs: number): void {
    if (!this.socket || this.socket.destroyed) return
    if (hard) this.socket.destroy()
    else this.socket.end(() => this.socket?.destroy())
    // A peer that never closes its side must not keep us waiting.
    const s = this.socket
    setTimeout(() => s.destroy(), closeTimeoutMs).unref()
  }
}
