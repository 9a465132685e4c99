/**
 * Reading WAL from segment files: a pg_wal directory, or a list of segment files.
 *
 * `WalFileReader.open(paths, {startLsn, endLsn})` (options: wal-read-options.ts) finds the segment files
 * (wal-segment-listing.ts), learns the segment size and system identifier from the long header of the
 * first page (wal-segment-header.ts), and checks that every file has that size and that all are on one
 * timeline (a promoted standby's pg_wal holds two: `timeline` picks one, pg_waldump's -t; without it the
 * reader refuses to guess). `records()` then streams the records through a WalStreamDecoder, reading one
 * chunk at a time (memory: one chunk plus the record being reassembled, never a whole file). A decoding
 * error names the segment file it was found in.
 *
 * Semantics, as pg_waldump's:
 * - start: default is the start of the first segment (the tail of a record continued from an earlier
 *   segment is skipped). Any LSN is accepted: decoding starts at its page and records that start before it
 *   are not handed out, so the first record is the first one at or after `startLsn`.
 * - end: a record is handed out only if it ends at or before `endLsn`.
 * - gaps: segments must be contiguous; the first missing one is a NotFoundError naming its file, raised only
 *   when decoding needs it (a gap past `endLsn` or past the end of valid WAL is no error).
 *
 * The end of valid WAL is not an error; the end report says where and why: a zero record length (the usual
 * end inside the segment being written), a zeroed page or a recycled page (an old segment renamed for
 * reuse: magic right, page address older than expected) where the next page was due, or the end of the
 * files. Anything else that fails a check (CRC, a bad header, a page address from the future) is a
 * CorruptionError with the LSN. Nothing to read is an error, not an empty end: a start at or past the end of
 * the files, or a first page that belongs to another position (wal-page-fault.ts), unless the caller is
 * resuming where an earlier read ended (`resume`: ingest).
 *
 * This module reads files itself (node:fs) though it lives in pg/: it is the file edge of the WAL decoder,
 * used by `wal dump`, tests and benchmarks; the decoder it drives stays pure.
 */
import { stat } from 'node:fs/promises'
import { CorruptionError, errorOfKind, NotFoundError, PageserverError, UsageError } from '../lib/errors.js'
import { WalChunkSource } from './wal-chunk-source.js'
import { listWalSegmentFiles } from './wal-segment-listing.js'
import { formatLsn, parseLsn, lsn as toLsn, type Lsn } from './lsn.js'
import { WalStreamDecoder } from './wal-decoder.js'
import { classifyPageFault } from './wal-page-fault.js'
import { CrcVerdicts, WorkerWalSource, type VerdictChunk } from './wal-worker-source.js'
import { parseWalFileName, SizeOfXLogLongPHD, SizeOfXLogShortPHD, walFileName, XLOG_BLCKSZ } from './wal-page.js'
import { WAL_CRC_WORKER_MIN_BYTES, WAL_READ_CHUNK_DEFAULT_BYTES, WAL_READ_CHUNK_MAX_BYTES, type WalReadOptions } from './wal-read-options.js'
import { WAL_RECORD_MAX_BYTES, type DecodedRecord } from './wal-record.js'
import { readLongHeader } from './wal-segment-header.js'

export { WAL_CRC_WORKER_MIN_BYTES, WAL_READ_CHUNK_DEFAULT_BYTES, WAL_READ_CHUNK_MAX_BYTES, type WalReadOptions } from './wal-read-options.js'
export { WAL_SEGMENT_SIZE_MAX_BYTES, WAL_SEGMENT_SIZE_MIN_BYTES } from './wal-segment-header.js'

export interface WalSegmentFile {
  readonly path: string
  readonly name: string
  readonly tli: number
  readonly segno: bigint
}

export type WalEndReason = 'end-lsn' | 'end-of-wal' | 'zeroed-page' | 'recycled-page' | 'end-of-files'

