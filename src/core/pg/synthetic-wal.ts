/**
 * Synthetic WAL for backups: the WAL segment file(s) a data directory needs to start at an LSN.
 *
 * `shutdownCheckpointWal` (fullbackup) builds the segment holding one XLOG_CHECKPOINT_SHUTDOWN record at the
 * backup LSN, so stock PostgreSQL 15 finds, through pg_control, a shutdown checkpoint whose redo pointer is
 * its own position: a clean shutdown, no recovery, and new WAL is appended right after the record.
 * `neonBootstrapWalSegment` (Neon's basebackup) builds the same segment with page headers only: Neon's
 * compute starts from `neon.signal` and never reads a checkpoint record.
 *
 * Invariants of what is built:
 * - The record starts where PostgreSQL would insert it: at the LSN, or after the page header when the LSN
 *   is a page boundary (CreateCheckPoint skips the header the same way). pg_control must point there.
 * - The segment's first page has a valid long header (system id, segment size, WAL block size).
 * - Every page from the segment's first up to the one holding the record start has a valid header, and
 *   those headers claim the bytes before the record as the tail of a continued record
 *   (XLP_FIRST_IS_CONTRECORD, xlp_rem_len = what is left of the gap from that page on): pg_waldump and our
 *   decoder, which begin at a page boundary (the segment's start by default) and skip a continued tail,
 *   then land exactly on the record. PostgreSQL itself reads the record by random access at pg_control's
 *   checkpoint location and never looks at the gap.
 * - A record that does not fit on its page continues on the next one, whose header says so with the
 *   remaining length; at the last bytes of a segment that next page opens the following segment file, so
 *   two files are produced.
 * - Everything else is zeros: the reader stops at the zero xl_tot_len after the record.
 *
 * Segments are described sparsely (header and record bytes at offsets over zeros) because a 16 MiB
 * segment is almost all zeros: the tar writer streams zeros from one shared buffer.
 *
 * Worked example (16 MiB segments): LSN 0/3001FF8 lies on the first page of segment 3 (0/3000000, long
 * header), 8 bytes before the next page. The record (114 bytes) puts its first 8 bytes there, and that
 * page's header declares the 8144 bytes between the header and the record (0x1FF8 - 40) as a continued
 * tail. Page 0/3002000 gets a short header with XLP_FIRST_IS_CONTRECORD and xlp_rem_len 106; the other 106
 * bytes follow at 0/3002018, so the record ends at 0/3002082, aligned: 0/3002088.
 */
import { UsageError } from '../lib/errors.js'
import { encodeCheckPoint, SIZEOF_CHECKPOINT, type CheckPoint } from './controlfile.js'
import { formatLsn, lsn as toLsn, type Lsn } from './lsn.js'
import { RM } from './rmgr.js'
import {
  DEFAULT_WAL_SEGMENT_SIZE,
  SizeOfXLogLongPHD,
  SizeOfXLogShortPHD,
  walFileName,
  XLOG_BLCKSZ,
  XLOG_PAGE_MAGIC,
  XLP_FIRST_IS_CONTRECORD,
  XLP_LONG_HEADER,
} from './wal-page.js'
import { recordCrc, SizeOfXLogRecord, XLR_BLOCK_ID_DATA_SHORT } from './wal-record.js'
import { XLOG_CHECKPOINT_SHUTDOWN } from './xlog-info.js'

/** XLogRecordDataHeaderShort: block id 255 and a one-byte length. */
export const SizeOfXLogRecordDataHeaderShort = 2
/** xl_tot_len of a checkpoint record; ReadCheckpointRecord refuses any other length. */
export const CHECKPOINT_RECORD_BYTES = SizeOfXLogRecord + SizeOfXLogRecordDataHeaderShort + SIZEOF_CHECKPOINT

export interface WalPiece {
  /** Offset inside the segment file. */
  readonly offset: number
  readonly bytes: Buffer
}

export interface SyntheticWalSegment {
  /** "000000010000000000000003" */
  readonly fileName: string
  readonly segno: bigint
  readonly sizeBytes: number
  /** Non-zero bytes, sorted by offset, never overlapping; everything else is zero. */
  readonly pieces: readonly WalPiece[]
}

export interface SyntheticWal {
  /** Start of the checkpoint record: pg_control's checkPoint and the checkpoint's redo. */
  readonly checkpointLsn: Lsn
  /** End of the record (PostgreSQL's EndRecPtr): where the started server appends its first record. */
  readonly endLsn: Lsn
  /** The CheckPoint as written into the record. */
  readonly checkpoint: CheckPoint
  /** One segment, or two when the record crosses into the next segment. */
  readonly segments: readonly SyntheticWalSegment[]
}

