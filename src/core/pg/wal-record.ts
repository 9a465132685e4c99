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
 * Records are views into `raw`; they allocate only the small block-reference objects.
 */
import { CorruptionError } from '../lib/errors.js'
import { crc32c } from '../lib/crc32c.js'
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

export class DecodedRecord {
  constructor(
    /** start LSN (INVALID when decoded from raw bytes without position, as in the walredo protocol) */
    readonly lsn: Lsn,
    /** end LSN = start of the next record = the LSN redo stamps on pages (PostgreSQL's EndRecPtr) */
    readonly endLsn: Lsn,
    /** the whole record, exactly xl_tot_len bytes */
    readonly raw: Buffer,
    readonly xl_xid: number,
    readonly xl_prev: Lsn,
    readonly xl_info: number,
    readonly xl_rmid: number,
    readonly xl_crc: number,
    readonly blocks: readonly DecodedBlock[],
    readonly origin: number | null,
    readonly toplevelXid: number | null,
    readonly mainDataOffset: number,
    readonly mainDataLength: number,
  ) {}

  get xl_tot_len(): number {
    return this.raw.length
  }

  /** The record type bits of xl_info (high nibble), which select the rmgr-specific record kind. */
  get rmgrInfo(): number {
    return this.xl_info & XLR_RMGR_INFO_MASK
  }

  mainData(): Buffer {
    return this.raw.subarray(this.mainDataOffset, this.mainDataOffset + this.mainDataLength)
  }

  /** The block reference with this block_id, if present. */
  block(id: number): DecodedBlock | undefined {
    for (const b of this.blocks) if (b.id === id) return b
    return undefined
  }

  blockData(b: DecodedBlock): Buffer {
    return this.raw.subarray(b.dataOffset, b.dataOffset + b.dataLength)
  }

  /** The stored (possibly compressed) image bytes. */
  blockImageBytes(b: DecodedBlock): Buffer {
    return this.raw.subarray(b.imageOffset, b.imageOffset + b.bimgLen)
  }

  /** A short label for errors: "Heap record at 0/16B3748" or "... ending at ..." when the start is unknown. */
  describePosition(): string {
    return this.lsn !== INVALID_LSN ? `at ${formatLsn(this.lsn)}` : `ending at ${formatLsn(this.endLsn)}`
  }
}

/** CRC-32C of a reassembled record as PostgreSQL computes it: body first, then the header up to xl_crc. */
export function recordCrc(raw: Buffer): number {
  return crc32c(raw.subarray(0, 20), crc32c(raw.subarray(SizeOfXLogRecord)))
}

export function recordCrcIsValid(raw: Buffer): boolean {
  return raw.length >= SizeOfXLogRecord && recordCrc(raw) === raw.readUInt32LE(20)
}

function bad(what: string, where: string): CorruptionError {
  return new CorruptionError('WAL_BAD_RECORD', `invalid WAL record ${where}: ${what}`, {
    hint: 'The WAL is corrupt or was not written by PostgreSQL 15.',
    details: { at: where },
  })
}

/**
 * Decodes a reassembled record. Validates the structure as PostgreSQL does (not the CRC: see
 * `recordCrcIsValid`; the stream decoder checks it before calling this).
 */
