/**
 * What a caller of WalFileReader can ask of a read (WalReadOptions), and the limits on it: the size of one
 * read, and how much WAL must be read before a CRC worker thread pays for its start.
 */
import type { Lsn } from './lsn.js'

/** Default read size: large enough that syscalls are noise, small enough to stay cache-friendly. */
export const WAL_READ_CHUNK_DEFAULT_BYTES = 1024 * 1024
/** Upper bound on one read (and so on the memory a reader holds besides the record being reassembled). */
export const WAL_READ_CHUNK_MAX_BYTES = 64 * 1024 * 1024
/** Reads shorter than this check CRCs on the decoding thread (a worker costs tens of ms of CPU to start). */
export const WAL_CRC_WORKER_MIN_BYTES = 32 * 1024 * 1024

export interface WalReadOptions {
  /** First LSN of interest (default: the start of the first segment). */
  startLsn?: Lsn | null
  /** Hand out only records ending at or before this LSN (their end LSN, PostgreSQL's EndRecPtr). */
  endLsn?: Lsn | null
  /**
   * Judge `endLsn` by where a record's bytes end instead, as pg_waldump's --end does: the record's last byte
   * is before `endLsn`, though its end LSN (8-aligned; after XLOG_SWITCH, the next segment's start) may
   * not be. E.g. pg_switch_wal() returns the switch record's start + 24, which pg_waldump -e includes.
   * Default false (redo and ingest need every record's end LSN at or before the bound).
   */
  endByRecordBytes?: boolean
  /** Bytes per read (default 1 MiB, at most WAL_READ_CHUNK_MAX_BYTES). */
  chunkBytes?: number
  /**
   * Read the files and check record CRCs on a worker thread (WorkerWalSource) while decoding here. Default
   * 'auto': with `reuseBuffers`, when at least WAL_CRC_WORKER_MIN_BYTES are to be read. The records and
   * errors are the same either way. The worker pays when the consumer is light (a dump, statistics, redo
   * of a few pages); a consumer that keeps the other core busy itself (file ingest) is faster without.
   */
  crcWorker?: boolean | 'auto'
  /**
   * With the worker: when it is the slower thread, the decoding thread takes over the CRCs of a share of
   * the chunks (at most half) so that both finish together. Default true; false keeps every check on
   * the worker.
   */
  crcWorkerBalance?: boolean
  /**
   * Read into a few buffers reused from chunk to chunk instead of fresh memory for every chunk: a batch's
   * records (and any view of their bytes) are then valid only until the next batch is asked for (with
   * `records()`: until the next record); copy what you keep. For consumers that use each record at once
   * (dump, statistics, ingest that copies what it stores). Default false.
   */
  reuseBuffers?: boolean
  /**
   * The start is where an earlier read of this WAL ended (ingest continuing a timeline): a start at the end
   * of the files, or a recycled page right at the start, is then "nothing new", not a mistake. Default
   * false: both are errors, since a read that finds nothing at all is a wrong file or a wrong start.
   */
  resume?: boolean
  /**
   * Read only the segments of this PostgreSQL timeline (pg_waldump's -t): the others in a directory are
   * skipped, a file named explicitly on another timeline is an error. Default: all the segments given,
   * which must then be of one timeline.
   */
  timeline?: number | null
}