export interface ShutdownCheckpointWalOptions {
  /** The backup LSN: 8-byte aligned. */
  readonly lsn: Lsn
  readonly systemId: bigint
  /** The timeline's CheckPoint at the LSN (redo, PrevTimeLineID and oldestActiveXid are replaced). */
  readonly checkpoint: CheckPoint
  /** xl_prev: start of the record before; INVALID (0) when unknown, as in PostgreSQL's bootstrap record. */
  readonly prevLsn: Lsn
  readonly segSizeBytes?: number
}

function checkGeometry(lsnValue: Lsn, segSizeBytes: number): void {
  if (!Number.isInteger(segSizeBytes) || segSizeBytes < XLOG_BLCKSZ || (segSizeBytes & (segSizeBytes - 1)) !== 0) {
    throw new UsageError('BAD_WAL_SEGMENT_SIZE', `WAL segment size ${segSizeBytes} is not a power of two of at least one page`, {
      hint: 'pg_control carries the segment size; PostgreSQL 15 allows 1 MiB to 1 GiB.',
    })
  }
  if (lsnValue % 8n !== 0n || lsnValue === 0n) {
    throw new UsageError('BACKUP_LSN_UNALIGNED', `LSN ${formatLsn(lsnValue)} is not a WAL record boundary (8-byte aligned)`, {
      hint: 'Give an LSN PostgreSQL reported (pg_current_wal_insert_lsn) or one aligned up to a multiple of 8.',
    })
  }
}

function pageHeaderBytesAt(pageLsn: bigint, segSizeBytes: number): number {
  return pageLsn % BigInt(segSizeBytes) === 0n ? SizeOfXLogLongPHD : SizeOfXLogShortPHD
}

/**
 * Where PostgreSQL inserts a record when its insert position is `lsn`: `lsn` itself, or just after the page
 * header when `lsn` is a page boundary (40 bytes on a segment's first page, 24 on others).
 */
export function checkpointRecordLsn(lsnValue: Lsn, segSizeBytes = DEFAULT_WAL_SEGMENT_SIZE): Lsn {
  checkGeometry(lsnValue, segSizeBytes)
  if (lsnValue % BigInt(XLOG_BLCKSZ) !== 0n) return lsnValue
  return toLsn(lsnValue + BigInt(pageHeaderBytesAt(lsnValue, segSizeBytes)))
}

/**
 * The backup LSN a checkpoint location stands for: the page boundary when the record sits right after a
 * page header (no record can end there), else the location itself. Inverse of `checkpointRecordLsn`.
 */
export function backupLsnOfCheckpoint(checkpointLsn: Lsn, segSizeBytes = DEFAULT_WAL_SEGMENT_SIZE): Lsn {
  const pageOff = checkpointLsn % BigInt(XLOG_BLCKSZ)
  const pageLsn = checkpointLsn - pageOff
  return pageOff === BigInt(pageHeaderBytesAt(pageLsn, segSizeBytes)) ? toLsn(pageLsn) : checkpointLsn
}

/**
 * `lsn` as a position between records: an LSN inside a page header (past the page boundary, before the
 * header's end: no record can end there) stands for the same WAL as the page boundary, and becomes it;
 * any other LSN is returned as it is. Backups and branch points are taken at such positions (a synthetic
 * WAL segment cannot start a record inside a header).
 */
export function lsnOutsidePageHeader(lsn: Lsn, segSizeBytes = DEFAULT_WAL_SEGMENT_SIZE): Lsn {
  const pageOff = lsn % BigInt(XLOG_BLCKSZ)
  const pageLsn = lsn - pageOff
  return pageOff > 0n && pageOff < BigInt(pageHeaderBytesAt(pageLsn, segSizeBytes)) ? toLsn(pageLsn) : lsn
}

/** The 114-byte XLOG_CHECKPOINT_SHUTDOWN record (rmgr XLOG, no xid, short main-data header) with its CRC. */
export function encodeCheckpointRecord(cp: CheckPoint, xl_prev: Lsn): Buffer {
  const raw = Buffer.alloc(CHECKPOINT_RECORD_BYTES)
  raw.writeUInt32LE(CHECKPOINT_RECORD_BYTES, 0) // xl_tot_len
  raw.writeUInt32LE(0, 4) // xl_xid: a checkpoint belongs to no transaction
  raw.writeBigUInt64LE(xl_prev, 8)
  raw[16] = XLOG_CHECKPOINT_SHUTDOWN // xl_info
  raw[17] = RM.XLOG // xl_rmid
  raw[SizeOfXLogRecord] = XLR_BLOCK_ID_DATA_SHORT
  raw[SizeOfXLogRecord + 1] = SIZEOF_CHECKPOINT
  encodeCheckPoint(cp).copy(raw, SizeOfXLogRecord + SizeOfXLogRecordDataHeaderShort)
  raw.writeUInt32LE(recordCrc(raw), 20) // xl_crc
  return raw
}

