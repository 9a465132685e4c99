/**
 * The request side of a redo worker, without I/O: an input arena the driver reads into, the walredo message
 * parser over it, the `B [P] A* G` / `H` state machine, and the batch of replies the driver writes out.
 * worker-loop.ts drives it from file descriptors (the worker process) or from streams (tests).
 *
 * Why an arena: a worker receives every record of every request it serves (≈ 180 MB per pgbench pass of
 * the redo benchmark, full-page images included). Reading into one reused buffer and redoing on views of it
 * allocates nothing per read; a fresh chunk per read made garbage collection the worker's second cost.
 *
 * Invariants:
 * - Bytes [readPos, writePos) of the arena are unparsed input. The request in progress holds its base page
 *   and records as views of the arena they arrived in. Bytes under a view never move: when the arena runs
 *   out of room while views of it are alive, the unparsed tail is copied into a fresh arena and the old one
 *   lives on (through the views) until the request is served. Otherwise the tail moves to the front. So a
 *   large request costs arenas, not copies of itself, and between requests the arena returns to its size.
 * - Every length read from input is checked against its limit before room is made for it: message lengths
 *   by type, and for ApplyRecord the request's record count and bytes as soon as the header is seen. So an
 *   arena holds at most one maximal message plus one read, and a request's arenas at most its bytes plus
 *   one read of slack each.
 * - Replies leave in request order. They are handed to the driver's `flush` in batches of at most
 *   REPLIES_PER_FLUSH_MAX, and before any error propagates, so the replies of requests that succeeded
 *   always precede the failure report (the manager blames the oldest unanswered request).
 * - The grammar is enforced: P directly after B, tags of B, P and G equal byte for byte, H only between
 *   requests. A desynchronised stream fails loudly instead of redoing the wrong page, and a message that may
 *   not come now is refused from its header, without waiting for a body that may never come.
 */
import { CorruptionError, PageserverError, UnsupportedError, assert } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import type { BufferTag } from '../pg/reltag.js'
import type { RedoOptions, RedoRecord } from '../redo/engine.js'
import { BinaryReader, readU64BE } from '../lib/bytes.js'
import { BUFFER_TAG_BYTES, formatRedoTag, readBufferTag } from './buffer-tag-codec.js'
import { encodeRedoErrorPage } from './redo-error-page.js'
import {
  MESSAGE_HEADER_BYTES,
  MESSAGE_MAX_BYTES,
  MessageTag,
  PAGE_BYTES,
  REQUEST_RECORD_BYTES_MAX,
  REQUEST_RECORDS_MAX,
  SIZE_OF_XLOG_RECORD,
  recordProblem,
} from './protocol.js'

/**
 * The engine's contract (src/core/redo/engine.ts `redoBlock`): the page after `records` on top of `base`.
 * `out`, when given, is an 8192-byte buffer the function may build the page in and return.
 */
export type RedoFn = (tag: BufferTag, base: Buffer | null, records: RedoRecord[], opts: RedoOptions, out?: Buffer) => Buffer

export interface WorkerLimits {
  /** Largest length field accepted (an ApplyRecord with the largest record). */
  messageMaxBytes: number
  requestRecordsMax: number
  requestRecordBytesMax: number
}

export const DEFAULT_WORKER_LIMITS: Readonly<WorkerLimits> = Object.freeze({
  messageMaxBytes: MESSAGE_MAX_BYTES,
  requestRecordsMax: REQUEST_RECORDS_MAX,
  requestRecordBytesMax: REQUEST_RECORD_BYTES_MAX,
})

export interface WorkerLoopOptions {
  hintBitsLogged: boolean
  /** Recompute every record's CRC before redo (default true; see RedoOptions.checkRecordCrc). */
  checkRecordCrc?: boolean
  limits?: Partial<WorkerLimits>
  /**
   * Answer a request the engine cannot redo with an error page carrying this mark (redo-error-page.ts) and
   * go on; without it the error propagates and ends the loop (the worker then exits, as Neon's would).
   */
  errorMark?: Buffer | null
}

