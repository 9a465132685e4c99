/**
 * Redo of index-tuple deletion outside VACUUM (btree_xlog_delete): simple deletion of LP_DEAD items and
 * bottom-up deletion. The page change is exactly VACUUM's (vacuum.ts); only the main data differs
 * (xl_btree_delete carries latestRemovedXid, used for hot-standby conflicts, not for the page).
 */
import type { RedoContext } from '../rmgr-redo.js'
import { parseDelete } from './records.js'
import { applyDeletions } from './vacuum.js'

export function redoDelete(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseDelete(ctx.rec.mainData())
  applyDeletions(ctx, page, xlrec.ndeleted, xlrec.nupdated)
}
