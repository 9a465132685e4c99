/**
 * XLOG resource manager redo: only full-page-image records touch pages.
 *
 * XLOG_FPI carries one or more real full-page writes (APPLY images, restored by the framework before any
 * body runs), so reaching a body means the record lacks the image PostgreSQL demands. XLOG_FPI_FOR_HINT
 * may carry no image when full_page_writes was off; then there is nothing to do. Every other XLOG record
 * (checkpoints, NEXTOID, PARAMETER_CHANGE, SWITCH, ...) changes control data, never a page: ingest keeps
 * that state, and no page ever gets such a record to redo.
 */
import { RM } from '../pg/rmgr.js'
import { XLOG_FPI, XLOG_FPI_FOR_HINT } from '../pg/xlog-info.js'
import { redoFailure, redoUnsupported, registerRmgrRedo, type RedoContext } from './rmgr-redo.js'

function xlogRedoBlock(ctx: RedoContext): void {
  const info = ctx.rec.rmgrInfo
  if (info === XLOG_FPI) throw redoFailure(ctx, 'XLOG_FPI record did not contain a full-page image')
  if (info === XLOG_FPI_FOR_HINT) return
  throw redoUnsupported(ctx, 'this XLOG record does not change pages')
}

registerRmgrRedo(RM.XLOG, { redoBlock: xlogRedoBlock })
