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
import { BLCKSZ, assertPage, pageIsNew, setPdChecksum } from './page.js'

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

const hostIsLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1
/** Aligned little-endian copy of the page when the caller's view cannot be read as u32 words directly. */
const scratchBytes = Buffer.alloc(BLCKSZ)
const scratchWords = new Uint32Array(scratchBytes.buffer, scratchBytes.byteOffset, BLCKSZ >>> 2)

/** The page as 2048 little-endian u32 words, without copying when the host and alignment allow. */
function pageWords(page: Buffer): Uint32Array {
  if (hostIsLittleEndian) {
    if (page.byteOffset % 4 === 0) return new Uint32Array(page.buffer, page.byteOffset, BLCKSZ >>> 2)
    page.copy(scratchBytes)
    return scratchWords
  }
  for (let i = 0; i < BLCKSZ >>> 2; i++) scratchWords[i] = page.readUInt32LE(i * 4)
  return scratchWords
}

/**
 * pg_checksum_page(page, blkno): the 16-bit checksum PostgreSQL would store for this block.
 * `blkno` is the block number within the fork (u32).
 *
 * The 32 lanes are independent, so they are computed 8 at a time in locals (column groups): the same
 * arithmetic as PostgreSQL's row-by-row loop, in an order that keeps V8's registers busy (~2x faster
 * than one lane array updated row by row).
 */
export function pageChecksum(page: Buffer, blkno: number): number {
  assertPage(page)
  const w = pageWords(page)
  const P = FNV_PRIME
  let result = 0
  for (let j = 0; j < N_SUMS; j += 8) {
    let s0 = checksumBaseOffsets[j]! | 0
    let s1 = checksumBaseOffsets[j + 1]! | 0
    let s2 = checksumBaseOffsets[j + 2]! | 0
    let s3 = checksumBaseOffsets[j + 3]! | 0
    let s4 = checksumBaseOffsets[j + 4]! | 0
    let s5 = checksumBaseOffsets[j + 5]! | 0
    let s6 = checksumBaseOffsets[j + 6]! | 0
    let s7 = checksumBaseOffsets[j + 7]! | 0
    for (let i = j; i < ROWS * N_SUMS; i += N_SUMS) {
      // Word 2 (row 0, lane 2) holds pd_checksum in its low half and pd_flags in its high half.
      const v2 = i === 0 ? w[2]! & 0xffff0000 : w[i + 2]!
      let t = s0 ^ w[i]!
      s0 = Math.imul(t, P) ^ (t >>> 17)
      t = s1 ^ w[i + 1]!
      s1 = Math.imul(t, P) ^ (t >>> 17)
      t = s2 ^ v2
      s2 = Math.imul(t, P) ^ (t >>> 17)
      t = s3 ^ w[i + 3]!
      s3 = Math.imul(t, P) ^ (t >>> 17)
      t = s4 ^ w[i + 4]!
      s4 = Math.imul(t, P) ^ (t >>> 17)
      t = s5 ^ w[i + 5]!
      s5 = Math.imul(t, P) ^ (t >>> 17)
      t = s6 ^ w[i + 6]!
      s6 = Math.imul(t, P) ^ (t >>> 17)
      t = s7 ^ w[i + 7]!
      s7 = Math.imul(t, P) ^ (t >>> 17)
    }
    // Two extra rounds with value 0.
    for (let r = 0; r < 2; r++) {
      s0 = Math.imul(s0, P) ^ (s0 >>> 17)
      s1 = Math.imul(s1, P) ^ (s1 >>> 17)
      s2 = Math.imul(s2, P) ^ (s2 >>> 17)
      s3 = Math.imul(s3, P) ^ (s3 >>> 17)
      s4 = Math.imul(s4, P) ^ (s4 >>> 17)
      s5 = Math.imul(s5, P) ^ (s5 >>> 17)
      s6 = Math.imul(s6, P) ^ (s6 >>> 17)
      s7 = Math.imul(s7, P) ^ (s7 >>> 17)
    }
    result ^= s0 ^ s1 ^ s2 ^ s3 ^ s4 ^ s5 ^ s6 ^ s7
  }
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
