/**
 * One PostgreSQL 15 WAL record, reassembled (page headers removed): header, block references, main data.
 *
 * `decodeRecord` is our reading of PostgreSQL's DecodeXLogRecord: fragment headers (block references with
 * ids strictly increasing, origin, top-level xid, then the main-data header, always last), then the
 * payloads in order: per block its image then its data, then the main data. The announced lengths must add
 * up to exactly what remains. Nothing in the payload is aligned.
 *
 * Layout of the 24-byte XLogRecord header (little-endian):
 *   0 xl_tot_len u32 | 4 xl_xid u32 | 8 xl_prev u64 | 16 xl_info u8 | 17 xl_rmid u8 | 18 pad[2] | 20 xl_crc u32
 * The CRC covers bytes 24..xl_tot_len first, then bytes 0..19 (everything before xl_crc).
 *
 * PostgreSQL 15 image flags differ from 14: APPLY is 0x02, and compression has one bit per method.
 * Records refer to the bytes they were decoded from (no copy, no view until `raw` is asked for); they
 * allocate only the small block-reference objects (relation objects are shared between consecutive blocks).
 */
import { CorruptionError } from '../lib/errors.js'
import { crc32cJs, crc32cRange } from '../lib/crc32c.js'
import { copyBytes } from '../lib/shared-copy.js'
import { formatLsn, INVALID_LSN, type Lsn } from './lsn.js'
import type { RelFileNode } from './reltag.js'
import { decompressImage, type ImageCompression } from './wal-compression.js'
import { rmgrIdIsValid } from './rmgr.js'

export const SizeOfXLogRecord = 24
export const BLCKSZ = 8192

export const XLR_INFO_MASK = 0x0f
export const XLR_RMGR_INFO_MASK = 0xf0
export const XLR_SPECIAL_REL_UPDATE = 0x01
export const XLR_CHECK_CONSISTENCY = 0x02

export const BKPBLOCK_FORK_MASK = 0x0f
export const BKPBLOCK_HAS_IMAGE = 0x10
export const BKPBLOCK_HAS_DATA = 0x20
export const BKPBLOCK_WILL_INIT = 0x40
export const BKPBLOCK_SAME_REL = 0x80

export const BKPIMAGE_HAS_HOLE = 0x01
export const BKPIMAGE_APPLY = 0x02
export const BKPIMAGE_COMPRESS_PGLZ = 0x04
export const BKPIMAGE_COMPRESS_LZ4 = 0x08
export const BKPIMAGE_COMPRESS_ZSTD = 0x10
const BKPIMAGE_COMPRESSED_MASK = BKPIMAGE_COMPRESS_PGLZ | BKPIMAGE_COMPRESS_LZ4 | BKPIMAGE_COMPRESS_ZSTD

export const XLR_MAX_BLOCK_ID = 32
export const XLR_BLOCK_ID_DATA_SHORT = 255
export const XLR_BLOCK_ID_DATA_LONG = 254
export const XLR_BLOCK_ID_ORIGIN = 253
export const XLR_BLOCK_ID_TOPLEVEL_XID = 252

/**
 * The largest record we accept. PostgreSQL 15 limits a record to what fits in a palloc (1 GiB); a length
 * above this is garbage and must not drive an allocation.
 */
export const WAL_RECORD_MAX_BYTES = 1024 * 1024 * 1024 - 1

export interface DecodedBlock {
  /** block_id 0..32 */
  readonly id: number
  readonly forkNum: number
  /** raw fork_flags byte */
  readonly forkFlags: number
  readonly rel: RelFileNode
  readonly blkno: number
  readonly hasImage: boolean
  readonly hasData: boolean
  readonly willInit: boolean
  /** BKPIMAGE_APPLY: a real full-page write, to restore before redo (not just a consistency-check image). */
  readonly applyImage: boolean
  readonly bimgInfo: number
  /** stored image bytes (compressed size when compressed) */
  readonly bimgLen: number
  readonly holeOffset: number
  readonly holeLength: number
  readonly compression: ImageCompression
  /** offsets into the record's raw bytes */
  readonly imageOffset: number
  readonly dataOffset: number
  readonly dataLength: number
}

/** A record with no block references shares this array (most records of some rmgrs have none). */
const NO_BLOCKS: readonly DecodedBlock[] = Object.freeze([])

type MutableBlock = { -readonly [K in keyof DecodedBlock]: DecodedBlock[K] }

