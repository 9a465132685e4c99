/**
 * WalStreamDecoder: turns a byte stream of PostgreSQL 15 WAL, fed in any chunking, into records.
 *
 * Start at a page boundary or at a record boundary. At a page boundary whose page begins with the tail of a
 * record that started earlier (XLP_FIRST_IS_CONTRECORD), that tail is skipped: the first record decoded is
 * the first one that starts after it. Everything PostgreSQL's reader checks is checked here: page magic,
 * info bits, page address, timeline never decreasing, system id and segment size on long headers, the
 * continuation flag and remaining length of every continued page, the record header (length, resource
 * manager, previous-record link) and the CRC of every record. A failure is a CorruptionError naming the
 * LSN (wal-decoder-errors.ts); the decoder then stays failed (it never guesses where to resume).
 *
 * Positions are kept as JS numbers internally (exact below 2^53, i.e. 8 PiB of WAL) and handed out as Lsn.
 *
 * Memory: fed chunks are not copied. A record whole on one page is a view of its chunk; the pieces of a
 * record spanning pages are kept as views until it is complete (so memory follows the bytes received,
 * never a length read from the input), then joined into a shared slab or, with `inPlace`, inside the
 * chunk itself (wal-record-pieces.ts). Either way a record keeps the memory it lies in alive.
 *
 * Invariants:
 * - `pos` is the LSN of `buf[bufPos]`, the next byte not yet consumed.
 * - A record is handed out only when complete and CRC-valid; `endLsn` is PostgreSQL's EndRecPtr: the
 *   8-byte-aligned position after the record (after XLOG_SWITCH: the start of the next segment).
 * - Reading stops (`end` is set) at a zero record length, where PostgreSQL's own reader finds the end of
 *   valid WAL; whether that is normal (end of a WAL file) or an error (mid-stream) is the caller's call.
 *
 * Worked example (16 MiB segments): a record starting at 0/1FFFFF0 with xl_tot_len 80 puts 16 bytes on the
 * last page of segment 1; the next page (0/2000000) opens segment 2 with a 40-byte long header whose
 * xlp_rem_len is 64; the remaining 64 bytes follow at 0/2000028, so the record ends at 0/2000068 and the
 * next record starts at 0/2000068.
 */
import { CorruptionError } from '../lib/errors.js'
import { formatLsn, lsn as toLsn, type Lsn } from './lsn.js'
import { RM } from './rmgr.js'
import {
  DEFAULT_WAL_SEGMENT_SIZE,
  parsePageHeader,
  pageHeaderSize,
  SizeOfXLogLongPHD,
  SizeOfXLogShortPHD,
  XLOG_BLCKSZ,
  XLP_FIRST_IS_CONTRECORD,
  XLP_FIRST_IS_OVERWRITE_CONTRECORD,
  XLP_LONG_HEADER,
} from './wal-page.js'
import { decodeRecordAt, SizeOfXLogRecord, WAL_RECORD_MAX_BYTES, XLR_RMGR_INFO_MASK, type DecodedRecord } from './wal-record.js'
import { rmgrIdIsValid } from './rmgr.js'
import { recordCrcFault, walBadStartError, walError } from './wal-decoder-errors.js'
import type { WalDecoderOptions } from './wal-decoder-options.js'
import { copyPieces, joinPiecesInPlace } from './wal-record-pieces.js'

export type { WalDecoderOptions } from './wal-decoder-options.js'

const XLOG_SWITCH = 0x40
const EMPTY = Buffer.alloc(0)
/** Slab for assembled records (records spanning pages or chunks): one allocation per ~100 such records. */
const RECORD_SLAB_BYTES = 1024 * 1024

export interface WalEnd {
  /** Where the invalid (zero-length) record would have started. */
  readonly lsn: Lsn
  readonly reason: string
}

