/**
 * What the SLRU redo modules (CLOG, MultiXact) share: the BufferTag that names an SLRU page as a redo target
 * (pseudo-fork, relation oids 0, blkno = SLRU page number; see pg/slru.ts), reading the 4-byte page number
 * of the ZEROPAGE-style records, and the wrapping of record-parse errors into the redo error of the page.
 *
 * SLRU pages have no page header and no LSN on the page: redo is a pure function of the page bytes and the
 * record, and PostgreSQL reads a page that does not exist yet as zeros during recovery (the engine hands
 * the handler a zeroed page then).
 */
import { CorruptionError, PageserverError } from '../../lib/errors.js'
import type { BufferTag } from '../../pg/reltag.js'
import type { SlruKindFork } from '../../pg/slru.js'
import { redoFailure, type ImplicitTarget, type RedoContext } from '../rmgr-redo.js'

export function slruTag(kind: SlruKindFork, pageno: number): BufferTag {
  return { spcNode: 0, dbNode: 0, relNode: 0, forkNum: kind, blkno: pageno }
}

export function slruTarget(kind: SlruKindFork, pageno: number, willInit: boolean): ImplicitTarget {
  return { tag: slruTag(kind, pageno), willInit }
}

/**
 * The `int pageno` main data of CLOG ZEROPAGE and MultiXact ZERO_*_PAGE records (memcpy of a C int).
 * A number outside 0..`pagenoMax` (the last page the SLRU can address) is corrupt.
 */
export function parsePageNumber(data: Buffer, what: string, pagenoMax: number): number {
  if (data.length < 4) {
    throw new CorruptionError('SLRU_BAD_RECORD', `${what} record has ${data.length} bytes of main data, expected 4`, {
      hint: 'The WAL is corrupt or was not written by PostgreSQL 15.',
    })
  }
  const pageno = data.readInt32LE(0)
  if (pageno < 0 || pageno > pagenoMax) {
    throw new CorruptionError('SLRU_BAD_RECORD', `${what} record names page ${pageno}`, {
      hint: 'The WAL is corrupt or was not written by PostgreSQL 15.',
    })
  }
  return pageno
}

/** Runs `fn`, turning a parse error (or any non-redo error) into REDO_FAILED naming the record and page. */
export function withRecordErrors<T>(ctx: RedoContext, fn: () => T): T {
  try {
    return fn()
  } catch (e) {
    if (e instanceof PageserverError && e.code.startsWith('REDO_')) throw e
    throw redoFailure(ctx, e instanceof Error ? e.message : String(e))
  }
}
