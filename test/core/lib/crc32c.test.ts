import { describe, expect, it } from 'vitest'
import { crc32c as nativeCrc32c } from '@node-rs/crc32'
import { CRC32C_JS_MAX_BYTES, crc32c, crc32cJs, crc32cRange } from '../../../src/core/lib/crc32c.js'
import { mulberry32 } from '../../support/prng.js'

describe('crc32c', () => {
  it('has the CRC-32C check value', () => {
    const check = Buffer.from('123456789')
    expect(crc32c(check)).toBe(0xe3069283)
    expect(crc32cJs(check, 0, check.length)).toBe(0xe3069283)
    expect(crc32c(Buffer.alloc(0))).toBe(0)
  })

  it('gives the native result for every length and offset around the JS/native threshold', () => {
    const rand = mulberry32(1)
    const buf = Buffer.alloc(2 * CRC32C_JS_MAX_BYTES + 64)
    for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256)
    for (let len = 0; len <= 2 * CRC32C_JS_MAX_BYTES; len++) {
      const start = len % 13
      const want = nativeCrc32c(buf.subarray(start, start + len)) >>> 0
      expect(crc32cJs(buf, start, start + len), `js len ${len}`).toBe(want)
      expect(crc32cRange(buf, start, start + len), `range len ${len}`).toBe(want)
      expect(crc32c(buf.subarray(start, start + len)), `crc32c len ${len}`).toBe(want)
    }
  })

  it('continues a CRC across pieces on both paths (crc(a ++ b) = crc(b, crc(a)))', () => {
    const rand = mulberry32(2)
    const buf = Buffer.alloc(4000)
    for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256)
    const whole = nativeCrc32c(buf) >>> 0
    for (const cut of [0, 1, 20, 255, 256, 1000, 3999, 4000]) {
      expect(crc32c(buf.subarray(cut), crc32c(buf.subarray(0, cut)))).toBe(whole)
      expect(crc32cRange(buf, cut, buf.length, crc32cRange(buf, 0, cut))).toBe(whole)
    }
  })
})
