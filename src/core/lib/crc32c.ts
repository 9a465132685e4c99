/**
 * CRC-32C (Castagnoli): the checksum of PostgreSQL WAL records and of every file this project writes.
 *
 * Backed by a native CRC (lib/crc32c-native.ts: `sse4_crc32` where it built, else `@node-rs/crc32`; 5-8 GB/s,
 * where a pure-JS table version runs near 1 GB/s, which would cost a third of a core at WAL-ingest rates). Node's own `zlib.crc32` is CRC-32/IEEE, the wrong
 * polynomial. `crc32c(b, crc32c(a))` equals `crc32c(a ++ b)`, which is how a WAL record's CRC covers its
 * body first and its header last.
 *
 * Short inputs take a JS slicing-by-8 path instead: a native call costs a few hundred nanoseconds before it
 * reads a byte, more than JS needs for a couple of hundred bytes, and most WAL records are that short.
 * Both paths give the same result (tests compare them on every length).
 */
import { nativeCrc32c, nativeCrc32cSource } from './crc32c-native.js'

/** Below this many bytes the JS path is faster than a native call (measured per backend). */
export const CRC32C_JS_MAX_BYTES = nativeCrc32cSource.jsMaxBytes

/** T[k * 256 + b]: the CRC of byte b followed by k zero bytes (slicing-by-8 tables), reflected 0x82F63B78. */
const T = new Int32Array(256 * 8)
for (let i = 0; i < 256; i++) {
  let c = i
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
  T[i] = c
}
for (let i = 0; i < 256; i++) {
  for (let t = 1; t < 8; t++) T[t * 256 + i] = (T[(t - 1) * 256 + i]! >>> 8) ^ T[T[(t - 1) * 256 + i]! & 0xff]!
}

/** CRC-32C of buf[start, end) in JS, continuing from `previous` (0 for a fresh CRC). */
export function crc32cJs(buf: Uint8Array, start: number, end: number, previous = 0): number {
  let c = ~previous
  let i = start
  for (; i + 8 <= end; i += 8) {
    const a = c ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24))
    c =
      T[1792 + (a & 0xff)]! ^
      T[1536 + ((a >>> 8) & 0xff)]! ^
      T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^
      T[768 + buf[i + 4]!]! ^
      T[512 + buf[i + 5]!]! ^
      T[256 + buf[i + 6]!]! ^
      T[buf[i + 7]!]!
  }
  for (; i < end; i++) c = T[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

/** CRC-32C of `data`, continuing from `previous` (the result of an earlier call) when given. */
export function crc32c(data: Uint8Array, previous?: number): number {
  if (data.length < CRC32C_JS_MAX_BYTES) return crc32cJs(data, 0, data.length, previous ?? 0)
  return nativeCrc32c(data, previous ?? 0) >>> 0
}

/** CRC-32C of buf[start, end) without making a view for short ranges. */
export function crc32cRange(buf: Buffer, start: number, end: number, previous = 0): number {
  if (end - start < CRC32C_JS_MAX_BYTES) return crc32cJs(buf, start, end, previous)
  return nativeCrc32c(buf.subarray(start, end), previous) >>> 0
}
