/**
 * _bt_restore_meta: the metapage is always rebuilt from scratch (its block reference is WILL_INIT) out of
 * the xl_btree_metadata in the block's data. Used by INSERT_META (block 2), NEWROOT (block 2),
 * UNLINK_PAGE_META (block 4) and META_CLEANUP (block 0).
 *
 * Resulting page: PageInit with a 16-byte opaque whose flags are BTP_META only; BTMetaPageData at byte 24
 * with btm_magic = BTREE_MAGIC, the logged fields, btm_last_cleanup_num_heap_tuples = -1.0 (no longer
 * logged since PG14); pd_lower = 24 + sizeof(BTMetaPageData) = 72, so a compressed image keeps the
 * metadata. Struct padding stays zero (PageInit zeroed it).
 */
import type { RedoContext } from '../rmgr-redo.js'
import {
  BTM_ALLEQUALIMAGE_OFFSET,
  BTM_FASTLEVEL_OFFSET,
  BTM_FASTROOT_OFFSET,
  BTM_LAST_CLEANUP_NUM_DELPAGES_OFFSET,
  BTM_LAST_CLEANUP_NUM_HEAP_TUPLES_OFFSET,
  BTM_LEVEL_OFFSET,
  BTM_MAGIC_OFFSET,
  BTM_ROOT_OFFSET,
  BTM_VERSION_OFFSET,
  BTP_META,
  BTREE_MAGIC,
  SizeOfBTMetaPageData,
  btpoSetFlags,
} from '../page/nbtree-page.js'
import { PageGetContentsOffset, setPdLower } from '../page/page.js'
import { btPageInit, stampLsn, targetData } from './common.js'
import { parseMetadata } from './records.js'

export function restoreMeta(ctx: RedoContext, page: Buffer): void {
  const xlrec = parseMetadata(targetData(ctx))
  btPageInit(page)
  page.writeUInt32LE(BTREE_MAGIC, BTM_MAGIC_OFFSET)
  page.writeUInt32LE(xlrec.version, BTM_VERSION_OFFSET)
  page.writeUInt32LE(xlrec.root, BTM_ROOT_OFFSET)
  page.writeUInt32LE(xlrec.level, BTM_LEVEL_OFFSET)
  page.writeUInt32LE(xlrec.fastroot, BTM_FASTROOT_OFFSET)
  page.writeUInt32LE(xlrec.fastlevel, BTM_FASTLEVEL_OFFSET)
  page.writeUInt32LE(xlrec.last_cleanup_num_delpages, BTM_LAST_CLEANUP_NUM_DELPAGES_OFFSET)
  page.writeDoubleLE(-1.0, BTM_LAST_CLEANUP_NUM_HEAP_TUPLES_OFFSET)
  page[BTM_ALLEQUALIMAGE_OFFSET] = xlrec.allequalimage
  btpoSetFlags(page, BTP_META)
  setPdLower(page, PageGetContentsOffset + SizeOfBTMetaPageData)
  stampLsn(ctx, page)
}
