/**
 * B-tree WAL record payloads (access/nbtxlog.h, PostgreSQL 15): record kinds and parsers for the main data
 * and for the block data that redo reads.
 *
 * WAL payloads are unaligned byte strings, but each struct keeps its C layout, padding included, so fields
 * are read at their byte offsets (x86-64/arm64 gcc):
 *
 *   xl_btree_insert              offnum u16 @0                                            SizeOf 2
 *   xl_btree_split               level u32 @0, firstrightoff u16 @4, newitemoff u16 @6,
 *                                postingoff u16 @8                                        SizeOf 10
 *   xl_btree_dedup               nintervals u16 @0 (BTDedupInterval{baseoff,nitems} x n
 *                                in block 0's data, 4 bytes each)                         SizeOf 2
 *   xl_btree_vacuum              ndeleted u16 @0, nupdated u16 @2                         SizeOf 4
 *   xl_btree_delete              latestRemovedXid u32 @0, ndeleted u16 @4, nupdated @6   SizeOf 8
 *   xl_btree_mark_page_halfdead  poffset u16 @0, (2 bytes padding), leafblk @4, leftblk @8,
 *                                rightblk @12, topparent @16                              SizeOf 20
 *   xl_btree_unlink_page         leftsib @0, rightsib @4, level @8, (4 padding),
 *                                safexid u64 @16, leafleftsib @24, leafrightsib @28,
 *                                leaftopparent @32                                        SizeOf 36
 *   xl_btree_newroot             rootblk @0, level @4                                     SizeOf 8
 *   xl_btree_reuse_page          RelFileNode @0 (12), block @12, latestRemovedFullXid u64 @16  24
 *   xl_btree_metadata (block data) version @0, root @4, level @8, fastroot @12, fastlevel @16,
 *                                last_cleanup_num_delpages @20, allequalimage bool @24   sizeof 28
 *
 * VACUUM / DELETE block 0 data: ndeleted u16 offsets, nupdated u16 offsets, then per updated tuple an
 * xl_btree_update: ndeletedtids u16 followed by that many u16 posting-list positions (ascending).
 *
 * Every count read from a record is checked against the bytes actually present (and against the most a
 * page could need) before anything is allocated or looped over; a short or inconsistent payload throws
 * BtreeRecordError, which the redo framework reports as REDO_FAILED with the record's position.
 */
import { MaxIndexTuplesPerPage, MaxOffsetNumber } from '../page/page.js'
import { MaxTIDsPerBTreePage } from '../page/nbtree-page.js'

export const XLOG_BTREE = {
  INSERT_LEAF: 0x00,
  INSERT_UPPER: 0x10,
  INSERT_META: 0x20,
  SPLIT_L: 0x30,
  SPLIT_R: 0x40,
  INSERT_POST: 0x50,
  DEDUP: 0x60,
  DELETE: 0x70,
  UNLINK_PAGE: 0x80,
  UNLINK_PAGE_META: 0x90,
  NEWROOT: 0xa0,
  MARK_PAGE_HALFDEAD: 0xb0,
  VACUUM: 0xc0,
  REUSE_PAGE: 0xd0,
  META_CLEANUP: 0xe0,
} as const

export const SizeOfBtreeInsert = 2
export const SizeOfBtreeSplit = 10
export const SizeOfBtreeDedup = 2
export const SizeOfBtreeVacuum = 4
export const SizeOfBtreeDelete = 8
export const SizeOfBtreeUpdate = 2
export const SizeOfBtreeMarkPageHalfDead = 20
export const SizeOfBtreeUnlinkPage = 36
export const SizeOfBtreeNewroot = 8
export const SizeOfBtreeReusePage = 24
/** sizeof(xl_btree_metadata): _bt_restore_meta insists on exactly this much block data. */
export const SizeOfBtreeMetadata = 28
/** sizeof(BTDedupInterval). */
export const SizeOfDedupInterval = 4

