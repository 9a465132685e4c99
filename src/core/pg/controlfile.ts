/**
 * pg_control (ControlFileData, 296 bytes in an 8192-byte file) and the CheckPoint struct (88 bytes) of
 * PostgreSQL 15 on x86-64/aarch64 (little-endian, 8-byte alignment), read and written field by field.
 *
 * Offsets follow C layout rules, padding included. CheckPoint:
 *   0 redo u64 | 8 ThisTimeLineID u32 | 12 PrevTimeLineID u32 | 16 fullPageWrites u8 | 24 nextXid u64
 *   32 nextOid | 36 nextMulti | 40 nextMultiOffset | 44 oldestXid | 48 oldestXidDB | 52 oldestMulti
 *   56 oldestMultiDB | 64 time i64 | 72 oldestCommitTsXid | 76 newestCommitTsXid | 80 oldestActiveXid
 * ControlFileData:
 *   0 system_identifier u64 | 8 pg_control_version u32 | 12 catalog_version_no u32 | 16 state u32
 *   24 time i64 | 32 checkPoint u64 | 40 checkPointCopy (88) | 128 unloggedLSN | 136 minRecoveryPoint
 *   144 minRecoveryPointTLI | 152 backupStartPoint | 160 backupEndPoint | 168 backupEndRequired u8
 *   172 wal_level i32 | 176 wal_log_hints u8 | 180 MaxConnections | 184 max_worker_processes
 *   188 max_wal_senders | 192 max_prepared_xacts | 196 max_locks_per_xact | 200 track_commit_timestamp u8
 *   204 maxAlign | 208 floatFormat f64 | 216 blcksz | 220 relseg_size | 224 xlog_blcksz | 228 xlog_seg_size
 *   232 nameDataLen | 236 indexMaxKeys | 240 toast_max_chunk_size | 244 loblksize | 248 float8ByVal u8
 *   252 data_checksum_version u32 | 256 mock_authentication_nonce[32] | 288 crc u32
 * The CRC-32C covers bytes 0..287. Encoding patches a copy of the original bytes, so fields this module
 * does not model (the nonce, padding) survive a round trip.
 */
import { CorruptionError } from '../lib/errors.js'
import { crc32c } from '../lib/crc32c.js'
import type { Lsn } from './lsn.js'

export const PG_CONTROL_VERSION = 1300
export const PG_CONTROL_FILE_SIZE = 8192
export const SIZEOF_CONTROL_FILE_DATA = 296
export const SIZEOF_CHECKPOINT = 88
const CRC_OFFSET = 288
const CHECKPOINT_COPY_OFFSET = 40

export const DBState = {
  STARTUP: 0,
  SHUTDOWNED: 1,
  SHUTDOWNED_IN_RECOVERY: 2,
  SHUTDOWNING: 3,
  IN_CRASH_RECOVERY: 4,
  IN_ARCHIVE_RECOVERY: 5,
  IN_PRODUCTION: 6,
} as const

export interface CheckPoint {
  redo: Lsn
  ThisTimeLineID: number
  PrevTimeLineID: number
  fullPageWrites: boolean
  /** FullTransactionId: epoch in the high 32 bits */
  nextXid: bigint
  nextOid: number
  nextMulti: number
  nextMultiOffset: number
  oldestXid: number
  oldestXidDB: number
  oldestMulti: number
  oldestMultiDB: number
  time: bigint
  oldestCommitTsXid: number
  newestCommitTsXid: number
  oldestActiveXid: number
}

export interface ControlFileData {
  system_identifier: bigint
  pg_control_version: number
  catalog_version_no: number
  state: number
  time: bigint
  checkPoint: Lsn
  checkPointCopy: CheckPoint
  unloggedLSN: Lsn
  minRecoveryPoint: Lsn
  minRecoveryPointTLI: number
  backupStartPoint: Lsn
  backupEndPoint: Lsn
  backupEndRequired: boolean
  wal_level: number
  wal_log_hints: boolean
  MaxConnections: number
  max_worker_processes: number
  max_wal_senders: number
  max_prepared_xacts: number
  max_locks_per_xact: number
  track_commit_timestamp: boolean
  maxAlign: number
  floatFormat: number
  blcksz: number
  relseg_size: number
  xlog_blcksz: number
  xlog_seg_size: number
  nameDataLen: number
  indexMaxKeys: number
  toast_max_chunk_size: number
  loblksize: number
  float8ByVal: boolean
  data_checksum_version: number
  /** the bytes this was decoded from (the whole control file), kept for round trips */
  raw: Buffer
}

