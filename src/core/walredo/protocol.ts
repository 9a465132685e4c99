/**
 * Neon's walredo pipe protocol (B/P/A/G/H): the request encoder of the manager and the incremental
 * message decoder of the worker, side by side.
 *
 * Message = tag byte, u32 big-endian length that counts its own 4 bytes but not the tag, payload.
 *
 *   'B' BeginRedoForBlock  BufferTag (17)                      len 21
 *   'P' PushPage           BufferTag (17) + 8192-byte page      len 8213   (omitted when the first record inits)
 *   'A' ApplyRecord        u64 BE end LSN + whole XLogRecord    len 12 + record length
 *   'G' GetPage            BufferTag (17)                      len 21     reply: exactly 8192 bytes
 *   'H' Ping               nothing                             len 4      reply: 8192 zero bytes
 *
 * A request is `B [P] A* G`, written in one gathered write (encodeRedoRequestChunks) so that a pipelining
 * writer never interleaves two requests. Replies carry no framing, so they are matched to requests in FIFO order; errors are not in-band
 * (the worker reports on stderr and exits).
 *
 * Worked example, a ping: 48 00 00 00 04. A GetPage of 1663/5/16384 blk 7: 47 00 00 00 15 00 00 00 06 7f ...
 * (0x15 = 21 = 4 length bytes + 17 tag bytes).
 *
 * Invariants: every length read from input is checked against its limit before anything is allocated; the
 * encoder refuses a request the decoder would refuse, so a too-large request fails in the caller with a clear
 * error instead of killing a worker. The limits are shared by both sides through this module.
 */
import { BinaryReader } from '../lib/bytes.js'
import { CorruptionError, UnsupportedError, UsageError, assert } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import type { BufferTag } from '../pg/reltag.js'
import { BUFFER_TAG_BYTES, bufferTagProblem, formatRedoTag, readBufferTag } from './buffer-tag-codec.js'

/** BLCKSZ: every reply is exactly one page. */
export const PAGE_BYTES = 8192
/** sizeof(XLogRecord) in PostgreSQL 15: the smallest record. */
export const SIZE_OF_XLOG_RECORD = 24

export const MessageTag = {
  BeginRedoForBlock: 0x42, // 'B'
  PushPage: 0x50, // 'P'
  ApplyRecord: 0x41, // 'A'
  GetPage: 0x47, // 'G'
  Ping: 0x48, // 'H'
} as const

/** Tag byte + u32 length. */
export const MESSAGE_HEADER_BYTES = 5
const LEN_BYTES = 4
const LSN_BYTES = 8
/** A B or G message: header and BufferTag. */
const TAG_MESSAGE_BYTES = MESSAGE_HEADER_BYTES + BUFFER_TAG_BYTES

/**
 * One record may be this large. PostgreSQL's own bound (XLogRecordMaxSize) is 1020 MiB, but a record that
 * touches one block and is larger than this is a commit record with millions of subtransactions; refusing
 * it with a clear error beats a worker that runs out of memory.
 */
export const RECORD_MAX_BYTES = 64 * 1024 * 1024
/** Records in one request: a page's chain between two images. Bounded so one request cannot pin a worker. */
export const REQUEST_RECORDS_MAX = 200_000
/** Total record bytes in one request (what the worker holds in memory until GetPage). */
export const REQUEST_RECORD_BYTES_MAX = 128 * 1024 * 1024
/** The largest length field a decoder accepts: an ApplyRecord carrying the largest record. */
export const MESSAGE_MAX_BYTES = LEN_BYTES + LSN_BYTES + RECORD_MAX_BYTES

export interface RedoRecordInput {
  readonly endLsn: Lsn
  /** The whole XLogRecord, header included; `xl_tot_len` (u32 LE at offset 0) must equal its length. */
  readonly raw: Buffer
}

export interface RedoRequestInput {
  readonly tag: BufferTag
  /** The 8192-byte page before the first record, or null when the first record initialises the page. */
  readonly base: Buffer | null
  readonly records: readonly RedoRecordInput[]
}

/** Why a record cannot be sent as an ApplyRecord, or null. Shared by encoder and worker. */
export function recordProblem(raw: Buffer): string | null {
  if (raw.length < SIZE_OF_XLOG_RECORD) return `it is ${raw.length} bytes, shorter than an XLogRecord header (24)`
  const xl_tot_len = raw.readUInt32LE(0)
  if (xl_tot_len !== raw.length) return `xl_tot_len is ${xl_tot_len} but the record has ${raw.length} bytes`
  return null
}

/**
 * Records up to this many bytes travel inside the request's header buffer (copying a small record costs less
 * than one more buffer in the gathered write); larger ones, typically full-page images, are written from the
 * caller's own buffer.
 */
export const INLINE_RECORD_MAX_BYTES = 1024

