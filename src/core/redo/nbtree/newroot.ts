/**
 * Redo of a new root (btree_xlog_newroot): the root split (level > 0) or the first root of an empty index
 * (level 0, from _bt_getroot).
 *
 *   0  the new root (WILL_INIT): flags BTP_ROOT (| BTP_LEAF at level 0), no siblings, the level; for
 *      level > 0 its two downlinks are restored from the data (_bt_restore_page).
 *   1  (level > 0) the old root, now the left child: clear BTP_INCOMPLETE_SPLIT.
 *   2  the metapage, rebuilt from the logged metadata.
 */
import { redoFailure, type RedoContext } from '../rmgr-redo.js'
import { BTP_LEAF, BTP_ROOT, P_NONE, btpoSetCycleId, btpoSetFlags, btpoSetLevel, btpoSetNext, btpoSetPrev } from '../page/nbtree-page.js'
import { btPageInit, clearIncompleteSplit, restorePage, stampLsn, targetData } from './common.js'
import { restoreMeta } from './meta.js'
import { parseNewroot } from './records.js'

export function redoNewroot(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseNewroot(ctx.rec.mainData())
  switch (ctx.block!.id) {
    case 0:
      btPageInit(page)
      btpoSetFlags(page, BTP_ROOT | (xlrec.level === 0 ? BTP_LEAF : 0))
      btpoSetPrev(page, P_NONE)
      btpoSetNext(page, P_NONE)
      btpoSetLevel(page, xlrec.level)
      btpoSetCycleId(page, 0)
      if (xlrec.level > 0) restorePage(page, targetData(ctx))
      stampLsn(ctx, page)
      return
    case 1:
      if (xlrec.level > 0) return clearIncompleteSplit(ctx, page)
      break
    case 2:
      return restoreMeta(ctx, page)
  }
  throw redoFailure(ctx, `new-root redo does not change block reference ${ctx.block!.id}`)
}
