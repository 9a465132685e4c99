/**
 * FrameGuard: checks the length of every backend message before the protocol parser buffers it.
 *
 * pg-protocol's parser trusts the 4-byte length of each message and grows its buffer until that many bytes
 * have arrived, so a hostile or confused peer (a port that is not PostgreSQL, a corrupt stream) could make
 * it allocate without bound. The guard watches the same byte stream, split wherever the network split it,
 * and throws before the parser sees a frame longer than `messageBytesMax`.
 *
 * Backend framing: type u8, length u32 big-endian (counting itself, so at least 4), then length - 4 bytes.
 * Invariant: `headerFill` is 0..4 bytes of a header seen so far; `bodyRemaining` > 0 only when a header is
 * complete. The guard copies nothing and allocates nothing per chunk.
 */
import { CorruptionError } from '../lib/errors.js'

export class FrameGuard {
  private readonly header = Buffer.alloc(5)
  private headerFill = 0
  private bodyRemaining = 0
  /** The length field of the frame being received (its body is length - 4 bytes). */
  private length = 0
  /** Frames whose header has been seen completely. */
  frames = 0

  constructor(readonly messageBytesMax: number) {}

  /** Checks the next bytes of the stream; throws CorruptionError on a bad length. */
  feed(chunk: Uint8Array): void {
    let i = 0
    const n = chunk.length
    while (i < n) {
      if (this.bodyRemaining > 0) {
        const take = Math.min(this.bodyRemaining, n - i)
        this.bodyRemaining -= take
        i += take
        continue
      }
      this.header[this.headerFill++] = chunk[i++]!
      if (this.headerFill < 5) continue
      this.headerFill = 0
      this.frames++
      const length = this.header.readUInt32BE(1)
      const type = this.header[0]!
      if (length < 4) {
        throw new CorruptionError('PG_PROTOCOL_VIOLATION', `the server sent a message of type 0x${type.toString(16)} with an impossible length ${length}`, {
          hint: 'Check that host and port point to a PostgreSQL server.',
        })
      }
      if (length - 4 > this.messageBytesMax) {
        throw new CorruptionError(
          'PG_MESSAGE_TOO_LARGE',
          `the server sent a ${length - 4}-byte message of type 0x${type.toString(16)}; at most ${this.messageBytesMax} bytes are accepted`,
          { hint: 'Check that host and port point to a PostgreSQL server.' },
        )
      }
      this.length = length
      this.bodyRemaining = length - 4
    }
  }

  /**
   * How much of a message has arrived when the stream stops between two (the silence of a slow link is
   * told apart from a dead one by it): bytes received of it and its whole size (type byte included; 0 while
   * its header is incomplete). Null at a boundary.
   */
  get partialFrame(): { received: number; total: number } | null {
    if (this.headerFill > 0) return { received: this.headerFill, total: 0 }
    if (this.bodyRemaining === 0) return null
    return { received: 1 + this.length - this.bodyRemaining, total: 1 + this.length }
  }

  /** True between messages (no partial header or body pending). */
  get atBoundary(): boolean {
    return this.headerFill === 0 && this.bodyRemaining === 0
  }
}
