/**
 * writeU64BE / readU64BE (lib/bytes.ts): the same bytes and values as Buffer's BigInt methods at the edges
 * of the range, across byte boundaries and for random values; out-of-range values are refused, and the
 * bytes around the 8 written are untouched.
 */
import { describe, expect, it } from 'vitest'
import { readU64BE, writeU64BE } from '../../../src/core/lib/bytes.js'

describe('writeU64BE / readU64BE', () => {
  const edges = [0n, 1n, 0xffn, 0x100n, 0xffff_ffffn, 0x1_0000_0000n, 0x0102_0304_0506_0708n, 0x8000_0000_0000_0000n, 0xffff_ffff_ffff_ffffn]

  it('write what Buffer.writeBigUInt64BE writes and read back what it reads, at any offset', () => {
    let x = 0x2545f4914f6cdd1dn
    const random = Array.from({ length: 200 }, () => {
      x ^= (x << 13n) & 0xffff_ffff_ffff_ffffn
      x ^= x >> 7n
      x ^= (x << 17n) & 0xffff_ffff_ffff_ffffn
      return x
    })
    for (const v of [...edges, ...random]) {
      for (const off of [0, 3, 8]) {
        const ours = Buffer.alloc(20, 0xaa)
        const theirs = Buffer.alloc(20, 0xaa)
        writeU64BE(ours, v, off)
        theirs.writeBigUInt64BE(v, off)
        expect(ours.equals(theirs)).toBe(true)
        expect(readU64BE(theirs, off)).toBe(v)
      }
    }
  })

  it('refuses values outside 0 .. 2^64 - 1, writing nothing', () => {
    const b = Buffer.alloc(8, 0x55)
    expect(() => writeU64BE(b, -1n, 0)).toThrow(RangeError)
    expect(() => writeU64BE(b, 1n << 64n, 0)).toThrow(RangeError)
    expect(b.equals(Buffer.alloc(8, 0x55))).toBe(true)
  })
})
