/**
 * The errors of damaged WAL: what WalStreamDecoder throws, and the CRC mismatch that the checks done off
 * the decoder (WorkerWalSource's verdicts, WalReceiver's WalCrcVerifier) report with `walCrcError`.
 *
 * A fault in the WAL itself (walError, walCrcError) is a CorruptionError whose message ends "at X/X" and
 * whose `details.lsn` names the LSN, so it reads the same whichever thread found it, and WalFileReader can
 * name the segment file holding it. Kept apart from the decoder because those other checkers need the
 * errors but not the decoder.
 */
import { CorruptionError } from '../lib/errors.js'
import { formatLsn, type Lsn } from './lsn.js'
import { recordCrcAt } from './wal-record.js'

/** A decoder asked to start where neither a page nor a record can begin. */
export function walBadStartError(startLsn: Lsn): CorruptionError {
  return new CorruptionError('WAL_BAD_START', `cannot start decoding at ${formatLsn(startLsn)}: not a page or record boundary`, {
    hint: 'Start at a WAL page boundary (a multiple of 8192) or at the start of a record.',
  })
}

/** WAL_BAD_CRC if the CRC of the `len`-byte record at `at` in `bytes` (start LSN `lsn`) does not match, else null. */
export function recordCrcFault(bytes: Buffer, at: number, len: number, lsn: Lsn | number): CorruptionError | null {
  const stored = bytes.readUInt32LE(at + 20)
  const computed = recordCrcAt(bytes, at, len)
  return stored === computed ? null : walCrcError(lsn, stored, computed)
}

/** The error for a record whose CRC-32C does not match (`at`: its start LSN). */
export function walCrcError(at: Lsn | number, stored: number, computed: number): CorruptionError {
  return walError('WAL_BAD_CRC', `incorrect resource manager data checksum (stored ${hex32(stored)}, computed ${hex32(computed)})`, Number(at))
}

/** A fault found at LSN `at` (a record's start, or the page or byte where a check failed). */
export function walError(code: string, message: string, at: number): CorruptionError {
  return new CorruptionError(code, `${message} at ${formatLsn(BigInt(at))}`, {
    hint: 'The WAL is corrupt, truncated, or not contiguous; decoding cannot continue past this point.',
    details: { lsn: formatLsn(BigInt(at)) },
  })
}

function hex32(n: number): string {
  return n.toString(16).toUpperCase().padStart(8, '0')
}