/** Checks a request against the limits (throws before anything is allocated); its sizes. */
function requestLayout(req: RedoRequestInput): { totalBytes: number; inlineBytes: number } {
  if (req.base !== null && req.base.length !== PAGE_BYTES) {
    throw new UsageError('WALREDO_BAD_BASE_PAGE', `the base page of ${formatRedoTag(req.tag)} is ${req.base.length} bytes, not ${PAGE_BYTES}`, {
      hint: 'This is a bug in the caller: a stored page image must be exactly one 8 KiB page.',
    })
  }
  const problem = bufferTagProblem(req.tag)
  if (problem !== null) {
    throw new UsageError('WALREDO_BAD_BUFFER_TAG', `cannot send a redo request for ${formatRedoTag(req.tag)}: ${problem}`, {
      hint: 'This is a bug in the caller of the WAL redo manager; the page key maps to no redoable page.',
    })
  }
  const records = req.records
  if (records.length > REQUEST_RECORDS_MAX) {
    throw new UnsupportedError('WALREDO_REQUEST_TOO_LARGE', `redo of ${formatRedoTag(req.tag)} needs ${records.length} records, more than ${REQUEST_RECORDS_MAX}`, {
      hint: 'Create image layers more often (compaction) so that page chains stay shorter.',
      details: { records: records.length, recordsMax: REQUEST_RECORDS_MAX },
    })
  }
  let recordBytes = 0
  let inlineRecordBytes = 0
  for (let i = 0; i < records.length; i++) {
    const rec = records[i]!
    const len = rec.raw.length
    if (len > RECORD_MAX_BYTES) {
      throw new UnsupportedError('WALREDO_RECORD_TOO_LARGE', `a WAL record for ${formatRedoTag(req.tag)} at ${formatLsn(rec.endLsn)} is ${len} bytes, more than ${RECORD_MAX_BYTES}`, {
        hint: 'The page cannot be reconstructed by this version; a later full-page image re-bases it.',
        details: { lsn: formatLsn(rec.endLsn), recordBytes: len, recordMaxBytes: RECORD_MAX_BYTES },
      })
    }
    const raw = rec.raw
    if (len < SIZE_OF_XLOG_RECORD || (raw[0]! | (raw[1]! << 8) | (raw[2]! << 16) | (raw[3]! << 24)) >>> 0 !== len) {
      throw new UsageError('WALREDO_BAD_RECORD', `the WAL record for ${formatRedoTag(req.tag)} ending at ${formatLsn(rec.endLsn)} is malformed: ${recordProblem(rec.raw)}`, {
        hint: 'This is a bug in the caller: a stored WAL record must be the whole XLogRecord, header included.',
        details: { lsn: formatLsn(rec.endLsn) },
      })
    }
    recordBytes += len
    if (len <= INLINE_RECORD_MAX_BYTES) inlineRecordBytes += len
  }
  if (recordBytes > REQUEST_RECORD_BYTES_MAX) {
    throw new UnsupportedError('WALREDO_REQUEST_TOO_LARGE', `redo of ${formatRedoTag(req.tag)} needs ${recordBytes} bytes of WAL, more than ${REQUEST_RECORD_BYTES_MAX}`, {
      hint: 'Create image layers more often (compaction) so that page chains stay shorter.',
      details: { recordBytes, recordBytesMax: REQUEST_RECORD_BYTES_MAX },
    })
  }
  const headers = TAG_MESSAGE_BYTES * 2 + (req.base === null ? 0 : TAG_MESSAGE_BYTES) + records.length * (MESSAGE_HEADER_BYTES + LSN_BYTES)
  return {
    totalBytes: headers + (req.base === null ? 0 : PAGE_BYTES) + recordBytes,
    inlineBytes: headers + inlineRecordBytes,
  }
}

/** The exact encoded size of a request, after checking it against the limits (throws before allocating). */
export function redoRequestBytes(req: RedoRequestInput): number {
  return requestLayout(req).totalBytes
}

/**
 * The encoder's integers are stored byte by byte: they are checked already (u32 tag fields, lengths under
 * the limits), and Buffer's writeUInt32BE validates its arguments on every call, which showed in profiles.
 */
function putU32be(buf: Buffer, pos: number, v: number): void {
  buf[pos] = v >>> 24
  buf[pos + 1] = v >>> 16
  buf[pos + 2] = v >>> 8
  buf[pos + 3] = v
}

/** An LSN as u64 big-endian; through a double when exact (below 2^53), which allocates no bigint. */
function putLsnBe(buf: Buffer, pos: number, v: Lsn): void {
  const n = Number(v)
  if (n >= 0 && n <= Number.MAX_SAFE_INTEGER) {
    const hi = Math.floor(n / 0x1_0000_0000)
    putU32be(buf, pos, hi)
    putU32be(buf, pos + 4, n - hi * 0x1_0000_0000)
  } else {
    buf.writeBigUInt64BE(v, pos)
  }
}