export interface WorkerRunSummary {
  requests: number
  pings: number
  /** Input ended in the middle of a message or request. */
  truncated: boolean
}

/** The arena's usual size; it grows for a larger request and shrinks back once that is served. */
export const ARENA_BYTES_DEFAULT = 1024 * 1024
/** A read is never offered less room than this (one socket buffer's worth, roughly). */
export const READ_MIN_BYTES = 64 * 1024
/** Replies handed to the driver at once (one gathered write; below IOV_MAX). */
export const REPLIES_PER_FLUSH_MAX = 64

const LEN_BYTES = 4
const LSN_BYTES = 8
const ZERO_PAGE = Buffer.alloc(PAGE_BYTES)

const PROTOCOL_HINT = 'The redo request stream is corrupt; check that the page server and the redo worker are the same version.'
const ORDER_HINT = 'The redo request stream is out of order; check that the page server and the redo worker are the same version.'

function outOfOrder(message: string): CorruptionError {
  return new CorruptionError('WALREDO_OUT_OF_ORDER', message, { hint: ORDER_HINT, details: {} })
}

function tagAt(buf: Buffer, offset: number): BufferTag {
  return readBufferTag(new BinaryReader(buf, offset, offset + BUFFER_TAG_BYTES, 'walredo message'))
}

export class WorkerSession {
  private arena: Buffer
  private readPos = 0
  private writePos = 0
  /** Views of the current arena are alive (the request in progress began or continued in it). */
  private pinned = false
  /** A default-size arena freed when the last request was served, to switch to without allocating. */
  private spareArena: Buffer | null = null
  /** Arena left behind during the request in progress (becomes the spare once the request is served). */
  private retiredArena: Buffer | null = null
  /** The request in progress: its tag (decoded, and the 17 bytes as sent), base page and records. */
  private reqTag: BufferTag | null = null
  private readonly reqTagBytes = Buffer.alloc(BUFFER_TAG_BYTES)
  private base: Buffer | null = null
  private records: RedoRecord[] = []
  private recordBytes = 0
  private readonly replies: Buffer[] = []
  /** Reply pages to build into again once written (only when the driver writes synchronously). */
  private readonly spare: Buffer[] = []
  private readonly lent = new Set<Buffer>()
  private readonly limits: WorkerLimits
  private readonly redoOptions: RedoOptions
  private requests = 0
  private pings = 0
  private readonly errorMark: Buffer | null

  constructor(
    private readonly redoFn: RedoFn,
    opts: WorkerLoopOptions,
    /** Takes replies in order; with `reusePages` it must be done with them when it returns. */
    private readonly flush: (replies: Buffer[]) => void,
    private readonly reusePages: boolean,
  ) {
    this.limits = { ...DEFAULT_WORKER_LIMITS, ...opts.limits }
    this.errorMark = opts.errorMark ?? null
    this.redoOptions = { hintBitsLogged: opts.hintBitsLogged }
    if (opts.checkRecordCrc === false) this.redoOptions.checkRecordCrc = false
    this.arena = Buffer.allocUnsafeSlow(ARENA_BYTES_DEFAULT)
  }

  /** The buffer to read into at `writeOffset`, with `writeRoom` bytes free (call `reserve()` first). */
  get buffer(): Buffer {
    return this.arena
  }
  get writeOffset(): number {
    return this.writePos
  }
  get writeRoom(): number {
    return this.arena.length - this.writePos
  }

