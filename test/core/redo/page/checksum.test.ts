import { describe, expect, it } from 'vitest'
import { pageChecksum, setPageChecksum } from '../../../../src/core/redo/page/checksum.js'

// Expected values were produced by compiling PostgreSQL 15.18's own checksum_impl.h (pg_checksum_page)
// with a stub header, outside this repository, on the pages described here.

function emptyHeapPage(): Buffer {
  const p = Buffer.alloc(8192)
  p.writeUInt16LE(24, 12) // pd_lower
  p.writeUInt16LE(8192, 14) // pd_upper
  p.writeUInt16LE(8192, 16) // pd_special
  p.writeUInt16LE(0x2004, 18)
  return p
}

function patternPage(mul: number, add: number): Buffer {
  const p = Buffer.alloc(8192)
  for (let i = 0; i < 8192; i++) p[i] = (i * mul + add) & 0xff
  return p
}

describe('pageChecksum (pg_checksum_page)', () => {
  it('matches PostgreSQL on an empty initialised page for several block numbers', () => {
    const p = emptyHeapPage()
    expect(pageChecksum(p, 0)).toBe(25952)
    expect(pageChecksum(p, 1)).toBe(25951)
    expect(pageChecksum(p, 0xfffffffe)).toBe(39586)
  })

  it('ignores the stored pd_checksum and does not modify the page', () => {
    const p = emptyHeapPage()
    p.writeUInt16LE(0xbeef, 8)
    const before = Buffer.from(p)
    expect(pageChecksum(p, 0)).toBe(25952)
    expect(p.equals(before)).toBe(true)
  })

  it('matches PostgreSQL on patterned pages', () => {
    const a = patternPage(7, 3)
    a.writeUInt16LE(100, 14)
    expect(pageChecksum(a, 5)).toBe(25921)
    expect(pageChecksum(a, 131072)).toBe(25922)
    expect(pageChecksum(patternPage(7, 3), 0)).toBe(43596)
    expect(pageChecksum(patternPage(7, 3), 5)).toBe(43591)
    expect(pageChecksum(patternPage(13, 6), 0)).toBe(8993)
    expect(pageChecksum(patternPage(13, 6), 5)).toBe(8990)
  })

  it('gives the same result for an unaligned view of the same bytes', () => {
    const big = Buffer.alloc(8192 + 3)
    const src = patternPage(9, 4)
    src.copy(big, 3)
    const view = big.subarray(3)
    expect(view.byteOffset % 4).not.toBe(0)
    expect(pageChecksum(view, 0)).toBe(pageChecksum(src, 0))
    expect(pageChecksum(src, 0)).toBe(35034)
  })

  it('never returns 0 and changes when any single byte outside pd_checksum changes', () => {
    const p = patternPage(7, 3)
    const base = pageChecksum(p, 7)
    for (const pos of [0, 7, 10, 11, 23, 24, 4000, 8191]) {
      const q = Buffer.from(p)
      q[pos] = q[pos]! ^ 0x01
      expect(pageChecksum(q, 7), `byte ${pos}`).not.toBe(base)
    }
    for (const pos of [8, 9]) {
      const q = Buffer.from(p)
      q[pos] = q[pos]! ^ 0xff
      expect(pageChecksum(q, 7)).toBe(base)
    }
  })

  it('setPageChecksum stores the checksum, but not on a new page', () => {
    const p = emptyHeapPage()
    setPageChecksum(p, 0)
    expect(p.readUInt16LE(8)).toBe(25952)
    const fresh = Buffer.alloc(8192)
    setPageChecksum(fresh, 0)
    expect(fresh.equals(Buffer.alloc(8192))).toBe(true)
  })
})