/**
 * A decoded record: header fields, block references and offsets into `raw`. LSNs are kept as the numbers
 * or bigints they were given and branded as Lsn on first access (a bigint per field per record is
 * allocation the hot decode loop does not need). The record's bytes are `rawLength` bytes at `rawOffset` in
 * `rawBytes` (for a stream decoder: the chunk they were fed in); `raw`, a view of exactly those bytes, is
 * made on first access, since many consumers (statistics, filters) never need it.
 */
export class DecodedRecord {
  private lsnValue: Lsn | number
  private endLsnValue: Lsn | number
  private prevValue: Lsn | null = null
  private rawView: Buffer | null

  constructor(
    lsn: Lsn | number,
    endLsn: Lsn | number,
    /** Memory holding the record (possibly among other bytes). */
    readonly rawBytes: Buffer,
    /** Where the record starts in `rawBytes`. */
    readonly rawOffset: number,
    /** xl_tot_len: the record's length in bytes. */
    readonly xl_tot_len: number,
    readonly xl_xid: number,
    readonly xl_info: number,
    readonly xl_rmid: number,
    readonly blocks: readonly DecodedBlock[],
    readonly origin: number | null,
    readonly toplevelXid: number | null,
    /** Offsets from the record's start (as in `raw`). */
    readonly mainDataOffset: number,
    readonly mainDataLength: number,
  ) {
    this.lsnValue = lsn
    this.endLsnValue = endLsn
    this.rawView = rawOffset === 0 && xl_tot_len === rawBytes.length ? rawBytes : null
  }

  /** The whole record, exactly xl_tot_len bytes (a view, made once). */
  get raw(): Buffer {
    return (this.rawView ??= this.rawBytes.subarray(this.rawOffset, this.rawOffset + this.xl_tot_len))
  }

  /** start LSN (INVALID when decoded from raw bytes without position, as in the walredo protocol) */
  get lsn(): Lsn {
    const v = this.lsnValue
    return typeof v === 'bigint' ? v : (this.lsnValue = BigInt(v) as Lsn)
  }

  /** end LSN = start of the next record = the LSN redo stamps on pages (PostgreSQL's EndRecPtr) */
  get endLsn(): Lsn {
    const v = this.endLsnValue
    return typeof v === 'bigint' ? v : (this.endLsnValue = BigInt(v) as Lsn)
  }

  /** `lsn` as a number (exact below 2^53), without making the bigint. */
  get lsnNumber(): number {
    const v = this.lsnValue
    return typeof v === 'number' ? v : Number(v)
  }

  /** `endLsn` as a number, without making the bigint. */
  get endLsnNumber(): number {
    const v = this.endLsnValue
    return typeof v === 'number' ? v : Number(v)
  }

  /** start LSN of the previous record, as the record says (xl_prev) */
  get xl_prev(): Lsn {
    return (this.prevValue ??= this.rawBytes.readBigUInt64LE(this.rawOffset + 8) as Lsn)
  }

  /** The stored CRC-32C (checked by the stream decoder before the record is handed out). */
  get xl_crc(): number {
    return this.rawBytes.readUInt32LE(this.rawOffset + 20)
  }

  /** The record type bits of xl_info (high nibble), which select the rmgr-specific record kind. */
  get rmgrInfo(): number {
    return this.xl_info & XLR_RMGR_INFO_MASK
  }

  mainData(): Buffer {
    const start = this.rawOffset + this.mainDataOffset
    return this.rawBytes.subarray(start, start + this.mainDataLength)
  }

  /** Byte `at` of the main data (no view made; the caller checks `at < mainDataLength`). */
  mainDataByte(at: number): number {
    return this.rawBytes[this.rawOffset + this.mainDataOffset + at]!
  }

  /** The block reference with this block_id, if present. */
  block(id: number): DecodedBlock | undefined {
    for (const b of this.blocks) if (b.id === id) return b
    return undefined
  }

  blockData(b: DecodedBlock): Buffer {
    const start = this.rawOffset + b.dataOffset
    return this.rawBytes.subarray(start, start + b.dataLength)
  }

  /** The stored (possibly compressed) image bytes. */
  blockImageBytes(b: DecodedBlock): Buffer {
    const start = this.rawOffset + b.imageOffset
    return this.rawBytes.subarray(start, start + b.bimgLen)
  }

  /** A short label for errors: "at 0/16B3748", or "ending at ..." when the start is unknown. */
  describePosition(): string {
    return describe(this.lsnValue, this.endLsnValue)
  }
}

function describe(lsn: Lsn | number, endLsn: Lsn | number): string {
  return BigInt(lsn) !== 0n ? `at ${formatLsn(BigInt(lsn))}` : `ending at ${formatLsn(BigInt(endLsn))}`
}

