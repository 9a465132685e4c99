/**
 * The messages of PostgreSQL's physical streaming replication that travel inside CopyData frames.
 *
 * Server -> client: XLogData `'w'` (WAL bytes) and primary keepalive `'k'`.
 * Client -> server: standby status update `'r'` and hot-standby feedback `'h'`.
 * All integers are big-endian (network order); timestamps are microseconds since 2000-01-01 00:00 UTC
 * (PostgreSQL's TimestampTz epoch): Unix µs − 946,684,800,000,000.
 *
 *   'w' | dataStart i64 | walEnd i64 | sendTime i64 | WAL bytes...          (25-byte header)
 *   'k' | walEnd i64 | sendTime i64 | replyRequested u8                      (18 bytes)
 *   'r' | written i64 | flushed i64 | applied i64 | clock i64 | replyRequested u8   (34 bytes)
 *   'h' | clock i64 | xmin u32 | xminEpoch u32 | catalogXmin u32 | catalogXminEpoch u32 (25 bytes)
 *
 * Encoders and decoders sit side by side so a change to one is seen next to the other. Decoders never copy:
 * an XLogData's `data` is a view into the frame, so a caller that keeps it past the frame's lifetime (the
 * pg-protocol parser reuses its buffer) must copy it. Sizes are checked exactly: a keepalive that is not
 * 18 bytes is corrupt, not "probably fine".
 */
import { BinaryReader, BinaryWriter, ShortReadError } from '../lib/bytes.js'
import { CorruptionError } from '../lib/errors.js'
import type { Lsn } from '../pg/lsn.js'

/** Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch). */
export const PG_EPOCH_OFFSET_MICROS = 946_684_800_000_000n

export const XLOG_DATA_HEADER_BYTES = 25
export const KEEPALIVE_BYTES = 18
export const STATUS_UPDATE_BYTES = 34
export const HOT_STANDBY_FEEDBACK_BYTES = 25
/**
 * Largest WAL payload in one XLogData: walsender's MAX_SEND_SIZE is 16 x 8 KiB = 128 KiB. We accept up to
 * 1 MiB so a server built with a larger XLOG_BLCKSZ still works, and refuse more before allocating.
 */
export const xlogDataPayloadBytesMax = 1024 * 1024

export const ReplicationMessageType = {
  XLogData: 0x77, // 'w'
  Keepalive: 0x6b, // 'k'
  StatusUpdate: 0x72, // 'r'
  HotStandbyFeedback: 0x68, // 'h'
} as const

export interface XLogDataMessage {
  readonly type: 'xlogData'
  /** LSN of the first byte of `data`. */
  readonly dataStart: Lsn
  /** The server's current end of WAL (its flush position) when it sent this. */
  readonly walEnd: Lsn
  /** µs since 2000-01-01. */
  readonly sendTime: bigint
  /** WAL bytes: a view into the frame (copy before keeping). */
  readonly data: Buffer
}

export interface KeepaliveMessage {
  readonly type: 'keepalive'
  readonly walEnd: Lsn
  readonly sendTime: bigint
  /** The server wants a status update now, or it will drop the connection after wal_sender_timeout. */
  readonly replyRequested: boolean
}

export type ServerReplicationMessage = XLogDataMessage | KeepaliveMessage

export interface StatusUpdateMessage {
  /** Last byte received + 1. */
  readonly written: Lsn
  /** Last byte made durable + 1; the primary's slot keeps WAL from here on. 0 = unknown (slot untouched). */
  readonly flushed: Lsn
  /** Last byte applied + 1. */
  readonly applied: Lsn
  /** µs since 2000-01-01. */
  readonly clock: bigint
  readonly replyRequested: boolean
}

export interface HotStandbyFeedbackMessage {
  readonly clock: bigint
  readonly xmin: number
  readonly xminEpoch: number
  readonly catalogXmin: number
  readonly catalogXminEpoch: number
}

const HINT = 'The replication stream is malformed; check that the server is a PostgreSQL 15 primary.'

function malformed(message: string, details?: Record<string, unknown>): CorruptionError {
  return new CorruptionError('REPLICATION_MESSAGE_MALFORMED', message, { hint: HINT, details })
}

/** Converts a wall clock in Unix milliseconds to PostgreSQL's µs since 2000-01-01. */
export function unixMsToPgMicros(unixMs: number): bigint {
  return BigInt(Math.round(unixMs * 1000)) - PG_EPOCH_OFFSET_MICROS
}

/** Converts PostgreSQL's µs since 2000-01-01 to Unix milliseconds. */
export function pgMicrosToUnixMs(pgMicros: bigint): number {
  return Number((pgMicros + PG_EPOCH_OFFSET_MICROS) / 1000n)
}

/** i64 LSN field -> Lsn; negative values are not LSNs. */
function readLsnBe(r: BinaryReader, field: string): Lsn {
  const v = r.i64be()
  if (v < 0n) throw malformed(`${field} is negative (${v})`)
  return v as Lsn
}

