import { createRequire } from 'node:module'
import { describe, expect, it, vi } from 'vitest'
import { crc32c as nativeCrc32c_rs } from '@node-rs/crc32'
import { nativeCrc32c, nativeCrc32cSource } from '../../../src/core/lib/crc32c-native.js'
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
      const want = nativeCrc32c_rs(buf.subarray(start, start + len)) >>> 0
      expect(crc32cJs(buf, start, start + len), `js len ${len}`).toBe(want)
      expect(crc32cRange(buf, start, start + len), `range len ${len}`).toBe(want)
      expect(crc32c(buf.subarray(start, start + len)), `crc32c len ${len}`).toBe(want)
    }
  })

  it('continues a CRC across pieces on both paths (crc(a ++ b) = crc(b, crc(a)))', () => {
    const rand = mulberry32(2)
    const buf = Buffer.alloc(4000)
    for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256)
    const whole = nativeCrc32c_rs(buf) >>> 0
    for (const cut of [0, 1, 20, 255, 256, 1000, 3999, 4000]) {
      expect(crc32c(buf.subarray(cut), crc32c(buf.subarray(0, cut)))).toBe(whole)
      expect(crc32cRange(buf, cut, buf.length, crc32cRange(buf, 0, cut))).toBe(whole)
    }
  })
})

describe('native CRC-32C backend', () => {
  it('is sse4_crc32 where it is installed and the CPU has SSE 4.2, else @node-rs/crc32', () => {
    const require = createRequire(import.meta.url)
    let sse: { hardware_support?: boolean } | null = null
    try {
      sse = require('sse4_crc32') as { hardware_support?: boolean }
    } catch {
      sse = null
    }
    const want = sse?.hardware_support === true ? 'sse4_crc32' : '@node-rs/crc32'
    expect(nativeCrc32cSource.name).toBe(want)
    expect(nativeCrc32cSource.jsMaxBytes).toBeGreaterThan(0)
    // A worker thread loads it by path and export name.
    const fn = (require(nativeCrc32cSource.modulePath) as Record<string, unknown>)[nativeCrc32cSource.exportName]
    expect(typeof fn).toBe('function')
  })

  it('gives the @node-rs/crc32 result on Buffers, views at odd offsets and shared memory, with and without a previous CRC', () => {
    const rand = mulberry32(3)
    const buf = Buffer.alloc(70_000)
    for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256)
    const shared = new Uint8Array(new SharedArrayBuffer(buf.length))
    shared.set(buf)
    for (const len of [0, 1, 7, 255, 256, 257, 4096, 8192, 8193, 65_536]) {
      for (const start of [0, 1, 5, 8]) {
        const want = nativeCrc32c_rs(buf.subarray(start, start + len)) >>> 0
        expect(nativeCrc32c(buf.subarray(start, start + len), 0) >>> 0, `buffer ${start}+${len}`).toBe(want)
        expect(nativeCrc32c(shared.subarray(start, start + len), 0) >>> 0, `shared ${start}+${len}`).toBe(want)
        const prev = 0x9e3779b9
        expect(nativeCrc32c(buf.subarray(start, start + len), prev) >>> 0).toBe(nativeCrc32c_rs(buf.subarray(start, start + len), prev) >>> 0)
      }
    }
  })

  it('falls back to @node-rs/crc32 when PAGESERVER_CRC32C=node-rs', async () => {
    vi.resetModules()
    vi.stubEnv('PAGESERVER_CRC32C', 'node-rs')
    try {
      const mod = await import('../../../src/core/lib/crc32c-native.js')
      expect(mod.nativeCrc32cSource.name).toBe('@node-rs/crc32')
      expect(mod.nativeCrc32c(Buffer.from('123456789'), 0) >>> 0).toBe(0xe3069283)
    } finally {
      vi.unstubAllEnvs()
      vi.resetModules()
    }
  })
})
