/**
 * The redo engine's entry point: (base page | null, WAL records) -> the page after those records.
 *
 * Pure TypeScript, no I/O. The wal-redo worker process (src/core/walredo/worker-main.ts) calls `redoBlock`
 * once per GetPage request of the walredo pipe protocol; everything it needs travels in the arguments.
 *
 * PostgreSQL's per-block redo rules (XLogReadBufferForRedoExtended) are applied here, once, for every
 * block reference, before the resource manager's body runs:
 *   1. an image with BKPIMAGE_APPLY restores the page; pd_lsn := end LSN unless the page is new; no body;
 *   2. WILL_INIT: the body gets a zeroed page (no base needed);
 *   3. end LSN <= pd_lsn of the existing page: already applied (fuzzy base-backup pages); no body;
 *   4. otherwise the body runs.
 * Records of a resource manager without redo that carry a post-image of the target (the primary's
 * wal_consistency_checking for index types we do not redo) may use that image, as if it were a full-page
 * write, when the caller opts in (`useImagesWithoutRedo`). Anything else without redo fails with
 * REDO_UNSUPPORTED_RECORD: never a guessed page.
 *
 * The caller's `base` is never modified: the engine works on its own copy.
 */
import { assert, CorruptionError, PageserverError } from '../lib/errors.js'
import { formatLsn, INVALID_LSN, type Lsn } from '../pg/lsn.js'
import { isSlruFork } from '../pg/slru.js'
import type { BufferTag } from '../pg/reltag.js'
import { BLCKSZ, decodeRecord, recordCrcIsValid, restoreBlockImage, type DecodedBlock, type DecodedRecord } from '../pg/wal-record.js'
import { blockIsPage } from '../pg/wal-record-images.js'
import { PD_LSN_OFFSET, pageGetLsn, pageIsNew, pageSetLsn } from './page/page.js'
import { redoFailure, redoUnsupported, rmgrRedo, type RedoContext, type RedoOptions, type RmgrRedo } from './rmgr-redo.js'
import './all.js'

export type { RedoOptions } from './rmgr-redo.js'

/** One WAL record to apply: the whole XLogRecord (header included) and the LSN just past its end. */
export interface RedoRecord {
  endLsn: Lsn
  raw: Buffer
}

/** Longest chain accepted in one request: bounds the work a single (possibly hostile) request can cause. */
export const REDO_RECORDS_MAX = 100_000

function findBlock(rec: DecodedRecord, tag: BufferTag): DecodedBlock | null {
  for (const b of rec.blocks) {
    if (blockIsPage(b, tag)) return b
  }
  return null
}

/**
 * Returns the 8192-byte page of `tag` after applying `records` (ascending end LSN) on top of `base`
 * (null when the first record initialises the page). Throws a PageserverError when it cannot redo, e.g.
 * UnsupportedError code REDO_UNSUPPORTED_RECORD with details {rmgr, type, lsn, rel, fork, blk}.
 *
 * `out`, when given, is the 8192-byte buffer the page is built in and returned (a redo worker reuses its
 * reply buffers); it must not be `base`. Otherwise a new buffer is returned.
 */
export function redoBlock(tag: BufferTag, base: Buffer | null, records: readonly RedoRecord[], opts: RedoOptions, out?: Buffer): Buffer {
  if (records.length > REDO_RECORDS_MAX) {
    throw new CorruptionError('REDO_CHAIN_TOO_LONG', `${records.length} records in one redo request (limit ${REDO_RECORDS_MAX})`)
  }
  if (base !== null && base.length !== BLCKSZ) {
    throw new CorruptionError('REDO_BAD_BASE', `base page has ${base.length} bytes, expected ${BLCKSZ}`)
  }
  assert(out === undefined || (out.length === BLCKSZ && out !== base), 'redoBlock: the output page must be a separate 8192-byte buffer')
  const page = out ?? Buffer.allocUnsafe(BLCKSZ)
  let have = base !== null
  if (base !== null) base.copy(page, 0, 0, BLCKSZ)
  const checkCrc = opts.checkRecordCrc !== false
  for (let i = 0; i < records.length; i++) {
    applyRecord(tag, page, have, records[i]!, opts, checkCrc)
    have = true
  }
  if (!have) {
    throw new CorruptionError('REDO_NO_PAGE', 'no base page and no record that initialises the page', {
      hint: 'The stored history of this page is incomplete.',
    })
  }
  return page
}

/**
 * Applies one record to `page` in place. `have` says whether `page` holds the page so far; when it does
 * not, its bytes are garbage and every path overwrites them (image, zeros) before use.
 */
