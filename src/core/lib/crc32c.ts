/**
 * CRC-32C (Castagnoli): the checksum of PostgreSQL WAL records and of every file this project writes.
 *
 * Backed by `@node-rs/crc32` (prebuilt native, about 5 GB/s; a pure-JS table version runs near 1 GB/s, which
 * would cost a third of a core at WAL-ingest rates). Node's own `zlib.crc32` is CRC-32/IEEE, the wrong
 * polynomial. `crc32c(b, crc32c(a))` equals `crc32c(a ++ b)`, which is how a WAL record's CRC covers its
 * body first and its header last.
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32'

/** CRC-32C of `data`, continuing from `previous` (the result of an earlier call) when given. */
export function crc32c(data: Uint8Array, previous?: number): number {
  return (previous === undefined ? nativeCrc32c(data as Buffer) : nativeCrc32c(data as Buffer, previous)) >>> 0
}
