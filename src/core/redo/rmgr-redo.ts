/**
 * The contract between the redo framework (engine.ts) and each resource manager's redo code, and the
 * registry that maps a resource-manager id to its redo.
 *
 * A resource manager's redo is asked about one target page at a time (as Neon's wal-redo process filters
 * every block but the target). Three ways a record can change a page:
 * - `redoBlock`: the page is one of the record's block references. The framework has already applied
 *   PostgreSQL's per-block rules (restore an APPLY image, skip when the page LSN is at or past the record's
 *   end, hand a zeroed page to WILL_INIT blocks); the handler only runs the rmgr-specific body.
 * - `redoImplicit`: the record changes a page it does not reference (heap records clear visibility-map
 *   bits; a storage TRUNCATE edits the last VM and FSM pages). The handler decides everything.
 * - `redoSlru`: an SLRU page (pg_xact, pg_multixact), named by a pseudo-fork in the target tag.
 *
 * Handlers mutate the page in place. They throw PageserverErrors; `redoFailure` and `redoUnsupported`
 * build the standard ones, naming the rmgr, record type, LSN, relation and block.
 */
import { assert, CorruptionError, UnsupportedError } from '../lib/errors.js'
import { formatLsn, INVALID_LSN, type Lsn } from '../pg/lsn.js'
import { forkName, formatRelFileNode, type BufferTag } from '../pg/reltag.js'
import { rmgrName } from '../pg/rmgr.js'
import { recordTypeName } from '../pg/rmgr-identify.js'
import type { DecodedBlock, DecodedRecord } from '../pg/wal-record.js'

export interface RedoOptions {
  /** Data checksums or wal_log_hints were on at the primary: hint-bit changes are WAL-logged there. */
  hintBitsLogged: boolean
  /**
   * For a record without redo here that carries a consistency-checking post-image of the target, use that
   * image as the result. Off by default: verification must never compare PostgreSQL's image with itself.
   */
  useImagesWithoutRedo?: boolean
  /**
   * Recompute each record's CRC-32C before decoding it (default true). Records that come from CRC-checked
   * layer files or from the WAL decoder (which verified them) may skip it: the redo workers inside the page
   * server do (worker flag --skip-record-crc); `redo replay` and direct callers keep it.
   */
  checkRecordCrc?: boolean
}

export interface RedoContext {
  readonly rec: DecodedRecord
  /** The record's end LSN: what PostgreSQL stamps as pd_lsn (EndRecPtr). */
  readonly endLsn: Lsn
  readonly tag: BufferTag
  /** The block reference that names the target page, if the record references it. */
  readonly block: DecodedBlock | null
  readonly opts: RedoOptions
}

/** A page a record changes without a block reference; `willInit` when the record rewrites it from zeros. */
export interface ImplicitTarget {
  readonly tag: BufferTag
  readonly willInit: boolean
}

export interface RmgrRedo {
  /**
   * Pages the record changes without referencing them: the visibility-map pages whose bits a heap record
   * clears, the last VM/FSM page a storage TRUNCATE edits, the SLRU pages (pseudo-fork tags) a commit or
   * multixact record sets. Ingest stores the record for each of these pages; verification chains them.
   * Together with the record's block references this answers "which pages does this record change?".
   */
  implicitTargets?(rec: DecodedRecord): readonly ImplicitTarget[]
  redoBlock?(ctx: RedoContext, page: Buffer): void
  /** `pageIsNew`: no base page existed (the page is all zeros), as when PostgreSQL extends a fork in redo. */
  redoImplicit?(ctx: RedoContext, page: Buffer, pageIsNew: boolean): void
  redoSlru?(ctx: RedoContext, page: Buffer): void
}

const registry = new Map<number, RmgrRedo>()

/** Called once per resource manager module at import time (see all.ts). */
export function registerRmgrRedo(rmid: number, redo: RmgrRedo): void {
  const existing = registry.get(rmid) ?? {}
  registry.set(rmid, { ...existing, ...redo })
}

export function rmgrRedo(rmid: number): RmgrRedo | undefined {
  assertRegistryLoaded()
  return registry.get(rmid)
}

/**
 * An empty registry would silently answer "no redo, no implicit pages" for every record (ingest would then
 * drop visibility-map and CLOG changes). Whoever consults it must have imported src/core/redo/all.ts.
 */
function assertRegistryLoaded(): void {
  assert(registry.size > 0, 'the redo registry is empty: import src/core/redo/all.js before decoding records for redo or ingest')
}

/** Pages a record changes without naming them in a block reference (see RmgrRedo.implicitTargets). */
export function implicitTargets(rec: DecodedRecord): readonly ImplicitTarget[] {
  assertRegistryLoaded()
  return registry.get(rec.xl_rmid)?.implicitTargets?.(rec) ?? NO_TARGETS
}

const NO_TARGETS: readonly ImplicitTarget[] = Object.freeze([])

/** "Heap/INSERT+INIT" */
export function recordLabel(rec: DecodedRecord): string {
  return `${rmgrName(rec.xl_rmid)}/${recordTypeName(rec.xl_rmid, rec.xl_info)}`
}

function details(ctx: RedoContext): Record<string, unknown> {
  return {
    rmgr: rmgrName(ctx.rec.xl_rmid),
    type: recordTypeName(ctx.rec.xl_rmid, ctx.rec.xl_info),
    // The start LSN is known only where records come whole from WAL (redo verify); the walredo protocol
    // carries end LSNs alone, and a worker's records start at 0/0, which would name no record.
    ...(ctx.rec.lsn === INVALID_LSN ? {} : { lsn: formatLsn(ctx.rec.lsn) }),
    endLsn: formatLsn(ctx.endLsn),
    rel: formatRelFileNode(ctx.tag),
    fork: forkName(ctx.tag.forkNum),
    blk: ctx.tag.blkno,
  }
}

function where(ctx: RedoContext): string {
  return `${recordLabel(ctx.rec)} record ending at ${formatLsn(ctx.endLsn)} on ${formatRelFileNode(ctx.tag)} ${forkName(ctx.tag.forkNum)} blk ${ctx.tag.blkno}`
}

/** The record is well-formed but this engine cannot redo it. Never a guessed page. */
export function redoUnsupported(ctx: RedoContext, why = 'no redo for this record type'): UnsupportedError {
  return new UnsupportedError('REDO_UNSUPPORTED_RECORD', `cannot redo ${where(ctx)}: ${why}`, {
    hint:
      'Pages touched by this record cannot be rebuilt at or after this LSN until a later full-page image. ' +
      "For index types without redo, set wal_consistency_checking on the primary for them (e.g. 'hash,gin,gist,spgist,brin,generic').",
    details: details(ctx),
  })
}

/** The record or the page does not fit what redo expects: corruption, or a bug. */
export function redoFailure(ctx: RedoContext, why: string): CorruptionError {
  return new CorruptionError('REDO_FAILED', `redo of ${where(ctx)} failed: ${why}`, {
    hint: 'The base page or the WAL record is inconsistent; the page at this LSN cannot be served.',
    details: details(ctx),
  })
}