/** Decodes one server message (the payload of a CopyData frame). `data` of XLogData is a view. */
export function decodeServerMessage(frame: Buffer): ServerReplicationMessage {
  if (frame.length === 0) throw malformed('empty CopyData frame in the replication stream')
  const type = frame[0]!
  try {
    if (type === ReplicationMessageType.XLogData) {
      if (frame.length < XLOG_DATA_HEADER_BYTES) throw new ShortReadError(0, XLOG_DATA_HEADER_BYTES, frame.length, 'XLogData message')
      const payloadBytes = frame.length - XLOG_DATA_HEADER_BYTES
      if (payloadBytes > xlogDataPayloadBytesMax) throw malformed(`XLogData carries ${payloadBytes} bytes; at most ${xlogDataPayloadBytesMax} are accepted`)
      const r = new BinaryReader(frame, 1, frame.length, 'XLogData message')
      const dataStart = readLsnBe(r, 'XLogData dataStart')
      const walEnd = readLsnBe(r, 'XLogData walEnd')
      const sendTime = r.i64be()
      return { type: 'xlogData', dataStart, walEnd, sendTime, data: r.rest() }
    }
    if (type === ReplicationMessageType.Keepalive) {
      if (frame.length !== KEEPALIVE_BYTES) throw malformed(`keepalive message is ${frame.length} bytes, expected ${KEEPALIVE_BYTES}`)
      const r = new BinaryReader(frame, 1, frame.length, 'keepalive message')
      const walEnd = readLsnBe(r, 'keepalive walEnd')
      const sendTime = r.i64be()
      const reply = r.u8()
      if (reply > 1) throw malformed(`keepalive replyRequested is ${reply}, expected 0 or 1`)
      return { type: 'keepalive', walEnd, sendTime, replyRequested: reply === 1 }
    }
  } catch (e) {
    if (e instanceof ShortReadError) throw malformed(e.message, e.details)
    throw e
  }
  throw malformed(`unknown replication message type 0x${type.toString(16).padStart(2, '0')}`)
}

/** Encodes an XLogData message (used by tests and fake servers). */
export function encodeXLogData(m: { dataStart: Lsn; walEnd: Lsn; sendTime: bigint; data: Uint8Array }): Buffer {
  return new BinaryWriter(XLOG_DATA_HEADER_BYTES + m.data.length)
    .u8(ReplicationMessageType.XLogData)
    .i64be(m.dataStart)
    .i64be(m.walEnd)
    .i64be(m.sendTime)
    .bytes(m.data)
    .finish()
}

/** Encodes a primary keepalive (used by tests and fake servers). */
export function encodeKeepalive(m: { walEnd: Lsn; sendTime: bigint; replyRequested: boolean }): Buffer {
  return new BinaryWriter(KEEPALIVE_BYTES)
    .u8(ReplicationMessageType.Keepalive)
    .i64be(m.walEnd)
    .i64be(m.sendTime)
    .u8(m.replyRequested ? 1 : 0)
    .finish()
}

export function encodeStatusUpdate(m: StatusUpdateMessage): Buffer {
  return new BinaryWriter(STATUS_UPDATE_BYTES)
    .u8(ReplicationMessageType.StatusUpdate)
    .i64be(m.written)
    .i64be(m.flushed)
    .i64be(m.applied)
    .i64be(m.clock)
    .u8(m.replyRequested ? 1 : 0)
    .finish()
}

export function decodeStatusUpdate(frame: Buffer): StatusUpdateMessage {
  if (frame.length !== STATUS_UPDATE_BYTES || frame[0] !== ReplicationMessageType.StatusUpdate) {
    throw malformed(`a status update is ${STATUS_UPDATE_BYTES} bytes starting with 'r'; got ${frame.length} bytes`)
  }
  const r = new BinaryReader(frame, 1, frame.length, 'status update')
  const written = readLsnBe(r, 'written')
  const flushed = readLsnBe(r, 'flushed')
  const applied = readLsnBe(r, 'applied')
  const clock = r.i64be()
  const reply = r.u8()
  if (reply > 1) throw malformed(`status update replyRequested is ${reply}, expected 0 or 1`)
  return { written, flushed, applied, clock, replyRequested: reply === 1 }
}

export function encodeHotStandbyFeedback(m: HotStandbyFeedbackMessage): Buffer {
  return new BinaryWriter(HOT_STANDBY_FEEDBACK_BYTES)
    .u8(ReplicationMessageType.HotStandbyFeedback)
    .i64be(m.clock)
    .u32be(m.xmin)
    .u32be(m.xminEpoch)
    .u32be(m.catalogXmin)
    .u32be(m.catalogXminEpoch)
    .finish()
}

export function decodeHotStandbyFeedback(frame: Buffer): HotStandbyFeedbackMessage {
  if (frame.length !== HOT_STANDBY_FEEDBACK_BYTES || frame[0] !== ReplicationMessageType.HotStandbyFeedback) {
    throw malformed(`a hot-standby feedback message is ${HOT_STANDBY_FEEDBACK_BYTES} bytes starting with 'h'; got ${frame.length} bytes`)
  }
  const r = new BinaryReader(frame, 1, frame.length, 'hot-standby feedback')
  return { clock: r.i64be(), xmin: r.u32be(), xminEpoch: r.u32be(), catalogXmin: r.u32be(), catalogXminEpoch: r.u32be() }
}