/** A 5-byte message header and a BufferTag (already validated) at `pos`; returns the new position. */
function putTagMessage(buf: Buffer, pos: number, type: number, len: number, tag: BufferTag): number {
  buf[pos] = type
  putU32be(buf, pos + 1, len)
  buf[pos + 5] = tag.forkNum
  putU32be(buf, pos + 6, tag.spcNode)
  putU32be(buf, pos + 10, tag.dbNode)
  putU32be(buf, pos + 14, tag.relNode)
  putU32be(buf, pos + 18, tag.blkno)
  return pos + TAG_MESSAGE_BYTES
}

/**
 * `B [P] A* G` as buffers whose concatenation is the encoded request (`redoRequestBytes(req)` bytes): views
 * of one new buffer holding the message headers and the small records, with the base page and the records
 * larger than INLINE_RECORD_MAX_BYTES in between as the caller's own buffers (not copied). For a gathered
 * write; the caller must not change those buffers until the write is done.
 */
export function encodeRedoRequestChunks(req: RedoRequestInput): Buffer[] {
  const { inlineBytes } = requestLayout(req)
  const buf = Buffer.allocUnsafe(inlineBytes)
  const chunks: Buffer[] = []
  const tagLen = LEN_BYTES + BUFFER_TAG_BYTES
  let pos = putTagMessage(buf, 0, MessageTag.BeginRedoForBlock, tagLen, req.tag)
  let run = 0
  if (req.base !== null) {
    pos = putTagMessage(buf, pos, MessageTag.PushPage, tagLen + PAGE_BYTES, req.tag)
    chunks.push(buf.subarray(run, pos), req.base)
    run = pos
  }
  const records = req.records
  for (let i = 0; i < records.length; i++) {
    const rec = records[i]!
    const raw = rec.raw
    buf[pos] = MessageTag.ApplyRecord
    putU32be(buf, pos + 1, LEN_BYTES + LSN_BYTES + raw.length)
    putLsnBe(buf, pos + MESSAGE_HEADER_BYTES, rec.endLsn)
    pos += MESSAGE_HEADER_BYTES + LSN_BYTES
    if (raw.length <= INLINE_RECORD_MAX_BYTES) {
      // The whole record: TypedArray#set copies without the view Buffer#copy builds per call.
      buf.set(raw, pos)
      pos += raw.length
    } else {
      chunks.push(buf.subarray(run, pos), raw)
      run = pos
    }
  }
  pos = putTagMessage(buf, pos, MessageTag.GetPage, tagLen, req.tag)
  chunks.push(buf.subarray(run, pos))
  assert(pos === inlineBytes, () => `walredo request headers encoded to ${pos} bytes, expected ${inlineBytes}`)
  return chunks
}

/** `B [P] A* G` as one buffer of exactly `redoRequestBytes(req)` bytes. */
export function encodeRedoRequest(req: RedoRequestInput): Buffer {
  const chunks = encodeRedoRequestChunks(req)
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
}

const PING = Buffer.from([MessageTag.Ping, 0, 0, 0, LEN_BYTES])

/** The 5-byte ping; a fresh copy, so a caller may not corrupt the shared one. */
export function encodePing(): Buffer {
  return Buffer.from(PING)
}

export type RedoMessage =
  | { readonly type: 'B'; readonly tag: BufferTag }
  | { readonly type: 'P'; readonly tag: BufferTag; readonly page: Buffer }
  | { readonly type: 'A'; readonly endLsn: Lsn; readonly record: Buffer }
  | { readonly type: 'G'; readonly tag: BufferTag }
  | { readonly type: 'H' }

/** Allowed length field of each message type: [min, max]. */
function lengthRange(tag: number, messageMaxBytes: number): [number, number] | null {
  switch (tag) {
    case MessageTag.BeginRedoForBlock:
    case MessageTag.GetPage:
      return [LEN_BYTES + BUFFER_TAG_BYTES, LEN_BYTES + BUFFER_TAG_BYTES]
    case MessageTag.PushPage:
      return [LEN_BYTES + BUFFER_TAG_BYTES + PAGE_BYTES, LEN_BYTES + BUFFER_TAG_BYTES + PAGE_BYTES]
    case MessageTag.ApplyRecord:
      return [LEN_BYTES + LSN_BYTES + SIZE_OF_XLOG_RECORD, messageMaxBytes]
    case MessageTag.Ping:
      return [LEN_BYTES, LEN_BYTES]
    default:
      return null
  }
}

const PROTOCOL_HINT = 'The redo request stream is corrupt; check that the page server and the redo worker are the same version.'

