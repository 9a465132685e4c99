import { describe, expect, it } from 'vitest'
import {
  MASKABLE_RMGR,
  brinMask,
  btreeMask,
  ginMask,
  gistMask,
  hasMask,
  hashMask,
  heapMask,
  maskLpFlags,
  maskPage,
  maskPageInto,
  maskVmPage,
  seqMask,
  spgMask,
} from '../../../../src/core/redo/mask/index.js'
import { pageAddItemExtended } from '../../../../src/core/redo/page/bufpage.js'
import { pageInit } from '../../../../src/core/redo/page/page.js'
import { CorruptionError, UnsupportedError } from '../../../../src/core/lib/errors.js'

/** A heap tuple: 23-byte header (hand-written fields) + t_hoff padding + `dataLen` data bytes. */
function heapTuple(xmin: number, infomask: number, dataLen: number, fill: number): Buffer {
  const t = Buffer.alloc(24 + dataLen, fill)
  t.writeUInt32LE(xmin, 0)
  t.writeUInt32LE(0, 4) // xmax
  t.writeUInt32LE(7, 8) // t_cid
  t.writeUInt16LE(0, 12) // ctid block hi
  t.writeUInt16LE(3, 14) // ctid block lo
  t.writeUInt16LE(1, 16) // ctid offset
  t.writeUInt16LE(2, 18) // infomask2: 2 attributes
  t.writeUInt16LE(infomask, 20)
  t[22] = 24 // t_hoff
  t[23] = 0
  return t
}

const T_INFOMASK = 20

/** A heap page with three tuples: normal, frozen, speculative; lengths not MAXALIGNed (padding exists). */
function heapPage(): Buffer {
  const p = Buffer.alloc(8192)
  pageInit(p, 0)
  pageAddItemExtended(p, heapTuple(1000, 0x0902, 5, 0x61), 29, 1, 3) // committed xmin, xmax invalid
  pageAddItemExtended(p, heapTuple(2, 0x0b00, 3, 0x62), 27, 2, 3) // frozen (XMIN_COMMITTED|XMIN_INVALID) + XMAX_INVALID
  const spec = heapTuple(1001, 0x0800, 6, 0x63)
  spec.writeUInt16LE(0xfffe, 16) // speculative token in t_ctid
  spec.writeUInt32LE(0x00000042, 12)
  pageAddItemExtended(p, spec, 30, 3, 3)
  p.writeUInt32LE(0x1234, 0) // pd_lsn
  p.writeUInt32LE(0x5678, 4)
  return p
}

function itemOff(p: Buffer, offnum: number): number {
  return p.readUInt32LE(24 + 4 * (offnum - 1)) & 0x7fff
}

function masked(fn: (p: Buffer, blk: number) => void, p: Buffer, blkno = 3): Buffer {
  const c = Buffer.from(p)
  fn(c, blkno)
  return c
}

