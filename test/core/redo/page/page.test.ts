import { describe, expect, it } from 'vitest'
import {
  MaxHeapTuplesPerPage,
  MaxIndexTuplesPerPage,
  PD_ALL_VISIBLE,
  PD_HAS_FREE_LINES,
  getPdFlags,
  getPdPruneXid,
  getPdSpecial,
  getPdUpper,
  maxalign,
  pageGetLsn,
  pageGetMaxOffsetNumber,
  pageGetSpecialPointer,
  pageGetSpecialSize,
  pageInit,
  pageInitCopySpecial,
  pageIsEmpty,
  pageIsNew,
  pageSetAllVisible,
  pageSetHasFreeLinePointers,
  pageSetLsn,
  pageSetPrunable,
  pageClearHasFreeLinePointers,
} from '../../../../src/core/redo/page/page.js'
import {
  LP_DEAD,
  LP_NORMAL,
  LP_REDIRECT,
  LP_UNUSED,
  itemIdGetFlags,
  itemIdGetLength,
  itemIdGetOffset,
  itemIdGetRaw,
  itemIdHasStorage,
  itemIdIsUsed,
  itemIdMarkDead,
  itemIdSetDead,
  itemIdSetNormal,
  itemIdSetRedirect,
  itemIdSetUnused,
} from '../../../../src/core/redo/page/itemid.js'
import { lsn } from '../../../../src/core/pg/lsn.js'

/** Header bytes of PageInit(page, 8192, 16) written out by hand. */
function handInitBtreePage(): Buffer {
  const p = Buffer.alloc(8192)
  Buffer.from([
    0, 0, 0, 0, 0, 0, 0, 0, // pd_lsn
    0, 0, // pd_checksum
    0, 0, // pd_flags
    24, 0, // pd_lower
    0xf0, 0x1f, // pd_upper 8176
    0xf0, 0x1f, // pd_special 8176
    0x04, 0x20, // pd_pagesize_version 0x2004
    0, 0, 0, 0, // pd_prune_xid
  ]).copy(p)
  return p
}

describe('page header', () => {
  it('pageInit writes exactly the header PostgreSQL writes and zeroes the rest', () => {
    const p = Buffer.alloc(8192, 0xaa)
    pageInit(p, 16)
    expect(p.equals(handInitBtreePage())).toBe(true)
    pageInit(p, 5) // MAXALIGNed to 8
    expect(getPdSpecial(p)).toBe(8184)
    expect(getPdUpper(p)).toBe(8184)
    expect(pageGetSpecialSize(p)).toBe(8)
    expect(pageGetSpecialPointer(p)).toBe(8184)
  })

  it('pd_lsn is two u32 LE halves, high word first', () => {
    const p = Buffer.alloc(8192)
    pageSetLsn(p, lsn(0x16_b374d848n))
    expect([...p.subarray(0, 8)]).toEqual([0x16, 0, 0, 0, 0x48, 0xd8, 0x74, 0xb3])
    expect(pageGetLsn(p)).toBe(0x16_b374d848n)
    Buffer.from([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]).copy(p)
    expect(pageGetLsn(p)).toBe(0x04030201_08070605n)
  })

  it('derived predicates follow pd_lower / pd_upper', () => {
    const p = Buffer.alloc(8192)
    expect(pageIsNew(p)).toBe(true)
    expect(pageIsEmpty(p)).toBe(true)
    expect(pageGetMaxOffsetNumber(p)).toBe(0)
    pageInit(p, 0)
    expect(pageIsNew(p)).toBe(false)
    p.writeUInt16LE(24 + 4 * 3, 12)
    expect(pageGetMaxOffsetNumber(p)).toBe(3)
    expect(pageIsEmpty(p)).toBe(false)
  })

  it('flag helpers touch only their bit', () => {
    const p = handInitBtreePage()
    pageSetAllVisible(p)
    pageSetHasFreeLinePointers(p)
    expect(p.readUInt16LE(10)).toBe(PD_ALL_VISIBLE | PD_HAS_FREE_LINES)
    pageClearHasFreeLinePointers(p)
    expect(getPdFlags(p)).toBe(PD_ALL_VISIBLE)
  })

  it('pageSetPrunable keeps the oldest xid, modulo 2^32', () => {
    const p = handInitBtreePage()
    pageSetPrunable(p, 1000)
    expect(getPdPruneXid(p)).toBe(1000)
    pageSetPrunable(p, 2000)
    expect(getPdPruneXid(p)).toBe(1000)
    pageSetPrunable(p, 999)
    expect(getPdPruneXid(p)).toBe(999)
    // 0xFFFFFF00 precedes 999 across the wraparound
    pageSetPrunable(p, 0xffffff00)
    expect(getPdPruneXid(p)).toBe(0xffffff00)
  })

  it('constants match the PostgreSQL formulas', () => {
    expect(MaxHeapTuplesPerPage).toBe(Math.floor((8192 - 24) / (maxalign(23) + 4)))
    expect(MaxIndexTuplesPerPage).toBe(Math.floor((8192 - 24) / (maxalign(8 + 1) + 4)))
    expect([0, 1, 7, 8, 9, 23, 24].map(maxalign)).toEqual([0, 8, 8, 8, 16, 24, 24])
  })

  it('pageInitCopySpecial initialises a temp page and copies the special space', () => {
    const src = handInitBtreePage()
    src.fill(0x5a, 8176, 8192)
    src.fill(0x11, 24, 8176)
    const temp = Buffer.alloc(8192, 0xff)
    pageInitCopySpecial(temp, src)
    const expected = handInitBtreePage()
    expected.fill(0x5a, 8176, 8192)
    expect(temp.equals(expected)).toBe(true)
  })
})

