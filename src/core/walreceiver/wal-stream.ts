/**
 * WalStream: the streaming half of a replication connection, from CopyBothResponse to the end of COPY.
 *
 * It owns what only exists while WAL flows: the chunk queue the consumer iterates, the positions reported
 * to the primary, the status-update clock and the silence detector. The connection feeds it the payload of
 * every CopyData frame (synchronously, inside the socket callback) and gives it three ways out: send bytes,
 * pause/resume the socket, and fail the connection.
 *
 * Positions (all "last byte + 1", as PostgreSQL counts):
 *   expected  where the next XLogData must start; a different dataStart fails the stream (WAL_STREAM_GAP)
 *   written   end of the last byte received                       -> status update `written`
 *   durable   what the owner declared durable with setDurable()   -> status update `flushed` and `applied`
 *             (0 until declared: PostgreSQL then leaves a slot's restart_lsn where it is)
 *   walEnd    the server's end of WAL, from XLogData and keepalive headers (for lag)
 *
 * Memory: each XLogData payload is copied out of pg-protocol's reused parse buffer, into fresh memory, or
 * (after `useSharedMemory()`, once the consumer has a CRC worker thread) into SharedArrayBuffer slabs that
 * the worker can read; chunks carved from one slab never overlap.
 *
 * Timing: a tick (at most once a second) sends a status update every `statusIntervalMs` and asks for a
 * reply when nothing arrived for that long; nothing at all for `silenceTimeoutMs` while the socket is not
 * paused by us means the peer or the network is gone. Keepalives with replyRequested are answered at once.
 */
import { serialize } from 'pg-protocol'
import { CorruptionError, UnavailableError, type PageserverError } from '../lib/errors.js'
import { copyBytes } from '../lib/shared-copy.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { decodeServerMessage, encodeStatusUpdate, unixMsToPgMicros } from '../protocol/replication-messages.js'
import { ChunkQueue } from './chunk-queue.js'

/**
 * With `sharedMemory`, chunks are copied into SharedArrayBuffer slabs of this size (a CRC worker thread can
 * then read the records decoded from them); a chunk larger than a quarter slab gets its own buffer.
 */
export const WAL_STREAM_SLAB_BYTES = 4 * 1024 * 1024

export interface WalChunk {
  /** LSN of data[0]. */
  readonly dataStart: Lsn
  /** The server's end of WAL when it sent this chunk (for lag). */
  readonly walEnd: Lsn
  /** µs since 2000-01-01. */
  readonly sendTime: bigint
  /** A private copy of the WAL bytes (in shared memory when the stream was started with `sharedMemory`). */
  readonly data: Buffer
}

export interface StreamEnd {
  /** client-stopped: we sent CopyDone; server-ended: the server left COPY mode (end of a timeline);
   *  server-shutdown: the primary is shutting down ("COPY 0" then EOF). */
  readonly reason: 'client-stopped' | 'server-ended' | 'server-shutdown'
  readonly nextTimeline?: number
  readonly nextTimelineStartLsn?: Lsn
}

export interface StreamStats {
  bytesReceived: number
  chunksReceived: number
  keepalivesReceived: number
  repliesRequested: number
  statusUpdatesSent: number
}

export interface WalStreamTiming {
  statusIntervalMs: number
  silenceTimeoutMs: number
  durableReportDelayMs: number
  queuedBytesMax: number
}

export interface WalStreamIo {
  send(buf: Buffer): void
  pause(): void
  resume(): void
  fail(err: PageserverError): void
  /** "user@host:port", for messages. */
  readonly where: string
  /** The part of a message received so far when the stream is between reads mid-message (FrameGuard.partialFrame). */
  partialFrame?(): { received: number; total: number } | null
}

export class WalStream implements AsyncIterable<WalChunk> {
  readonly queue: ChunkQueue<WalChunk>
  readonly stats: StreamStats = { bytesReceived: 0, chunksReceived: 0, keepalivesReceived: 0, repliesRequested: 0, statusUpdatesSent: 0 }
  private expected: Lsn
  private receivedEnd: Lsn
  private durableLsn: Lsn
  private serverWalEndLsn: Lsn = 0n as Lsn
  /** Called after answering a keepalive that asked for a reply, with the server's end of WAL it carried. */
  onReplyRequested: ((walEnd: Lsn) => void) | null = null
  private copyDoneSent = false
  private paused = false
  private lastReceivedAtMs = Date.now()
  private lastStatusAtMs = 0
  private tickTimer: NodeJS.Timeout | undefined
  private durableTimer: NodeJS.Timeout | undefined
  private finished = false
  /** Set when the stream ended (any reason). */
  end: StreamEnd | undefined
  /** Called by the iterator's return(): the consumer stopped early. */
  onConsumerReturn: () => Promise<void> = async () => {}
  private slab: Buffer | null = null
  private slabUsed = 0