describe('heap_mask', () => {
  it('ignores what PostgreSQL ignores', () => {
    const a = heapPage()
    const variants: Array<[string, (p: Buffer) => void]> = [
      ['lsn', (p) => p.writeUInt32LE(0xffff, 4)],
      ['checksum', (p) => p.writeUInt16LE(0xabcd, 8)],
      ['hint flags', (p) => p.writeUInt16LE(0x0007, 10)],
      ['prune xid', (p) => p.writeUInt32LE(999, 20)],
      ['free space', (p) => p.fill(0x77, 36, 8000)],
      ['xmin hint bits of a non-frozen tuple', (p) => p.writeUInt16LE(0x0002 | 0x0100 | 0x0400 | 0x2000, itemOff(p, 1) + T_INFOMASK)],
      ['xmax hint bits of a frozen tuple', (p) => p.writeUInt16LE(0x0300 | 0x0400, itemOff(p, 2) + T_INFOMASK)],
      ['t_cid', (p) => p.writeUInt32LE(0xdeadbeef, itemOff(p, 1) + 8)],
      ['padding after a tuple', (p) => p.fill(0x55, itemOff(p, 1) + 29, itemOff(p, 1) + 32)],
      ['speculative token', (p) => p.writeUInt32LE(0x99, itemOff(p, 3) + 12)],
    ]
    const base = masked(heapMask, a)
    for (const [name, change] of variants) {
      const b = Buffer.from(a)
      change(b)
      expect(b.equals(a), name).toBe(false)
      expect(masked(heapMask, b).equals(base), name).toBe(true)
    }
  })

  it('keeps real content changes visible', () => {
    const a = heapPage()
    const changes: Array<[string, (p: Buffer) => void]> = [
      ['tuple data', (p) => (p[itemOff(p, 1) + 24] = 0)],
      ['xmin', (p) => p.writeUInt32LE(1001, itemOff(p, 1))],
      ['xmax', (p) => p.writeUInt32LE(5, itemOff(p, 1) + 4)],
      ['ctid of a normal tuple', (p) => p.writeUInt16LE(2, itemOff(p, 1) + 16)],
      ['natts', (p) => p.writeUInt16LE(3, itemOff(p, 1) + 18)],
      ['low infomask bits', (p) => p.writeUInt16LE(0x0903, itemOff(p, 1) + T_INFOMASK)],
      ['HEAP_UPDATED on a frozen tuple', (p) => p.writeUInt16LE(0x0b00 | 0x2000, itemOff(p, 2) + T_INFOMASK)],
      ['line pointer flags', (p) => p.writeUInt32LE((p.readUInt32LE(24) & ~0x18000) | (3 << 15), 24)],
      ['pd_lower', (p) => p.writeUInt16LE(40, 12)],
      ['pd_pagesize_version', (p) => p.writeUInt16LE(0x2005, 18)],
    ]
    const base = masked(heapMask, a)
    for (const [name, change] of changes) {
      const b = Buffer.from(a)
      change(b)
      expect(masked(heapMask, b).equals(base), name).toBe(false)
    }
  })

  it('writes (blkno, offnum) into a speculative ctid and blanks exactly the expected bytes', () => {
    const p = masked(heapMask, heapPage(), 0x10002)
    const off = itemOff(p, 3)
    expect([...p.subarray(off + 12, off + 18)]).toEqual([0x01, 0x00, 0x02, 0x00, 0x03, 0x00])
    expect(p.readUInt32LE(off + 8)).toBe(0)
    expect(p.readUInt16LE(off + T_INFOMASK)).toBe(0) // 0x0800 & ~0xfff0
    expect(p.readUInt16LE(itemOff(p, 2) + T_INFOMASK)).toBe(0x0300) // frozen keeps xmin bits
    expect(p.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBe(true)
  })

  it('refuses insane page pointers with a CorruptionError', () => {
    const p = heapPage()
    p.writeUInt16LE(9000, 14)
    expect(() => heapMask(p, 0)).toThrow(CorruptionError)
    expect(() => heapMask(Buffer.alloc(8192), 0)).toThrow(/invalid page pd_lower 0/)
  })
})

function btreePage(leaf: boolean): Buffer {
  const p = Buffer.alloc(8192)
  pageInit(p, 16)
  for (let i = 1; i <= 4; i++) {
    const t = Buffer.alloc(16, i)
    t.writeUInt16LE(16, 6)
    pageAddItemExtended(p, t, 16, i, 0)
  }
  p.writeUInt16LE(leaf ? 0x0001 : 0x0000, 8176 + 12)
  p.writeUInt16LE(0x0011, 8176 + 14)
  return p
}

describe('btree_mask', () => {
  it('masks lp flags on leaves only, plus HAS_GARBAGE, SPLIT_END and the cycle id', () => {
    for (const leaf of [true, false]) {
      const a = btreePage(leaf)
      const b = Buffer.from(a)
      b.writeUInt32LE(b.readUInt32LE(28) | (3 << 15), 28) // LP_DEAD hint on item 2
      b.writeUInt16LE(b.readUInt16LE(8176 + 12) | 0x40 | 0x20, 8176 + 12)
      b.writeUInt16LE(0x22, 8176 + 14)
      expect(masked(btreeMask, a).equals(masked(btreeMask, b))).toBe(leaf)
      const c = Buffer.from(a)
      c.writeUInt16LE(c.readUInt16LE(8176 + 12) | 0x40 | 0x20, 8176 + 12)
      c.writeUInt16LE(0x22, 8176 + 14)
      expect(masked(btreeMask, a).equals(masked(btreeMask, c))).toBe(true)
      const d = Buffer.from(a)
      d.writeUInt32LE(7, 8176 + 4) // btpo_next is real content
      expect(masked(btreeMask, a).equals(masked(btreeMask, d))).toBe(false)
    }
  })

  it('maskLpFlags keeps lp_off and lp_len', () => {
    const p = btreePage(true)
    const before = p.readUInt32LE(24)
    maskLpFlags(p)
    expect(p.readUInt32LE(24)).toBe(before & ~0x18000)
  })
})

describe('seq_mask and the other access methods', () => {
  it('seq_mask keeps hint bits and the tuple, blanks LSN, checksum and free space', () => {
    const a = heapPage()
    const p = masked(seqMask, a)
    expect(p.readUInt32LE(4)).toBe(0)
    expect(p.readUInt16LE(itemOff(p, 1) + T_INFOMASK)).toBe(0x0902)
    const b = Buffer.from(a)
    b.writeUInt32LE(5, 20) // prune xid is not masked for sequences
    expect(masked(seqMask, b).equals(p)).toBe(false)
  })

  it('gist_mask blanks the NSN, sets F_FOLLOW_RIGHT, clears F_HAS_GARBAGE', () => {
    const a = btreePage(true) // 16-byte special: nsn(8), rightlink, flags @12, page id
    a.writeUInt16LE(0x0001, 8176 + 12) // F_LEAF
    a.writeUInt32LE(0x1234, 8176)
    const p = masked(gistMask, a)
    expect(p.readUInt32LE(8176)).toBe(0)
    expect(p.readUInt16LE(8176 + 12)).toBe(0x0009)
    const b = Buffer.from(a)
    b.writeUInt16LE(0x0001 | 0x0008 | 0x0010, 8176 + 12)
    expect(masked(gistMask, b).equals(p)).toBe(true)
  })

  it('hash_mask blanks an unused page and the dead-tuples hint', () => {
    const a = btreePage(false)
    a.writeUInt16LE(0x0000, 8176 + 12) // LH_UNUSED_PAGE
    const p = masked(hashMask, a)
    expect(p.subarray(12, 16).equals(Buffer.alloc(4))).toBe(true)
    expect(p.subarray(24).equals(Buffer.alloc(8192 - 24))).toBe(true)
    const b = btreePage(false)
    b.writeUInt16LE(0x0002 | 0x0080, 8176 + 12) // bucket page with LH_PAGE_HAS_DEAD_TUPLES
    const q = masked(hashMask, b)
    expect(q.readUInt16LE(8176 + 12)).toBe(0x0002)
    expect((q.readUInt32LE(24) >>> 15) & 3).toBe(0)
  })

  it('gin_mask blanks a deleted page; spg and brin mask free space as PostgreSQL does', () => {
    const a = Buffer.alloc(8192)
    pageInit(a, 8)
    a.fill(9, 24, 8184)
    a.writeUInt16LE(1 << 2, 8184 + 6) // GIN_DELETED
    const g = masked(ginMask, a)
    expect(g.readUInt16LE(16)).toBe(8184) // pd_special is not masked
    expect(g.readUInt16LE(12)).toBe(0)
    expect(g.readUInt16LE(14)).toBe(0)
    expect(g.subarray(24).equals(Buffer.alloc(8192 - 24))).toBe(true)

    const s = Buffer.alloc(8192)
    pageInit(s, 8)
    s.fill(9, 24, 8184)
    expect(masked(spgMask, s).subarray(24, 8184).equals(Buffer.alloc(8160))).toBe(true)

    const r = Buffer.alloc(8192)
    pageInit(r, 8)
    r.fill(9, 24, 8184)
    r.writeUInt16LE(0xf092, 8190) // revmap page: free space not masked
    r.writeUInt16LE(0x0001, 8188) // BRIN_EVACUATE_PAGE
    const rm = masked(brinMask, r)
    expect(rm[100]).toBe(9)
    expect(rm.readUInt16LE(8188)).toBe(0)
    r.writeUInt16LE(0xf093, 8190) // regular page
    expect(masked(brinMask, r)[100]).toBe(0)
  })
})

describe('maskPage', () => {
  it('dispatches by rmgr id, copies unless asked to mask in place', () => {
    const a = heapPage()
    const orig = Buffer.from(a)
    const m = maskPage(MASKABLE_RMGR.HEAP, a, 3)
    expect(a.equals(orig)).toBe(true)
    expect(m.equals(masked(heapMask, orig))).toBe(true)
    expect(maskPage(MASKABLE_RMGR.HEAP2, a, 3).equals(m)).toBe(true)
    const out = Buffer.alloc(8192, 0xff)
    expect(maskPageInto(MASKABLE_RMGR.HEAP, a, 3, out)).toBe(out)
    expect(out.equals(m)).toBe(true)
    const same = maskPage(MASKABLE_RMGR.HEAP, a, 3, { inPlace: true })
    expect(same).toBe(a)
    expect(a.equals(m)).toBe(true)
  })

  it('refuses resource managers without a mask', () => {
    expect(hasMask(0)).toBe(false)
    expect(hasMask(MASKABLE_RMGR.GENERIC)).toBe(true)
    expect(() => maskPage(3, heapPage(), 0)).toThrow(UnsupportedError)
  })

  it('maskVmPage keeps the bitmap, which heap_mask would blank', () => {
    const vm = Buffer.alloc(8192)
    pageInit(vm, 0)
    vm.fill(0x55, 24, 8192)
    vm.writeUInt32LE(1, 4)
    vm.writeUInt16LE(0x1111, 8)
    const h = masked(heapMask, vm)
    expect(h.subarray(24).equals(Buffer.alloc(8192 - 24))).toBe(true)
    maskVmPage(vm)
    expect(vm.readUInt32LE(4)).toBe(0)
    expect(vm.readUInt16LE(8)).toBe(0)
    expect(vm[5000]).toBe(0x55)
  })
})
