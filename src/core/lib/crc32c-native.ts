/**
 * The native CRC-32C this process uses for inputs too long for the JS path (lib/crc32c.ts).
 *
 * Two packages, the faster first:
 * - `sse4_crc32` (optional dependency): a small N-API addon over the SSE 4.2 CRC32 instruction, ≈ 7.7 GB/s on
 *   an 8 KiB page here and ≈ 130 ns per call, against ≈ 4.6 GB/s and ≈ 180 ns for `@node-rs/crc32`. WAL
 *   records, layer values and layer blocks are CRC-checked on every read and write, so this is one of the
 *   largest items of WAL decoding and of the L0 flush (bench/README.md). It compiles C++ at install
 *   (node-gyp), so it is optional: a machine without a compiler, an npm that does not run its install
 *   script, or a CPU without SSE 4.2 gets the other one.
 * - `@node-rs/crc32` (dependency, prebuilt): the fallback, always installed.
 *
 * The choice is checked once, on the standard check value and on a long input against the fallback, so a
 * broken build cannot give wrong checksums; `PAGESERVER_CRC32C=node-rs` forces the fallback (benchmarks,
 * and tests that compare the two).
 */
import { createRequire } from 'node:module'

/** A native CRC-32C: `fn(data, previous)` continues from `previous` (0 for a fresh CRC); the result may be signed. */
export type NativeCrc32c = (data: Uint8Array, previous: number) => number

/** What a worker thread needs to load the same backend: `require(modulePath)[exportName]`. */
export interface NativeCrc32cSource {
  name: 'sse4_crc32' | '@node-rs/crc32'
  modulePath: string
  exportName: string
  /** Below this many bytes the JS slicing-by-8 path is faster than a call into this backend (measured). */
  jsMaxBytes: number
}

const require = createRequire(import.meta.url)

function fallback(): { fn: NativeCrc32c; source: NativeCrc32cSource } {
  const modulePath = require.resolve('@node-rs/crc32')
  const { crc32c } = require(modulePath) as { crc32c: (data: Buffer, previous?: number) => number }
  return {
    fn: crc32c as NativeCrc32c,
    source: { name: '@node-rs/crc32', modulePath, exportName: 'crc32c', jsMaxBytes: 256 },
  }
}

function load(): { fn: NativeCrc32c; source: NativeCrc32cSource } {
  const rs = fallback()
  if (process.env.PAGESERVER_CRC32C === 'node-rs') return rs
  let modulePath: string
  let mod: { calculate?: unknown; hardware_support?: unknown }
  try {
    modulePath = require.resolve('sse4_crc32')
    mod = require(modulePath) as typeof mod
  } catch {
    return rs // not installed, or its addon did not build
  }
  // Without SSE 4.2 its `calculate` is a byte-table loop, slower than the fallback.
  if (mod.hardware_support !== true || typeof mod.calculate !== 'function') return rs
  const fn = mod.calculate as NativeCrc32c
  try {
    const probe = Buffer.alloc(8192 + 3)
    for (let i = 0; i < probe.length; i++) probe[i] = (i * 2654435761) >>> 24
    const long = probe.subarray(3)
    if ((fn(Buffer.from('123456789'), 0) >>> 0) !== 0xe3069283) return rs
    if ((fn(long, 0x1234) >>> 0) !== (rs.fn(long, 0x1234) >>> 0)) return rs
    const shared = new Uint8Array(new SharedArrayBuffer(long.length))
    shared.set(long)
    if ((fn(shared, 0) >>> 0) !== (rs.fn(long, 0) >>> 0)) return rs
  } catch {
    return rs
  }
  return { fn, source: { name: 'sse4_crc32', modulePath, exportName: 'calculate', jsMaxBytes: 192 } }
}

const chosen = load()

/** The native CRC-32C chosen for this process. */
export const nativeCrc32c: NativeCrc32c = chosen.fn

/** Which backend was chosen, and how a worker thread loads it. */
export const nativeCrc32cSource: Readonly<NativeCrc32cSource> = Object.freeze(chosen.source)