interface PageHeaderFields {
  pageLsn: bigint
  info: number
  tli: number
  remLen: number
  systemId: bigint
  segSizeBytes: number
}

/** A short (24-byte) or long (40-byte, on a segment's first page) page header. */
export function encodePageHeader(h: PageHeaderFields): Buffer {
  const long = h.pageLsn % BigInt(h.segSizeBytes) === 0n
  const b = Buffer.alloc(long ? SizeOfXLogLongPHD : SizeOfXLogShortPHD)
  b.writeUInt16LE(XLOG_PAGE_MAGIC, 0)
  b.writeUInt16LE(h.info | (long ? XLP_LONG_HEADER : 0), 2)
  b.writeUInt32LE(h.tli, 4)
  b.writeBigUInt64LE(h.pageLsn, 8)
  b.writeUInt32LE(h.remLen, 16)
  if (long) {
    b.writeBigUInt64LE(h.systemId, 24)
    b.writeUInt32LE(h.segSizeBytes, 32)
    b.writeUInt32LE(XLOG_BLCKSZ, 36)
  }
  return b
}

/** Collects pieces per segment as absolute-LSN writes. */
class SegmentPieces {
  private readonly bySeg = new Map<bigint, WalPiece[]>()

  constructor(
    private readonly tli: number,
    private readonly segSizeBytes: number,
  ) {}

  put(at: bigint, bytes: Buffer): void {
    const seg = BigInt(this.segSizeBytes)
    const segno = at / seg
    const offset = Number(at % seg)
    if (offset + bytes.length > this.segSizeBytes) throw new RangeError('a WAL piece crosses a segment boundary')
    const list = this.bySeg.get(segno) ?? []
    list.push({ offset, bytes })
    this.bySeg.set(segno, list)
  }

  segments(): SyntheticWalSegment[] {
    return [...this.bySeg.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : 1))
      .map(([segno, pieces]) => {
        const sorted = [...pieces].sort((a, b) => a.offset - b.offset)
        for (let i = 1; i < sorted.length; i++) {
          if (sorted[i - 1]!.offset + sorted[i - 1]!.bytes.length > sorted[i]!.offset) throw new RangeError('overlapping WAL pieces')
        }
        return { fileName: walFileName(this.tli, segno, this.segSizeBytes), segno, sizeBytes: this.segSizeBytes, pieces: sorted }
      })
  }
}

/**
 * Page headers from the start of the segment holding `at` up to the page holding it, for a record (or
 * Neon's first record) starting at `at`: everything between the segment's first header and `at` is
 * declared as the tail of a continued record, each page's header giving the bytes of it still to come
 * (`xlp_rem_len`, page headers not counted). A reader that begins at the segment's start (pg_waldump, `wal
 * dump` or a stream from the segment's start, as on a primary started from an export) skips it all and
 * lands on the record; with zeros there instead, it would read the first record slot as the end of the WAL.
 */
function putStartHeaders(out: SegmentPieces, at: bigint, tli: number, systemId: bigint, segSizeBytes: number): void {
  const seg = BigInt(segSizeBytes)
  const page = BigInt(XLOG_BLCKSZ)
  const segStart = at - (at % seg)
  const pageStart = at - (at % page)
  const gapOnRecordPage = Number(at - pageStart) - pageHeaderBytesAt(pageStart, segSizeBytes)
  if (gapOnRecordPage < 0) throw new RangeError(`position ${formatLsn(at)} is inside a page header`)
  // From the record's page back to the segment's first: each page's remaining length is its own bytes of
  // the gap plus those of the pages after it.
  let remLen = gapOnRecordPage
  for (let p = pageStart; p >= segStart; p -= page) {
    if (p !== pageStart) remLen += XLOG_BLCKSZ - pageHeaderBytesAt(p, segSizeBytes)
    out.put(p, encodePageHeader({ pageLsn: p, info: remLen > 0 ? XLP_FIRST_IS_CONTRECORD : 0, tli, remLen, systemId, segSizeBytes }))
  }
}

