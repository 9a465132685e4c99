/**
 * The redo engine's entry point: (base page | null, WAL records) -> the page after those records.
 *
 * Pure TypeScript, no I/O. The wal-redo worker process (src/core/walredo/worker-main.ts) calls `redoBlock`
 * once per GetPage request of the walredo pipe protocol; everything it needs travels in the arguments.
 *
 * PLACEHOLDER: this file only fixes the contract so that the worker can be built and tested. The redo
 * helpers replace the body of `redoBlock`; until then every call throws REDO_ENGINE_MISSING.
 */
import { UnsupportedError } from '../lib/errors.js'
import type { Lsn } from '../pg/lsn.js'
import type { BufferTag } from '../pg/reltag.js'

/** One WAL record to apply: the whole XLogRecord (header included) and the LSN just past its end. */
export interface RedoRecord {
  endLsn: Lsn
  raw: Buffer
}

export interface RedoOptions {
  /** Data checksums or wal_log_hints were on at the primary: hint-bit changes are WAL-logged there. */
  hintBitsLogged: boolean
}

/**
 * Returns the 8192-byte page of `tag` after applying `records` (ascending end LSN) on top of `base`
 * (null when the first record initialises the page). Throws a PageserverError when it cannot redo, e.g.
 * UnsupportedError code REDO_UNSUPPORTED_RECORD with details {rmgr, type, lsn, rel, fork, blk}.
 */
export function redoBlock(tag: BufferTag, base: Buffer | null, records: RedoRecord[], opts: RedoOptions): Buffer {
  void tag
  void base
  void records
  void opts
  throw new UnsupportedError('REDO_ENGINE_MISSING', 'this build has no WAL redo engine yet', {
    hint: 'Build pageserver with the redo engine (src/core/redo/engine.ts), or serve pages from images only.',
  })
}
