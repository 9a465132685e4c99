/**
 * Test helpers for page routines: a seeded PRNG, a line-pointer reader that does not use the code under
 * test, and builders for synthetic pages.
 */

export { mulberry32, randInt } from '../../../support/prng.js'

export interface RawItem {
  offnum: number
  flags: number
  off: number
  len: number
  /** A copy of the item's lp_len bytes (empty without storage). */
  data: Buffer
}

export const align8 = (n: number): number => Math.ceil(n / 8) * 8

/** Reads header fields and every line pointer straight from the bytes. */
export function readHeader(p: Buffer): { lower: number; upper: number; special: number; flags: number; nline: number } {
  const lower = p.readUInt16LE(12)
  return {
    lower,
    upper: p.readUInt16LE(14),
    special: p.readUInt16LE(16),
    flags: p.readUInt16LE(10),
    nline: lower <= 24 ? 0 : (lower - 24) / 4,
  }
}

export function readItems(p: Buffer): RawItem[] {
  const { nline } = readHeader(p)
  const out: RawItem[] = []
  for (let i = 1; i <= nline; i++) {
    const raw = p.readUInt32LE(24 + 4 * (i - 1))
    const off = raw & 0x7fff
    const flags = (raw >>> 15) & 3
    const len = raw >>> 17
    out.push({ offnum: i, flags, off, len, data: len > 0 ? Buffer.from(p.subarray(off, off + len)) : Buffer.alloc(0) })
  }
  return out
}

/** Hex string from psql (`encode(..., 'hex')`) to a Buffer. */
export function fromHex(hex: string): Buffer {
  return Buffer.from(hex.trim(), 'hex')
}