export interface WalReadEnd {
  /** Start LSN of the last record handed out (null if none). */
  readonly lastRecordLsn: Lsn | null
  /** Where valid WAL ends: the end of the last record (or where the next record would start). */
  readonly endLsn: Lsn
  readonly reason: WalEndReason
  /** One line for people: what was found where. */
  readonly message: string
}

export interface WalReadStats {
  /** Whether a worker thread read the files and checked CRCs. */
  readonly crcWorker: boolean
  /** Records the worker checked (the rest were checked on the decoding thread). */
  readonly crcWorkerRecords: number
  /** Time the worker spent reading and checking (its event loop's active time). */
  readonly crcWorkerBusyMs: number
  /** Chunks the worker read without checking (their CRCs were checked on the decoding thread). */
  readonly crcLocalChunks: number
  /** Read buffers allocated (with reuseBuffers, a handful, plus what a record spanning many needs). */
  readonly chunksAllocated: number
  /** Read buffers still kept at the end (free for reuse or in use): at most WAL_CHUNK_POOL_MAX free ones. */
  readonly chunksKept: number
}

export class WalFileReader {
  private endInfo: WalReadEnd | null = null
  private firstLsn: Lsn | null = null

  private constructor(
    readonly segments: readonly WalSegmentFile[],
    readonly segmentSizeBytes: number,
    readonly timeline: number,
    readonly systemId: bigint,
    /** Where reading begins: the first segment's start, or the requested start LSN. */
    readonly startLsn: Lsn,
    readonly endLsn: Lsn | null,
    private readonly chunkBytes: number,
    private readonly crcWorker: boolean | 'auto',
    private readonly reuseBuffers: boolean,
    private readonly crcWorkerBalance: boolean,
    private readonly resume: boolean,
    private readonly endByRecordBytes: boolean,
  ) {}