export function decodeCheckPoint(b: Buffer, off = 0): CheckPoint {
  if (b.length < off + SIZEOF_CHECKPOINT) throw new CorruptionError('BAD_CHECKPOINT', `CheckPoint needs ${SIZEOF_CHECKPOINT} bytes`)
  return {
    redo: b.readBigUInt64LE(off) as Lsn,
    ThisTimeLineID: b.readUInt32LE(off + 8),
    PrevTimeLineID: b.readUInt32LE(off + 12),
    fullPageWrites: b[off + 16] !== 0,
    nextXid: b.readBigUInt64LE(off + 24),
    nextOid: b.readUInt32LE(off + 32),
    nextMulti: b.readUInt32LE(off + 36),
    nextMultiOffset: b.readUInt32LE(off + 40),
    oldestXid: b.readUInt32LE(off + 44),
    oldestXidDB: b.readUInt32LE(off + 48),
    oldestMulti: b.readUInt32LE(off + 52),
    oldestMultiDB: b.readUInt32LE(off + 56),
    time: b.readBigInt64LE(off + 64),
    oldestCommitTsXid: b.readUInt32LE(off + 72),
    newestCommitTsXid: b.readUInt32LE(off + 76),
    oldestActiveXid: b.readUInt32LE(off + 80),
  }
}

/** Writes a CheckPoint into `out` at `off` (padding bytes are zeroed). */
export function encodeCheckPointInto(c: CheckPoint, out: Buffer, off = 0): Buffer {
  out.fill(0, off, off + SIZEOF_CHECKPOINT)
  out.writeBigUInt64LE(c.redo, off)
  out.writeUInt32LE(c.ThisTimeLineID, off + 8)
  out.writeUInt32LE(c.PrevTimeLineID, off + 12)
  out[off + 16] = c.fullPageWrites ? 1 : 0
  out.writeBigUInt64LE(c.nextXid, off + 24)
  out.writeUInt32LE(c.nextOid, off + 32)
  out.writeUInt32LE(c.nextMulti, off + 36)
  out.writeUInt32LE(c.nextMultiOffset, off + 40)
  out.writeUInt32LE(c.oldestXid, off + 44)
  out.writeUInt32LE(c.oldestXidDB, off + 48)
  out.writeUInt32LE(c.oldestMulti, off + 52)
  out.writeUInt32LE(c.oldestMultiDB, off + 56)
  out.writeBigInt64LE(c.time, off + 64)
  out.writeUInt32LE(c.oldestCommitTsXid, off + 72)
  out.writeUInt32LE(c.newestCommitTsXid, off + 76)
  out.writeUInt32LE(c.oldestActiveXid, off + 80)
  return out
}

export function encodeCheckPoint(c: CheckPoint): Buffer {
  return encodeCheckPointInto(c, Buffer.alloc(SIZEOF_CHECKPOINT))
}

export function controlFileCrcIsValid(b: Buffer): boolean {
  return b.length >= SIZEOF_CONTROL_FILE_DATA && crc32c(b.subarray(0, CRC_OFFSET)) === b.readUInt32LE(CRC_OFFSET)
}

