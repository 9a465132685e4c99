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
 * - Bodies are views into the received chunks when a message lies inside one chunk (no copy). A message
 *   that does not is assembled as its bytes arrive, in one buffer grown by doubling up to the announced
 *   length: every read of a socket is a Buffer object of its own (≈ 100 bytes of heap besides its bytes),
 *   so a peer dripping a large message a byte per segment would otherwise cost ≈ 100 times the bytes it
 *   sent; this way memory stays within twice the bytes received (or 64 KiB), and nothing is allocated for
 *   bytes only announced. Consumers that keep a body beyond the next `push` must not assume it is private:
 *   chunks and finished assemblies are never written to again, so views stay valid.
 * - Bytes buffered here are bounded by the owner, which stops reading the socket beyond a limit while it
 *   does not consume messages (`bufferedBytes`).
 * - `messageBytesMax` may be changed between messages (a server accepts less before authentication).
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

/**
 * First size of an assembly buffer, or the frame's length if smaller (a GetPage response, a startup packet
 * or a password is assembled in one allocation); it doubles from there.
 */
const ASSEMBLY_INITIAL_BYTES = 64 * 1024

export class FrameReader {
  /** Received chunks not yet fully consumed; `head` bytes of chunks[0] are consumed already. */
  private chunks: Buffer[] = []
  private head = 0
  /** Bytes received and not yet returned: those in `chunks` past `head`, plus `assembled`. */
  private total = 0
  private readonly peek = Buffer.alloc(5)
  /**
   * The frame being assembled (see the header): its first `assembled` bytes of `assemblyLength` (header
   * included, `assemblyHeader` bytes of it), in a buffer that grows as they come. It precedes `chunks`.
   */
  private assembly: Buffer | null = null
  private assembled = 0
  private assemblyLength = 0
  private assemblyHeader = 0
  private assemblyType = 0
  /** The next frame is an untyped startup packet. */
  expectStartup = false
  /** Largest typed message body accepted from now on. */
  messageBytesMax: number

  constructor(private readonly opts: FrameReaderOptions) {
    this.messageBytesMax = opts.messageBytesMax
  }

  /** Bytes received but not yet returned as frames. */
  get bufferedBytes(): number {
    return this.total
  }

  /** Buffers holding those bytes (received chunks, and the assembly if any). */
  get piecesHeld(): number {
    return this.chunks.length + (this.assembly === null ? 0 : 1)
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.total += chunk.length
    if (this.assembly !== null && this.chunks.length === 0) {
      const k = Math.min(chunk.length, this.assemblyLength - this.assembled)
      this.assembleFrom(chunk, 0, k)
      if (k === chunk.length) return
      chunk = chunk.subarray(k)
    }
    this.chunks.push(chunk)
  }

  /** The next complete frame, or null if more bytes are needed. Throws CorruptionError on a bad length. */
  next(): Frame | null {
    if (this.assembly !== null) {
      if (this.assembled < this.assemblyLength) return null
      const frame = { type: this.assemblyType, body: this.assembly.subarray(this.assemblyHeader, this.assemblyLength) }
      this.total -= this.assemblyLength
      this.assembly = null
      this.assembled = 0
      return frame
    }
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
      if (this.total < length) return this.startAssembly(0, 4, length)
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
    if (length - 4 > this.messageBytesMax) {
      throw new CorruptionError(
        'PG_MESSAGE_TOO_LARGE',
        `the ${this.opts.peer} sent a ${length - 4}-byte message of type ${describeType(type)}; at most ${this.messageBytesMax} bytes are accepted`,
        { hint: 'The peer does not speak the PostgreSQL protocol correctly, or sends messages larger than this server accepts.', details: { type, length } },
      )
    }
    if (this.total < length + 1) return this.startAssembly(type, 5, length + 1)
    return { type, body: this.take(length + 1).subarray(5) }
  }

  /**
   * A frame of `length` bytes (header included) is not all here: unless the one chunk buffered holds what
   * came of it (the rest may come in one read), its bytes move into an assembly buffer, and later reads go
   * there (see the header). Returns null: more bytes are needed.
   */
  private startAssembly(type: number, header: number, length: number): null {
    if (this.chunks.length < 2) return null
    const have = this.total
    this.assembly = Buffer.allocUnsafe(Math.min(length, Math.max(ASSEMBLY_INITIAL_BYTES, 2 * have)))
    this.assembled = 0
    this.assemblyLength = length
    this.assemblyHeader = header
    this.assemblyType = type
    let off = this.head
    for (const c of this.chunks) {
      this.assembleFrom(c, off, c.length)
      off = 0
    }
    this.chunks = []
    this.head = 0
    this.total = have
    return null
  }

  /** Appends chunk[from, to) to the assembly, growing it by doubling (at most to the frame's length). */
  private assembleFrom(chunk: Buffer, from: number, to: number): void {
    const need = this.assembled + (to - from)
    let buf = this.assembly!
    if (need > buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.assemblyLength, Math.max(need, 2 * buf.length)))
      buf.copy(grown, 0, 0, this.assembled)
      buf = this.assembly = grown
    }
    chunk.copy(buf, this.assembled, from, to)
    this.assembled = need
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