  /** Finds and checks the files; reads nothing but headers and sizes. */
  static async open(paths: readonly string[], opts: WalReadOptions = {}): Promise<WalFileReader> {
    const chunkBytes = opts.chunkBytes ?? WAL_READ_CHUNK_DEFAULT_BYTES
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < XLOG_BLCKSZ || chunkBytes > WAL_READ_CHUNK_MAX_BYTES) {
      throw new UsageError('WAL_BAD_CHUNK_SIZE', `read size ${chunkBytes} is outside ${XLOG_BLCKSZ}..${WAL_READ_CHUNK_MAX_BYTES}`, {
        hint: 'Use a read size of a few MiB.',
      })
    }
    const files = await listWalSegmentFiles(paths, { timeline: opts.timeline ?? null })
    const { segSize, sysid } = await readLongHeader(files[0]!.path)
    const segments: WalSegmentFile[] = []
    for (const f of files) {
      const parsed = parseWalFileName(f.name, segSize)
      if (parsed === null) {
        throw new UsageError('WAL_BAD_FILE_NAME', `${f.path} is not a valid segment name for ${segSize}-byte segments`, {
          hint: 'All segments must come from one cluster with one segment size.',
        })
      }
      const size = (await stat(f.path)).size
      if (size !== segSize) {
        throw new CorruptionError('WAL_BAD_SEGMENT_SIZE', `${f.path} has ${size} bytes, expected ${segSize} (the segment size in its headers)`, {
          hint: 'The file is truncated or not a WAL segment; copy it again from the primary or the archive.',
        })
      }
      segments.push({ path: f.path, name: f.name, ...parsed })
    }
    const tlis = [...new Set(segments.map((s) => s.tli))].sort((a, b) => a - b)
    if (tlis.length > 1) {
      // Which one is wanted is the caller's choice (the old timeline up to the promotion, or the new one):
      // never guess. Callers that offer a way to choose (`wal dump --timeline`) say so in their own hint.
      const newest = tlis[tlis.length - 1]!
      throw new UsageError('WAL_MULTIPLE_TIMELINES', `WAL segments of several timelines (${tlis.join(', ')}) were given`, {
        hint: `Pass the segment files of one timeline, e.g. the newest, ${newest} (after a promotion, pg_wal holds both the old and the new one).`,
        details: { timelines: tlis },
      })
    }
    const firstStart = toLsn(segments[0]!.segno * BigInt(segSize))
    const startLsn = opts.startLsn ?? firstStart
    if (startLsn < firstStart) {
      throw new NotFoundError('WAL_SEGMENT_MISSING', `start ${formatLsn(startLsn)} is in segment ${walFileName(tlis[0]!, BigInt(startLsn) / BigInt(segSize), segSize)}, which was not given`, {
        hint: `The first segment given starts at ${formatLsn(firstStart)}; pass the earlier segments or a later --start.`,
      })
    }
    const lastSeg = segments[segments.length - 1]!
    const filesEnd = toLsn((lastSeg.segno + 1n) * BigInt(segSize))
    if (startLsn >= filesEnd && !(opts.resume ?? false)) {
      throw new NotFoundError('WAL_SEGMENT_MISSING', `start ${formatLsn(startLsn)} is in segment ${walFileName(tlis[0]!, BigInt(startLsn) / BigInt(segSize), segSize)}, which was not given`, {
        hint: `The last segment given, ${lastSeg.name}, ends at ${formatLsn(filesEnd)}; pass the later segments or an earlier start.`,
      })
    }
    const endLsn = opts.endLsn ?? null
    if (endLsn !== null && endLsn < startLsn) {
      // Callers name these LSNs differently (`wal dump --start/--end`, `redo replay --lsn`): the hint names
      // the inputs, not flags.
      throw (opts.startLsn ?? null) === null
        ? new UsageError('WAL_BAD_RANGE', `LSN ${formatLsn(endLsn)} is before the first WAL segment given, which starts at ${formatLsn(startLsn)}`, {
            hint: `Ask for an LSN at or after ${formatLsn(startLsn)}, or pass the earlier WAL segments too.`,
          })
        : new UsageError('WAL_BAD_RANGE', `end LSN ${formatLsn(endLsn)} is before start LSN ${formatLsn(startLsn)}`, {
            hint: 'Give an end LSN at or after the start LSN.',
          })
    }
    return new WalFileReader(segments, segSize, tlis[0]!, sysid, startLsn, endLsn, chunkBytes, opts.crcWorker ?? 'auto', opts.reuseBuffers ?? false, opts.crcWorkerBalance ?? true, opts.resume ?? false, opts.endByRecordBytes ?? false)
  }

  /** How the last `recordBatches()` went, once it has finished (for benchmarks and tests). */
  stats: WalReadStats | null = null

  /** Set when reading has ended without an error. */
  get endReport(): WalReadEnd | null {
    return this.endInfo
  }

  /** The first record handed out, once known (pg_waldump's "first record is after ..."). */
  get firstRecordLsn(): Lsn | null {
    return this.firstLsn
  }

  /** Records one at a time; the generator's return value is the end report. */
  async *records(): AsyncGenerator<DecodedRecord, WalReadEnd, undefined> {
    const batches = this.recordBatches()
    let finished = false
    try {
      for (;;) {
        const r = await batches.next()
        if (r.done) {
          finished = true
          return r.value
        }
        yield* r.value
      }
    } finally {
      // A consumer that stops early: close the files and the CRC worker.
      if (!finished) await batches.return(undefined as never)
    }
  }

  /**
   * Records in batches (all the records completed by one read): one await per chunk instead of one per
   * record, for hot loops. Each batch array is fresh; the records are views into the chunk they came from.
   * Each chunk is fresh memory, so records may be kept as long as wanted, unless the reader was opened with
   * `reuseBuffers`: then a batch's records are valid only until the next batch is asked for.
   *
   * Pipeline: without the worker, the next chunk is read (on the thread pool) while this one is decoded,
   * and every CRC is checked here. With the worker, it reads up to WORKER_READ_AHEAD chunks ahead and
   * checks their records' CRCs as it reads them; a chunk arrives with its verdicts and every record is
   * matched with its verdict (or checked here) before it is handed out. Nothing unchecked is ever yielded;
   * faults come in WAL order: on a CRC mismatch the records before the bad one are yielded, then the error.
   */
  async *recordBatches(): AsyncGenerator<DecodedRecord[], WalReadEnd, undefined> {
    const segSize = this.segmentSizeBytes
    const start = Number(this.startLsn)
    const end = this.endLsn === null ? Infinity : Number(this.endLsn)
    // Decode from the page holding the start; records before the start are read but not handed out.
    const decodeFrom = start - (start % XLOG_BLCKSZ)
    const useWorker = this.wantsCrcWorker(decodeFrom)
    const decoder = new WalStreamDecoder({
      startLsn: toLsn(decodeFrom),
      systemId: this.systemId,
      segmentSizeBytes: segSize,
      inPlace: true, // the chunks are ours and read once: join page-spanning records where they lie
      deferCrc: useWorker,
    })
    const bySegno = new Map<bigint, WalSegmentFile>()
    for (const s of this.segments) bySegno.set(s.segno, s)
    const verdicts = useWorker ? new CrcVerdicts() : null
    const win: DecodeWindow = { start, end, endByBytes: this.endByRecordBytes ? segSize : 0, skipping: decodeFrom < start, verdicts, last: null }
    // Where the records read so far end, never before the start asked for: the records decoded to reach it
    // (from its page's start, `decodeFrom`) are not handed out, so neither is their end. E.g. a start at
    // 0/4010DF1 with an end at 0/4010E00 and no record between: the end is 0/4010DF1, not 0/4010000.
    const lastEnd = (): number => Math.max(start, win.last === null ? decodeFrom : Number(win.last.endLsn))
    const ended = (reason: WalEndReason, endLsn: number, message: string): WalReadEnd => ({
      // While still skipping, the last record decoded was not handed out.
      lastRecordLsn: win.last === null || win.skipping ? null : win.last.lsn,
      endLsn: toLsn(endLsn),
      reason,
      message,
    })
    const endLsnReached = (): WalReadEnd => ended('end-lsn', lastEnd(), `reached the end LSN ${formatLsn(BigInt(end))}`)
    const firstSegno = BigInt(Math.floor(decodeFrom / segSize))
    const source = useWorker
      ? new WorkerWalSource(
          bySegno,
          {
            segmentSizeBytes: segSize,
            chunkBytes: this.chunkBytes,
            reuse: this.reuseBuffers,
            balance: this.crcWorkerBalance,
            walkStart: { lsn: decodeFrom, segSize, recordMax: WAL_RECORD_MAX_BYTES },
            endLsn: end,
          },
          firstSegno,
          decodeFrom % segSize,
        )
      : new WalChunkSource(bySegno, { segmentSizeBytes: segSize, chunkBytes: this.chunkBytes, reuse: this.reuseBuffers })
    // Chunks handed out and done with, still referred to by the decoder (reuseBuffers).
    const parked: Buffer[] = []
    const self = this
    /** Yields `records` (if any), then frees `chunk` once the consumer asks for more. */
    function* deliver(records: DecodedRecord[], chunk: Buffer): Generator<DecodedRecord[], void, undefined> {
      if (records.length > 0) {
        self.firstLsn ??= records[0]!.lsn
        yield records
      }
      // The consumer asked for more: its view of this batch ends here. A chunk holding the start of a
      // record still being assembled waits until the decoder lets go of it.
      parked.push(chunk)
      let k = 0
      for (const c of parked) {
        if (decoder.holds(c)) parked[k++] = c
        else source.release(c)
      }
      parked.length = k
    }

    let pending: Promise<VerdictChunk> = source.read(firstSegno, decodeFrom % segSize)
    try {
      for (;;) {
        const got = await pending
        if (got.kind === 'missing') {
          const segStart = Number(got.segno) * segSize
          if (segStart >= end) return this.finish(endLsnReached())
          const lastSeg = this.segments[this.segments.length - 1]!
          if (got.segno > lastSeg.segno) {
            const inRecord = Number(decoder.position) > lastEnd()
            const msg =
              `the WAL files end at ${formatLsn(BigInt(segStart))}` +
              (inRecord ? `, inside a record that continues in ${walFileName(this.timeline, got.segno, segSize)}` : '')
            return this.finish(ended('end-of-files', lastEnd(), msg))
          }
          const missing = walFileName(this.timeline, got.segno, segSize)
          throw new NotFoundError('WAL_SEGMENT_MISSING', `WAL segment ${missing} is missing: the files given are not contiguous`, {
            hint: `Restore ${missing} from the archive or the primary, or read only the WAL before it: an end LSN (--end, or redo replay's --lsn) at or before ${formatLsn(BigInt(segStart))}.`,
            details: { segment: missing, lsn: formatLsn(BigInt(segStart)) },
          })
        }
        // Start the next read before decoding this chunk.
        const chunkEndLsn = Number(got.segno) * segSize + got.offset + got.chunk.length
        pending = got.offset + got.chunk.length < segSize ? source.read(got.segno, got.offset + got.chunk.length) : source.read(got.segno + 1n, 0)
        if (got.verdict) verdicts!.add(got.verdict)
        decoder.feed(got.chunk)
        const batch: DecodedRecord[] = []
        const outcome = decodeChunk(decoder, win, batch)
        // The records before a fault or the end are handed out first.
        yield* deliver(batch, got.chunk)
        if (outcome.kind === 'fault') {
          const pageLsn = Number(decoder.position)
          const pageEnd = await classifyPageFault(outcome.error, {
            path: bySegno.get(BigInt(Math.floor(pageLsn / segSize)))?.path,
            pageLsn,
            segmentSizeBytes: segSize,
            pgTimeLineId: this.timeline,
            firstPage: !this.resume && win.last === null && pageLsn === decodeFrom,
          })
          if (pageEnd === null) throw withSegmentPath(outcome.error, pageLsn, segSize, bySegno)
          return this.finish(ended(pageEnd.reason, lastEnd(), pageEnd.message))
        }
        if (outcome.kind === 'wal-end') return this.finish(ended('end-of-wal', outcome.lsn, outcome.reason))
        if (outcome.kind === 'end-lsn' || (chunkEndLsn >= end && Number(decoder.position) >= end)) return this.finish(endLsnReached())
      }
    } finally {
      await pending.catch(() => undefined) // never leave a read running on a handle we close
      await source.close()
      const ws = source instanceof WorkerWalSource ? source : null
      this.stats = {
        crcWorker: useWorker,
        crcWorkerRecords: ws?.workerRecords ?? 0,
        crcWorkerBusyMs: ws?.workerBusyMs ?? 0,
        crcLocalChunks: ws?.localCheckChunks ?? 0,
        chunksAllocated: source.allocated,
        chunksKept: source.kept,
      }
    }
  }

  private finish(e: WalReadEnd): WalReadEnd {
    this.endInfo = e
    return e
  }

  /** The CRC worker pays off only for long reads (it takes tens of ms to start; until then, CRCs are here). */
  private wantsCrcWorker(decodeFrom: number): boolean {
    if (this.crcWorker !== 'auto') return this.crcWorker
    // Into fresh memory the worker pays a page fault per 4 KiB it reads, and ends up no faster than this
    // thread alone (bench/wal-decode.ts): it pays off with reused buffers.
    if (!this.reuseBuffers) return false
    const lastSeg = this.segments[this.segments.length - 1]!
    const filesEnd = (Number(lastSeg.segno) + 1) * this.segmentSizeBytes
    const readEnd = this.endLsn === null ? filesEnd : Math.min(filesEnd, Number(this.endLsn))
    return readEnd - decodeFrom >= WAL_CRC_WORKER_MIN_BYTES
  }
}

