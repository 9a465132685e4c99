import { describe, expect, it } from 'vitest'
import {
  PAI_IS_HEAP,
  PAI_OVERWRITE,
  pageAddItem,
  pageAddItemExtended,
  pageGetHeapFreeSpace,
  pageGetItem,
  pageIndexMultiDelete,
  pageIndexTupleDelete,
  pageIndexTupleDeleteNoCompact,
  pageIndexTupleOverwrite,
  pageRepairFragmentation,
  pageTruncateLinePointerArray,
} from '../../../../src/core/redo/page/bufpage.js'
import { PD_HAS_FREE_LINES, pageInit, setPdFlags } from '../../../../src/core/redo/page/page.js'
import { itemIdSetDead, itemIdSetRedirect, itemIdSetUnused, itemIdMarkDead } from '../../../../src/core/redo/page/itemid.js'
import { CorruptionError } from '../../../../src/core/lib/errors.js'
import { align8, mulberry32, randInt, readHeader, readItems } from './helpers.js'

const lp = (off: number, flags: number, len: number): number => (off | (flags << 15) | (len * 2 ** 17)) >>> 0

/** pageInit + free space filled with 0xEE so that stale bytes are visible. */
function freshPage(special = 0): Buffer {
  const p = Buffer.alloc(8192)
  pageInit(p, special)
  p.fill(0xee, 24, 8192 - special)
  return p
}

function randomBytes(rnd: () => number, n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256)
  return b
}

/** A page filled by PageAddItem with random sizes, some inserted in the middle (so offsets are unsorted). */
function randomPage(rnd: () => number, special: number, nitemsMax: number, shuffleRate: number): Buffer {
  const p = freshPage(special)
  randomBytes(rnd, 8192 - special - 24).copy(p, 24)
  const n = randInt(rnd, 1, nitemsMax)
  for (let k = 0; k < n; k++) {
    const limit = readHeader(p).nline + 1
    const off = rnd() < shuffleRate ? randInt(rnd, 1, limit) : limit
    const size = randInt(rnd, 1, 60)
    if (pageAddItemExtended(p, randomBytes(rnd, size), size, off, 0) === 0) break
  }
  return p
}

// --- independent models -------------------------------------------------------------------------------

function modelRepair(orig: Buffer): Buffer {
  const exp = Buffer.from(orig)
  const h = readHeader(orig)
  let upper = h.special
  let nunused = 0
  let lastUsed = 0
  for (const it of readItems(orig)) {
    const pos = 24 + 4 * (it.offnum - 1)
    if (it.flags === 0) {
      exp.writeUInt32LE(0, pos)
      nunused++
      continue
    }
    lastUsed = it.offnum
    if (it.len > 0) {
      const al = align8(it.len)
      upper -= al
      orig.copy(exp, upper, it.off, it.off + al)
      exp.writeUInt32LE(lp(upper, it.flags, it.len), pos)
    }
  }
  exp.writeUInt16LE(upper, 14)
  nunused -= h.nline - lastUsed
  exp.writeUInt16LE(24 + 4 * lastUsed, 12)
  exp.writeUInt16LE(nunused > 0 ? h.flags | 1 : h.flags & ~1, 10)
  return exp
}

function modelRetailDelete(orig: Buffer, offnum: number): Buffer {
  const exp = Buffer.from(orig)
  const h = readHeader(orig)
  const victim = readItems(orig)[offnum - 1]!
  const size = align8(victim.len)
  orig.copy(exp, 24 + 4 * (offnum - 1), 24 + 4 * offnum, h.lower)
  orig.copy(exp, h.upper + size, h.upper, victim.off)
  exp.writeUInt16LE(h.upper + size, 14)
  exp.writeUInt16LE(h.lower - 4, 12)
  for (let i = 1; i <= h.nline - 1; i++) {
    const pos = 24 + 4 * (i - 1)
    const raw = exp.readUInt32LE(pos)
    if ((raw & 0x7fff) <= victim.off) exp.writeUInt32LE(((raw & ~0x7fff) | ((raw & 0x7fff) + size)) >>> 0, pos)
  }
  return exp
}

function modelMultiDelete(orig: Buffer, dels: number[]): Buffer {
  if (dels.length <= 2) {
    let p = orig
    for (let k = dels.length - 1; k >= 0; k--) p = modelRetailDelete(p, dels[k]!)
    return p
  }
  const exp = Buffer.from(orig)
  const h = readHeader(orig)
  let upper = h.special
  let n = 0
  for (const it of readItems(orig)) {
    if (dels.includes(it.offnum)) continue
    const al = align8(it.len)
    upper -= al
    orig.copy(exp, upper, it.off, it.off + al)
    exp.writeUInt32LE(lp(upper, it.flags, it.len), 24 + 4 * n)
    n++
  }
  exp.writeUInt16LE(24 + 4 * n, 12)
  exp.writeUInt16LE(upper, 14)
  return exp
}