/** A dedup record never names more intervals than a page has items. */
export const dedupIntervalsMax = MaxIndexTuplesPerPage
/** Offsets deleted or updated in one VACUUM/DELETE record: at most one per line pointer. */
export const deletedOffsetsMax = MaxOffsetNumber
/** TIDs removed from one posting list: fewer than a page can hold. */
export const deletedTidsMax = MaxTIDsPerBTreePage

/** A record payload that does not fit its declared layout. */
export class BtreeRecordError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'BtreeRecordError'
  }
}

function need(buf: Buffer, size: number, what: string): void {
  if (buf.length < size) throw new BtreeRecordError(`${what}: ${buf.length} bytes of data, expected at least ${size}`)
}

export interface XlBtreeInsert {
  offnum: number
}
export function parseInsert(main: Buffer): XlBtreeInsert {
  need(main, SizeOfBtreeInsert, 'xl_btree_insert')
  return { offnum: main.readUInt16LE(0) }
}

export interface XlBtreeSplit {
  level: number
  firstrightoff: number
  newitemoff: number
  postingoff: number
}
export function parseSplit(main: Buffer): XlBtreeSplit {
  need(main, SizeOfBtreeSplit, 'xl_btree_split')
  return {
    level: main.readUInt32LE(0),
    firstrightoff: main.readUInt16LE(4),
    newitemoff: main.readUInt16LE(6),
    postingoff: main.readUInt16LE(8),
  }
}

export interface DedupInterval {
  baseoff: number
  nitems: number
}
/** xl_btree_dedup plus its intervals from block 0's data. */
export function parseDedup(main: Buffer, data: Buffer): DedupInterval[] {
  need(main, SizeOfBtreeDedup, 'xl_btree_dedup')
  const nintervals = main.readUInt16LE(0)
  if (nintervals > dedupIntervalsMax) throw new BtreeRecordError(`xl_btree_dedup names ${nintervals} intervals (limit ${dedupIntervalsMax})`)
  need(data, nintervals * SizeOfDedupInterval, 'dedup intervals')
  const out: DedupInterval[] = new Array(nintervals)
  for (let i = 0; i < nintervals; i++) {
    out[i] = { baseoff: data.readUInt16LE(i * 4), nitems: data.readUInt16LE(i * 4 + 2) }
  }
  return out
}

export interface XlBtreeVacuum {
  ndeleted: number
  nupdated: number
}
export function parseVacuum(main: Buffer): XlBtreeVacuum {
  need(main, SizeOfBtreeVacuum, 'xl_btree_vacuum')
  return { ndeleted: main.readUInt16LE(0), nupdated: main.readUInt16LE(2) }
}

export interface XlBtreeDelete extends XlBtreeVacuum {
  latestRemovedXid: number
}
export function parseDelete(main: Buffer): XlBtreeDelete {
  need(main, SizeOfBtreeDelete, 'xl_btree_delete')
  return { latestRemovedXid: main.readUInt32LE(0), ndeleted: main.readUInt16LE(4), nupdated: main.readUInt16LE(6) }
}

/** One xl_btree_update: the posting-list positions (0-based, ascending) of the TIDs to remove. */
export interface PostingUpdate {
  offnum: number
  deletetids: Uint16Array
}

export interface DeletionPayload {
  /** ascending offsets to delete (PageIndexMultiDelete order) */
  deleted: Uint16Array
  updates: PostingUpdate[]
}

