/**
 * Sequence resource manager redo: XLOG_SEQ_LOG, the only record type, rewrites the sequence's one page.
 *
 * Main data: xl_seq_rec (the sequence's RelFileNode, 12 bytes) followed by the whole heap tuple of the
 * sequence. Block 0 is always registered WILL_INIT, so redo starts from zeros: PageInit with a 4-byte
 * special space (MAXALIGNed to 8) holding SEQ_MAGIC 0x1717, then the tuple added as item 1 (PageAddItem,
 * no overwrite, not heap), then pd_lsn := end LSN. The bytes between the tuple's length and its MAXALIGNed
 * slot stay zero, as PageInit left them.
 *
 * Worked example: the usual 41-byte tuple (24-byte header; last_value, log_cnt, is_called = 8 + 8 + 1) goes
 * to pd_upper = 8184 - MAXALIGN(41) = 8136, line pointer 1 = (8136, NORMAL, 41), pd_lower 28, magic at 8184.
 */
import { RM } from '../pg/rmgr.js'
import { pageAddItem } from './page/bufpage.js'
import { FirstOffsetNumber, InvalidOffsetNumber, getPdSpecial, pageInit, pageSetLsn } from './page/page.js'
import { redoFailure, registerRmgrRedo, type RedoContext } from './rmgr-redo.js'

export const XLOG_SEQ_LOG = 0x00
export const SEQ_MAGIC = 0x1717
export const SizeOfSeqRec = 12
export const SizeOfSequenceMagic = 4

/** Rebuilds the sequence page on `page` (which the framework has zeroed) from an XLOG_SEQ_LOG record. */
function seqRedoBlock(ctx: RedoContext, page: Buffer): void {
  if (ctx.rec.rmgrInfo !== XLOG_SEQ_LOG) throw redoFailure(ctx, 'unknown Sequence record type')
  if (ctx.block === null || ctx.block.id !== 0) throw redoFailure(ctx, 'Sequence LOG changes only its block 0')
  // XLogInitBufferForRedo: PostgreSQL refuses a block without WILL_INIT here.
  if (!ctx.block.willInit) throw redoFailure(ctx, 'block 0 of a Sequence LOG record must be WILL_INIT')
  const data = ctx.rec.mainData()
  if (data.length <= SizeOfSeqRec) throw redoFailure(ctx, `main data has ${data.length} bytes, no room for the sequence tuple`)
  const item = data.subarray(SizeOfSeqRec)
  pageInit(page, SizeOfSequenceMagic)
  page.writeUInt32LE(SEQ_MAGIC, getPdSpecial(page))
  if (pageAddItem(page, item, item.length, FirstOffsetNumber, false, false) === InvalidOffsetNumber) {
    throw redoFailure(ctx, `failed to add the ${item.length}-byte sequence tuple to the page`)
  }
  pageSetLsn(page, ctx.endLsn)
}

registerRmgrRedo(RM.SEQ, { redoBlock: seqRedoBlock })
