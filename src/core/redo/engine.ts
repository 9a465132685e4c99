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
import { CorruptionError, PageserverError } from '../lib/errors.js'
import { INVALID_LSN, type Lsn } from '../pg/lsn.js'
import { isSlruFork } from '../pg/slru.js'
import type { BufferTag } from '../pg/reltag.js'
import { BLCKSZ, decodeRecord, recordCrcIsValid, restoreBlockImage, type DecodedBlock, type DecodedRecord } from '../pg/wal-record.js'
import { pageGetLsn, pageIsNew, pageSetLsn } from './page/page.js'
import { redoFailure, redoUnsupported, rmgrRedo, type RedoContext, type RedoOptions } from './rmgr-redo.js'
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
    if (b.blkno === tag.blkno && b.forkNum === tag.forkNum && b.rel.relNode === tag.relNode && b.rel.dbNode === tag.dbNode && b.rel.spcNode === tag.spcNode) {
      return b
    }
  }
  return null
}

/**
 * Returns the 8192-byte page of `tag` after applying `records` (ascending end LSN) on top of `base`
 * (null when the first record initialises the page). Throws a PageserverError when it cannot redo, e.g.
 * UnsupportedError code REDO_UNSUPPORTED_RECORD with details {rmgr, type, lsn, rel, fork, blk}.
 */
export function redoBlock(tag: BufferTag, base: Buffer | null, records: RedoRecord[], opts: RedoOptions): Buffer {
  if (records.length > REDO_RECORDS_MAX) {
    throw new CorruptionError('REDO_CHAIN_TOO_LONG', `${records.length} records in one redo request (limit ${REDO_RECORDS_MAX})`)
  }
  if (base !== null && base.length !== BLCKSZ) {
    throw new CorruptionError('REDO_BAD_BASE', `base page has ${base.length} bytes, expected ${BLCKSZ}`)
  }
  let page: Buffer | null = base === null ? null : Buffer.from(base)
  for (const r of records) {
    page = applyRecord(tag, page, r, opts)
  }
  if (page === null) {
    throw new CorruptionError('REDO_NO_PAGE', 'no base page and no record that initialises the page', {
      hint: 'The stored history of this page is incomplete.',
    })
  }
  return page
}

/** Applies one record to the page (or to a fresh page). Returns the page, which may be a new buffer. */
export function applyRecord(tag: BufferTag, page: Buffer | null, r: RedoRecord, opts: RedoOptions): Buffer {
  if (!recordCrcIsValid(r.raw)) {
    throw new CorruptionError('REDO_BAD_RECORD_CRC', 'a WAL record given to redo fails its CRC check', {
      hint: 'The stored WAL record is corrupt.',
    })
  }
  const rec = decodeRecord(r.raw, INVALID_LSN, r.endLsn)
  const impl = rmgrRedo(rec.xl_rmid)

  if (isSlruFork(tag.forkNum)) {
    const ctx: RedoContext = { rec, endLsn: r.endLsn, tag, block: null, opts }
    if (!impl?.redoSlru) throw redoUnsupported(ctx, 'this record does not change SLRU pages')
    // PostgreSQL reads a missing SLRU page as zeros during recovery.
    const p = page ?? Buffer.alloc(BLCKSZ)
    runHandler(ctx, () => impl.redoSlru!(ctx, p))
    return p
  }

  const block = findBlock(rec, tag)
  const ctx: RedoContext = { rec, endLsn: r.endLsn, tag, block, opts }
  if (block === null) {
    if (!impl?.redoImplicit) throw redoFailure(ctx, 'the record does not reference this page')
    const isNew = page === null
    const p = page ?? Buffer.alloc(BLCKSZ)
    runHandler(ctx, () => impl.redoImplicit!(ctx, p, isNew))
    return p
  }

  // 1. A real full-page write.
  if (block.applyImage) {
    const p = restoreBlockImage(rec, block, page ?? Buffer.allocUnsafe(BLCKSZ))
    if (!pageIsNew(p)) pageSetLsn(p, r.endLsn)
    return p
  }
  // 2. WILL_INIT: the body initialises a zeroed page.
  if (block.willInit) {
    const p = page ?? Buffer.allocUnsafe(BLCKSZ)
    p.fill(0)
    return runBody(ctx, impl, p)
  }
  if (page === null) {
    // No redo needed when the record carries the page's post-image (consistency-checking image).
    if (!impl?.redoBlock && block.hasImage && opts.useImagesWithoutRedo) return imageAsResult(rec, block, r.endLsn, null)
    // The page had no earlier version: its fork was extended without WAL (the visibility map and the free
    // space map grow that way) and PostgreSQL's redo reads such a page as zeros (RBM_ZERO_ON_ERROR). The
    // body sees a new page; routines that need an initialised page fail on it rather than guess.
    return runBody(ctx, impl, Buffer.alloc(BLCKSZ))
  }
  // 3. Already applied.
  if (r.endLsn <= pageGetLsn(page)) return page
  // 4. The body.
  return runBody(ctx, impl, page)
}

function runBody(ctx: RedoContext, impl: ReturnType<typeof rmgrRedo>, page: Buffer): Buffer {
  if (!impl?.redoBlock) {
    if (ctx.block!.hasImage && ctx.opts.useImagesWithoutRedo) return imageAsResult(ctx.rec, ctx.block!, ctx.endLsn, page)
    throw redoUnsupported(ctx)
  }
  runHandler(ctx, () => impl.redoBlock!(ctx, page))
  return page
}

/** A post-image taken before PageSetLSN: stamp the end LSN as redo would, unless the page is new. */
function imageAsResult(rec: DecodedRecord, block: DecodedBlock, endLsn: Lsn, into: Buffer | null): Buffer {
  const p = restoreBlockImage(rec, block, into ?? Buffer.allocUnsafe(BLCKSZ))
  if (!pageIsNew(p)) pageSetLsn(p, endLsn)
  return p
}

function runHandler(ctx: RedoContext, fn: () => void): void {
  try {
    fn()
  } catch (e) {
    if (e instanceof PageserverError) throw e
    // A handler that trips over a malformed page or record (RangeError from a Buffer read, say).
    throw redoFailure(ctx, e instanceof Error ? e.message : String(e))
  }
}
