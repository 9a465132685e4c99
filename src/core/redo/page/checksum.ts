/**
 * PostgreSQL data checksums (pg_checksum_page, storage/checksum_impl.h), PG 15 algorithm.
 *
 * The page is read as 2048 native (little-endian) u32 words, as 64 rows of 32. Lane j folds word j of
 * every row with an FNV-1a-like step, `tmp = sum ^ word; sum = tmp * 16777619 ^ (tmp >>> 17)` (32-bit
 * wrapping), starting from a fixed per-lane offset; then two more rounds with word 0. The lanes are
 * XORed together, XORed with the block number (within the fork, not within the 1 GiB segment) and
 * reduced to `result % 65535 + 1`, so a checksum is never 0.
 *
 * pd_checksum (bytes 8..9, the low half of word 2) counts as zero while computing; the caller's buffer is
 * never modified (PostgreSQL zeroes it transiently; we mask the word instead).
 *
 * Checksums are set only when a page goes to disk, and never on a new page (pd_upper == 0): pages in WAL
 * images and pages after redo carry stale checksums.
 */
import { assertPage, pageIsNew, setPdChecksum } from './page.js'

const N_SUMS = 32
const ROWS = 64 // BLCKSZ / (4 * N_SUMS)
const FNV_PRIME = 16777619

/** Initial state of each lane (checksumBaseOffsets). */
const checksumBaseOffsets = new Uint32Array([
  0x5b1f36e9, 0xb8525960, 0x02ab50aa, 0x1de66d2a, 0x79ff467a, 0x9bb9f8a3, 0x217e7cd2, 0x83e13d2c,
  0xf8d4474f, 0xe39eb970, 0x42c6ae16, 0x993216fa, 0x7b093b5d, 0x98daff3c, 0xf718902a, 0x0b1c9cdb,
  0xe58f764b, 0x187636bc, 0x5d7b3bb1, 0xe73de7de, 0x92bec979, 0xcca6c0b2, 0x304a0979, 0x85aa43d4,
  0x783125bb, 0x6ca8eaa2, 0xe407eac6, 0x4b5cfc3e, 0x9fbf8c76, 0x15ca20be, 0xf2ca9fd3, 0x959bd756,
])

const sums = new Int32Array(N_SUMS)
const hostIsLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/** One lane step (CHECKSUM_COMP), on int32 values. */
function comp(sum: number, value: number): number {
  const tmp = sum ^ value
  return Math.imul(tmp, FNV_PRIME) ^ (tmp >>> 17)
}

/**
 * pg_checksum_page(page, blkno): the 16-bit checksum PostgreSQL would store for this block.
 * `blkno` is the block number within the fork (u32).
 */
export function pageChecksum(page: Buffer, blkno: number): number {
  assertPage(page)
  for (let j = 0; j < N_SUMS; j++) sums[j] = checksumBaseOffsets[j]! | 0

  // A u32 view is the fast path; a Buffer at an odd byteOffset (or a big-endian host) reads word by word.
  const words =
    hostIsLittleEndian && page.byteOffset % 4 === 0 ? new Uint32Array(page.buffer, page.byteOffset, page.length >>> 2) : null
  for (let i = 0; i < ROWS; i++) {
    const base = i * N_SUMS
    for (let j = 0; j < N_SUMS; j++) {
      let w = words !== null ? words[base + j]! : page.readUInt32LE((base + j) * 4)
      // Word 2 holds pd_checksum (low half) and pd_flags (high half); the checksum counts as zero.
      if (base + j === 2) w &= 0xffff0000
      sums[j] = comp(sums[j]!, w)
    }
  }
  for (let r = 0; r < 2; r++) {
    for (let j = 0; j < N_SUMS; j++) sums[j] = comp(sums[j]!, 0)
  }

  let result = 0
  for (let j = 0; j < N_SUMS; j++) result ^= sums[j]!
  result = (result ^ blkno) >>> 0
  return (result % 65535) + 1
}

/**
 * PageSetChecksumInplace with data checksums on: store pageChecksum in pd_checksum, except on a new page
 * (pd_upper == 0), which PostgreSQL writes as is.
 */
export function setPageChecksum(page: Buffer, blkno: number): void {
  if (pageIsNew(page)) return
  setPdChecksum(page, pageChecksum(page, blkno))
}