export class WalStreamDecoder {
  private buf: Buffer = EMPTY
  private bufPos = 0
  private pos: number
  /** Bytes up to this LSN are padding to skip (record alignment, or the rest of a segment after a switch). */
  private skipTo: number
  /** Page whose header has been consumed (so a position at that page's start is not re-read as a header). */
  private headerDoneAt = -1
  private curPageHeaderSize = 0
  private lastTli = 0
  private sysid: bigint | null
  private readonly segSize: number
  private readonly recordMax: number
  private readonly inPlace: boolean
  private readonly deferCrc: boolean
  private prevRecPtr: number | null
  /** No record has started yet: a continuation at the first page is skipped rather than an error. */
  private syncing = true
  private contSkip = 0

  // The record being assembled.
  private inRecord = false
  private recStart = 0
  private recTotLen = 0
  private recGot = 0
  /**
   * Fragments of a record spanning pages or chunks, joined once complete (wal-record-pieces.ts): piece i
   * is pieceBuf[i][pieceStart[i], pieceStart[i] + pieceLen[i]), plain numbers, not views. The arrays are
   * reused; entries past `pieceCount` are cleared so they keep no old chunk alive.
   */
  private pieceBuf: Buffer[] = []
  private pieceStart: number[] = []
  private pieceLen: number[] = []
  private pieceCount = 0
  private slab: Buffer = EMPTY
  private slabUsed = RECORD_SLAB_BYTES
  private readonly hdrBuf = Buffer.alloc(SizeOfXLogRecord)
  private hdrValidated = false

  private failure: Error | null = null
  private endInfo: WalEnd | null = null

  constructor(opts: WalDecoderOptions) {
    this.pos = Number(opts.startLsn)
    if (!Number.isSafeInteger(this.pos)) throw new RangeError(`start LSN ${formatLsn(opts.startLsn)} is too large`)
    this.skipTo = this.pos
    this.sysid = opts.systemId ?? null
    this.segSize = opts.segmentSizeBytes ?? DEFAULT_WAL_SEGMENT_SIZE
    this.recordMax = opts.recordMaxBytes ?? WAL_RECORD_MAX_BYTES
    this.inPlace = opts.inPlace ?? false
    this.deferCrc = opts.deferCrc ?? false
    this.prevRecPtr = opts.prevRecordLsn == null ? null : Number(opts.prevRecordLsn)
    const off = this.pos % XLOG_BLCKSZ
    // A segment's first page has the 40-byte long header: no record starts inside it.
    const headerBytes = this.pos % this.segSize < XLOG_BLCKSZ ? SizeOfXLogLongPHD : SizeOfXLogShortPHD
    if (off !== 0 && (off < headerBytes || off % 8 !== 0)) {
      throw walBadStartError(opts.startLsn)
    }
    // A start inside a page is a record boundary: no continuation to skip.
    if (off !== 0) this.syncing = false
  }

  /** LSN of the next byte the decoder needs (padding it may skip counts as needed: feed contiguously). */
  get position(): Lsn {
    return toLsn(this.pos)
  }

  /** The system identifier, once known (given or learned from a long page header). */
  get systemId(): bigint | null {
    return this.sysid
  }

  /** Set once a zero-length record is met: the end of valid WAL. */
  get end(): WalEnd | null {
    return this.endInfo
  }

  /** Start LSN of the last record handed out. */
  get lastRecordLsn(): Lsn | null {
    return this.prevRecPtr === null ? null : toLsn(this.prevRecPtr)
  }