/** CRC-32C of a reassembled record as PostgreSQL computes it: body first, then the header up to xl_crc. */
export function recordCrc(raw: Buffer): number {
  return crc32cJs(raw, 0, 20, crc32cRange(raw, SizeOfXLogRecord, raw.length))
}

/** recordCrc of the `len`-byte record at `at` in `bytes`. */
export function recordCrcAt(bytes: Buffer, at: number, len: number): number {
  return crc32cJs(bytes, at, at + 20, crc32cRange(bytes, at + SizeOfXLogRecord, at + len))
}

export function recordCrcIsValid(raw: Buffer): boolean {
  return raw.length >= SizeOfXLogRecord && recordCrc(raw) === raw.readUInt32LE(20)
}

function bad(what: string, lsn: Lsn | number, endLsn: Lsn | number): CorruptionError {
  const where = describe(lsn, endLsn)
  return new CorruptionError('WAL_BAD_RECORD', `invalid WAL record ${where}: ${what}`, {
    hint: 'The WAL is corrupt or was not written by PostgreSQL 15.',
    details: { at: where },
  })
}

function tooShort(lsn: Lsn | number, endLsn: Lsn | number): CorruptionError {
  return bad('record is too short for its fragment headers', lsn, endLsn)
}

function compressionOf(bimgInfo: number): ImageCompression {
  if (bimgInfo & BKPIMAGE_COMPRESS_PGLZ) return 'pglz'
  if (bimgInfo & BKPIMAGE_COMPRESS_LZ4) return 'lz4'
  if (bimgInfo & BKPIMAGE_COMPRESS_ZSTD) return 'zstd'
  return 'none'
}

/**
 * Decodes a reassembled record. Validates the structure as PostgreSQL does (not the CRC: see
 * `recordCrcIsValid`; the stream decoder checks it before calling this). One pass over the fragment
 * headers builds the block references with payload offsets relative to the payload start; a second, tiny
 * pass makes them relative to the record's start once the headers' end is known.
 */
export function decodeRecord(raw: Buffer, lsn: Lsn | number = INVALID_LSN, endLsn: Lsn | number = INVALID_LSN): DecodedRecord {
  return decodeRecordAt(raw, 0, raw.length, lsn, endLsn)
}

/**
 * Little-endian reads for the hot decode loop, without Buffer's argument checks: every caller has checked
 * that the bytes are there (an out-of-range index would read as 0, so the checks come first).
 */
function u32(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0
}

function u16(b: Uint8Array, p: number): number {
  return b[p]! | (b[p + 1]! << 8)
}

/** The last relation decoded, shared by the next block reference naming the same one (fewer objects). */
let lastRel: RelFileNode = { spcNode: 0, dbNode: 0, relNode: 0 }

/**
 * Decodes the record of `totLen` bytes at `base` in `raw` (which may hold other bytes around it: a stream
 * decoder's chunk) without making a view of it; see `decodeRecord`.
 */
