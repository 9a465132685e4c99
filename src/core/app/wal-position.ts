/**
 * Where backups and branch points are taken: between two records. A requested LSN is aligned up to 8 bytes
 * (records start MAXALIGNed), and one inside a WAL page header becomes that page's boundary: no record ends
 * in the header, so both stand for the same WAL, but only the boundary can begin the synthetic WAL a backup
 * starts from (an audit's export at 0/1BBE4008 failed with "inside a page header", and a branch created
 * there could never be exported or started from).
 */
import { controlFileKey } from '../datadir/mapping.js'
import { decodeControlFile } from '../pg/controlfile.js'
import { alignLsn8, type Lsn } from '../pg/lsn.js'
import { checkpointRecordLsn, lsnOutsidePageHeader } from '../pg/synthetic-wal.js'
import { XLOG_BLCKSZ } from '../pg/wal-page.js'
import { DEFAULT_WAL_SEGMENT_SIZE } from '../pg/wal-page.js'
import type { Timeline } from '../repository/timeline.js'

/** The highest LSN that rounds up to a multiple of 8 without leaving the 64-bit range. */
const ALIGNABLE_LSN_MAX = 0xffff_ffff_ffff_fff8n

export function positionBetweenRecords(tl: Timeline, requested: Lsn): Lsn {
  // Above it no WAL can be (and rounding up would overflow, naming an LSN past FFFFFFFF/FFFFFFFF in the
  // refusal): left as asked, for the caller to refuse.
  if (requested > ALIGNABLE_LSN_MAX) return requested
  return lsnOutsidePageHeader(alignLsn8(requested), storedWalSegmentSize(tl))
}

/**
 * `lsn`, or `floor` when `lsn` is the page boundary whose header ends at `floor`: the same WAL (no record ends
 * inside a header), so a read or backup there is one at `floor`. A timeline's first readable LSN can sit right
 * after a header (a branch made there, a base backup that ended there) while a backup of it names the page
 * boundary: an audit's export at the LSN another export reported was refused as before the start.
 */
export function liftToSameWal(tl: Timeline, lsn: Lsn, floor: Lsn): Lsn {
  // 0/0 starts no WAL a timeline can read (an LSN of 0/1 aligns to 0/8, inside the first header, then to 0/0).
  if (lsn === 0n || lsn >= floor || lsn % BigInt(XLOG_BLCKSZ) !== 0n) return lsn
  return checkpointRecordLsn(lsn, storedWalSegmentSize(tl)) === floor ? floor : lsn
}

/**
 * `lsn`, or `ceiling` when `lsn` is the end of the header of the page that begins at `ceiling`: the mirror of
 * liftToSameWal for the top of a timeline. Right after a WAL switch (or a record that ended at a page end),
 * PostgreSQL reports its insert position past the next page's header (pg_current_wal_insert_lsn() gives
 * 0/24000028 when the last record ended at 0/24000000); no record ends in between, so a branch or backup
 * there is one at the last record, not a request for WAL that has not arrived (an audit's branch at such an
 * LSN was refused as above the last record, with the hint to sync, which waited for a record the idle
 * primary did not write).
 */
export function lowerToSameWal(tl: Timeline, lsn: Lsn, ceiling: Lsn): Lsn {
  if (lsn <= ceiling || ceiling % BigInt(XLOG_BLCKSZ) !== 0n) return lsn
  return checkpointRecordLsn(ceiling, storedWalSegmentSize(tl)) === lsn ? ceiling : lsn
}

/** The WAL segment size in the timeline's stored pg_control (long page headers start each segment). */
function storedWalSegmentSize(tl: Timeline): number {
  const control = tl.getImage(controlFileKey(), tl.lastRecordLsn)
  return control === null ? DEFAULT_WAL_SEGMENT_SIZE : decodeControlFile(control, 'stored pg_control').xlog_seg_size
}
