/**
 * copyBytes / zeroBytes (lib/shared-copy.ts): the same bytes as Buffer's copy and fill for every pairing of
 * plain and shared memory, every relative alignment, lengths below, at and above the direct-copy threshold
 * and above one staging piece, and overlapping ranges of one buffer in both directions; nothing outside the
 * destination range changes.
 */
import { describe, expect, it } from 'vitest'
import { copyBytes, SHARED_COPY_DIRECT_BYTES, zeroBytes } from '../../../src/core/lib/shared-copy.js'

function patterned(n: number, shared: boolean, seed: number): Buffer {
  const b = shared ? Buffer.from(new SharedArrayBuffer(n)) : Buffer.alloc(n)
  let x = seed | 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  return b
}

const LENGTHS = [0, 1, 7, 32, 33, SHARED_COPY_DIRECT_BYTES - 1, SHARED_COPY_DIRECT_BYTES, 8192, 8192 + 5, 64 * 1024 + 13, 200_003]

describe('copyBytes', () => {
  for (const srcShared of [false, true]) {
    for (const dstShared of [false, true]) {
      it(`${srcShared ? 'shared' : 'plain'} to ${dstShared ? 'shared' : 'plain'}: every alignment and length copies what Buffer.copy does`, () => {
        for (const len of LENGTHS) {
          for (const srcOff of [0, 1, 3, 4, 8]) {
            for (const dstOff of [0, 2, 5, 7]) {
              const src = patterned(len + 16, srcShared, len + srcOff)
              const dst = patterned(len + 16, dstShared, 99 + dstOff)
              const want = Buffer.from(dst)
              src.copy(want, dstOff, srcOff, srcOff + len)
              expect(copyBytes(src, dst, dstOff, srcOff, srcOff + len)).toBe(len)
              expect(Buffer.compare(dst, want)).toBe(0)
            }
          }
        }
      })
    }
  }

  it('views with their own byte offsets are copied at their addresses, not their buffers\' starts', () => {
    const srcBase = patterned(300_000, true, 5)
    const dstBase = patterned(300_000, true, 6)
    const src = srcBase.subarray(3, 250_000)
    const dst = dstBase.subarray(6, 260_000)
    const want = Buffer.from(dstBase)
    src.copy(want.subarray(6), 1, 2, 200_002)
    copyBytes(src, dst, 1, 2, 200_002)
    expect(Buffer.compare(dstBase, want)).toBe(0)
  })

  for (const shared of [false, true]) {
    it(`overlapping ranges of one ${shared ? 'shared' : 'plain'} buffer move as copyWithin moves them, both directions`, () => {
      for (const len of [300, 8192, 150_001]) {
        for (const shift of [-70_001, -13, -1, 1, 3, 24, 70_001]) {
          const src = 80_000
          const b = patterned(400_000, shared, len + shift)
          const want = Buffer.from(b)
          want.copyWithin(src + shift, src, src + len)
          copyBytes(b, b, src + shift, src, src + len)
          expect(Buffer.compare(b, want)).toBe(0)
        }
      }
    })
  }
})

describe('zeroBytes', () => {
  for (const shared of [false, true]) {
    it(`zeroes exactly the range of ${shared ? 'shared' : 'plain'} memory at any alignment and length`, () => {
      for (const len of LENGTHS) {
        for (const off of [0, 1, 4, 7]) {
          const b = patterned(len + 16, shared, len + off)
          const want = Buffer.from(b)
          want.fill(0, off, off + len)
          zeroBytes(b, off, off + len)
          expect(Buffer.compare(b, want)).toBe(0)
        }
      }
    })
  }
})
