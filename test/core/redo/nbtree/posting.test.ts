/**
 * Posting-list routines (_bt_form_posting, _bt_update_posting, _bt_swap_posting) on hand-built tuples, and
 * the record parsers on hand-built payloads, including their limits and short inputs.
 */
import { describe, expect, it } from 'vitest'
import { formPosting, swapPosting, updatePosting } from '../../../../src/core/redo/nbtree/posting.js'
import {
  BtreeRecordError,
  dedupIntervalsMax,
  parseDedup,
  parseDeletionPayload,
  parseMarkPageHalfDead,
  parseMetadata,
  parseSplit,
  parseUnlinkPage,
} from '../../../../src/core/redo/nbtree/records.js'
import { plainTuple, postingTids, postingTuple, readTid, type Tid } from './helpers.js'

function tids(list: Tid[]): Buffer {
  const b = Buffer.alloc(6 * list.length)
  list.forEach(([blk, off], i) => {
    b.writeUInt16LE(blk >>> 16, 6 * i)
    b.writeUInt16LE(blk & 0xffff, 6 * i + 2)
    b.writeUInt16LE(off, 6 * i + 4)
  })
  return b
}

describe('formPosting', () => {
  it('builds a MAXALIGNed posting tuple with zero padding', () => {
    const base = plainTuple(42, [7, 1])
    const t = formPosting(base, tids([[7, 1], [7, 2], [0x12345, 3]]), 3)
    expect(t.length).toBe(40) // MAXALIGN(16 + 18)
    expect(t.readUInt16LE(6)).toBe(0x2000 | 40)
    expect(readTid(t, 0)).toEqual([16, 0x2003])
    expect(t.readBigInt64LE(8)).toBe(42n)
    expect(postingTids(t)).toEqual([[7, 1], [7, 2], [0x12345, 3]])
    expect(t.subarray(34, 40)).toEqual(Buffer.alloc(6))
  })

  it('with one TID makes a plain tuple of the key size from a posting base', () => {
    const base = postingTuple(5, [[1, 1], [1, 2]])
    const t = formPosting(base, tids([[9, 4]]), 1)
    expect(t.length).toBe(16)
    expect(t.readUInt16LE(6)).toBe(16)
    expect(readTid(t, 0)).toEqual([9, 4])
    expect(t.readBigInt64LE(8)).toBe(5n)
  })
})

describe('updatePosting', () => {
  const orig = postingTuple(3, [[1, 1], [1, 2], [1, 3], [2, 1]])

  it('drops the listed positions and shrinks the tuple', () => {
    const t = updatePosting(orig, Uint16Array.from([0, 2]))
    expect(t.length).toBe(32) // MAXALIGN(16 + 12)
    expect(t.readUInt16LE(6)).toBe(0x2000 | 32)
    expect(postingTids(t)).toEqual([[1, 2], [2, 1]])
    expect(t.readBigInt64LE(8)).toBe(3n)
  })

  it('leaves a plain tuple when one TID remains', () => {
    const t = updatePosting(orig, Uint16Array.from([0, 1, 3]))
    expect(t.length).toBe(16)
    expect(t.readUInt16LE(6) & 0x2000).toBe(0)
    expect(readTid(t, 0)).toEqual([1, 3])
  })

  it('refuses to remove every TID, positions past the list, or a plain tuple', () => {
    expect(() => updatePosting(orig, Uint16Array.from([0, 1, 2, 3]))).toThrow(BtreeRecordError)
    expect(() => updatePosting(orig, Uint16Array.from([1, 9]))).toThrow(BtreeRecordError)
    expect(() => updatePosting(plainTuple(1, [1, 1]), Uint16Array.from([0]))).toThrow(BtreeRecordError)
  })
})