  /** Makes room for the next read: READ_MIN_BYTES, or what the message being received still needs. */
  reserve(): void {
    const live = this.writePos - this.readPos
    const need = Math.max(READ_MIN_BYTES, this.missingBytes())
    if (!this.pinned) {
      if (live === 0) {
        // Nothing to keep (the usual case between reads): start over at the front, no copy.
        this.readPos = this.writePos = 0
        if (this.arena.length !== ARENA_BYTES_DEFAULT && need <= ARENA_BYTES_DEFAULT) this.arena = Buffer.allocUnsafeSlow(ARENA_BYTES_DEFAULT)
        if (this.arena.length >= need) return
      } else if (this.arena.length - this.writePos >= need) {
        return
      } else if (live + need <= this.arena.length) {
        this.arena.copyWithin(0, this.readPos, this.writePos)
        this.readPos = 0
        this.writePos = live
        return
      }
    } else if (this.arena.length - this.writePos >= need) {
      return
    }
    // A fresh arena for the unparsed tail: the old one is too small, or views of it must stay intact.
    const size = Math.max(ARENA_BYTES_DEFAULT, live + need)
    let next: Buffer
    if (size === ARENA_BYTES_DEFAULT && this.spareArena !== null) {
      next = this.spareArena
      this.spareArena = null
    } else {
      next = Buffer.allocUnsafeSlow(size)
    }
    this.arena.copy(next, 0, this.readPos, this.writePos)
    if (this.pinned) this.retiredArena = this.arena
    this.arena = next
    this.readPos = 0
    this.writePos = live
    this.pinned = false
  }

  /** Bytes still to arrive for the message at readPos to be complete (0 if it is, or nothing is pending). */
  private missingBytes(): number {
    const avail = this.writePos - this.readPos
    if (avail === 0) return 0
    if (avail < MESSAGE_HEADER_BYTES) return MESSAGE_HEADER_BYTES - avail
    const len = this.arena.readUInt32BE(this.readPos + 1)
    return Math.max(0, 1 + len - avail)
  }

  /** The driver read `n` bytes into the buffer at `writeOffset`. */
  commit(n: number): void {
    assert(n >= 0 && this.writePos + n <= this.arena.length, 'walredo input committed past the arena')
    this.writePos += n
  }

  /** Copies a chunk in (the stream driver). */
  push(chunk: Buffer): void {
    let off = 0
    while (off < chunk.length) {
      this.reserve()
      const n = chunk.copy(this.arena, this.writePos, off)
      this.writePos += n
      off += n
      // Serve what is complete before making room for the rest: the arena holds one request, not a stream.
      if (off < chunk.length) this.process()
    }
  }

  /**
   * Handles every complete message. Replies go to `flush` in full batches; the rest stay pending until
   * `flushReplies()`. On an error, pending replies are flushed before it propagates.
   */
  process(): void {
    try {
      this.parse()
    } catch (err) {
      try {
        this.flushReplies()
      } catch {
        // The output is gone too; the original error is the one to report.
      }
      throw err
    }
  }

  flushReplies(): void {
    if (this.replies.length === 0) return
    const out = this.replies.splice(0)
    this.flush(out)
    if (this.reusePages) {
      for (const p of out) {
        if (this.lent.delete(p)) this.spare.push(p)
      }
    }
  }

  /** Counts so far, and whether input stopped in the middle of a message or request. */
  finish(): WorkerRunSummary {
    return { requests: this.requests, pings: this.pings, truncated: this.reqTag !== null || this.writePos > this.readPos }
  }

  private parse(): void {
    const buf = this.arena
    const end = this.writePos
    let pos = this.readPos
    while (end - pos >= MESSAGE_HEADER_BYTES) {
      const type = buf[pos]!
      const len = buf.readUInt32BE(pos + 1)
      this.checkLength(type, len)
      if (type === MessageTag.ApplyRecord && this.reqTag !== null) this.checkRequestLimits(len - LEN_BYTES - LSN_BYTES)
      const next = pos + 1 + len
      if (next > end) {
        // The body is not all here, but whether the message may come now is known from its type: refuse it at
        // once rather than wait for bytes a desynchronised sender may never send (P is 8 KiB, A up to 64 MiB).
        this.checkOrder(type)
        break
      }
      this.readPos = next
      this.handle(type, pos, next)
      pos = next
      if (this.replies.length >= REPLIES_PER_FLUSH_MAX) this.flushReplies()
    }
  }