/**
 * `e` (a decoding error) with the path of the segment file it was found in: " in <path>" after the message
 * and `details.path`, the class, code, hint and so the exit code unchanged. The segment is the one holding
 * the LSN the error names (a record's start, a page), else the one holding `positionLsn`, where the
 * decoder stopped. Anything but a PageserverError, or a bug (kind internal), is left as it is.
 */
function withSegmentPath(e: unknown, positionLsn: number, segSize: number, bySegno: ReadonlyMap<bigint, WalSegmentFile>): unknown {
  if (!(e instanceof PageserverError) || e.kind === 'internal' || e.details?.['path'] !== undefined) return e
  const named = e.details?.['lsn'] ?? e.details?.['pageLsn']
  let at = positionLsn
  if (typeof named === 'string') {
    try {
      at = Number(parseLsn(named))
    } catch {
      // Not an LSN after all: fall back to the decoder's position.
    }
  }
  const path = bySegno.get(BigInt(Math.floor(at / segSize)))?.path
  if (path === undefined) return e
  return errorOfKind(e.kind, e.code, `${e.message} in ${path}`, {
    hint: e.hint,
    cause: e.cause,
    details: { ...e.details, path },
  })
}

/** Where a read starts and ends, and what it has decoded so far. */
interface DecodeWindow {
  readonly start: number
  readonly end: number
  /** Non-zero (the segment size): `end` bounds where a record's bytes end, not its end LSN (endByRecordBytes). */
  readonly endByBytes: number
  /** Records before `start` (on the start's page) are decoded but not handed out. */
  skipping: boolean
  /** With the worker: its verdicts (every record, skipped or not, is checked against them). */
  readonly verdicts: CrcVerdicts | null
  last: DecodedRecord | null
}