/**
 * Incremental decoder: `push()` chunks as they arrive (split at any offset), then call `next()` until it
 * returns null. Returned buffers are views into the pushed chunks (no copy) unless a message straddles
 * chunks; a caller that keeps them keeps those chunks alive.
 */
export class RedoMessageDecoder {
  private chunks: Buffer[] = []
  /** Index of the first chunk still holding unread bytes, and the read offset inside it. */
  private head = 0
  private headOffset = 0
  private buffered = 0

  constructor(private readonly messageMaxBytes: number = MESSAGE_MAX_BYTES) {}

  /** Bytes pushed and not yet returned as messages. */
  get bufferedBytes(): number {
    return this.buffered
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.buffered += chunk.length
  }

  /** The next complete message, or null when more input is needed. Throws CorruptionError on bad framing. */
  next(): RedoMessage | null {
    if (this.buffered < MESSAGE_HEADER_BYTES) return null
    const header = this.peek(MESSAGE_HEADER_BYTES)
    const tag = header[0]!
    const len = header.readUInt32BE(1)
    const range = lengthRange(tag, this.messageMaxBytes)
    if (range === null) {
      throw new CorruptionError('WALREDO_UNKNOWN_MESSAGE', `unknown walredo message type 0x${tag.toString(16).padStart(2, '0')}`, {
        hint: PROTOCOL_HINT,
        details: { tag },
      })
    }
    if (len < range[0] || len > range[1]) {
      const tooLarge = len > range[1] && tag === MessageTag.ApplyRecord
      throw new CorruptionError(
        tooLarge ? 'WALREDO_MESSAGE_TOO_LARGE' : 'WALREDO_BAD_MESSAGE_LENGTH',
        `walredo message '${String.fromCharCode(tag)}' has length ${len}, allowed ${range[0]}..${range[1]}`,
        { hint: PROTOCOL_HINT, details: { tag: String.fromCharCode(tag), len, min: range[0], max: range[1] } },
      )
    }
    const total = 1 + len
    if (this.buffered < total) return null
    const msg = this.take(total)
    return decodeBody(tag, new BinaryReader(msg, MESSAGE_HEADER_BYTES, msg.length, 'walredo message'))
  }

  /** The first n buffered bytes without consuming them (n is small: a header). */
  private peek(n: number): Buffer {
    const first = this.chunks[this.head]!
    if (first.length - this.headOffset >= n) return first.subarray(this.headOffset, this.headOffset + n)
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    for (let i = this.head; filled < n; i++) {
      const c = this.chunks[i]!
      const from = i === this.head ? this.headOffset : 0
      filled += c.copy(out, filled, from, Math.min(c.length, from + n - filled))
    }
    return out
  }

  /** Consumes n buffered bytes (n <= buffered): a view when they sit in one chunk, else one copy. */
  private take(n: number): Buffer {
    const first = this.chunks[this.head]!
    let out: Buffer
    if (first.length - this.headOffset >= n) {
      out = first.subarray(this.headOffset, this.headOffset + n)
      this.headOffset += n
    } else {
      out = Buffer.allocUnsafe(n)
      let filled = 0
      while (filled < n) {
        const c = this.chunks[this.head]!
        const copied = c.copy(out, filled, this.headOffset, Math.min(c.length, this.headOffset + n - filled))
        filled += copied
        this.headOffset += copied
        if (this.headOffset === c.length) this.dropHead()
      }
    }
    if (this.head < this.chunks.length && this.headOffset === this.chunks[this.head]!.length) this.dropHead()
    this.buffered -= n
    return out
  }

  private dropHead(): void {
    this.head++
    this.headOffset = 0
    // Compact now and then so the array does not grow with every chunk ever pushed.
    if (this.head >= 64 || this.head === this.chunks.length) {
      this.chunks = this.chunks.slice(this.head)
      this.head = 0
    }
  }
}

function decodeBody(tag: number, r: BinaryReader): RedoMessage {
  switch (tag) {
    case MessageTag.BeginRedoForBlock:
      return { type: 'B', tag: readBufferTag(r) }
    case MessageTag.PushPage: {
      const bufferTag = readBufferTag(r)
      return { type: 'P', tag: bufferTag, page: r.bytes(PAGE_BYTES) }
    }
    case MessageTag.ApplyRecord: {
      const endLsn = r.u64be() as Lsn
      return { type: 'A', endLsn, record: r.rest() }
    }
    case MessageTag.GetPage:
      return { type: 'G', tag: readBufferTag(r) }
    case MessageTag.Ping:
      return { type: 'H' }
    default:
      throw new CorruptionError('WALREDO_UNKNOWN_MESSAGE', `unknown walredo message type 0x${tag.toString(16)}`, { hint: PROTOCOL_HINT })
  }
}