describe('line pointers', () => {
  it('lays out lp_off / lp_flags / lp_len as PostgreSQL bitfields', () => {
    const p = handInitBtreePage()
    itemIdSetNormal(p, 1, 8128, 61)
    expect([...p.subarray(24, 28)]).toEqual([0xc0, 0x9f, 0x7a, 0x00])
    itemIdSetRedirect(p, 2, 5)
    expect([...p.subarray(28, 32)]).toEqual([0x05, 0x00, 0x01, 0x00])
    itemIdSetDead(p, 3)
    expect([...p.subarray(32, 36)]).toEqual([0x00, 0x80, 0x01, 0x00])
    // max values: lp_off 0x7fff, flags 3, lp_len 0x7fff
    p.writeUInt32LE(0xffffffff, 36)
    expect(itemIdGetOffset(p, 4)).toBe(0x7fff)
    expect(itemIdGetFlags(p, 4)).toBe(LP_DEAD)
    expect(itemIdGetLength(p, 4)).toBe(0x7fff)
    expect(itemIdGetFlags(p, 1)).toBe(LP_NORMAL)
    expect(itemIdGetFlags(p, 2)).toBe(LP_REDIRECT)
    itemIdSetUnused(p, 4)
    expect(itemIdGetRaw(p, 4)).toBe(0)
    expect(itemIdIsUsed(p, 4)).toBe(false)
    expect(itemIdGetFlags(p, 4)).toBe(LP_UNUSED)
  })

  it('ItemIdMarkDead keeps storage', () => {
    const p = handInitBtreePage()
    itemIdSetNormal(p, 1, 8000, 16)
    itemIdMarkDead(p, 1)
    expect(itemIdGetFlags(p, 1)).toBe(LP_DEAD)
    expect(itemIdGetOffset(p, 1)).toBe(8000)
    expect(itemIdHasStorage(p, 1)).toBe(true)
  })

  it('round-trips random fields through the raw word', () => {
    let seed = 12345
    const rnd = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed >>> 8
    }
    const p = handInitBtreePage()
    for (let k = 0; k < 1000; k++) {
      const off = rnd() & 0x7fff
      const len = rnd() & 0x7fff
      itemIdSetNormal(p, 1 + (k % 10), off, len)
      const raw = p.readUInt32LE(24 + 4 * (k % 10))
      expect(raw).toBe((off | (1 << 15) | (len * 2 ** 17)) >>> 0)
      expect(itemIdGetOffset(p, 1 + (k % 10))).toBe(off)
      expect(itemIdGetLength(p, 1 + (k % 10))).toBe(len)
    }
  })
})