  constructor(
    private readonly io: WalStreamIo,
    private readonly timing: WalStreamTiming,
    readonly startLsn: Lsn,
    durableLsn: Lsn,
    /** Copy chunks into SharedArrayBuffer memory (for a CRC worker); see also useSharedMemory(). */
    private sharedMemory = false,
  ) {
    this.expected = startLsn
    this.receivedEnd = startLsn
    this.durableLsn = durableLsn
    this.queue = new ChunkQueue<WalChunk>(timing.queuedBytesMax, () => this.resume())
  }

  /**
   * Starts the status clock (after the server entered COPY mode), and reports a durable position at once: a
   * slot just created (RESERVE_WAL) has its restart_lsn at the primary's insert position, ahead of what we
   * still need, until our first status update moves it back; it should not wait for the status clock.
   */
  begin(): void {
    this.lastReceivedAtMs = Date.now()
    if (this.durableLsn > 0n) this.sendStatus(false)
    const tickMs = Math.max(10, Math.min(1000, this.timing.statusIntervalMs))
    this.tickTimer = setInterval(() => this.tick(), tickMs)
    this.tickTimer.unref()
  }

  get written(): Lsn {
    return this.receivedEnd
  }

  get durable(): Lsn {
    return this.durableLsn
  }

  get serverWalEnd(): Lsn {
    return this.serverWalEndLsn
  }

  /** Status updates may still be sent: we have not sent CopyDone and the stream has not finished. */
  get active(): boolean {
    return !this.copyDoneSent && !this.finished
  }

  [Symbol.asyncIterator](): AsyncIterator<WalChunk> {
    return {
      next: () => this.queue.next(),
      return: async (): Promise<IteratorResult<WalChunk>> => {
        this.queue.discard()
        await this.onConsumerReturn()
        return { value: undefined, done: true }
      },
    }
  }

  /** The payload of one CopyData frame from the server. Throws CorruptionError on bad or gapped input. */
  onCopyData(frame: Buffer): void {
    this.lastReceivedAtMs = Date.now()
    const m = decodeServerMessage(frame)
    if (m.walEnd > this.serverWalEndLsn) this.serverWalEndLsn = m.walEnd
    if (m.type === 'keepalive') {
      this.stats.keepalivesReceived++
      if (m.replyRequested) {
        this.stats.repliesRequested++
        this.sendStatus(false)
        this.onReplyRequested?.(m.walEnd)
      }
      return
    }
    if (m.dataStart !== this.expected) {
      throw new CorruptionError('WAL_STREAM_GAP', `the server sent WAL from ${formatLsn(m.dataStart)} but the stream was at ${formatLsn(this.expected)}`, {
        hint: 'The replication stream is not contiguous (a server or network fault); restart the receiver.',
        details: { expected: formatLsn(this.expected), got: formatLsn(m.dataStart) },
      })
    }
    const end = (m.dataStart + BigInt(m.data.length)) as Lsn
    this.expected = end
    this.receivedEnd = end
    this.stats.bytesReceived += m.data.length
    this.stats.chunksReceived++
    if (!this.active || this.queue.closed) return // we asked to stop: the rest is not wanted
    // Copy out of pg-protocol's parse buffer: it is reused for the next network read.
    const data = this.sharedMemory ? this.copyShared(m.data) : Buffer.from(m.data)
    this.queue.push({ dataStart: m.dataStart, walEnd: m.walEnd, sendTime: m.sendTime, data })
    if (this.queue.overHighWater && !this.paused) {
      this.paused = true
      this.io.pause()
    }
  }

  /**
   * Copies `src` into the current shared slab (a new one when it is full). Chunks never share bytes. (copyBytes:
   * a plain `set` into shared memory runs byte by byte unless both sides have the same alignment; lib/shared-copy.ts.)
   */
  private copyShared(src: Buffer): Buffer {
    const n = src.length
    if (n > WAL_STREAM_SLAB_BYTES / 4) {
      const own = Buffer.from(new SharedArrayBuffer(n))
      copyBytes(src, own, 0, 0, n)
      return own
    }
    if (this.slab === null || this.slabUsed + n > this.slab.length) {
      this.slab = Buffer.from(new SharedArrayBuffer(WAL_STREAM_SLAB_BYTES))
      this.slabUsed = 0
    }
    const out = this.slab.subarray(this.slabUsed, this.slabUsed + n)
    copyBytes(src, out, 0, 0, n)
    this.slabUsed += n
    return out
  }

