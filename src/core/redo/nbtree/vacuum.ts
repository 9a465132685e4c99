/**
 * Redo of VACUUM's leaf-page cleanup (btree_xlog_vacuum), and the part it shares with DELETE
 * (btree_xlog_delete, delete.ts): posting-list updates, then item deletion, then BTP_HAS_GARBAGE cleared.
 *
 * Order matters for the layout: first every updated posting tuple is rebuilt without its dead TIDs
 * (_bt_update_posting) and written over the old one with PageIndexTupleOverwrite (MAXALIGNed size, which
 * slides the tuples below it when it shrinks); then the deleted offsets go in one PageIndexMultiDelete
 * (retail deletes for <= 2 items, a compaction otherwise: bufpage.ts keeps PostgreSQL's threshold).
 */
import { redoFailure, type RedoContext } from '../rmgr-redo.js'
import { pageIndexMultiDelete, pageIndexTupleOverwrite } from '../page/bufpage.js'
import { maxalign } from '../page/page.js'
import { BTP_HAS_GARBAGE, btpoGetFlags, btpoSetFlags } from '../page/nbtree-page.js'
import { checkSpecial, pageTuple, stampLsn, targetData } from './common.js'
import { updatePosting } from './posting.js'
import { parseDeletionPayload, parseVacuum } from './records.js'

/** Applies block 0's deletions and posting-list updates of a VACUUM or DELETE record, then stamps the page. */
export function applyDeletions(ctx: RedoContext, page: Buffer, ndeleted: number, nupdated: number): void {
  if (ctx.block!.id !== 0) throw redoFailure(ctx, `deletion redo does not change block reference ${ctx.block!.id}`)
  checkSpecial(page)
  const { deleted, updates } = parseDeletionPayload(targetData(ctx), ndeleted, nupdated)
  for (const u of updates) {
    const itup = updatePosting(pageTuple(page, u.offnum), u.deletetids)
    // PostgreSQL passes MAXALIGN(IndexTupleSize) as the new size; the tuple is already that long.
    const size = maxalign(itup.length)
    const padded = size === itup.length ? itup : Buffer.concat([itup, Buffer.alloc(size - itup.length)])
    if (!pageIndexTupleOverwrite(page, u.offnum, padded, size)) throw redoFailure(ctx, 'failed to update partially dead item')
  }
  if (deleted.length > 0) pageIndexMultiDelete(page, deleted, deleted.length)
  btpoSetFlags(page, btpoGetFlags(page) & ~BTP_HAS_GARBAGE)
  stampLsn(ctx, page)
}

export function redoVacuum(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseVacuum(ctx.rec.mainData())
  applyDeletions(ctx, page, xlrec.ndeleted, xlrec.nupdated)
}