  private checkLength(type: number, len: number): void {
    let min: number
    let max: number
    switch (type) {
      case MessageTag.BeginRedoForBlock:
      case MessageTag.GetPage:
        min = max = LEN_BYTES + BUFFER_TAG_BYTES
        break
      case MessageTag.PushPage:
        min = max = LEN_BYTES + BUFFER_TAG_BYTES + PAGE_BYTES
        break
      case MessageTag.ApplyRecord:
        min = LEN_BYTES + LSN_BYTES + SIZE_OF_XLOG_RECORD
        max = this.limits.messageMaxBytes
        break
      case MessageTag.Ping:
        min = max = LEN_BYTES
        break
      default:
        throw new CorruptionError('WALREDO_UNKNOWN_MESSAGE', `unknown walredo message type 0x${type.toString(16).padStart(2, '0')}`, {
          hint: PROTOCOL_HINT,
          details: { tag: type },
        })
    }
    if (len < min || len > max) {
      const tooLarge = len > max && type === MessageTag.ApplyRecord
      throw new CorruptionError(
        tooLarge ? 'WALREDO_MESSAGE_TOO_LARGE' : 'WALREDO_BAD_MESSAGE_LENGTH',
        `walredo message '${String.fromCharCode(type)}' has length ${len}, allowed ${min}..${max}`,
        { hint: PROTOCOL_HINT, details: { tag: String.fromCharCode(type), len, min, max } },
      )
    }
  }

  /** What handle() refuses by the message type alone, for a message whose body has not arrived yet. */
  private checkOrder(type: number): void {
    const inRequest = this.reqTag !== null
    if (type === MessageTag.BeginRedoForBlock && inRequest) throw outOfOrder(`BeginRedoForBlock inside the request for ${formatRedoTag(this.reqTag!)}`)
    if (type === MessageTag.PushPage && inRequest && (this.base !== null || this.records.length > 0)) throw outOfOrder('PushPage after the request began')
    if (!inRequest && (type === MessageTag.PushPage || type === MessageTag.ApplyRecord || type === MessageTag.GetPage)) {
      throw outOfOrder(`${type === MessageTag.PushPage ? 'PushPage' : type === MessageTag.ApplyRecord ? 'ApplyRecord' : 'GetPage'} outside a request`)
    }
  }

  /** Before the body of one more record of `recordLength` bytes is buffered. */
  private checkRequestLimits(recordLength: number): void {
    const l = this.limits
    if (this.records.length >= l.requestRecordsMax || this.recordBytes + recordLength > l.requestRecordBytesMax) {
      throw new UnsupportedError(
        'WALREDO_REQUEST_TOO_LARGE',
        `the redo request for ${formatRedoTag(this.reqTag!)} exceeds ${l.requestRecordsMax} records or ${l.requestRecordBytesMax} bytes`,
        {
          hint: 'Create image layers more often (compaction) so that page chains stay shorter.',
          details: { records: this.records.length + 1, recordBytes: this.recordBytes + recordLength },
        },
      )
    }
  }

