/**
 * B-tree resource manager redo (btree_redo): dispatch of the 15 record kinds to their modules, registered
 * with the redo framework at import time.
 *
 * The framework calls `redoBlock` once per block reference that needs its body run (after restoring APPLY
 * images, skipping pages already at or past the record, zeroing WILL_INIT pages); each routine changes
 * that one page, as Neon's wal-redo does with a block filter. B-tree records change no page without a
 * block reference, so there are no implicit targets. REUSE_PAGE has no block references at all: it only
 * matters for hot-standby conflicts.
 */
import { RM } from '../../pg/rmgr.js'
import { redoFailure, registerRmgrRedo, type RedoContext } from '../rmgr-redo.js'
import { redoDedup } from './dedup.js'
import { redoDelete } from './delete.js'
import { redoInsert } from './insert.js'
import { restoreMeta } from './meta.js'
import { redoNewroot } from './newroot.js'
import { redoMarkPageHalfDead, redoUnlinkPage } from './pagedel.js'
import { XLOG_BTREE } from './records.js'
import { redoSplit } from './split.js'
import { redoVacuum } from './vacuum.js'

export { XLOG_BTREE } from './records.js'

export function btreeRedoBlock(ctx: RedoContext, page: Buffer): void {
  switch (ctx.rec.rmgrInfo) {
    case XLOG_BTREE.INSERT_LEAF:
    case XLOG_BTREE.INSERT_UPPER:
    case XLOG_BTREE.INSERT_META:
    case XLOG_BTREE.INSERT_POST:
      return redoInsert(ctx, page)
    case XLOG_BTREE.SPLIT_L:
    case XLOG_BTREE.SPLIT_R:
      return redoSplit(ctx, page)
    case XLOG_BTREE.DEDUP:
      return redoDedup(ctx, page)
    case XLOG_BTREE.VACUUM:
      return redoVacuum(ctx, page)
    case XLOG_BTREE.DELETE:
      return redoDelete(ctx, page)
    case XLOG_BTREE.MARK_PAGE_HALFDEAD:
      return redoMarkPageHalfDead(ctx, page)
    case XLOG_BTREE.UNLINK_PAGE:
    case XLOG_BTREE.UNLINK_PAGE_META:
      return redoUnlinkPage(ctx, page)
    case XLOG_BTREE.NEWROOT:
      return redoNewroot(ctx, page)
    case XLOG_BTREE.META_CLEANUP:
      if (ctx.block!.id === 0) return restoreMeta(ctx, page)
      throw redoFailure(ctx, `meta-cleanup redo does not change block reference ${ctx.block!.id}`)
    case XLOG_BTREE.REUSE_PAGE:
      throw redoFailure(ctx, 'REUSE_PAGE records change no page')
    default:
      throw redoFailure(ctx, `unknown btree record kind 0x${ctx.rec.rmgrInfo.toString(16)}`)
  }
}

registerRmgrRedo(RM.BTREE, { redoBlock: btreeRedoBlock })
