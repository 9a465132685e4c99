/**
 * Use case `redo verify`: check our redo, through the worker pool, against the page images that
 * `wal_consistency_checking` put into WAL files (see core/redo/verify.ts for the method).
 *
 * Inputs are WAL files (a pg_wal directory or segment files, read by WalFileReader) and the pool settings;
 * the output is the verifier's report plus where reading stopped and how hintBitsLogged was chosen.
 *
 * hintBitsLogged, in order of authority: the caller's explicit setting (the --data-checksums flag); then
 * pg_control when the WAL directory sits in a data directory (`<pg_wal>/../global/pg_control`: data checksums
 * or wal_log_hints); then evidence in the WAL (verify-wal.ts). It only affects masked bytes (pd_lsn after
 * Heap2/VISIBLE), so a wrong guess cannot produce or hide a mismatch.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isNotFoundFsError, PageserverError } from '../lib/errors.js'
import type { Lsn } from '../pg/lsn.js'
import { decodeControlFile } from '../pg/controlfile.js'
import { WalFileReader, type WalReadEnd } from '../pg/wal-files.js'
import { verifyWalRecords, type HintBitsSetting, type WalVerifyProgress } from '../redo/verify-wal.js'
import type { VerifyReport } from '../redo/verify.js'
import { poolCapacity, RedoPools, type RedoPoolSettings } from './redo-pool.js'
import type { WalRedoLogger } from '../walredo/manager.js'

export interface RedoVerifyInput {
  /** A pg_wal directory, or WAL segment files. */
  paths: readonly string[]
  startLsn?: Lsn | null
  endLsn?: Lsn | null
  /** Explicit: the primary had data checksums or wal_log_hints on (true) or neither (false). */
  hintBitsLogged?: boolean
  pool: RedoPoolSettings
  /** Checks in flight (default: what the pool holds). */
  concurrency?: number
  firstMismatchesMax?: number
  onProgress?: (p: WalVerifyProgress) => void
  logger?: WalRedoLogger
  signal?: AbortSignal
}

export interface RedoVerifyResult {
  report: VerifyReport
  hintBits: HintBitsSetting
  /** Where reading stopped (end of valid WAL, --end, end of files). */
  walEnd: WalReadEnd | null
  firstRecordLsn: Lsn | null
}

/** pg_control beside a pg_wal directory, when there is one: the cluster's own statement about hint bits. */
async function hintBitsFromControlFile(paths: readonly string[]): Promise<HintBitsSetting | null> {
  if (paths.length !== 1) return null
  const path = join(paths[0]!, '..', 'global', 'pg_control')
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (e) {
    const code = (e as { code?: string }).code
    if (isNotFoundFsError(e) || code === 'ENOTDIR' || code === 'EACCES') return null
    throw e
  }
  try {
    const cf = decodeControlFile(bytes, path)
    const on = cf.data_checksum_version !== 0 || cf.wal_log_hints
    const why = cf.data_checksum_version !== 0 ? 'data checksums on' : cf.wal_log_hints ? 'wal_log_hints on' : 'no data checksums, wal_log_hints off'
    // "Off" now does not prove it was off for all of the WAL: let the WAL still switch it on.
    return { value: on, source: `pg_control (${why})`, explicit: on }
  } catch (e) {
    if (e instanceof PageserverError) return null // not a PostgreSQL 15 pg_control: ignore it, use the WAL
    throw e
  }
}

export async function runRedoVerify(input: RedoVerifyInput): Promise<RedoVerifyResult> {
  const reader = await WalFileReader.open(input.paths, { startLsn: input.startLsn ?? null, endLsn: input.endLsn ?? null })
  const hintBits: HintBitsSetting =
    input.hintBitsLogged !== undefined
      ? { value: input.hintBitsLogged, source: '--data-checksums flag', explicit: true }
      : ((await hintBitsFromControlFile(input.paths)) ?? { value: false, source: 'default (no evidence of WAL-logged hint bits)', explicit: false })
  const pools = new RedoPools(input.pool, input.logger)
  try {
    // verifyWalRecords iterates with for-await, which closes the reader (its file, its hold on the CRC
    // thread) when it stops early: an abort, a failure.
    const result = await verifyWalRecords(reader.recordBatches(), {
      redoFor: (hint) => pools.redoFn(hint, input.signal),
      hintBits,
      concurrency: input.concurrency ?? poolCapacity(input.pool),
      ...(input.firstMismatchesMax === undefined ? {} : { firstMismatchesMax: input.firstMismatchesMax }),
      ...(input.onProgress === undefined ? {} : { onProgress: input.onProgress }),
      ...(input.signal === undefined ? {} : { signal: input.signal }),
    })
    return { report: result.report, hintBits: result.hintBits, walEnd: reader.endReport, firstRecordLsn: reader.firstRecordLsn }
  } finally {
    await pools.close()
  }
}