/** Decodes pg_control; checks the version and the CRC. */
export function decodeControlFile(b: Buffer, what = 'pg_control'): ControlFileData {
  if (b.length < SIZEOF_CONTROL_FILE_DATA) throw new CorruptionError('BAD_CONTROL_FILE', `${what} is too short (${b.length} bytes)`)
  const version = b.readUInt32LE(8)
  if (version !== PG_CONTROL_VERSION) {
    throw new CorruptionError('BAD_CONTROL_FILE', `${what} has version ${version}, PostgreSQL 15 writes ${PG_CONTROL_VERSION}`, {
      hint: 'Only PostgreSQL 15 data directories are supported.',
    })
  }
  if (!controlFileCrcIsValid(b)) throw new CorruptionError('BAD_CONTROL_FILE', `${what} fails its CRC check`)
  return {
    system_identifier: b.readBigUInt64LE(0),
    pg_control_version: version,
    catalog_version_no: b.readUInt32LE(12),
    state: b.readUInt32LE(16),
    time: b.readBigInt64LE(24),
    checkPoint: b.readBigUInt64LE(32) as Lsn,
    checkPointCopy: decodeCheckPoint(b, CHECKPOINT_COPY_OFFSET),
    unloggedLSN: b.readBigUInt64LE(128) as Lsn,
    minRecoveryPoint: b.readBigUInt64LE(136) as Lsn,
    minRecoveryPointTLI: b.readUInt32LE(144),
    backupStartPoint: b.readBigUInt64LE(152) as Lsn,
    backupEndPoint: b.readBigUInt64LE(160) as Lsn,
    backupEndRequired: b[168] !== 0,
    wal_level: b.readInt32LE(172),
    wal_log_hints: b[176] !== 0,
    MaxConnections: b.readInt32LE(180),
    max_worker_processes: b.readInt32LE(184),
    max_wal_senders: b.readInt32LE(188),
    max_prepared_xacts: b.readInt32LE(192),
    max_locks_per_xact: b.readInt32LE(196),
    track_commit_timestamp: b[200] !== 0,
    maxAlign: b.readUInt32LE(204),
    floatFormat: b.readDoubleLE(208),
    blcksz: b.readUInt32LE(216),
    relseg_size: b.readUInt32LE(220),
    xlog_blcksz: b.readUInt32LE(224),
    xlog_seg_size: b.readUInt32LE(228),
    nameDataLen: b.readUInt32LE(232),
    indexMaxKeys: b.readUInt32LE(236),
    toast_max_chunk_size: b.readUInt32LE(240),
    loblksize: b.readUInt32LE(244),
    float8ByVal: b[248] !== 0,
    data_checksum_version: b.readUInt32LE(252),
    raw: Buffer.from(b),
  }
}

/** Encodes pg_control as a full 8192-byte file with a fresh CRC, starting from the decoded original bytes. */
export function encodeControlFile(c: ControlFileData): Buffer {
  const out = Buffer.alloc(PG_CONTROL_FILE_SIZE)
  c.raw.copy(out, 0, 0, Math.min(c.raw.length, PG_CONTROL_FILE_SIZE))
  out.writeBigUInt64LE(c.system_identifier, 0)
  out.writeUInt32LE(c.pg_control_version, 8)
  out.writeUInt32LE(c.catalog_version_no, 12)
  out.writeUInt32LE(c.state, 16)
  out.writeBigInt64LE(c.time, 24)
  out.writeBigUInt64LE(c.checkPoint, 32)
  encodeCheckPointInto(c.checkPointCopy, out, CHECKPOINT_COPY_OFFSET)
  out.writeBigUInt64LE(c.unloggedLSN, 128)
  out.writeBigUInt64LE(c.minRecoveryPoint, 136)
  out.writeUInt32LE(c.minRecoveryPointTLI, 144)
  out.writeBigUInt64LE(c.backupStartPoint, 152)
  out.writeBigUInt64LE(c.backupEndPoint, 160)
  out[168] = c.backupEndRequired ? 1 : 0
  out.writeInt32LE(c.wal_level, 172)
  out[176] = c.wal_log_hints ? 1 : 0
  out.writeInt32LE(c.MaxConnections, 180)
  out.writeInt32LE(c.max_worker_processes, 184)
  out.writeInt32LE(c.max_wal_senders, 188)
  out.writeInt32LE(c.max_prepared_xacts, 192)
  out.writeInt32LE(c.max_locks_per_xact, 196)
  out[200] = c.track_commit_timestamp ? 1 : 0
  out.writeUInt32LE(c.maxAlign, 204)
  out.writeDoubleLE(c.floatFormat, 208)
  out.writeUInt32LE(c.blcksz, 216)
  out.writeUInt32LE(c.relseg_size, 220)
  out.writeUInt32LE(c.xlog_blcksz, 224)
  out.writeUInt32LE(c.xlog_seg_size, 228)
  out.writeUInt32LE(c.nameDataLen, 232)
  out.writeUInt32LE(c.indexMaxKeys, 236)
  out.writeUInt32LE(c.toast_max_chunk_size, 240)
  out.writeUInt32LE(c.loblksize, 244)
  out[248] = c.float8ByVal ? 1 : 0
  out.writeUInt32LE(c.data_checksum_version, 252)
  out.writeUInt32LE(crc32c(out.subarray(0, CRC_OFFSET)), CRC_OFFSET)
  return out
}
