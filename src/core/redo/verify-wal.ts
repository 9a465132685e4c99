/**
 * Verification of a whole WAL stream: every record through a RedoVerifier whose checks run concurrently on a
 * redo backend (the worker pool), with progress reports and the choice of `hintBitsLogged`.
 *
 * The stream comes in batches (WalFileReader.recordBatches(): one batch per chunk read), so the loop awaits
 * once per batch unless the verifier is full; up to `concurrency` checks stay in flight, which is what keeps
 * a pipelined worker pool busy (30k checks at one round trip each, serially, would be idle most of the time).
 *
 * hintBitsLogged (data checksums or wal_log_hints on the primary) changes exactly one thing in redo: whether
 * Heap2/VISIBLE stamps the heap page's pd_lsn. pd_lsn is masked in every comparison, and the next check of a
 * page starts from PostgreSQL's image, so the setting cannot change a verdict; it is still chosen as well as
 * the WAL allows, so that the pages redone are the pages PostgreSQL had. Order: an explicit setting (the
 * caller's flag, or pg_control read by the caller) is final; otherwise start with `false` and switch to `true`
 * at the first evidence in the WAL itself: an XLOG/FPI_FOR_HINT record (written only when hint bits are
 * WAL-logged) or a PARAMETER_CHANGE with wal_log_hints on. Checks already started keep the setting they began
 * with; the backend for the other setting is asked for lazily (`redoFor` is called at most once per value).
 *
 * Pure: no I/O here; the caller brings the records and the redo function.
 */
import { InterruptedError } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { RM } from '../pg/rmgr.js'
import type { DecodedRecord } from '../pg/wal-record.js'
import { PARAMETER_CHANGE_WAL_LOG_HINTS_OFFSET, XLOG_FPI_FOR_HINT, XLOG_PARAMETER_CHANGE } from '../pg/xlog-info.js'
import { RedoVerifier, type RedoFn, type VerifyReport } from './verify.js'

/** Progress is reported at most once per this many records (and once at the end). */
export const PROGRESS_EVERY_RECORDS_DEFAULT = 2000

export interface HintBitsSetting {
  value: boolean
  /** Why: "--data-checksums flag", "pg_control (data checksums on)", "XLOG/FPI_FOR_HINT at 0/1A2B3C8", "default". */
  source: string
  /** An explicit setting is never changed by evidence in the WAL. */
  explicit: boolean
}

/** Evidence in one record that the primary WAL-logs hint bits, as a short description, or null. */
export function hintBitsEvidence(rec: DecodedRecord): string | null {
  if (rec.xl_rmid !== RM.XLOG) return null
  const info = rec.rmgrInfo
  if (info === XLOG_FPI_FOR_HINT) return `XLOG/FPI_FOR_HINT at ${formatLsn(rec.lsn)}`
  if (info === XLOG_PARAMETER_CHANGE) {
    const d = rec.mainData()
    if (d.length > PARAMETER_CHANGE_WAL_LOG_HINTS_OFFSET && d[PARAMETER_CHANGE_WAL_LOG_HINTS_OFFSET] !== 0) {
      return `XLOG/PARAMETER_CHANGE (wal_log_hints on) at ${formatLsn(rec.lsn)}`
    }
  }
  return null
}

export interface WalVerifyProgress {
  recordsRead: number
  blocksChecked: number
  mismatches: number
  unsupported: number
  inFlight: number
  /** Start LSN of the last record added. */
  lsn: Lsn | null
}

export interface WalVerifyOptions {
  /** The redo function to use for a hintBitsLogged setting; called at most once per value. */
  redoFor(hintBitsLogged: boolean): RedoFn
  hintBits: HintBitsSetting
  /** Checks in flight at once (see RedoVerifier). */
  concurrency: number
  firstMismatchesMax?: number
  onProgress?: (p: WalVerifyProgress) => void
  progressEveryRecords?: number
  signal?: AbortSignal
}

export interface WalVerifyResult {
  report: VerifyReport
  hintBits: HintBitsSetting
}

/** Verifies every record of `batches` (in WAL order); resolves once every check has finished. */
export async function verifyWalRecords(batches: AsyncIterable<readonly DecodedRecord[]>, opts: WalVerifyOptions): Promise<WalVerifyResult> {
  let hint: HintBitsSetting = { ...opts.hintBits }
  const fns = new Map<boolean, RedoFn>()
  const redoNow = (): RedoFn => {
    let fn = fns.get(hint.value)
    if (fn === undefined) {
      fn = opts.redoFor(hint.value)
      fns.set(hint.value, fn)
    }
    return fn
  }
  // The verifier calls this at the moment a check starts: it takes the setting in force then.
  const verifier = new RedoVerifier({
    redo: (tag, base, records) => redoNow()(tag, base, records),
    concurrency: opts.concurrency,
    ...(opts.firstMismatchesMax === undefined ? {} : { firstMismatchesMax: opts.firstMismatchesMax }),
  })
  const every = opts.progressEveryRecords ?? PROGRESS_EVERY_RECORDS_DEFAULT
  let lastLsn: Lsn | null = null
  let sinceProgress = 0
  const progress = (): void => {
    if (opts.onProgress === undefined) return
    const r = verifier.report()
    opts.onProgress({
      recordsRead: r.recordsRead,
      blocksChecked: r.blocksChecked,
      mismatches: r.mismatches,
      unsupported: r.unsupported,
      inFlight: verifier.inFlight,
      lsn: lastLsn,
    })
  }
  try {
    for await (const batch of batches) {
      for (const rec of batch) {
        if (opts.signal?.aborted) throw aborted()
        if (!hint.explicit && !hint.value) {
          const evidence = hintBitsEvidence(rec)
          if (evidence !== null) hint = { value: true, source: evidence, explicit: false }
        }
        await verifier.addRecord(rec)
        lastLsn = rec.lsn
        if (++sinceProgress >= every) {
          sinceProgress = 0
          progress()
        }
      }
    }
  } finally {
    // Never leave checks running behind the caller's back, even when reading failed.
    await verifier.drain()
  }
  progress()
  return { report: verifier.report(), hintBits: hint }
}

function aborted(): InterruptedError {
  return new InterruptedError('VERIFY_ABORTED', 'WAL verification was interrupted', {
    hint: 'Run it again; verification keeps no state between runs.',
  })
}
