/**
 * The pg_control a backup carries, generated from the timeline's stored pg_control and CheckPoint at the
 * backup LSN, and Neon's signal file.
 *
 * Full backup (stock PostgreSQL): the state of a server that has just written a shutdown checkpoint at the
 * LSN. state = DB_SHUTDOWNED, checkPoint = the record's position, checkPointCopy = the CheckPoint in the
 * record (redo = its own position), and every recovery field cleared (minRecoveryPoint and its TLI, backup
 * start/end points, backupEndRequired): StartupXLOG then reads the checkpoint record, finds
 * redo == checkPoint and a clean shutdown, and starts without recovery.
 *
 * Neon basebackup (Neon's compute): redo = the first record position at the LSN, checkPoint = 0 (the compute
 * ignores it and reads `neon.signal`), state = DB_SHUTDOWNED. The stored CheckPoint's redo is the end of
 * the last shutdown checkpoint record when one ended exactly at the LSN: that tells whether the stored
 * statistics may be used (`wasShutdown`).
 *
 * Fields the stored control file carries and we keep: system identifier, catalog version, the
 * PARAMETER_CHANGE settings (wal_level, max_prepared_xacts, ...), build constants, data_checksum_version,
 * unloggedLSN.
 */
import { CorruptionError } from '../lib/errors.js'
import { DBState, encodeControlFile, type CheckPoint, type ControlFileData } from '../pg/controlfile.js'
import { formatLsn, INVALID_LSN, type Lsn } from '../pg/lsn.js'
import { checkpointRecordLsn, type SyntheticWal } from '../pg/synthetic-wal.js'
import { BLCKSZ } from '../pg/wal-record.js'
import { XLOG_BLCKSZ } from '../pg/wal-page.js'
import { WAL_SEGMENT_SIZE_MAX_BYTES, WAL_SEGMENT_SIZE_MIN_BYTES } from '../pg/wal-segment-header.js'

/** Checks the build constants a backup depends on; a control file failing them is not one we wrote. */
export function checkControlGeometry(c: ControlFileData): void {
  const seg = c.xlog_seg_size
  const bad = (why: string) => new CorruptionError('BAD_CONTROL_FILE', `the stored pg_control ${why}`, { hint: 'The timeline metadata is damaged; re-import the timeline.' })
  if (seg < WAL_SEGMENT_SIZE_MIN_BYTES || seg > WAL_SEGMENT_SIZE_MAX_BYTES || (seg & (seg - 1)) !== 0) throw bad(`has WAL segment size ${seg}`)
  if (c.blcksz !== BLCKSZ || c.xlog_blcksz !== XLOG_BLCKSZ) throw bad(`has block sizes ${c.blcksz}/${c.xlog_blcksz}, expected 8192`)
  if (c.relseg_size < 1) throw bad(`has relation segment size ${c.relseg_size}`)
}

/** pg_control of a server shut down cleanly at the synthetic checkpoint. */
export function fullBackupControlFile(stored: ControlFileData, wal: SyntheticWal): Buffer {
  return encodeControlFile({
    ...stored,
    state: DBState.SHUTDOWNED,
    time: wal.checkpoint.time,
    checkPoint: wal.checkpointLsn,
    checkPointCopy: wal.checkpoint,
    minRecoveryPoint: INVALID_LSN,
    minRecoveryPointTLI: 0,
    backupStartPoint: INVALID_LSN,
    backupEndPoint: INVALID_LSN,
    backupEndRequired: false,
  })
}

/** pg_control for Neon's compute at `lsn`, and whether a shutdown checkpoint ended exactly there. */
export function neonControlFile(stored: ControlFileData, cp: CheckPoint, lsn: Lsn): { bytes: Buffer; wasShutdown: boolean } {
  const wasShutdown = cp.redo === lsn
  const checkPointCopy: CheckPoint = { ...cp, redo: checkpointRecordLsn(lsn, stored.xlog_seg_size) }
  const bytes = encodeControlFile({ ...stored, state: DBState.SHUTDOWNED, checkPoint: INVALID_LSN, checkPointCopy })
  return { bytes, wasShutdown }
}

/**
 * `neon.signal` / `zenith.signal`: "PREV LSN: <lsn>" (the xl_prev of the compute's first record), or
 * "none" at a branch point (no WAL of its own yet), or "invalid" when unknown.
 */
export function neonSignalText(prevLsn: Lsn | null, atAncestorLsn: boolean): string {
  if (prevLsn !== null && prevLsn !== INVALID_LSN) return `PREV LSN: ${formatLsn(prevLsn)}`
  return atAncestorLsn ? 'PREV LSN: none' : 'PREV LSN: invalid'
}