type ChunkOutcome =
  | { kind: 'more' }
  | { kind: 'fault'; error: unknown }
  | { kind: 'wal-end'; lsn: number; reason: string }
  | { kind: 'end-lsn' }

/** Decodes what the decoder holds into `batch` (a plain function, kept out of the async generator). */
function decodeChunk(decoder: WalStreamDecoder, win: DecodeWindow, batch: DecodedRecord[]): ChunkOutcome {
  const bounded = win.end !== Infinity
  for (;;) {
    let rec: DecodedRecord | null
    try {
      rec = decoder.next()
    } catch (error) {
      return { kind: 'fault', error }
    }
    if (rec === null) {
      const walEnd = decoder.end
      return walEnd === null ? { kind: 'more' } : { kind: 'wal-end', lsn: Number(walEnd.lsn), reason: walEnd.reason }
    }
    if (bounded && (win.endByBytes === 0 ? rec.endLsnNumber : recordBytesEnd(rec, win.endByBytes)) > win.end) return { kind: 'end-lsn' }
    // Records skipped to reach the start are checked too, as pg_waldump checks them.
    const bad = win.verdicts === null ? null : win.verdicts.check(rec)
    if (bad !== null) return { kind: 'fault', error: bad }
    win.last = rec
    if (win.skipping) {
      if (rec.lsnNumber < win.start) continue
      win.skipping = false
    }
    batch.push(rec)
  }
}

/**
 * Where the record's last byte ends (before alignment padding, or the rest of the segment after a switch):
 * its start plus xl_tot_len plus the page headers it crosses. E.g. an 80-byte record at 0/1FFFFF0 (16 MiB
 * segments) puts 16 bytes there and 64 after the 40-byte long header of 0/2000000: it ends at 0/2000068.
 */
function recordBytesEnd(rec: DecodedRecord, segSize: number): number {
  let pos = rec.lsnNumber
  let left = rec.xl_tot_len
  for (;;) {
    const room = XLOG_BLCKSZ - (pos % XLOG_BLCKSZ)
    if (left <= room) return pos + left
    left -= room
    pos += room
    pos += pos % segSize === 0 ? SizeOfXLogLongPHD : SizeOfXLogShortPHD
  }
}