export function decodeRecord(raw: Buffer, lsn: Lsn = INVALID_LSN, endLsn: Lsn = INVALID_LSN): DecodedRecord {
  const where = lsn !== INVALID_LSN ? `at ${formatLsn(lsn)}` : `ending at ${formatLsn(endLsn)}`
  if (raw.length < SizeOfXLogRecord) throw bad(`length ${raw.length} is shorter than a record header`, where)
  const totLen = raw.readUInt32LE(0)
  if (totLen !== raw.length) throw bad(`xl_tot_len ${totLen} does not match the ${raw.length} bytes given`, where)
  const xl_rmid = raw[17]!
  if (!rmgrIdIsValid(xl_rmid)) throw bad(`invalid resource manager id ${xl_rmid}`, where)

  const blocks: DecodedBlock[] = []
  let origin: number | null = null
  let toplevelXid: number | null = null
  let mainDataLength = 0
  let maxBlockId = -1
  let prevRel: RelFileNode | null = null

  // Pass 1: fragment headers. `datatotal` counts payload bytes announced so far.
  let p = SizeOfXLogRecord
  let remaining = totLen - SizeOfXLogRecord
  let datatotal = 0
  const need = (n: number): void => {
    if (remaining < n) throw bad('record is too short for its fragment headers', where)
    remaining -= n
  }
  interface PendingBlock {
    id: number
    forkFlags: number
    dataLength: number
    hasImage: boolean
    bimgLen: number
    holeOffset: number
    holeLength: number
    bimgInfo: number
    rel: RelFileNode
    blkno: number
  }
  const pending: PendingBlock[] = []
  while (remaining > datatotal) {
    need(1)
    const blockId = raw[p++]!
    if (blockId === XLR_BLOCK_ID_DATA_SHORT) {
      need(1)
      mainDataLength = raw[p++]!
      datatotal += mainDataLength
      break
    } else if (blockId === XLR_BLOCK_ID_DATA_LONG) {
      need(4)
      mainDataLength = raw.readUInt32LE(p)
      p += 4
      datatotal += mainDataLength
      break
    } else if (blockId === XLR_BLOCK_ID_ORIGIN) {
      need(2)
      origin = raw.readUInt16LE(p)
      p += 2
    } else if (blockId === XLR_BLOCK_ID_TOPLEVEL_XID) {
      need(4)
      toplevelXid = raw.readUInt32LE(p)
      p += 4
    } else if (blockId <= XLR_MAX_BLOCK_ID) {
      if (blockId <= maxBlockId) throw bad(`out-of-order block_id ${blockId}`, where)
      maxBlockId = blockId
      need(3)
      const forkFlags = raw[p]!
      const dataLength = raw.readUInt16LE(p + 1)
      p += 3
      const hasData = (forkFlags & BKPBLOCK_HAS_DATA) !== 0
      if (hasData && dataLength === 0) throw bad('BKPBLOCK_HAS_DATA set, but no data included', where)
      if (!hasData && dataLength !== 0) throw bad(`BKPBLOCK_HAS_DATA not set, but data length is ${dataLength}`, where)
      datatotal += dataLength
      const hasImage = (forkFlags & BKPBLOCK_HAS_IMAGE) !== 0
      let bimgLen = 0
      let holeOffset = 0
      let holeLength = 0
      let bimgInfo = 0
      if (hasImage) {
        need(5)
        bimgLen = raw.readUInt16LE(p)
        holeOffset = raw.readUInt16LE(p + 2)
        bimgInfo = raw[p + 4]!
        p += 5
        const compressed = (bimgInfo & BKPIMAGE_COMPRESSED_MASK) !== 0
        const hasHole = (bimgInfo & BKPIMAGE_HAS_HOLE) !== 0
        if (compressed) {
          if (hasHole) {
            need(2)
            holeLength = raw.readUInt16LE(p)
            p += 2
          }
        } else {
          holeLength = BLCKSZ - bimgLen
        }
        datatotal += bimgLen
        if (hasHole && (holeOffset === 0 || holeLength === 0 || bimgLen === BLCKSZ)) {
          throw bad(`BKPIMAGE_HAS_HOLE set, but hole offset ${holeOffset} length ${holeLength} image length ${bimgLen}`, where)
        }
        if (!hasHole && (holeOffset !== 0 || holeLength !== 0)) {
          throw bad(`BKPIMAGE_HAS_HOLE not set, but hole offset ${holeOffset} length ${holeLength}`, where)
        }
        if (compressed && bimgLen === BLCKSZ) throw bad(`compressed image with length ${bimgLen}`, where)
        if (!hasHole && !compressed && bimgLen !== BLCKSZ) throw bad(`uncompressed image without hole has length ${bimgLen}`, where)
        if (holeOffset + holeLength > BLCKSZ) throw bad(`hole ${holeOffset}+${holeLength} exceeds the page`, where)
      }
      let rel: RelFileNode
      if ((forkFlags & BKPBLOCK_SAME_REL) === 0) {
        need(12)
        rel = { spcNode: raw.readUInt32LE(p), dbNode: raw.readUInt32LE(p + 4), relNode: raw.readUInt32LE(p + 8) }
        p += 12
        prevRel = rel
      } else {
        if (prevRel === null) throw bad('BKPBLOCK_SAME_REL set but no previous rel', where)
        rel = prevRel
      }
      need(4)
      const blkno = raw.readUInt32LE(p)
      p += 4
      pending.push({ id: blockId, forkFlags, dataLength, hasImage, bimgLen, holeOffset, holeLength, bimgInfo, rel, blkno })
    } else {
      throw bad(`invalid block_id ${blockId}`, where)
    }
  }
  if (remaining !== datatotal) throw bad(`payload lengths add up to ${datatotal} but ${remaining} bytes remain`, where)

  // Pass 2: payload offsets, in the order the writer laid them out.
  for (const b of pending) {
    const imageOffset = p
    p += b.bimgLen
    const dataOffset = p
    p += b.dataLength
    const info = b.bimgInfo
    const compression: ImageCompression = !b.hasImage
      ? 'none'
      : info & BKPIMAGE_COMPRESS_PGLZ
        ? 'pglz'
        : info & BKPIMAGE_COMPRESS_LZ4
          ? 'lz4'
          : info & BKPIMAGE_COMPRESS_ZSTD
            ? 'zstd'
            : 'none'
    blocks.push({
      id: b.id,
      forkNum: b.forkFlags & BKPBLOCK_FORK_MASK,
      forkFlags: b.forkFlags,
      rel: b.rel,
      blkno: b.blkno,
      hasImage: b.hasImage,
      hasData: b.dataLength > 0,
      willInit: (b.forkFlags & BKPBLOCK_WILL_INIT) !== 0,
      applyImage: b.hasImage && (info & BKPIMAGE_APPLY) !== 0,
      bimgInfo: info,
      bimgLen: b.bimgLen,
      holeOffset: b.holeOffset,
      holeLength: b.holeLength,
      compression,
      imageOffset,
      dataOffset,
      dataLength: b.dataLength,
    })
  }
  const mainDataOffset = p
  return new DecodedRecord(
    lsn,
    endLsn,
    raw,
    raw.readUInt32LE(4),
    raw.readBigUInt64LE(8) as Lsn,
    raw[16]!,
    xl_rmid,
    raw.readUInt32LE(20),
    blocks,
    origin,
    toplevelXid,
    mainDataOffset,
    mainDataLength,
  )
}

/**
 * The full 8 KiB page of a block image: decompressed, with its hole re-inserted as zeros. Writes into `out`
 * (reused by hot paths) or a new buffer.
 */
export function restoreBlockImage(rec: DecodedRecord, b: DecodedBlock, out: Buffer = Buffer.allocUnsafe(BLCKSZ)): Buffer {
  if (!b.hasImage) {
    throw new CorruptionError('WAL_NO_IMAGE', `block ${b.id} of the record ${rec.describePosition()} has no image`)
  }
  const stored = rec.blockImageBytes(b)
  const bodyLength = BLCKSZ - b.holeLength
  if (b.holeLength === 0) {
    decompressImage(b.compression, stored, out, 0, BLCKSZ)
    return out
  }
  if (b.compression === 'none') {
    // Uncompressed with a hole: [0, holeOffset) then zeros then the rest.
    stored.copy(out, 0, 0, b.holeOffset)
    out.fill(0, b.holeOffset, b.holeOffset + b.holeLength)
    stored.copy(out, b.holeOffset + b.holeLength, b.holeOffset, bodyLength)
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