  /** Appends the next bytes of the stream (contiguous with everything fed before). The chunk is not copied. */
  feed(chunk: Buffer): void {
    if (chunk.length === 0) return
    if (this.bufPos >= this.buf.length) {
      this.buf = chunk
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.bufPos), chunk])
    }
    this.bufPos = 0
  }

  /** Whether the decoder still refers to `chunk`'s bytes (the current input, or a piece of a record under way). */
  holds(chunk: Buffer): boolean {
    if (this.buf === chunk && this.bufPos < this.buf.length) return true
    for (let i = 0; i < this.pieceCount; i++) if (this.pieceBuf[i] === chunk) return true
    return false
  }

  /** Bytes fed but not yet consumed. */
  get buffered(): number {
    return this.buf.length - this.bufPos
  }

  /** The next complete record, or null when more bytes are needed (or the end of valid WAL was reached). */
  next(): DecodedRecord | null {
    if (this.failure) throw this.failure
    if (this.endInfo) return null
    try {
      return this.step()
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e))
      throw this.failure
    }
  }

  private avail(): number {
    return this.buf.length - this.bufPos
  }

  private consume(n: number): void {
    this.bufPos += n
    this.pos += n
  }

  private step(): DecodedRecord | null {
    for (;;) {
      if (this.pos < this.skipTo) {
        // Padding after a record: alignment (never past the page end), or the rest of the segment after
        // XLOG_SWITCH, whose pages are never read as pages (PostgreSQL's reader jumps to the next segment).
        const pageEnd = this.pos - (this.pos % XLOG_BLCKSZ) + XLOG_BLCKSZ
        const n = Math.min(this.skipTo - this.pos, pageEnd - this.pos, this.avail())
        if (n === 0) return null
        this.consume(n)
        continue
      }
      // Page header at every page boundary.
      if (this.pos % XLOG_BLCKSZ === 0 && this.headerDoneAt !== this.pos) {
        if (!this.readPageHeader()) return null
        continue
      }
      if (this.contSkip > 0) {
        const n = Math.min(this.contSkip, XLOG_BLCKSZ - (this.pos % XLOG_BLCKSZ), this.avail())
        if (n === 0) return null
        this.consume(n)
        this.contSkip -= n
        if (this.contSkip === 0) {
          this.skipTo = align8(this.pos)
          this.syncing = false // past the tail: the next page may no longer begin with a continuation
        }
        continue
      }
      if (!this.inRecord) {
        const begun = this.beginRecord()
        if (begun === false) return null
        if (this.endInfo) return null
        if (begun !== true) return begun
        continue
      }
      const rec = this.continueRecord()
      if (rec === 'more') return null
      if (rec !== null) return rec
    }
  }

  /** Reads and validates the header of the page starting at `pos`. False if more bytes are needed. */
  private readPageHeader(): boolean {
    if (this.avail() < SizeOfXLogShortPHD) return false
    const info = this.buf.readUInt16LE(this.bufPos + 2)
    const size = pageHeaderSize(info)
    if (this.avail() < size) return false
    const hdr = parsePageHeader(this.buf, this.bufPos, this.pos, this.segSize, this.sysid)
    if (hdr.xlp_tli < this.lastTli) {
      throw this.err('WAL_TIMELINE_BACKWARDS', `timeline ${hdr.xlp_tli} after ${this.lastTli} in WAL page`, this.pos)
    }
    this.lastTli = hdr.xlp_tli
    if (info & XLP_LONG_HEADER && this.sysid === null) this.sysid = hdr.xlp_sysid ?? null
    const pageLsn = this.pos
    this.headerDoneAt = pageLsn
    this.curPageHeaderSize = size
    this.consume(size)

    if (this.inRecord) {
      if (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) {
        // The record we were assembling was abandoned by a crash and overwritten: drop it, read on here.
        this.inRecord = false
        this.clearPieces()
        return true
      }
      if (!(info & XLP_FIRST_IS_CONTRECORD)) {
        throw this.err('WAL_MISSING_CONTRECORD', 'there is no continuation flag on the page after a record that spans it', pageLsn)
      }
      const expected = this.recTotLen - this.recGot
      if (hdr.xlp_rem_len === 0 || hdr.xlp_rem_len !== expected) {
        throw this.err('WAL_BAD_CONTRECORD_LENGTH', `continuation length ${hdr.xlp_rem_len}, expected ${expected}`, pageLsn)
      }
      return true
    }
    if (this.contSkip > 0) {
      if (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) {
        this.contSkip = 0
        return true
      }
      if (!(info & XLP_FIRST_IS_CONTRECORD) || hdr.xlp_rem_len !== this.contSkip) {
        throw this.err('WAL_BAD_CONTRECORD_LENGTH', `continuation length ${hdr.xlp_rem_len}, expected ${this.contSkip}`, pageLsn)
      }
      return true
    }
    if (info & XLP_FIRST_IS_CONTRECORD && !(info & XLP_FIRST_IS_OVERWRITE_CONTRECORD)) {
      if (!this.syncing) {
        throw this.err('WAL_UNEXPECTED_CONTRECORD', 'page continues a record that never started', pageLsn)
      }
      // Started at a page boundary in the middle of a record: skip its tail.
      this.contSkip = hdr.xlp_rem_len
      if (this.contSkip === 0) throw this.err('WAL_BAD_CONTRECORD_LENGTH', 'continuation flag with zero length', pageLsn)
    }
    return true
  }

  /**
   * Starts a record at `pos`. False if more bytes are needed; the record itself when it was whole on this
   * page and already buffered (then no copy is made: its raw bytes are a view of the fed chunk).
   */
  private beginRecord(): boolean | DecodedRecord {
    const pageOff = this.pos % XLOG_BLCKSZ
    if (pageOff < this.curPageHeaderSize && this.headerDoneAt === this.pos - pageOff) {
      throw this.err('WAL_BAD_RECORD_OFFSET', 'record starts inside the page header', this.pos)
    }
    // xl_tot_len is always on the record's first page (records are 8-aligned, so >= 8 bytes remain).
    if (this.avail() < 4) return false
    const totLen = u32(this.buf, this.bufPos) // avail() >= 4
    if (totLen < SizeOfXLogRecord) {
      if (totLen === 0) {
        this.endInfo = { lsn: toLsn(this.pos), reason: `invalid record length at ${formatLsn(BigInt(this.pos))}: wanted 24, got 0` }
        return true
      }
      throw this.err('WAL_BAD_RECORD_LENGTH', `invalid record length: wanted at least 24, got ${totLen}`, this.pos)
    }
    this.syncing = false
    this.inRecord = true
    this.recStart = this.pos
    this.recTotLen = totLen
    this.recGot = 0
    this.clearPieces()
    this.hdrValidated = false
    const pageRemain = XLOG_BLCKSZ - pageOff
    // Fast path: the whole record is on this page and already buffered: hand out a view, no copy.
    if (totLen <= pageRemain && this.avail() >= totLen) {
      this.validateHeader(this.buf, this.bufPos)
      const at = this.bufPos
      this.consume(totLen)
      this.recGot = totLen
      return this.finishRecord(this.buf, at)
    }
    return true
  }

  /**
   * Collects available bytes of the current record (as views of the fed chunks: memory follows what was
   * really received, never the announced length). Returns the record when complete, 'more' when starved.
   */
  private continueRecord(): DecodedRecord | 'more' | null {
    const pageRemain = XLOG_BLCKSZ - (this.pos % XLOG_BLCKSZ)
    const n = Math.min(pageRemain, this.recTotLen - this.recGot, this.avail())
    if (n === 0) return 'more'
    if (!this.hdrValidated) {
      // Header bytes go to hdrBuf first: the length is not trusted until the header (and, for a header
      // split across pages, the next page's continuation length) has been checked.
      const h = Math.min(n, SizeOfXLogRecord - this.recGot)
      if (h === SizeOfXLogRecord) {
        // The whole header is here: check it where it lies, keep a view.
        this.validateHeader(this.buf, this.bufPos)
        this.addPiece(this.buf, this.bufPos, h)
      } else {
        this.buf.copy(this.hdrBuf, this.recGot, this.bufPos, this.bufPos + h)
      }
      this.consume(h)
      this.recGot += h
      if (this.recGot < SizeOfXLogRecord) return null
      if (h !== SizeOfXLogRecord) {
        this.validateHeader(this.hdrBuf, 0)
        // hdrBuf is rewritten only by the next record, after this one has been assembled.
        this.addPiece(this.hdrBuf, 0, SizeOfXLogRecord)
      }
      if (this.recTotLen > this.recordMax) {
        throw this.err('WAL_RECORD_TOO_LARGE', `record length ${this.recTotLen} exceeds the limit ${this.recordMax}`, this.recStart)
      }
      return this.recGot < this.recTotLen ? null : this.assemble()
    }
    this.addPiece(this.buf, this.bufPos, n)
    this.consume(n)
    this.recGot += n
    return this.recGot < this.recTotLen ? null : this.assemble()
  }

  private addPiece(b: Buffer, start: number, len: number): void {
    const i = this.pieceCount++
    this.pieceBuf[i] = b
    this.pieceStart[i] = start
    this.pieceLen[i] = len
  }

  private clearPieces(): void {
    for (let i = 0; i < this.pieceCount; i++) this.pieceBuf[i] = EMPTY
    this.pieceCount = 0
  }

  private assemble(): DecodedRecord {
    const at = this.inPlace ? joinPiecesInPlace(this.buf, this.hdrBuf, this.pieceBuf, this.pieceStart, this.pieceLen, this.pieceCount) : -1
    if (at >= 0) {
      this.clearPieces()
      return this.finishRecord(this.buf, at)
    }
    const raw = this.allocRecord(this.recTotLen)
    copyPieces(raw, this.pieceBuf, this.pieceStart, this.pieceLen, this.pieceCount)
    this.clearPieces()
    return this.finishRecord(raw, 0)
  }

  /**
   * Room for an assembled record: carved from a shared slab when small (an ArrayBuffer per record costs
   * more than the copy into it), its own buffer when large. A record keeps its slab alive, as a record
   * decoded in place keeps its fed chunk alive.
   */
  private allocRecord(n: number): Buffer {
    if (n > RECORD_SLAB_BYTES / 8) return Buffer.allocUnsafeSlow(n)
    if (this.slabUsed + n > RECORD_SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(RECORD_SLAB_BYTES)
      this.slabUsed = 0
    }
    const out = this.slab.subarray(this.slabUsed, this.slabUsed + n)
    this.slabUsed += (n + 7) & ~7
    return out
  }

  private validateHeader(b: Buffer, off: number): void {
    const rmid = b[off + 17]!
    if (!rmgrIdIsValid(rmid)) throw this.err('WAL_BAD_RMGR', `invalid resource manager id ${rmid}`, this.recStart)
    const prev = u32(b, off + 8) + u32(b, off + 12) * 0x1_0000_0000 // no BigInt per record; the header is there
    if (this.prevRecPtr === null) {
      if (!(prev < this.recStart)) {
        throw this.err('WAL_BAD_PREV_LINK', `record with incorrect prev-link ${formatLsn(BigInt(prev))}`, this.recStart)
      }
    } else if (prev !== this.prevRecPtr) {
      throw this.err(
        'WAL_BAD_PREV_LINK',
        `record with incorrect prev-link ${formatLsn(BigInt(prev))} (previous record at ${formatLsn(BigInt(this.prevRecPtr))})`,
        this.recStart,
      )
    }
    this.hdrValidated = true
  }

  /** The record of recTotLen bytes at `at` in `bytes` is complete: check it, decode it, move past it. */
  private finishRecord(bytes: Buffer, at: number): DecodedRecord {
    const start = this.recStart
    const len = this.recTotLen
    if (!this.deferCrc) {
      const fault = recordCrcFault(bytes, at, len, start)
      if (fault !== null) throw fault
    }
    let end = align8(this.pos)
    const isSwitch = bytes[at + 17] === RM.XLOG && (bytes[at + 16]! & XLR_RMGR_INFO_MASK) === XLOG_SWITCH
    if (isSwitch) end = (Math.floor((this.pos - 1) / this.segSize) + 1) * this.segSize
    this.inRecord = false
    this.prevRecPtr = start
    this.skipTo = end
    if (!this.deferCrc) return decodeRecordAt(bytes, at, len, start, end)
    try {
      return decodeRecordAt(bytes, at, len, start, end)
    } catch (e) {
      // A damaged record is reported as damaged, as without deferral.
      throw recordCrcFault(bytes, at, len, start) ?? e
    }
  }

  private err(code: string, message: string, at: number): CorruptionError {
    return walError(code, message, at)
  }
}

/** Little-endian u32 without Buffer's argument checks (callers have checked the bytes are there). */
function u32(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8
}