export function decodeRecordAt(raw: Buffer, base: number, totLen: number, lsn: Lsn | number = INVALID_LSN, endLsn: Lsn | number = INVALID_LSN): DecodedRecord {
  if (totLen < SizeOfXLogRecord) throw bad(`length ${totLen} is shorter than a record header`, lsn, endLsn)
  if (base < 0 || base + totLen > raw.length) throw bad(`record of ${totLen} bytes at offset ${base} lies outside the ${raw.length} bytes given`, lsn, endLsn)
  const declared = u32(raw, base)
  if (declared !== totLen) throw bad(`xl_tot_len ${declared} does not match the ${totLen} bytes given`, lsn, endLsn)
  const xl_rmid = raw[base + 17]!
  if (!rmgrIdIsValid(xl_rmid)) throw bad(`invalid resource manager id ${xl_rmid}`, lsn, endLsn)

  let blocks: MutableBlock[] | null = null
  let origin: number | null = null
  let toplevelXid: number | null = null
  let mainDataLength = 0
  let maxBlockId = -1
  let prevRel: RelFileNode | null = null

  let p = base + SizeOfXLogRecord
  let remaining = totLen - SizeOfXLogRecord
  // Payload bytes announced so far; equals the running payload offset, since payloads follow header order.
  let datatotal = 0
  while (remaining > datatotal) {
    const blockId = raw[p++]!
    remaining -= 1
    if (blockId === XLR_BLOCK_ID_DATA_SHORT) {
      if (remaining < 1) throw tooShort(lsn, endLsn)
      mainDataLength = raw[p++]!
      remaining -= 1
      datatotal += mainDataLength
      break
    } else if (blockId === XLR_BLOCK_ID_DATA_LONG) {
      if (remaining < 4) throw tooShort(lsn, endLsn)
      mainDataLength = u32(raw, p)
      p += 4
      remaining -= 4
      datatotal += mainDataLength
      break
    } else if (blockId === XLR_BLOCK_ID_ORIGIN) {
      if (remaining < 2) throw tooShort(lsn, endLsn)
      origin = u16(raw, p)
      p += 2
      remaining -= 2
    } else if (blockId === XLR_BLOCK_ID_TOPLEVEL_XID) {
      if (remaining < 4) throw tooShort(lsn, endLsn)
      toplevelXid = u32(raw, p)
      p += 4
      remaining -= 4
    } else if (blockId <= XLR_MAX_BLOCK_ID) {
      if (blockId <= maxBlockId) throw bad(`out-of-order block_id ${blockId}`, lsn, endLsn)
      maxBlockId = blockId
      if (remaining < 3) throw tooShort(lsn, endLsn)
      const forkFlags = raw[p]!
      const dataLength = raw[p + 1]! | (raw[p + 2]! << 8)
      p += 3
      remaining -= 3
      const hasData = (forkFlags & BKPBLOCK_HAS_DATA) !== 0
      if (hasData && dataLength === 0) throw bad('BKPBLOCK_HAS_DATA set, but no data included', lsn, endLsn)
      if (!hasData && dataLength !== 0) throw bad(`BKPBLOCK_HAS_DATA not set, but data length is ${dataLength}`, lsn, endLsn)
      const hasImage = (forkFlags & BKPBLOCK_HAS_IMAGE) !== 0
      let bimgLen = 0
      let holeOffset = 0
      let holeLength = 0
      let bimgInfo = 0
      if (hasImage) {
        if (remaining < 5) throw tooShort(lsn, endLsn)
        bimgLen = raw[p]! | (raw[p + 1]! << 8)
        holeOffset = raw[p + 2]! | (raw[p + 3]! << 8)
        bimgInfo = raw[p + 4]!
        p += 5
        remaining -= 5
        const compressed = (bimgInfo & BKPIMAGE_COMPRESSED_MASK) !== 0
        const hasHole = (bimgInfo & BKPIMAGE_HAS_HOLE) !== 0
        if (compressed) {
          if (hasHole) {
            if (remaining < 2) throw tooShort(lsn, endLsn)
            holeLength = raw[p]! | (raw[p + 1]! << 8)
            p += 2
            remaining -= 2
          }
        } else {
          holeLength = BLCKSZ - bimgLen
        }
        if (hasHole && (holeOffset === 0 || holeLength === 0 || bimgLen === BLCKSZ)) {
          throw bad(`BKPIMAGE_HAS_HOLE set, but hole offset ${holeOffset} length ${holeLength} image length ${bimgLen}`, lsn, endLsn)
        }
        if (!hasHole && (holeOffset !== 0 || holeLength !== 0)) {
          throw bad(`BKPIMAGE_HAS_HOLE not set, but hole offset ${holeOffset} length ${holeLength}`, lsn, endLsn)
        }
        if (compressed && bimgLen === BLCKSZ) throw bad(`compressed image with length ${bimgLen}`, lsn, endLsn)
        // Also past PostgreSQL's checks (its uint16 hole length wraps): a stored image longer than a page.
        if (!compressed && bimgLen > BLCKSZ) throw bad(`uncompressed image with length ${bimgLen}`, lsn, endLsn)
        if (!hasHole && !compressed && bimgLen !== BLCKSZ) throw bad(`uncompressed image without hole has length ${bimgLen}`, lsn, endLsn)
        if (holeOffset + holeLength > BLCKSZ) throw bad(`hole ${holeOffset}+${holeLength} exceeds the page`, lsn, endLsn)
      }
      let rel: RelFileNode
      if ((forkFlags & BKPBLOCK_SAME_REL) === 0) {
        if (remaining < 12) throw tooShort(lsn, endLsn)
        const spcNode = u32(raw, p)
        const dbNode = u32(raw, p + 4)
        const relNode = u32(raw, p + 8)
        rel = lastRel
        if (rel.relNode !== relNode || rel.dbNode !== dbNode || rel.spcNode !== spcNode) rel = lastRel = { spcNode, dbNode, relNode }
        p += 12
        remaining -= 12
        prevRel = rel
      } else {
        if (prevRel === null) throw bad('BKPBLOCK_SAME_REL set but no previous rel', lsn, endLsn)
        rel = prevRel
      }
      if (remaining < 4) throw tooShort(lsn, endLsn)
      const blkno = u32(raw, p)
      p += 4
      remaining -= 4
      const imageOffset = datatotal // relative to the payload start until the headers end
      datatotal += bimgLen + dataLength
      const block: MutableBlock = {
        id: blockId,
        forkNum: forkFlags & BKPBLOCK_FORK_MASK,
        forkFlags,
        rel,
        blkno,
        hasImage,
        hasData,
        willInit: (forkFlags & BKPBLOCK_WILL_INIT) !== 0,
        applyImage: hasImage && (bimgInfo & BKPIMAGE_APPLY) !== 0,
        bimgInfo,
        bimgLen,
        holeOffset,
        holeLength,
        compression: hasImage ? compressionOf(bimgInfo) : 'none',
        imageOffset,
        dataOffset: imageOffset + bimgLen,
        dataLength,
      }
      if (blocks === null) blocks = [block]
      else blocks.push(block)
    } else {
      throw bad(`invalid block_id ${blockId}`, lsn, endLsn)
    }
  }
  if (remaining !== datatotal) throw bad(`payload lengths add up to ${datatotal} but ${remaining} bytes remain`, lsn, endLsn)

  // p is now the payload start: make block offsets relative to the record's start. Main data comes last.
  const payloadStart = p - base
  let mainDataOffset = payloadStart
  if (blocks !== null) {
    for (const b of blocks) {
      b.imageOffset += payloadStart
      b.dataOffset += payloadStart
    }
    mainDataOffset = totLen - mainDataLength
  }
  return new DecodedRecord(
    lsn,
    endLsn,
    raw,
    base,
    totLen,
    u32(raw, base + 4),
    raw[base + 16]!,
    xl_rmid,
    blocks ?? NO_BLOCKS,
    origin,
    toplevelXid,
    mainDataOffset,
    mainDataLength,
  )
}

