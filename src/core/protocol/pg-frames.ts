/**
 * FrameReader: cuts a PostgreSQL v3 protocol byte stream into messages, checking every length before
 * buffering a byte of the body. Used by both sides: the page service reads frontend messages with it, the
 * page service client reads backend messages with it.
 *
 * Framing (protocol v3): a typed message is `type u8, length u32 BE, body` where the length counts itself
 * but not the type byte, so it is at least 4. The very first message a client sends (StartupMessage,
 * SSLRequest, GSSENCRequest, CancelRequest) has no type byte: `length u32 BE, body`, with a length of at
 * least 8 (length + request code). `expectStartup` says which form comes next; the owner flips it.
 *
 * Worked example: Query "set x" arrives as 51 00 00 00 0a 73 65 74 20 78 00: type 'Q', length 10 = 4 + 6,
 * body "set x\0".
 *
 * Invariants:
 * - A length above the named maximum is refused before anything is allocated for the body, so a peer
 *   that announces 2^31 bytes costs nothing (PostgreSQL's own server refuses startup packets over 10,000
 *   bytes, MAX_STARTUP_PACKET_LENGTH, and messages over PQ_LARGE_MESSAGE_LIMIT).
 * - Bodies are views into the received chunks when a message lies inside one chunk (no copy); a message
 *   split across chunks is assembled once. Consumers that keep a body beyond the next `push` must not
 *   assume it is private: chunks are never written to, so views stay valid.
 * - Bytes buffered here never exceed one message plus one chunk: the owner stops reading the socket
 *   while it does not consume messages.
 */
import { CorruptionError } from '../lib/errors.js'

/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH (pqcomm.h): a startup packet carries a few short parameters. */
export const STARTUP_PACKET_BYTES_MAX = 10_000

export interface Frame {
  /** Message type byte; 0 for an untyped startup packet. */
  readonly type: number
  /** Body without type and length. For a startup packet: request code and what follows it. */
  readonly body: Buffer
}

export interface FrameReaderOptions {
  /** Largest typed message body accepted. */
  readonly messageBytesMax: number
  /** Largest startup packet accepted (including its length field). */
  readonly startupPacketBytesMax?: number
  /** Who sends these frames, for error messages: "client" or "server". */
  readonly peer: string
}

export class FrameReader {
  /** Received chunks not yet fully consumed; `head` bytes of chunks[0] are consumed already. */
  private chunks: Buffer[] = []
  private head = 0
  private total = 0
  private readonly peek = Buffer.alloc(5)
  /** The next frame is an untyped startup packet. */
  expectStartup = false

  constructor(private readonly opts: FrameReaderOptions) {}

  /** Bytes received but not yet returned as frames. */
  get bufferedBytes(): number {
    return this.total
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.total += chunk.length
  }

  /** The next complete frame, or null if more bytes are needed. Throws CorruptionError on a bad length. */
  next(): Frame | null {
    if (this.expectStartup) {
      if (this.total < 4) return null
      const length = this.peekHeader(4).readUInt32BE(0)
      const max = this.opts.startupPacketBytesMax ?? STARTUP_PACKET_BYTES_MAX
      if (length < 8 || length > max) {
        throw new CorruptionError('PG_BAD_STARTUP_PACKET', `invalid startup packet length ${length} (allowed 8 to ${max})`, {
          hint: 'Connect with a PostgreSQL client (libpq, psql) speaking protocol version 3.',
          details: { length },
        })
      }
      if (this.total < length) return null
      return { type: 0, body: this.take(length).subarray(4) }
    }
    if (this.total < 5) return null
    const header = this.peekHeader(5)
    const type = header[0]!
    const length = header.readUInt32BE(1)
    if (length < 4) {
      throw new CorruptionError('PG_PROTOCOL_VIOLATION', `the ${this.opts.peer} sent a message of type ${describeType(type)} with an impossible length ${length}`, {
        hint: 'The peer does not speak the PostgreSQL protocol correctly.',
        details: { type, length },
      })
    }
    if (length - 4 > this.opts.messageBytesMax) {
      throw new CorruptionError(
        'PG_MESSAGE_TOO_LARGE',
        `the ${this.opts.peer} sent a ${length - 4}-byte message of type ${describeType(type)}; at most ${this.opts.messageBytesMax} bytes are accepted`,
        { hint: 'The peer does not speak the PostgreSQL protocol correctly, or sends messages larger than this server accepts.', details: { type, length } },
      )
    }
    if (this.total < length + 1) return null
    return { type, body: this.take(length + 1).subarray(5) }
  }

  /** The first `n` (<= 5) buffered bytes, as a view or copied into the scratch header. */
  private peekHeader(n: number): Buffer {
    const first = this.chunks[0]!
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n)
    let filled = 0
    let off = this.head
    for (const c of this.chunks) {
      const k = Math.min(n - filled, c.length - off)
      c.copy(this.peek, filled, off, off + k)
      filled += k
      off = 0
      if (filled === n) break
    }
    return this.peek.subarray(0, n)
  }

  /** Removes and returns the first `n` buffered bytes (caller checked `total >= n`): a view when possible. */
  private take(n: number): Buffer {
    const first = this.chunks[0]!
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n)
      this.consume(n)
      return out
    }
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      const c = this.chunks[0]!
      const k = Math.min(n - filled, c.length - this.head)
      c.copy(out, filled, this.head, this.head + k)
      filled += k
      this.consume(k)
    }
    return out
  }

  private consume(n: number): void {
    this.head += n
    this.total -= n
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift()
      this.head = 0
    }
  }
}

/** 'Q' (0x51) for printable types, 0x.. otherwise: messages name the type the way PostgreSQL docs do. */
export function describeType(type: number): string {
  return type >= 0x20 && type < 0x7f ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16).padStart(2, '0')}`
}
