/**
 * Image decompressors: pglz from hand-made streams (the format of src/common/pg_lzcompress.c), LZ4 raw
 * blocks from lz4-napi's compressor (its output is a block with a 4-byte size prefix) and by hand, zstd
 * frames by hand and from the zstd command when installed. Real PostgreSQL images of all three are checked
 * by the oracle test; here the edge cases and corrupt inputs are.
 */
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { compressSync as lz4CompressSync } from 'lz4-napi'
import { PageserverError } from '../../../src/core/lib/errors.js'
import { decompressImage, lz4BlockDecompress, pglzDecompress, zstdFrameDecompress } from '../../../src/core/pg/wal-compression.js'
import { mulberry32 } from '../../support/prng.js'

/** A page-like buffer: repetitive header and tuples, some noise. */
function pageLike(size: number, seed = 1): Buffer {
  const rand = mulberry32(seed)
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = i % 97 < 60 ? (i % 7) * 3 : Math.floor(rand() * 256)
  return b
}

function expectCorrupt(fn: () => void): void {
  let err: unknown
  try {
    fn()
  } catch (e) {
    err = e
  }
  expect(err).toBeInstanceOf(PageserverError)
  expect(err).toMatchObject({ code: 'WAL_IMAGE_DECOMPRESS', kind: 'corruption' })
}

const pglzTag = (len: number, off: number): number[] => {
  // 2 bytes: high nibble of off in the top 4 bits, len-3 in the low 4 (15 = extended); then off's low byte.
  if (len >= 18) return [((off >> 4) & 0xf0) | 0x0f, off & 0xff, len - 18]
  return [((off >> 4) & 0xf0) | (len - 3), off & 0xff]
}

describe('pglz', () => {
  it('decodes literals and overlapping back-references', () => {
    // ctrl 0b1000: three literals, then a match of 6 at offset 3 -> "abcabcabc"
    const src = Buffer.from([0x08, 0x61, 0x62, 0x63, ...pglzTag(6, 3)])
    const out = Buffer.alloc(9)
    pglzDecompress(src, out, 0, 9)
    expect(out.toString()).toBe('abcabcabc')
  })

  it('decodes extended lengths, 12-bit offsets and writes at an offset in the output', () => {
    // 1 literal 'x', then a run of 273 (the longest) at offset 1; then literal 'y' after a long gap.
    const src = Buffer.from([0x02, 0x78, ...pglzTag(273, 1)])
    const out = Buffer.alloc(300, 0xee)
    pglzDecompress(src, out, 10, 274)
    expect(out.subarray(10, 284).every((c) => c === 0x78)).toBe(true)
    expect(out[9]).toBe(0xee)
    expect(out[284]).toBe(0xee)
    // Offset 4095 (the largest): 4095 literals then a match copying the first bytes again.
    const lits = pageLike(4095, 5)
    const parts: number[] = []
    for (let i = 0; i < lits.length; i += 8) {
      const n = Math.min(8, lits.length - i)
      parts.push(n === 8 ? 0x00 : 0x00 | (1 << n))
      for (let k = 0; k < n; k++) parts.push(lits[i + k]!)
      if (n < 8) parts.push(...pglzTag(10, 4095))
    }
    const out2 = Buffer.alloc(4105)
    pglzDecompress(Buffer.from(parts), out2, 0, 4105)
    expect(out2.subarray(0, 4095).equals(lits)).toBe(true)
    expect(out2.subarray(4095).equals(lits.subarray(0, 10))).toBe(true)
  })

  it('rejects corrupt streams', () => {
    const ok = [0x08, 0x61, 0x62, 0x63, ...pglzTag(6, 3)]
    expectCorrupt(() => pglzDecompress(Buffer.from(ok.slice(0, -1)), Buffer.alloc(9), 0, 9)) // truncated tag
    expectCorrupt(() => pglzDecompress(Buffer.from([0x08, 0x61, 0x62, 0x63, ...pglzTag(6, 4)]), Buffer.alloc(9), 0, 9)) // offset before start
    expectCorrupt(() => pglzDecompress(Buffer.from([0x01, ...pglzTag(3, 0)]), Buffer.alloc(3), 0, 3)) // offset 0
    expectCorrupt(() => pglzDecompress(Buffer.from(ok), Buffer.alloc(10), 0, 10)) // too short output
    expectCorrupt(() => pglzDecompress(Buffer.from([...ok, 0x00, 0x41]), Buffer.alloc(9), 0, 9)) // input left over
    expectCorrupt(() => pglzDecompress(Buffer.from([0x02, 0x78, 0x0f, 0x01]), Buffer.alloc(300), 0, 274)) // truncated extended length
  })
})

