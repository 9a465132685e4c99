import { describe, expect, it } from 'vitest'
import {
  BTMaxItemSize,
  BTMaxItemSizeNoHeapTid,
  BTP_DELETED,
  BTP_HAS_FULLXID,
  BTP_HALF_DEAD,
  BTP_LEAF,
  BTREE_MAGIC,
  MaxTIDsPerBTreePage,
  btPageGetDeleteXid,
  btPageSetDeleted,
  btpoGetCycleId,
  btpoGetFlags,
  btpoGetLevel,
  btpoGetNext,
  btpoGetPrev,
  btreeTupleGetDownLink,
  btreeTupleGetHeapTIDPosition,
  btreeTupleGetMaxHeapTIDPosition,
  btreeTupleGetNPosting,
  btreeTupleGetPivotNAtts,
  btreeTupleGetPostingOffset,
  btreeTupleIsPivot,
  btreeTupleIsPosting,
  btreeTupleSetNAtts,
  btreeTupleSetPosting,
  indexInfoFindDataOffset,
  indexTupleSize,
  pFirstDataKey,
  pIsLeaf,
  readBtMeta,
  writeBtMeta,
} from '../../../../src/core/redo/page/nbtree-page.js'
import { pageInit } from '../../../../src/core/redo/page/page.js'
import { readHeader } from './helpers.js'

describe('nbtree page layout', () => {
  it('reads BTPageOpaqueData at pd_special (hand-written bytes)', () => {
    const p = Buffer.alloc(8192)
    pageInit(p, 16)
    Buffer.from([1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x41, 0x00, 0x7f, 0xff]).copy(p, 8176)
    expect(btpoGetPrev(p)).toBe(1)
    expect(btpoGetNext(p)).toBe(2)
    expect(btpoGetLevel(p)).toBe(0)
    expect(btpoGetFlags(p)).toBe(BTP_LEAF | 0x40)
    expect(btpoGetCycleId(p)).toBe(0xff7f)
    expect(pIsLeaf(p)).toBe(true)
    expect(pFirstDataKey(p)).toBe(2)
    p.writeUInt32LE(0, 8180)
    expect(pFirstDataKey(p)).toBe(1)
  })

  it('metapage fields sit at PostgreSQL offsets', () => {
    const p = Buffer.alloc(8192)
    pageInit(p, 16)
    writeBtMeta(p, {
      btm_magic: BTREE_MAGIC,
      btm_version: 4,
      btm_root: 3,
      btm_level: 1,
      btm_fastroot: 3,
      btm_fastlevel: 1,
      btm_last_cleanup_num_delpages: 0,
      btm_last_cleanup_num_heap_tuples: -1,
      btm_allequalimage: true,
    })
    expect(p.readUInt32LE(24)).toBe(0x053162)
    expect(p.readUInt32LE(32)).toBe(3)
    expect(p.readDoubleLE(56)).toBe(-1)
    expect(p[64]).toBe(1)
    expect(readBtMeta(p).btm_root).toBe(3)
  })

  it('btPageSetDeleted sets flags, pointers and the safe xid', () => {
    const p = Buffer.alloc(8192)
    pageInit(p, 16)
    p.writeUInt16LE(BTP_LEAF | BTP_HALF_DEAD, 8176 + 12)
    p.writeUInt16LE(100, 12)
    btPageSetDeleted(p, 0x1_0000_0005n)
    expect(btpoGetFlags(p)).toBe(BTP_LEAF | BTP_DELETED | BTP_HAS_FULLXID)
    expect(readHeader(p)).toMatchObject({ lower: 32, upper: 8176 })
    expect(btPageGetDeleteXid(p)).toBe(0x1_0000_0005n)
  })

  it('decodes posting and pivot tuples from t_tid (hand-written bytes)', () => {
    // posting tuple: 16-byte header+key, then 3 heap TIDs; t_info size 34 | ALT_TID
    const t = Buffer.alloc(40)
    Buffer.from([0x00, 0x00, 0x10, 0x00, 0x03, 0x20, 0x22, 0x20]).copy(t, 0)
    expect(indexTupleSize(t, 0)).toBe(34)
    expect(btreeTupleIsPosting(t, 0)).toBe(true)
    expect(btreeTupleIsPivot(t, 0)).toBe(false)
    expect(btreeTupleGetNPosting(t, 0)).toBe(3)
    expect(btreeTupleGetPostingOffset(t, 0)).toBe(16)
    expect(btreeTupleGetHeapTIDPosition(t, 0)).toBe(16)
    expect(btreeTupleGetMaxHeapTIDPosition(t, 0)).toBe(28)

    const u = Buffer.alloc(40)
    u.writeUInt16LE(34, 6)
    btreeTupleSetPosting(u, 0, 3, 16)
    expect([...u.subarray(0, 8)]).toEqual([...t.subarray(0, 8)])

    // pivot: downlink 9, 1 key attribute + heap TID
    const v = Buffer.alloc(24)
    v.writeUInt16LE(24, 6)
    v.writeUInt16LE(0, 0)
    v.writeUInt16LE(9, 2)
    btreeTupleSetNAtts(v, 0, 1, true)
    expect([...v.subarray(0, 8)]).toEqual([0, 0, 9, 0, 0x01, 0x10, 24, 0x20])
    expect(btreeTupleIsPivot(v, 0)).toBe(true)
    expect(btreeTupleGetPivotNAtts(v, 0)).toBe(1)
    expect(btreeTupleGetDownLink(v, 0)).toBe(9)
    expect(btreeTupleGetHeapTIDPosition(v, 0)).toBe(18)
    btreeTupleSetNAtts(v, 0, 1, false)
    v.writeUInt16LE(0x2000 | 24, 6)
    v.writeUInt16LE(1, 4)
    expect(btreeTupleGetHeapTIDPosition(v, 0)).toBe(-1)

    // plain leaf tuple
    const w = Buffer.alloc(16)
    w.writeUInt16LE(16, 6)
    expect(btreeTupleGetHeapTIDPosition(w, 0)).toBe(0)
  })

  it('limits match nbtree.h formulas for 8 KiB pages', () => {
    expect(BTMaxItemSize).toBe(2704)
    expect(BTMaxItemSizeNoHeapTid).toBe(2712)
    expect(MaxTIDsPerBTreePage).toBe(1358)
    expect(indexInfoFindDataOffset(0x0010)).toBe(8)
    expect(indexInfoFindDataOffset(0x8010)).toBe(16)
  })
})