function applyRecord(tag: BufferTag, page: Buffer, have: boolean, r: RedoRecord, opts: RedoOptions, checkCrc: boolean): void {
  if (checkCrc && !recordCrcIsValid(r.raw)) {
    throw new CorruptionError('REDO_BAD_RECORD_CRC', `the WAL record ending at ${formatLsn(r.endLsn)} fails its CRC check`, {
      hint: 'The stored WAL record is corrupt.',
      details: { endLsn: formatLsn(r.endLsn) },
    })
  }
  const rec = decodeRecord(r.raw, INVALID_LSN, r.endLsn)
  const impl = rmgrRedo(rec.xl_rmid)

  if (isSlruFork(tag.forkNum)) {
    const ctx: RedoContext = { rec, endLsn: r.endLsn, tag, block: null, opts }
    if (impl?.redoSlru === undefined) throw redoUnsupported(ctx, 'this record does not change SLRU pages')
    // PostgreSQL reads a missing SLRU page as zeros during recovery.
    if (!have) page.fill(0)
    runHandler(ctx, impl.redoSlru, page)
    return
  }

  const block = findBlock(rec, tag)
  const ctx: RedoContext = { rec, endLsn: r.endLsn, tag, block, opts }
  if (block === null) {
    if (impl?.redoImplicit === undefined) throw redoFailure(ctx, 'the record does not reference this page')
    if (!have) page.fill(0)
    runHandler(ctx, impl.redoImplicit, page, !have)
    return
  }

  // 1. A real full-page write.
  if (block.applyImage) {
    imageAsResult(rec, block, r.endLsn, page)
    return
  }
  // 2. WILL_INIT: the body initialises a zeroed page.
  if (block.willInit) {
    page.fill(0)
    runBody(ctx, impl, page)
    return
  }
  if (!have) {
    // No redo needed when the record carries the page's post-image (consistency-checking image).
    if (impl?.redoBlock === undefined && block.hasImage && opts.useImagesWithoutRedo) {
      imageAsResult(rec, block, r.endLsn, page)
      return
    }
    // The page had no earlier version: its fork was extended without WAL (the visibility map and the free
    // space map grow that way) and PostgreSQL's redo reads such a page as zeros (RBM_ZERO_ON_ERROR). The
    // body sees a new page; routines that need an initialised page fail on it rather than guess.
    page.fill(0)
    runBody(ctx, impl, page)
    return
  }
  // 3. Already applied.
  if (lsnAtOrBelowPage(r.endLsn, page)) return
  // 4. The body.
  runBody(ctx, impl, page)
}

/** `endLsn <= pd_lsn`, without building bigints for the page's LSN (exact: doubles hold LSNs below 2^53). */
function lsnAtOrBelowPage(endLsn: Lsn, page: Buffer): boolean {
  const end = Number(endLsn)
  if (end > Number.MAX_SAFE_INTEGER) return endLsn <= pageGetLsn(page)
  const o = PD_LSN_OFFSET
  const hi = (page[o]! | (page[o + 1]! << 8) | (page[o + 2]! << 16) | (page[o + 3]! << 24)) >>> 0
  const lo = (page[o + 4]! | (page[o + 5]! << 8) | (page[o + 6]! << 16) | (page[o + 7]! << 24)) >>> 0
  return end <= hi * 0x1_0000_0000 + lo
}

function runBody(ctx: RedoContext, impl: RmgrRedo | undefined, page: Buffer): void {
  if (impl?.redoBlock === undefined) {
    if (ctx.block!.hasImage && ctx.opts.useImagesWithoutRedo) {
      imageAsResult(ctx.rec, ctx.block!, ctx.endLsn, page)
      return
    }
    throw redoUnsupported(ctx)
  }
  runHandler(ctx, impl.redoBlock, page)
}

/**
 * Restores the block's image into `page` and stamps the end LSN as redo would, unless the page is new. For a
 * full-page write, and for a consistency-checking post-image (taken before PageSetLSN) used in place of redo.
 */
function imageAsResult(rec: DecodedRecord, block: DecodedBlock, endLsn: Lsn, page: Buffer): void {
  restoreBlockImage(rec, block, page)
  if (!pageIsNew(page)) pageSetLsn(page, endLsn)
}

/** Calls a handler (no closure per record), turning a non-PageserverError into REDO_FAILED. */
function runHandler(ctx: RedoContext, fn: (ctx: RedoContext, page: Buffer, pageIsNew: boolean) => void, page: Buffer, pageIsNew = false): void {
  try {
    fn(ctx, page, pageIsNew)
  } catch (e) {
    if (e instanceof PageserverError) throw e
    // A handler that trips over a malformed page or record (RangeError from a Buffer read, say).
    throw redoFailure(ctx, e instanceof Error ? e.message : String(e))
  }
}
