/**
 * CLOG (pg_xact) redo: the commit-status pages that Transaction commit/abort records and CLOG records change.
 *
 * A CLOG page holds 2 status bits for each of 32,768 consecutive xids (4 per byte, lowest bits first). No
 * record references a CLOG page as a block: every page a record changes is an implicit target named by the
 * pseudo-fork SlruKind.Clog and blkno = page number.
 *
 * - COMMIT / COMMIT_PREPARED: the xid (xl_xid, or the prepared xid) and every subxact listed end COMMITTED.
 *   PostgreSQL passes through SUB_COMMITTED on the pages other than the top xid's (TransactionIdSetTreeStatus
 *   groups the xids by page), but within one record: the page after the record only ever holds the final
 *   status, so redo writes that. ABORT / ABORT_PREPARED: all of them end ABORTED.
 * - CLOG ZEROPAGE: the page becomes all zeros (a will-init target).
 * - CLOG TRUNCATE: removes whole segment files and changes no page; ingest drops the segments
 *   (`clogSegmentMayBeDeleted` is SimpleLruTruncate's test) and keeps oldestXact.
 * - PREPARE changes no CLOG page (the state file is stored by ingest, see xact-records.ts).
 *
 * Worked example: xid 100000 lives on page 3 (100000 / 32768), byte 424 ((100000 % 32768) / 4), bits 0..1
 * ((100000 % 4) * 2); committing it sets that byte to (byte & ~0x03) | 0x01.
 */
import { RM } from '../../pg/rmgr.js'
import {
  CLOG_BITS_PER_XACT,
  CLOG_XACTS_PER_BYTE,
  CLOG_XACTS_PER_PAGE,
  SLRU_PAGES_PER_SEGMENT,
  SlruKind,
  TRANSACTION_STATUS_ABORTED,
  TRANSACTION_STATUS_COMMITTED,
  clogPageOf,
} from '../../pg/slru.js'
import type { DecodedRecord } from '../../pg/wal-record.js'
import { redoFailure, registerRmgrRedo, type ImplicitTarget, type RedoContext } from '../rmgr-redo.js'
import { xactCompletion } from '../xact-records.js'
import { parsePageNumber, slruTarget, withRecordErrors } from './common.js'
import { CorruptionError } from '../../lib/errors.js'

export const CLOG_ZEROPAGE = 0x00
export const CLOG_TRUNCATE = 0x10
/** The last CLOG page: the one holding xid 0xFFFFFFFF. */
export const CLOG_PAGENO_MAX = Math.floor(0xffff_ffff / CLOG_XACTS_PER_PAGE)
export const SizeOfClogTruncate = 12
const CLOG_XACT_BITMASK = (1 << CLOG_BITS_PER_XACT) - 1
const FirstNormalTransactionId = 3

// --- page bits -----------------------------------------------------------------------------------------

/** TransactionIdToByte: the byte of `xid`'s status within its page. */
export function clogByteOf(xid: number): number {
  return Math.floor((xid % CLOG_XACTS_PER_PAGE) / CLOG_XACTS_PER_BYTE)
}

/** TransactionIdToBIndex * CLOG_BITS_PER_XACT: the shift of `xid`'s two bits within that byte. */
export function clogShiftOf(xid: number): number {
  return (xid % CLOG_XACTS_PER_BYTE) * CLOG_BITS_PER_XACT
}

export function clogGetStatus(page: Buffer, xid: number): number {
  return (page[clogByteOf(xid)]! >> clogShiftOf(xid)) & CLOG_XACT_BITMASK
}

/** TransactionIdSetStatusBit without the group-LSN bookkeeping (shared memory only, not on the page). */
export function clogSetStatus(page: Buffer, xid: number, status: number): void {
  const at = clogByteOf(xid)
  const shift = clogShiftOf(xid)
  page[at] = (page[at]! & ~(CLOG_XACT_BITMASK << shift)) | ((status & CLOG_XACT_BITMASK) << shift)
}

// --- records -------------------------------------------------------------------------------------------

export interface ParsedClogTruncate {
  /** Segments whose every page precedes this page are removed. */
  readonly pageno: number
  readonly oldestXact: number
  readonly oldestXactDb: number
}

/** xl_clog_truncate: pageno i32 | oldestXact u32 | oldestXactDb u32. */
export function parseClogTruncate(data: Buffer): ParsedClogTruncate {
  if (data.length < SizeOfClogTruncate) {
    throw new CorruptionError('SLRU_BAD_RECORD', `CLOG TRUNCATE record has ${data.length} bytes of main data, expected ${SizeOfClogTruncate}`, {
      hint: 'The WAL is corrupt or was not written by PostgreSQL 15.',
    })
  }
  return { pageno: parsePageNumber(data, 'CLOG TRUNCATE', CLOG_PAGENO_MAX), oldestXact: data.readUInt32LE(4), oldestXactDb: data.readUInt32LE(8) }
}