function modelOverwrite(orig: Buffer, offnum: number, tup: Buffer): Buffer | null {
  const exp = Buffer.from(orig)
  const h = readHeader(orig)
  const it = readItems(orig)[offnum - 1]!
  const diff = align8(it.len) - align8(tup.length)
  if (align8(tup.length) > align8(it.len) + h.upper - h.lower) return null
  orig.copy(exp, h.upper + diff, h.upper, it.off)
  exp.writeUInt16LE(h.upper + diff, 14)
  for (const other of readItems(orig)) {
    if (other.len > 0 && other.off <= it.off) exp.writeUInt32LE(lp(other.off + diff, other.flags, other.len), 24 + 4 * (other.offnum - 1))
  }
  exp.writeUInt32LE(lp(it.off + diff, it.flags, tup.length), 24 + 4 * (offnum - 1))
  tup.copy(exp, it.off + diff)
  return exp
}

// --- tests ----------------------------------------------------------------------------------------------

describe('pageAddItemExtended', () => {
  it('places items at pd_upper - MAXALIGN(size), writes only size bytes, and shuffles line pointers', () => {
    const p = freshPage()
    expect(pageAddItem(p, Buffer.alloc(5, 0x41), 5, 1, true, true)).toBe(1)
    expect(p.readUInt32LE(24)).toBe(lp(8184, 1, 5))
    expect([...p.subarray(8184, 8192)]).toEqual([0x41, 0x41, 0x41, 0x41, 0x41, 0xee, 0xee, 0xee])
    expect(pageAddItemExtended(p, Buffer.alloc(20, 0x42), 13, 2, PAI_OVERWRITE | PAI_IS_HEAP)).toBe(2)
    expect(p.readUInt32LE(28)).toBe(lp(8168, 1, 13))
    expect([...p.subarray(8176, 8184)]).toEqual([0x42, 0x42, 0x42, 0x42, 0x42, 0xee, 0xee, 0xee])
    expect(readHeader(p)).toMatchObject({ lower: 32, upper: 8168 })

    // Insert in the middle: pointers move up, the item goes below the others.
    expect(pageAddItemExtended(p, Buffer.from('CC'), 2, 1, 0)).toBe(1)
    expect([p.readUInt32LE(24), p.readUInt32LE(28), p.readUInt32LE(32)]).toEqual([lp(8160, 1, 2), lp(8184, 1, 5), lp(8168, 1, 13)])
    expect(readHeader(p)).toMatchObject({ lower: 36, upper: 8160 })
  })

  it('refuses a used slot under PAI_OVERWRITE, an offset past the end, and too many heap tuples', () => {
    const p = freshPage()
    pageAddItemExtended(p, Buffer.alloc(8, 1), 8, 1, PAI_OVERWRITE)
    const before = Buffer.from(p)
    expect(pageAddItemExtended(p, Buffer.alloc(8, 2), 8, 1, PAI_OVERWRITE)).toBe(0)
    expect(pageAddItemExtended(p, Buffer.alloc(8, 2), 8, 3, 0)).toBe(0)
    expect(p.equals(before)).toBe(true)

    const h = freshPage()
    h.writeUInt16LE(24 + 4 * 291, 12) // 291 unused line pointers
    h.fill(0, 24, 24 + 4 * 291)
    expect(pageAddItemExtended(h, Buffer.alloc(8), 8, 292, PAI_OVERWRITE | PAI_IS_HEAP)).toBe(0)
    expect(pageAddItemExtended(h, Buffer.alloc(8), 8, 292, PAI_OVERWRITE)).toBe(292)
    // An unused slot below the limit is reused without growing the array.
    expect(pageAddItemExtended(h, Buffer.alloc(8), 8, 7, PAI_OVERWRITE | PAI_IS_HEAP)).toBe(7)
    expect(readHeader(h).lower).toBe(24 + 4 * 292)
  })

  it('returns 0 when the item does not fit', () => {
    const p = freshPage()
    expect(pageAddItemExtended(p, Buffer.alloc(8168), 8168, 1, 0)).toBe(0)
    expect(pageAddItemExtended(p, Buffer.alloc(8160), 8160, 1, 0)).toBe(1)
    expect(pageAddItemExtended(p, Buffer.alloc(1), 1, 2, 0)).toBe(0)
  })

  it('finds a free slot through PD_HAS_FREE_LINES and clears a wrong hint', () => {
    const p = freshPage()
    for (let i = 1; i <= 3; i++) pageAddItemExtended(p, Buffer.alloc(8, i), 8, i, 0)
    itemIdSetUnused(p, 2)
    expect(pageAddItemExtended(p, Buffer.alloc(8, 9), 8, 0, 0)).toBe(4) // hint not set: append
    setPdFlags(p, PD_HAS_FREE_LINES)
    expect(pageAddItemExtended(p, Buffer.alloc(8, 9), 8, 0, 0)).toBe(2)
    expect(readHeader(p).flags & 1).toBe(1) // not cleared: a slot was found
    expect(pageAddItemExtended(p, Buffer.alloc(8, 9), 8, 0, 0)).toBe(5)
    expect(readHeader(p).flags & 1).toBe(0)
  })

  it('throws CorruptionError on insane pointers', () => {
    const p = freshPage()
    p.writeUInt16LE(9000, 16)
    expect(() => pageAddItemExtended(p, Buffer.alloc(8), 8, 1, 0)).toThrow(CorruptionError)
  })
})