describe('lz4 raw blocks', () => {
  it('decodes blocks from a real LZ4 compressor, at an output offset', () => {
    for (const [size, seed] of [[8192, 1], [8192 - 3000, 2], [100, 3], [20, 4]] as const) {
      const page = pageLike(size, seed)
      const framed = lz4CompressSync(page)
      expect(framed.readUInt32LE(0)).toBe(size) // lz4-napi prefixes the raw size
      const block = framed.subarray(4)
      const out = Buffer.alloc(size + 16, 0xaa)
      lz4BlockDecompress(block, out, 16, size)
      expect(out.subarray(16).equals(page)).toBe(true)
      expect(out.subarray(0, 16).every((c) => c === 0xaa)).toBe(true)
    }
  })

  it('decodes hand-made sequences: long literal runs and overlapping matches', () => {
    // token 0xF0|0x0F: 15+ literals and 19+ match; literal length 15+5=20, match 4+15+1=20 at offset 2.
    const lits = Buffer.from('abcdefghijklmnopqrst')
    const src = Buffer.from([0xff, 5, ...lits, 0x02, 0x00, 1, 0x10, 0x7a])
    const out = Buffer.alloc(41)
    lz4BlockDecompress(src, out, 0, 41)
    expect(out.toString()).toBe('abcdefghijklmnopqrst' + 'st'.repeat(10) + 'z')
  })

  it('repeats short patterns in long overlapping matches (copies that double their span)', () => {
    for (const pattern of ['a', 'ab', 'xyz', 'abcdefghijklmnopqrstuvwxyz0123456789']) {
      const p = Buffer.from(pattern)
      // literals = pattern, then one match at offset pattern.length of 4+15+200 bytes, then a final literal.
      const head = p.length >= 15 ? [0xf0 | 0x0f, p.length - 15] : [(p.length << 4) | 0x0f]
      const src = Buffer.from([...head, ...p, p.length, 0x00, 200, 0x10, 0x21])
      const total = p.length + 219 + 1
      const out = Buffer.alloc(total)
      lz4BlockDecompress(src, out, 0, total)
      const want = Buffer.concat([Buffer.from(pattern.repeat(Math.ceil((p.length + 219) / p.length))).subarray(0, p.length + 219), Buffer.from('!')])
      expect(out.equals(want), pattern).toBe(true)
    }
  })

  it('rejects corrupt blocks', () => {
    const page = pageLike(8192)
    const block = lz4CompressSync(page).subarray(4)
    expectCorrupt(() => lz4BlockDecompress(block.subarray(0, block.length - 5), Buffer.alloc(8192), 0, 8192))
    expectCorrupt(() => lz4BlockDecompress(block, Buffer.alloc(8192), 0, 8000)) // output would overflow
    expectCorrupt(() => lz4BlockDecompress(block, Buffer.alloc(8200), 0, 8200)) // output too short
    expectCorrupt(() => lz4BlockDecompress(Buffer.from([0x10, 0x61, 0x00, 0x00]), Buffer.alloc(10), 0, 10)) // offset 0
    expectCorrupt(() => lz4BlockDecompress(Buffer.from([0x10, 0x61, 0x05, 0x00]), Buffer.alloc(10), 0, 10)) // offset beyond output
    expectCorrupt(() => lz4BlockDecompress(Buffer.alloc(0), Buffer.alloc(10), 0, 10))
    const rand = mulberry32(9)
    for (let t = 0; t < 200; t++) {
      const junk = Buffer.alloc(1 + Math.floor(rand() * 200))
      for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(rand() * 256)
      try {
        lz4BlockDecompress(junk, Buffer.alloc(8192), 0, 8192)
      } catch (e) {
        expect(e).toBeInstanceOf(PageserverError)
      }
    }
  })
})

/** A zstd frame of one RLE block then one raw block (RFC 8878), single segment, 2-byte content size. */
function handMadeZstdFrame(runByte: number, runLength: number, raw: Buffer): Buffer {
  const size = runLength + raw.length
  const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x60, (size - 256) & 0xff, (size - 256) >> 8])
  const blockHeader = (type: number, n: number, last: boolean): Buffer => {
    const v = (n << 3) | (type << 1) | (last ? 1 : 0)
    return Buffer.from([v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff])
  }
  return Buffer.concat([header, blockHeader(1, runLength, false), Buffer.from([runByte]), blockHeader(0, raw.length, true), raw])
}

describe('zstd frames', () => {
  it('decodes a hand-made frame', () => {
    const raw = pageLike(3000)
    const frame = handMadeZstdFrame(0x00, 5192, raw)
    const out = Buffer.alloc(8192)
    zstdFrameDecompress(frame, out, 0, 8192)
    expect(out.subarray(0, 5192).every((c) => c === 0)).toBe(true)
    expect(out.subarray(5192).equals(raw)).toBe(true)
  })

  const zstdCli = spawnSync('zstd', ['--version']).status === 0
  it.skipIf(!zstdCli)('decodes frames from the zstd command', () => {
    const page = pageLike(8192, 7)
    const r = spawnSync('zstd', ['-c', '-q', '-3'], { input: page })
    const out = Buffer.alloc(8192)
    zstdFrameDecompress(r.stdout, out, 0, 8192)
    expect(out.equals(page)).toBe(true)
    expectCorrupt(() => zstdFrameDecompress(r.stdout, Buffer.alloc(8192), 0, 8000))
  })

  it('rejects corrupt frames', () => {
    const frame = handMadeZstdFrame(0x11, 300, pageLike(100))
    expectCorrupt(() => zstdFrameDecompress(frame.subarray(0, 20), Buffer.alloc(400), 0, 400)) // truncated
    const badMagic = Buffer.from(frame)
    badMagic[0] = 0
    expectCorrupt(() => zstdFrameDecompress(badMagic, Buffer.alloc(400), 0, 400))
    expectCorrupt(() => zstdFrameDecompress(frame, Buffer.alloc(500), 0, 500)) // wrong size
  })
})

describe('decompressImage', () => {
  it('copies uncompressed images and checks their length', () => {
    const out = Buffer.alloc(10)
    decompressImage('none', Buffer.from('0123456789'), out, 0, 10)
    expect(out.toString()).toBe('0123456789')
    expectCorrupt(() => decompressImage('none', Buffer.from('012'), out, 0, 10))
  })
})