/** CLOG ZEROPAGE: the page number to zero. */
export function parseClogZeroPage(data: Buffer): number {
  return parsePageNumber(data, 'CLOG ZEROPAGE', CLOG_PAGENO_MAX)
}

// --- truncation (for ingest) -----------------------------------------------------------------------------

/** TransactionIdPrecedes: modulo-2^32 order between normal xids, plain order when either is special. */
export function transactionIdPrecedes(id1: number, id2: number): boolean {
  if (id1 < FirstNormalTransactionId || id2 < FirstNormalTransactionId) return id1 < id2
  return ((id1 - id2) | 0) < 0
}

/** CLOGPagePrecedes: compares the pages through xids well inside them, so wraparound is handled. */
export function clogPagePrecedes(page1: number, page2: number): boolean {
  const xid1 = (page1 * CLOG_XACTS_PER_PAGE + FirstNormalTransactionId + 1) >>> 0
  const xid2 = (page2 * CLOG_XACTS_PER_PAGE + FirstNormalTransactionId + 1) >>> 0
  return transactionIdPrecedes(xid1, xid2) && transactionIdPrecedes(xid1, (xid2 + CLOG_XACTS_PER_PAGE - 1) >>> 0)
}

/**
 * SlruMayDeleteSegment for pg_xact: whether CLOG TRUNCATE with `cutoffPage` removes segment `segno` (both its
 * first and last page precede the cutoff).
 */
export function clogSegmentMayBeDeleted(segno: number, cutoffPage: number): boolean {
  const segpage = segno * SLRU_PAGES_PER_SEGMENT
  return clogPagePrecedes(segpage, cutoffPage) && clogPagePrecedes(segpage + SLRU_PAGES_PER_SEGMENT - 1, cutoffPage)
}

// --- implicit targets and redo -----------------------------------------------------------------------------

/** The CLOG pages holding `xids`, in ascending order, each once. */
function clogPages(xids: readonly number[]): number[] {
  const pages = new Set<number>()
  for (const x of xids) pages.add(clogPageOf(x))
  return [...pages].sort((a, b) => a - b)
}

/** CLOG pages a Transaction record changes: every page holding the ended xid or one of its subxacts. */
export function xactClogTargets(rec: DecodedRecord): ImplicitTarget[] {
  const done = xactCompletion(rec)
  if (done === null) return []
  return clogPages([done.xid, ...done.subxacts]).map((p) => slruTarget(SlruKind.Clog, p, false))
}

function xactRedoSlru(ctx: RedoContext, page: Buffer): void {
  if (ctx.tag.forkNum !== SlruKind.Clog) throw redoFailure(ctx, 'Transaction records change only pg_xact pages')
  const done = withRecordErrors(ctx, () => xactCompletion(ctx.rec))
  if (done === null) throw redoFailure(ctx, 'this Transaction record changes no pg_xact page')
  const status = done.committed ? TRANSACTION_STATUS_COMMITTED : TRANSACTION_STATUS_ABORTED
  const pageno = ctx.tag.blkno
  let touched = false
  for (const xid of [done.xid, ...done.subxacts]) {
    if (clogPageOf(xid) !== pageno) continue
    clogSetStatus(page, xid, status)
    touched = true
  }
  if (!touched) throw redoFailure(ctx, `no xid of this record lives on pg_xact page ${pageno}`)
}

function clogImplicitTargets(rec: DecodedRecord): ImplicitTarget[] {
  if (rec.rmgrInfo !== CLOG_ZEROPAGE) return []
  return [slruTarget(SlruKind.Clog, parseClogZeroPage(rec.mainData()), true)]
}

function clogRedoSlru(ctx: RedoContext, page: Buffer): void {
  const info = ctx.rec.rmgrInfo
  if (info !== CLOG_ZEROPAGE) throw redoFailure(ctx, 'CLOG TRUNCATE removes segment files and changes no page')
  const pageno = withRecordErrors(ctx, () => parseClogZeroPage(ctx.rec.mainData()))
  if (ctx.tag.forkNum !== SlruKind.Clog || ctx.tag.blkno !== pageno) throw redoFailure(ctx, `the record zeroes pg_xact page ${pageno}, not this page`)
  page.fill(0)
}

registerRmgrRedo(RM.XACT, { implicitTargets: xactClogTargets, redoSlru: xactRedoSlru })
registerRmgrRedo(RM.CLOG, { implicitTargets: clogImplicitTargets, redoSlru: clogRedoSlru })