/** Plain memory where restoreBlockImage builds a page bound for shared memory (8 spare bytes to match its alignment). */
const stagingPage = Buffer.alloc(BLCKSZ + 8)

/**
 * The full 8 KiB page of a block image: decompressed, with its hole re-inserted as zeros. Writes into `out`
 * (reused by hot paths) or a new buffer.
 */
export function restoreBlockImage(rec: DecodedRecord, b: DecodedBlock, out: Buffer = Buffer.allocUnsafe(BLCKSZ)): Buffer {
  if (!b.hasImage) {
    throw new CorruptionError('WAL_NO_IMAGE', `block ${b.id} of the record ${rec.describePosition()} has no image`)
  }
  if (out.buffer instanceof SharedArrayBuffer && out.length >= BLCKSZ) {
    // Into shared memory (an in-memory layer's slab), pieces, zero fill and decompression would each run
    // byte by byte or be staged (lib/shared-copy.ts): the page is built in plain memory placed at `out`'s
    // alignment, then moved with one word-wise copy.
    const a = out.byteOffset & 7
    restoreBlockImage(rec, b, stagingPage.subarray(a, a + BLCKSZ))
    out.set(stagingPage.subarray(a, a + BLCKSZ))
    return out
  }
  const stored = rec.blockImageBytes(b)
  const bodyLength = BLCKSZ - b.holeLength
  if (b.holeLength === 0) {
    decompressImage(b.compression, stored, out, 0, BLCKSZ)
    return out
  }
  if (b.compression === 'none') {
    // Uncompressed with a hole: [0, holeOffset) then zeros then the rest.
    // (copyBytes: `stored` may lie in a shared WAL chunk, see lib/shared-copy.ts; `out` is plain here.)
    copyBytes(stored, out, 0, 0, b.holeOffset)
    out.fill(0, b.holeOffset, b.holeOffset + b.holeLength)
    copyBytes(stored, out, b.holeOffset + b.holeLength, b.holeOffset, bodyLength)
    return out
  }
  // Compressed with a hole: decompress to the end of the page, then move the tail up past the hole.
  const tailStart = b.holeOffset + b.holeLength
  decompressImage(b.compression, stored, out, b.holeLength, bodyLength)
  // Body now sits at [holeLength, 8192); its first holeOffset bytes belong at [0, holeOffset).
  out.copyWithin(0, b.holeLength, b.holeLength + b.holeOffset)
  out.fill(0, b.holeOffset, tailStart)
  return out
}
