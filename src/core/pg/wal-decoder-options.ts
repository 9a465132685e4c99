/**
 * What a WalStreamDecoder is told when it is made: where the stream starts, what the cluster is expected to
 * be, the largest record accepted, and two modes that callers owning their input opt into for speed
 * (`inPlace`: join page-spanning records inside the fed chunks; `deferCrc`: leave CRCs to a worker).
 * The defaults are the safe ones: a decoder made with only `startLsn` copies the records it joins, checks
 * every CRC itself and learns the system identifier from the first long page header.
 */
import type { Lsn } from './lsn.js'

export interface WalDecoderOptions {
  /** A WAL page boundary or a record boundary. */
  startLsn: Lsn
  /** Expected system identifier; when absent it is learned from the first long page header. */
  systemId?: bigint | null
  /** Expected segment size (default 16 MiB). */
  segmentSizeBytes?: number
  /** Start LSN of the record before `startLsn`, when known: enables the exact previous-link check. */
  prevRecordLsn?: Lsn | null
  /** Largest record accepted (default: PostgreSQL's own limit). */
  recordMaxBytes?: number
  /**
   * The decoder may rewrite fed bytes to join a record that spans pages without copying it (only that
   * record's bytes and the page headers inside it change). Only for callers that own their chunks and do
   * not read them again, such as WalFileReader; off by default.
   */
  inPlace?: boolean
  /**
   * Hand out records before their CRC is checked: the caller checks every record before anyone sees it
   * (WalReceiver with WalCrcVerifier on a worker thread; WalFileReader with the verdicts of the worker that
   * read the chunk, else itself) and reports the first mismatch with `walCrcError`. A record whose
   * structure fails to decode is CRC-checked by the decoder first, so its error is the same as without
   * deferral. Off by default; only for WalFileReader and WalReceiver, which never hand out an unchecked
   * record.
   */
  deferCrc?: boolean
}
