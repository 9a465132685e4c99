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
 * The choice is made once per process (and per worker thread, which loads the same file): sse4_crc32 is used
 * only after it gave the reference's result on the check value, a long input and shared memory, so a broken
 * build cannot give wrong checksums, and the fallback is then not loaded at all (each addon costs milliseconds
 * of every process start, redo workers included). `PAGESERVER_CRC32C=node-rs` forces the fallback
 * (benchmarks, and tests that compare the two).
 */
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'

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

/** A bitwise CRC-32C, the reference a native backend is checked against before it is used (tens of µs on the probe). */
function crcBitwise(data: Uint8Array, previous: number): number {
  let c = ~previous
  for (let i = 0; i < data.length; i++) {
    c ^= data[i]!
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
  }
  return ~c >>> 0
}

/** True when `fn` gives the reference's CRC: the check value, a long input at an odd offset continued from a CRC, shared memory. */
function givesReference(fn: NativeCrc32c): boolean {
  try {
    if (fn(Buffer.from('123456789'), 0) >>> 0 !== 0xe3069283) return false
    // Long enough for every path of a native CRC (unaligned head, word loop, tail), short enough that the
    // bitwise reference costs nothing noticeable at the start of every process and thread (8 KiB: ≈ 3 ms).
    const probe = Buffer.alloc(509 + 3)
    for (let i = 0; i < probe.length; i++) probe[i] = (i * 2654435761) >>> 24
    const long = probe.subarray(3)
    if (fn(long, 0x1234) >>> 0 !== crcBitwise(long, 0x1234)) return false
    const shared = new Uint8Array(new SharedArrayBuffer(long.length))
    shared.set(long)
    return fn(shared, 0) >>> 0 === crcBitwise(long, 0)
  } catch {
    return false
  }
}

/**
 * sse4_crc32's addon, loaded directly where node-gyp put it (its package entry first loads `bindings`, which
 * searches the file system and costs several milliseconds of every process start), else through the package.
 * Null when it is not installed, did not build, or the CPU lacks SSE 4.2 (its function is then a byte-table
 * loop, slower than the fallback).
 */
function loadSse4(): { fn: NativeCrc32c; source: NativeCrc32cSource } | null {
  let pkgDir: string
  try {
    pkgDir = dirname(require.resolve('sse4_crc32/package.json'))
  } catch {
    return null
  }
  const addon = join(pkgDir, 'build', 'Release', 'crc32c.node')
  // Not built at all (install scripts skipped or denied): the package entry would search for the addon with
  // `bindings` and throw, milliseconds at every process start for nothing.
  if (!existsSync(join(pkgDir, 'build'))) return null
  const candidates: Array<[string, string]> = [[addon, 'sse42_crc']]
  try {
    candidates.push([require.resolve('sse4_crc32'), 'calculate'])
  } catch {
    // only the addon, if at all
  }
  for (const [modulePath, exportName] of candidates) {
    let mod: Record<string, unknown>
    try {
      mod = require(modulePath) as Record<string, unknown>
    } catch {
      continue
    }
    if (mod.hardware_support !== true) return null
    const fn = mod[exportName]
    if (typeof fn !== 'function' || !givesReference(fn as NativeCrc32c)) continue
    return { fn: fn as NativeCrc32c, source: { name: 'sse4_crc32', modulePath, exportName, jsMaxBytes: 192 } }
  }
  return null
}

function loadNodeRs(): { fn: NativeCrc32c; source: NativeCrc32cSource } {
  const modulePath = require.resolve('@node-rs/crc32')
  const { crc32c } = require(modulePath) as { crc32c: (data: Buffer, previous?: number) => number }
  return {
    fn: crc32c as NativeCrc32c,
    source: { name: '@node-rs/crc32', modulePath, exportName: 'crc32c', jsMaxBytes: 256 },
  }
}

function load(): { fn: NativeCrc32c; source: NativeCrc32cSource } {
  if (process.env.PAGESERVER_CRC32C === 'node-rs') return loadNodeRs()
  return loadSse4() ?? loadNodeRs()
}

const chosen = load()

/** The native CRC-32C chosen for this process. */
export const nativeCrc32c: NativeCrc32c = chosen.fn

/** Which backend was chosen, and how a worker thread loads it. */
export const nativeCrc32cSource: Readonly<NativeCrc32cSource> = Object.freeze(chosen.source)