  /** From now on, copy chunks into SharedArrayBuffer memory (a CRC worker has started). */
  useSharedMemory(): void {
    this.sharedMemory = true
  }

  /** Bytes received and not yet taken by the consumer. */
  get queuedBytes(): number {
    return this.queue.bytes
  }

  private resume(): void {
    if (!this.paused) return
    this.paused = false
    this.lastReceivedAtMs = Date.now()
    this.io.resume()
  }

  private tick(): void {
    if (!this.active) return
    const now = Date.now()
    if (!this.paused && now - this.lastReceivedAtMs > this.timing.silenceTimeoutMs) {
      // Counted in whole messages, as PostgreSQL's walreceiver counts: a link so slow that one message (up
      // to 128 KiB of WAL) takes longer than the timeout never makes progress. Say so when that is the case.
      const partial = this.io.partialFrame?.() ?? null
      const silent = `${this.timing.silenceTimeoutMs / 1000} s`
      this.io.fail(
        partial === null
          ? new UnavailableError('WAL_STREAM_SILENT', `nothing received from ${this.io.where} for ${silent}`, {
              hint: 'The primary or the network stopped responding; the receiver reconnects.',
            })
          : new UnavailableError('WAL_STREAM_TOO_SLOW', `no complete message from ${this.io.where} for ${silent}: ${partial.received}${partial.total > 0 ? ` of ${partial.total}` : ''} bytes of one arrived meanwhile`, {
              hint: 'The link is too slow to carry one WAL message (up to 128 KiB) within the silence timeout; the receiver reconnects and resumes at the last complete record, but cannot progress until the link is faster.',
            }),
      )
      return
    }
    if (now - this.lastStatusAtMs >= this.timing.statusIntervalMs) {
      // Ask for a reply when the stream has been idle, so silence means a dead peer, not a quiet one.
      this.sendStatus(now - this.lastReceivedAtMs >= this.timing.statusIntervalMs)
    }
  }

  /**
   * Declares the LSN up to which the owner made WAL durable; reported within `durableReportDelayMs`, calls
   * in between coalesced into one message. Never moves backwards.
   */
  setDurable(lsn: Lsn): void {
    if (lsn <= this.durableLsn) return
    this.durableLsn = lsn
    if (!this.active || this.durableTimer !== undefined) return
    this.durableTimer = setTimeout(() => {
      this.durableTimer = undefined
      this.sendStatus(false)
    }, this.timing.durableReportDelayMs)
    this.durableTimer.unref()
  }

  /** Sends a standby status update with the current positions (nothing after CopyDone). */
  sendStatus(replyRequested: boolean): void {
    if (!this.active) return
    this.lastStatusAtMs = Date.now()
    this.stats.statusUpdatesSent++
    const update = encodeStatusUpdate({
      written: this.receivedEnd,
      flushed: this.durableLsn,
      applied: this.durableLsn,
      clock: unixMsToPgMicros(this.lastStatusAtMs),
      replyRequested,
    })
    this.io.send(serialize.copyData(update))
  }

  /**
   * Sends CopyDone once (ours, or in answer to the server's). When we stop, a last status update goes first
   * so the primary (and its slot) sees the final durable position rather than one up to a delay old.
   */
  sendCopyDone(reason: StreamEnd['reason']): void {
    this.end ??= { reason }
    if (this.copyDoneSent) return
    if (reason === 'client-stopped') this.sendStatus(false)
    this.copyDoneSent = true
    this.io.send(serialize.copyDone())
    this.resume()
  }

  /** The stream is over: stop the clocks and let the consumer see the end (or `err`). */
  finish(err?: PageserverError, nextTimeline?: { tli: number; lsn: Lsn }): void {
    if (this.tickTimer) clearInterval(this.tickTimer)
    if (this.durableTimer) clearTimeout(this.durableTimer)
    this.tickTimer = undefined
    this.durableTimer = undefined
    this.finished = true
    if (nextTimeline && this.end) this.end = { ...this.end, nextTimeline: nextTimeline.tli, nextTimelineStartLsn: nextTimeline.lsn }
    if (err) this.queue.fail(err)
    else this.queue.end()
  }
}