/** Block 0's data of a VACUUM or DELETE record. */
export function parseDeletionPayload(data: Buffer, ndeleted: number, nupdated: number): DeletionPayload {
  if (ndeleted > deletedOffsetsMax || nupdated > deletedOffsetsMax) {
    throw new BtreeRecordError(`${ndeleted} deleted and ${nupdated} updated items (limit ${deletedOffsetsMax} each)`)
  }
  need(data, (ndeleted + nupdated) * 2, 'deleted and updated offsets')
  const deleted = new Uint16Array(ndeleted)
  for (let i = 0; i < ndeleted; i++) deleted[i] = data.readUInt16LE(i * 2)
  let pos = (ndeleted + nupdated) * 2
  const updates: PostingUpdate[] = new Array(nupdated)
  for (let i = 0; i < nupdated; i++) {
    need(data, pos + SizeOfBtreeUpdate, 'xl_btree_update')
    const n = data.readUInt16LE(pos)
    pos += SizeOfBtreeUpdate
    if (n > deletedTidsMax) throw new BtreeRecordError(`xl_btree_update removes ${n} TIDs (limit ${deletedTidsMax})`)
    need(data, pos + n * 2, 'xl_btree_update TID positions')
    const deletetids = new Uint16Array(n)
    for (let j = 0; j < n; j++) deletetids[j] = data.readUInt16LE(pos + j * 2)
    pos += n * 2
    updates[i] = { offnum: data.readUInt16LE((ndeleted + i) * 2), deletetids }
  }
  return { deleted, updates }
}

export interface XlBtreeMarkPageHalfDead {
  poffset: number
  leafblk: number
  leftblk: number
  rightblk: number
  topparent: number
}
export function parseMarkPageHalfDead(main: Buffer): XlBtreeMarkPageHalfDead {
  need(main, SizeOfBtreeMarkPageHalfDead, 'xl_btree_mark_page_halfdead')
  return {
    poffset: main.readUInt16LE(0),
    leafblk: main.readUInt32LE(4),
    leftblk: main.readUInt32LE(8),
    rightblk: main.readUInt32LE(12),
    topparent: main.readUInt32LE(16),
  }
}

export interface XlBtreeUnlinkPage {
  leftsib: number
  rightsib: number
  level: number
  /** FullTransactionId stored in the deleted page */
  safexid: bigint
  leafleftsib: number
  leafrightsib: number
  leaftopparent: number
}
export function parseUnlinkPage(main: Buffer): XlBtreeUnlinkPage {
  need(main, SizeOfBtreeUnlinkPage, 'xl_btree_unlink_page')
  return {
    leftsib: main.readUInt32LE(0),
    rightsib: main.readUInt32LE(4),
    level: main.readUInt32LE(8),
    safexid: main.readBigUInt64LE(16),
    leafleftsib: main.readUInt32LE(24),
    leafrightsib: main.readUInt32LE(28),
    leaftopparent: main.readUInt32LE(32),
  }
}

export interface XlBtreeNewroot {
  rootblk: number
  level: number
}
export function parseNewroot(main: Buffer): XlBtreeNewroot {
  need(main, SizeOfBtreeNewroot, 'xl_btree_newroot')
  return { rootblk: main.readUInt32LE(0), level: main.readUInt32LE(4) }
}

export interface XlBtreeReusePage {
  spcNode: number
  dbNode: number
  relNode: number
  block: number
  latestRemovedFullXid: bigint
}
export function parseReusePage(main: Buffer): XlBtreeReusePage {
  need(main, SizeOfBtreeReusePage, 'xl_btree_reuse_page')
  return {
    spcNode: main.readUInt32LE(0),
    dbNode: main.readUInt32LE(4),
    relNode: main.readUInt32LE(8),
    block: main.readUInt32LE(12),
    latestRemovedFullXid: main.readBigUInt64LE(16),
  }
}

export interface XlBtreeMetadata {
  version: number
  root: number
  level: number
  fastroot: number
  fastlevel: number
  last_cleanup_num_delpages: number
  /** the raw bool byte, copied as is */
  allequalimage: number
}
export function parseMetadata(data: Buffer): XlBtreeMetadata {
  if (data.length !== SizeOfBtreeMetadata) {
    throw new BtreeRecordError(`xl_btree_metadata: ${data.length} bytes of block data, expected ${SizeOfBtreeMetadata}`)
  }
  return {
    version: data.readUInt32LE(0),
    root: data.readUInt32LE(4),
    level: data.readUInt32LE(8),
    fastroot: data.readUInt32LE(12),
    fastlevel: data.readUInt32LE(16),
    last_cleanup_num_delpages: data.readUInt32LE(20),
    allequalimage: data[24]!,
  }
}