  /** The message [start, end) is complete; its body starts after the 5-byte header. */
  private handle(type: number, start: number, end: number): void {
    const buf = this.arena
    const body = start + MESSAGE_HEADER_BYTES
    switch (type) {
      case MessageTag.BeginRedoForBlock: {
        const tag = tagAt(buf, body)
        if (this.reqTag !== null) throw outOfOrder(`BeginRedoForBlock for ${formatRedoTag(tag)} inside the request for ${formatRedoTag(this.reqTag)}`)
        this.reqTag = tag
        buf.copy(this.reqTagBytes, 0, body, body + BUFFER_TAG_BYTES)
        this.base = null
        this.records = []
        this.recordBytes = 0
        return
      }
      case MessageTag.PushPage: {
        if (this.reqTag === null) throw outOfOrder('PushPage outside a request')
        if (this.base !== null || this.records.length > 0) throw outOfOrder(`PushPage for ${formatRedoTag(tagAt(buf, body))} after the request began`)
        this.checkSameTag('PushPage', body)
        this.base = buf.subarray(body + BUFFER_TAG_BYTES, end)
        this.pinned = true
        return
      }
      case MessageTag.ApplyRecord: {
        if (this.reqTag === null) throw outOfOrder('ApplyRecord outside a request')
        const endLsn = readU64BE(buf, body) as Lsn
        const raw = buf.subarray(body + LSN_BYTES, end)
        const problem = recordProblem(raw)
        if (problem !== null) {
          throw new CorruptionError('WALREDO_BAD_RECORD', `the WAL record ending at ${formatLsn(endLsn)} is malformed: ${problem}`, {
            hint: 'The stored WAL record is corrupt or was cut; it must be the whole XLogRecord.',
            details: { lsn: formatLsn(endLsn), tag: formatRedoTag(this.reqTag) },
          })
        }
        this.records.push({ endLsn, raw })
        this.recordBytes += raw.length
        this.pinned = true
        return
      }
      case MessageTag.GetPage: {
        if (this.reqTag === null) throw outOfOrder('GetPage outside a request')
        this.checkSameTag('GetPage', body)
        this.serve()
        return
      }
      case MessageTag.Ping:
        if (this.reqTag !== null) throw outOfOrder(`Ping inside the request for ${formatRedoTag(this.reqTag)}`)
        this.pings++
        this.replies.push(ZERO_PAGE)
        return
    }
  }

  /** The tag at `at` must be the request's B tag, byte for byte. */
  private checkSameTag(what: string, at: number): void {
    const buf = this.arena
    const b = this.reqTagBytes
    for (let i = 0; i < BUFFER_TAG_BYTES; i++) {
      if (buf[at + i] !== b[i]) throw outOfOrder(`${what} for ${formatRedoTag(tagAt(buf, at))} inside the request for ${formatRedoTag(this.reqTag!)}`)
    }
  }

  /** Redoes the request in progress (its G was just read) and queues the reply. */
  private serve(): void {
    const tag = this.reqTag!
    let out: Buffer | undefined
    if (this.reusePages) {
      out = this.spare.pop() ?? Buffer.allocUnsafeSlow(PAGE_BYTES)
      this.lent.add(out)
    }
    let page: Buffer
    try {
      page = this.redoFn(tag, this.base, this.records, this.redoOptions, out)
    } catch (err) {
      // The engine is a function of the request: its error is this request's, and the next is unaffected.
      if (this.errorMark === null) throw err
      page = encodeRedoErrorPage(this.errorMark, err)
    } finally {
      // The request is over either way: its views may go, and so may the arenas they kept.
      this.reqTag = null
      this.base = null
      this.records = []
      this.pinned = false
      const retired = this.retiredArena
      if (retired !== null && retired.length === ARENA_BYTES_DEFAULT) this.spareArena = retired
      this.retiredArena = null
    }
    if (!Buffer.isBuffer(page) || page.length !== PAGE_BYTES) {
      throw new PageserverError(
        'internal',
        'WALREDO_BAD_PAGE_SIZE',
        `the redo engine returned ${Buffer.isBuffer(page) ? `${page.length} bytes` : typeof page} for ${formatRedoTag(tag)}, not an ${PAGE_BYTES}-byte page`,
        { hint: 'This is a bug in the redo engine; please report it.' },
      )
    }
    if (out !== undefined && page !== out) {
      this.lent.delete(out)
      this.spare.push(out)
    }
    this.requests++
    this.replies.push(page)
  }
}