describe('swapPosting', () => {
  it('puts the new TID inside the list and gives the new item the old largest TID', () => {
    const oposting = postingTuple(8, [[1, 1], [1, 3], [1, 5], [1, 7]])
    const before = Buffer.from(oposting)
    const newitem = plainTuple(8, [1, 4])
    const nposting = swapPosting(newitem, oposting, 2)
    expect(postingTids(nposting)).toEqual([[1, 1], [1, 3], [1, 4], [1, 5]])
    expect(nposting.length).toBe(oposting.length)
    expect(readTid(newitem, 0)).toEqual([1, 7])
    expect(oposting).toEqual(before)
  })

  it('refuses split points outside the list', () => {
    const oposting = postingTuple(8, [[1, 1], [1, 3]])
    expect(() => swapPosting(plainTuple(8, [1, 2]), oposting, 0)).toThrow(/cannot be split at offset 0/)
    expect(() => swapPosting(plainTuple(8, [1, 2]), oposting, 2)).toThrow(/cannot be split at offset 2/)
    expect(() => swapPosting(postingTuple(8, [[1, 2], [1, 3]]), oposting, 1)).toThrow(BtreeRecordError)
  })
})

describe('record parsers', () => {
  it('reads xl_btree_split and xl_btree_mark_page_halfdead at their C offsets (padding after poffset)', () => {
    const split = Buffer.from([5, 0, 0, 0, 7, 0, 9, 0, 3, 0])
    expect(parseSplit(split)).toEqual({ level: 5, firstrightoff: 7, newitemoff: 9, postingoff: 3 })
    const hd = Buffer.alloc(20)
    hd.writeUInt16LE(4, 0)
    hd.writeUInt16LE(0xdead, 2) // padding, ignored
    hd.writeUInt32LE(10, 4)
    hd.writeUInt32LE(11, 8)
    hd.writeUInt32LE(12, 12)
    hd.writeUInt32LE(0xffffffff, 16)
    expect(parseMarkPageHalfDead(hd)).toEqual({ poffset: 4, leafblk: 10, leftblk: 11, rightblk: 12, topparent: 0xffffffff })
  })

  it('reads xl_btree_unlink_page with its 8-aligned safexid', () => {
    const u = Buffer.alloc(36)
    u.writeUInt32LE(1, 0)
    u.writeUInt32LE(2, 4)
    u.writeUInt32LE(3, 8)
    u.writeUInt32LE(0xffffffff, 12) // padding
    u.writeBigUInt64LE(0x1_0000_0309n, 16)
    u.writeUInt32LE(4, 24)
    u.writeUInt32LE(5, 28)
    u.writeUInt32LE(6, 32)
    expect(parseUnlinkPage(u)).toEqual({ leftsib: 1, rightsib: 2, level: 3, safexid: 0x1_0000_0309n, leafleftsib: 4, leafrightsib: 5, leaftopparent: 6 })
  })

  it('splits VACUUM/DELETE block data into deletions and posting-list updates', () => {
    const data = Buffer.from([3, 0, 9, 0, 5, 0, 6, 0, 2, 0, 0, 0, 4, 0, 1, 0, 2, 0])
    const { deleted, updates } = parseDeletionPayload(data, 2, 2)
    expect([...deleted]).toEqual([3, 9])
    expect(updates.map((u) => [u.offnum, [...u.deletetids]])).toEqual([
      [5, [0, 4]],
      [6, [2]],
    ])
  })

  it('rejects short payloads and counts beyond the limits before allocating', () => {
    expect(() => parseSplit(Buffer.alloc(9))).toThrow(BtreeRecordError)
    expect(() => parseDeletionPayload(Buffer.from([1, 0, 5, 0, 3, 0]), 1, 1)).toThrow(/TID positions/)
    expect(() => parseDeletionPayload(Buffer.alloc(0), 60000, 0)).toThrow(/limit/)
    const main = Buffer.alloc(2)
    main.writeUInt16LE(dedupIntervalsMax + 1, 0)
    expect(() => parseDedup(main, Buffer.alloc(0))).toThrow(/limit/)
    main.writeUInt16LE(2, 0)
    expect(() => parseDedup(main, Buffer.alloc(7))).toThrow(/dedup intervals/)
    expect(parseDedup(main, Buffer.from([2, 0, 3, 0, 9, 0, 2, 0]))).toEqual([
      { baseoff: 2, nitems: 3 },
      { baseoff: 9, nitems: 2 },
    ])
    expect(() => parseMetadata(Buffer.alloc(27))).toThrow(/expected 28/)
  })
})
