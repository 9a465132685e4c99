import { describe, expect, it } from 'vitest'
import {
  HEAP_XACT_MASK,
  HEAP_XMAX_BITS,
  HEAP_XMIN_FROZEN,
  MaxHeapTupleSize,
  SizeofHeapTupleHeader,
  bitmapLen,
  heapXmaxIsLockedOnly,
  htupGetCid,
  htupGetCtidBlock,
  htupGetCtidOffset,
  htupGetHoff,
  htupGetInfomask,
  htupGetInfomask2,
  htupGetNatts,
  htupGetXmax,
  htupGetXmin,
  htupIsHotUpdated,
  htupIsSpeculative,
  htupSetCtid,
  htupSetNatts,
  htupXminFrozen,
} from '../../../../src/core/redo/page/htup.js'
import { itemPointerCompare, itemPointerGetBlockNumber, itemPointerSet } from '../../../../src/core/redo/page/itemptr.js'

/** A heap tuple header written out by hand, at byte 100 of a buffer. */
function handTuple(): Buffer {
  const b = Buffer.alloc(200)
  Buffer.from([
    0xe8, 0x03, 0, 0, // t_xmin 1000
    0xd2, 0x04, 0, 0, // t_xmax 1234
    0x05, 0, 0, 0, // t_cid 5
    0x01, 0x00, 0x45, 0x23, 0x07, 0x00, // t_ctid (0x12345, 7)
    0x03, 0x40, // t_infomask2: 3 attributes | HEAP_HOT_UPDATED
    0x02, 0x09, // t_infomask: HASVARWIDTH | XMIN_COMMITTED | XMAX_INVALID
    0x18, // t_hoff 24
  ]).copy(b, 100)
  return b
}

describe('heap tuple header', () => {
  it('reads every field at PostgreSQL offsets', () => {
    const b = handTuple()
    expect(htupGetXmin(b, 100)).toBe(1000)
    expect(htupGetXmax(b, 100)).toBe(1234)
    expect(htupGetCid(b, 100)).toBe(5)
    expect(htupGetCtidBlock(b, 100)).toBe(0x12345)
    expect(htupGetCtidOffset(b, 100)).toBe(7)
    expect(htupGetInfomask2(b, 100)).toBe(0x4003)
    expect(htupGetNatts(b, 100)).toBe(3)
    expect(htupGetInfomask(b, 100)).toBe(0x0902)
    expect(htupGetHoff(b, 100)).toBe(24)
    expect(htupXminFrozen(b, 100)).toBe(false)
    // HOT_UPDATED bit is set, but xmax is invalid: not HOT-updated.
    expect(htupIsHotUpdated(b, 100)).toBe(false)
  })

  it('writes ctid and natts without touching neighbours', () => {
    const b = handTuple()
    htupSetCtid(b, 100, 0xfffffffe, 0xfffe)
    expect([...b.subarray(112, 118)]).toEqual([0xff, 0xff, 0xfe, 0xff, 0xfe, 0xff])
    expect(htupIsSpeculative(b, 100)).toBe(true)
    htupSetNatts(b, 100, 1600)
    expect(htupGetInfomask2(b, 100)).toBe(0x4000 | 1600)
    expect(b[118 - 7]).toBe(0) // byte before t_ctid (t_cid high byte) untouched
  })

  it('constants agree with htup_details.h', () => {
    expect(SizeofHeapTupleHeader).toBe(23)
    expect(HEAP_XMIN_FROZEN).toBe(0x0300)
    expect(HEAP_XACT_MASK).toBe(0xfff0)
    expect(HEAP_XMAX_BITS).toBe(0x1cd0)
    expect(MaxHeapTupleSize).toBe(8160)
    expect(bitmapLen(1)).toBe(1)
    expect(bitmapLen(9)).toBe(2)
    expect(heapXmaxIsLockedOnly(0x0080)).toBe(true)
    expect(heapXmaxIsLockedOnly(0x0040)).toBe(true)
    expect(heapXmaxIsLockedOnly(0x1040)).toBe(false)
  })

  it('item pointers compare by block then offset', () => {
    const a = Buffer.alloc(12)
    itemPointerSet(a, 0, 70000, 3)
    itemPointerSet(a, 6, 70000, 4)
    expect(itemPointerGetBlockNumber(a, 0)).toBe(70000)
    expect(itemPointerCompare(a, 0, a, 6)).toBe(-1)
    expect(itemPointerCompare(a, 6, a, 0)).toBe(1)
    itemPointerSet(a, 6, 69999, 9)
    expect(itemPointerCompare(a, 0, a, 6)).toBe(1)
  })
})