/** The WAL for a fullbackup at `lsn`: one shutdown checkpoint record, as PostgreSQL would have written it. */
export function shutdownCheckpointWal(o: ShutdownCheckpointWalOptions): SyntheticWal {
  const segSizeBytes = o.segSizeBytes ?? DEFAULT_WAL_SEGMENT_SIZE
  const start = checkpointRecordLsn(o.lsn, segSizeBytes)
  const tli = o.checkpoint.ThisTimeLineID
  if (!Number.isInteger(tli) || tli < 1) {
    throw new UsageError('BAD_PG_TIMELINE', `the stored checkpoint names PostgreSQL timeline ${tli}`, { hint: 'The timeline was not imported from a PostgreSQL 15 data directory.' })
  }
  if (o.prevLsn >= start) {
    throw new UsageError('BAD_PREV_LSN', `prev LSN ${formatLsn(o.prevLsn)} is not before the checkpoint record at ${formatLsn(start)}`, {
      hint: 'The previous record must start before the backup LSN; leave prev_lsn out when unsure.',
    })
  }
  // A shutdown checkpoint: redo is the record itself, no timeline switch, and no running transactions
  // (CreateCheckPoint leaves oldestActiveXid invalid unless it is an online checkpoint).
  const checkpoint: CheckPoint = { ...o.checkpoint, redo: start, PrevTimeLineID: tli, oldestActiveXid: 0 }
  const record = encodeCheckpointRecord(checkpoint, o.prevLsn)

  const out = new SegmentPieces(tli, segSizeBytes)
  putStartHeaders(out, start, tli, o.systemId, segSizeBytes)
  const page = BigInt(XLOG_BLCKSZ)
  let pos: bigint = start
  let done = 0
  for (;;) {
    const pageEnd = pos - (pos % page) + page
    const n = Math.min(record.length - done, Number(pageEnd - pos))
    out.put(pos, record.subarray(done, done + n))
    done += n
    pos += BigInt(n)
    if (done === record.length) break
    // Continue on the next page (the next segment's first page when pageEnd is a segment boundary).
    const remLen = record.length - done
    const header = encodePageHeader({ pageLsn: pageEnd, info: XLP_FIRST_IS_CONTRECORD, tli, remLen, systemId: o.systemId, segSizeBytes })
    out.put(pageEnd, header)
    pos = pageEnd + BigInt(header.length)
  }
  return { checkpointLsn: start, endLsn: toLsn((pos + 7n) & ~7n), checkpoint, segments: out.segments() }
}

/**
 * Neon's bootstrap segment for a basebackup at `lsn`: page headers from the segment's start to the page
 * holding `lsn`, claiming the bytes before it as a continued tail (see putStartHeaders), no records.
 */
export function neonBootstrapWalSegment(o: { lsn: Lsn; systemId: bigint; pgTimeline: number; segSizeBytes?: number }): SyntheticWalSegment {
  const segSizeBytes = o.segSizeBytes ?? DEFAULT_WAL_SEGMENT_SIZE
  checkGeometry(o.lsn, segSizeBytes)
  const out = new SegmentPieces(o.pgTimeline, segSizeBytes)
  // At a page boundary the first record goes after that page's header (a plain header there); either way the
  // pages before declare the gap, as for a fullbackup.
  putStartHeaders(out, checkpointRecordLsn(o.lsn, segSizeBytes), o.pgTimeline, o.systemId, segSizeBytes)
  return out.segments()[0]!
}

/** The whole segment file (allocates `sizeBytes`; tests and small tools). */
export function segmentBytes(seg: SyntheticWalSegment): Buffer {
  const out = Buffer.alloc(seg.sizeBytes)
  for (const p of seg.pieces) p.bytes.copy(out, p.offset)
  return out
}

/** Zeros shared by every segment stream; never written to. */
const ZEROS = Buffer.alloc(256 * 1024)

/**
 * The segment file as chunks of 256 KiB: a window without pieces is a view of one shared zero buffer; one
 * with pieces (the page headers before the record are one every 8 KiB) is a fresh buffer with them copied in.
 * Yielding the pieces themselves made a segment thousands of chunks (every page header and the zeros
 * after it), each a write of its own down the backup stream.
 */
export function* segmentChunks(seg: SyntheticWalSegment): Generator<Buffer> {
  const window = ZEROS.length
  let next = 0 // first piece that may overlap the current window
  for (let start = 0; start < seg.sizeBytes; start += window) {
    const end = Math.min(seg.sizeBytes, start + window)
    while (next < seg.pieces.length && seg.pieces[next]!.offset + seg.pieces[next]!.bytes.length <= start) next++
    if (next === seg.pieces.length || seg.pieces[next]!.offset >= end) {
      yield ZEROS.subarray(0, end - start)
      continue
    }
    const chunk = Buffer.alloc(end - start)
    for (let i = next; i < seg.pieces.length && seg.pieces[i]!.offset < end; i++) {
      const p = seg.pieces[i]!
      const from = Math.max(start, p.offset)
      const to = Math.min(end, p.offset + p.bytes.length)
      p.bytes.copy(chunk, from - start, from - p.offset, to - p.offset)
    }
    yield chunk
  }
}