describe('pageRepairFragmentation', () => {
  it('packs tuples from pd_special in line-pointer order (hand example)', () => {
    const p = freshPage()
    pageAddItemExtended(p, Buffer.alloc(8, 0x11), 8, 1, 0) // 8184
    pageAddItemExtended(p, Buffer.alloc(16, 0x22), 16, 2, 0) // 8168
    pageAddItemExtended(p, Buffer.alloc(5, 0x33), 5, 3, 0) // 8160, padding 0xee
    itemIdSetDead(p, 2)
    pageRepairFragmentation(p)
    expect(p.readUInt32LE(24)).toBe(lp(8184, 1, 8))
    expect(p.readUInt32LE(28)).toBe(lp(0, 3, 0))
    expect(p.readUInt32LE(32)).toBe(lp(8176, 1, 5))
    expect([...p.subarray(8176, 8184)]).toEqual([0x33, 0x33, 0x33, 0x33, 0x33, 0xee, 0xee, 0xee])
    // the vacated bytes below the new pd_upper are left as they were
    expect([...p.subarray(8160, 8176)]).toEqual([0x33, 0x33, 0x33, 0x33, 0x33, 0xee, 0xee, 0xee, ...Array(8).fill(0x22)])
    expect(readHeader(p)).toMatchObject({ upper: 8176, lower: 36, flags: 0 })
  })

  it('drops trailing unused pointers, possibly all, and sets the hint only for inner ones', () => {
    const p = freshPage()
    for (let i = 1; i <= 4; i++) pageAddItemExtended(p, Buffer.alloc(8, i), 8, i, 0)
    itemIdSetUnused(p, 2)
    itemIdSetUnused(p, 4)
    pageRepairFragmentation(p)
    expect(readHeader(p)).toMatchObject({ lower: 24 + 12, flags: PD_HAS_FREE_LINES })
    itemIdSetUnused(p, 1)
    itemIdSetUnused(p, 3)
    pageRepairFragmentation(p)
    expect(readHeader(p)).toMatchObject({ lower: 24, upper: 8192, flags: 0 })
  })

  it('matches the model on random pages and exercises all three compactify paths', () => {
    const rnd = mulberry32(42)
    const paths = { presorted: 0, fewSurvivors: 0, manySurvivors: 0 }
    for (let round = 0; round < 400; round++) {
      const p = randomPage(rnd, round % 3 === 0 ? 8 : 0, 200, round % 2 === 0 ? 0 : 0.3)
      const dropRate = [0.1, 0.5, 0.9][round % 3]!
      for (const it of readItems(p)) {
        const r = rnd()
        if (r < dropRate / 2) itemIdSetUnused(p, it.offnum)
        else if (r < dropRate * 0.8) itemIdSetDead(p, it.offnum)
        else if (r < dropRate) itemIdSetRedirect(p, it.offnum, randInt(rnd, 1, 200))
        else if (r < dropRate + 0.05) itemIdMarkDead(p, it.offnum)
      }
      const stored = readItems(p).filter((i) => i.flags !== 0 && i.len > 0)
      if (stored.length > 0) {
        const sorted = stored.every((it, k) => k === 0 || it.off < stored[k - 1]!.off)
        if (sorted) paths.presorted++
        else if (stored.length < Math.floor(readHeader(p).nline / 4)) paths.fewSurvivors++
        else paths.manySurvivors++
      }
      const expected = modelRepair(p)
      pageRepairFragmentation(p)
      expect(p.equals(expected), `round ${round}`).toBe(true)
    }
    expect(paths.presorted).toBeGreaterThan(10)
    expect(paths.fewSurvivors).toBeGreaterThan(10)
    expect(paths.manySurvivors).toBeGreaterThan(10)
  })

  it('rejects a line pointer outside tuple space', () => {
    const p = freshPage()
    pageAddItemExtended(p, Buffer.alloc(8, 1), 8, 1, 0)
    p.writeUInt32LE(lp(100, 1, 8), 24)
    expect(() => pageRepairFragmentation(p)).toThrow(/corrupted line pointer/)
  })
})

describe('pageTruncateLinePointerArray', () => {
  it('keeps line pointer 1 and sets the hint only for a remaining inner unused pointer', () => {
    const p = freshPage()
    for (let i = 1; i <= 5; i++) pageAddItemExtended(p, Buffer.alloc(8, i), 8, i, 0)
    for (const i of [2, 4, 5]) itemIdSetUnused(p, i)
    pageTruncateLinePointerArray(p)
    expect(readHeader(p)).toMatchObject({ lower: 24 + 12, flags: PD_HAS_FREE_LINES })
    // All unused: line pointer 1 stays (as an unused pointer), so the hint is set.
    for (const i of [1, 3]) itemIdSetUnused(p, i)
    pageTruncateLinePointerArray(p)
    expect(readHeader(p)).toMatchObject({ lower: 28, flags: PD_HAS_FREE_LINES })
  })
})

describe('index page routines', () => {
  function indexPage(rnd: () => number): Buffer {
    return randomPage(rnd, 16, 120, 0.3)
  }

  it('pageIndexTupleDelete slides the bytes above the victim (hand example)', () => {
    const p = freshPage(16)
    pageAddItemExtended(p, Buffer.alloc(8, 0x11), 8, 1, 0) // 8168
    pageAddItemExtended(p, Buffer.alloc(12, 0x22), 12, 2, 0) // 8152 (16 aligned)
    pageAddItemExtended(p, Buffer.alloc(8, 0x33), 8, 3, 0) // 8144
    pageIndexTupleDelete(p, 2)
    expect(readHeader(p)).toMatchObject({ lower: 32, upper: 8160 })
    expect([p.readUInt32LE(24), p.readUInt32LE(28)]).toEqual([lp(8168, 1, 8), lp(8160, 1, 8)])
    expect(p.readUInt32LE(32)).toBe(lp(8144, 1, 8)) // stale old pointer 3 beyond pd_lower
    expect([...p.subarray(8160, 8168)]).toEqual(Array(8).fill(0x33))
    expect([...p.subarray(8144, 8160)]).toEqual([...Array(8).fill(0x33), ...Array(8).fill(0x22)]) // stale
  })

  it('pageIndexTupleDelete and pageIndexMultiDelete match the models on random pages', () => {
    const rnd = mulberry32(7)
    for (let round = 0; round < 300; round++) {
      const p = indexPage(rnd)
      const nline = readHeader(p).nline
      const dels: number[] = []
      const rate = [0.02, 0.2, 0.8][round % 3]!
      for (let i = 1; i <= nline; i++) if (rnd() < rate) dels.push(i)
      if (round % 5 === 0) dels.splice(2) // at most 2: the retail path
      const logical = readItems(p)
        .filter((it) => !dels.includes(it.offnum))
        .map((it) => it.data.toString('hex'))
      const expected = modelMultiDelete(p, dels)
      pageIndexMultiDelete(p, dels)
      expect(p.equals(expected), `round ${round}, ${dels.length} deletions`).toBe(true)
      expect(readItems(p).map((it) => it.data.toString('hex'))).toEqual(logical)
    }
  })

  it('the <= 2 and > 2 paths of pageIndexMultiDelete differ physically but agree logically', () => {
    const rnd = mulberry32(99)
    const p = randomPage(rnd, 16, 40, 0.5)
    const a = Buffer.from(p)
    const b = Buffer.from(p)
    pageIndexMultiDelete(a, [3, 9])
    pageIndexTupleDelete(b, 9)
    pageIndexTupleDelete(b, 3)
    expect(a.equals(b)).toBe(true)
    const c = Buffer.from(p)
    pageIndexMultiDelete(c, [3, 9, 12])
    pageIndexTupleDelete(b, 10) // old 12
    expect(readItems(c).map((i) => i.data.toString('hex'))).toEqual(readItems(b).map((i) => i.data.toString('hex')))
    expect(c.equals(b)).toBe(false)
  })

  it('pageIndexMultiDelete rejects unsorted or out-of-range offsets', () => {
    const p = randomPage(mulberry32(5), 16, 20, 0)
    expect(() => pageIndexMultiDelete(Buffer.from(p), [5, 3, 7])).toThrow(/incorrect index offsets/)
    expect(() => pageIndexTupleDelete(Buffer.from(p), 0)).toThrow(/invalid index offnum/)
    expect(() => pageIndexTupleDelete(Buffer.from(p), 500)).toThrow(/invalid index offnum/)
  })

  it('pageIndexTupleOverwrite grows and shrinks tuples as the model says', () => {
    const rnd = mulberry32(11)
    let refused = 0
    for (let round = 0; round < 300; round++) {
      const p = indexPage(rnd)
      const nline = readHeader(p).nline
      const offnum = randInt(rnd, 1, nline)
      const tup = randomBytes(rnd, round % 10 === 0 ? randInt(rnd, 3000, 8100) : randInt(rnd, 1, 80))
      const expected = modelOverwrite(p, offnum, tup)
      const before = Buffer.from(p)
      const ok = pageIndexTupleOverwrite(p, offnum, tup, tup.length)
      if (expected === null) {
        refused++
        expect(ok).toBe(false)
        expect(p.equals(before)).toBe(true)
      } else {
        expect(ok).toBe(true)
        expect(p.equals(expected), `round ${round}`).toBe(true)
        expect(pageGetItem(p, offnum).equals(tup)).toBe(true)
      }
    }
    expect(refused).toBeGreaterThan(0)
  })

  it('pageIndexTupleOverwrite keeps lp_flags (hand example)', () => {
    const p = freshPage(16)
    pageAddItemExtended(p, Buffer.alloc(8, 0x11), 8, 1, 0) // 8168
    pageAddItemExtended(p, Buffer.alloc(8, 0x22), 8, 2, 0) // 8160
    itemIdMarkDead(p, 1)
    expect(pageIndexTupleOverwrite(p, 1, Buffer.alloc(20, 0x44), 20)).toBe(true)
    // grows by 16: item 1 at 8168 - 16 = 8152, item 2 slides from 8160 to 8144
    expect([p.readUInt32LE(24), p.readUInt32LE(28)]).toEqual([lp(8152, 3, 20), lp(8144, 1, 8)])
    expect(readHeader(p).upper).toBe(8144)
    expect([...p.subarray(8144, 8152)]).toEqual(Array(8).fill(0x22))
  })

  it('pageIndexTupleDeleteNoCompact leaves an unused pointer, or drops the last one', () => {
    const p = freshPage(8)
    for (let i = 1; i <= 3; i++) pageAddItemExtended(p, Buffer.alloc(8 * i, i), 8 * i, i, 0) // 8176, 8160, 8136
    pageIndexTupleDeleteNoCompact(p, 2)
    expect([p.readUInt32LE(24), p.readUInt32LE(28), p.readUInt32LE(32)]).toEqual([lp(8176, 1, 8), 0, lp(8152, 1, 24)])
    expect(readHeader(p)).toMatchObject({ lower: 36, upper: 8152 })
    expect([...p.subarray(8152, 8176)]).toEqual(Array(24).fill(3))
    pageIndexTupleDeleteNoCompact(p, 3)
    expect(readHeader(p)).toMatchObject({ lower: 32, upper: 8176 })
    expect(p.readUInt32LE(24)).toBe(lp(8176, 1, 8))
  })
})

describe('pageGetHeapFreeSpace', () => {
  it('is 0 with MaxHeapTuplesPerPage pointers and no free one', () => {
    const p = freshPage()
    p.writeUInt16LE(24 + 4 * 291, 12)
    for (let i = 0; i < 291; i++) p.writeUInt32LE(lp(0, 3, 0), 24 + 4 * i)
    expect(pageGetHeapFreeSpace(p)).toBe(0)
    setPdFlags(p, PD_HAS_FREE_LINES)
    expect(pageGetHeapFreeSpace(p)).toBe(0) // the hint is wrong
    p.writeUInt32LE(0, 24 + 4 * 10)
    expect(pageGetHeapFreeSpace(p)).toBe(8192 - (24 + 4 * 291) - 4)
  })
})
