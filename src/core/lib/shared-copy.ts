/**
 * Byte copies and zero fills that stay fast when either side is SharedArrayBuffer memory.
 *
 * V8 copies into or out of shared memory with relaxed atomic accesses (another thread may read it at the
 * same time): word by word when the source and the destination have the same address modulo 8, but one
 * byte at a time when they do not, and `fill` on shared memory stores one byte at a time. Measured on this
 * project's 2-core VM for 8 KiB (Node 20): plain memory 0.25–0.3 µs, shared with equal alignment 0.44 µs,
 * shared with unequal alignment 2.4–2.6 µs, a shared fill 2.2 µs. A full-page image lands at an arbitrary
 * offset of a WAL chunk and at another of an in-memory layer's slab, so most of ingest's image copies were
 * of the slow kind (≈ 150 ms of the ingest thread over 51,000 images).
 *
 * The helpers below take the slow path out: a copy whose sides are misaligned goes through a plain staging
 * buffer placed at the shared side's alignment (two fast copies instead of a byte loop), and a zero fill of
 * shared memory is an aligned copy from a plain buffer of zeros. Plain-to-plain work goes straight to the
 * native copy or fill. Short ranges (under SHARED_COPY_DIRECT_BYTES) are copied directly: the byte loop is
 * cheaper there than a second call.
 *
 * Overlapping ranges of one buffer are handled as `copyWithin` does (the staging is per piece, pieces taken
 * from the end when the destination is above the source).
 */

/** Below this many bytes a misaligned shared copy is done directly (≈ 80 ns as a byte loop). */
export const SHARED_COPY_DIRECT_BYTES = 256

/** Up to this many bytes a copy is a JS loop (no view, no native call). */
const SHARED_COPY_LOOP_BYTES = 32

/** Largest piece staged at once (a multiple of 8, so every piece keeps the first one's alignment). */
const STAGE_BYTES = 64 * 1024

// Plain (non-shared) memory, allocated on first use. Two stages for shared-to-shared copies at two alignments.
let stageA: Uint8Array | null = null
let stageB: Uint8Array | null = null
let zeros: Uint8Array | null = null

function isShared(b: Uint8Array): boolean {
  return b.buffer instanceof SharedArrayBuffer
}

/**
 * Copies `src[srcStart, srcEnd)` to `dst` at `dstStart` (as `src.copy(dst, dstStart, srcStart, srcEnd)`, but the
 * ranges must be in bounds: the caller has checked them). Returns the number of bytes copied.
 */
export function copyBytes(src: Uint8Array, dst: Uint8Array, dstStart: number, srcStart: number, srcEnd: number): number {
  const n = srcEnd - srcStart
  if (n <= 0) return 0
  if (n <= SHARED_COPY_LOOP_BYTES) {
    // A short copy costs less as a loop than as a view plus a native call.
    for (let i = 0; i < n; i++) dst[dstStart + i] = src[srcStart + i]!
    return n
  }
  if (n < SHARED_COPY_DIRECT_BYTES || ((src.byteOffset + srcStart - dst.byteOffset - dstStart) & 7) === 0) {
    dst.set(srcStart === 0 && srcEnd === src.length ? src : src.subarray(srcStart, srcEnd), dstStart)
    return n
  }
  const srcShared = isShared(src)
  const dstShared = isShared(dst)
  if (!srcShared && !dstShared) {
    dst.set(srcStart === 0 && srcEnd === src.length ? src : src.subarray(srcStart, srcEnd), dstStart)
    return n
  }
  stageA ??= new Uint8Array(STAGE_BYTES + 8)
  // Overlap within one buffer, destination above: take pieces from the end so none is overwritten unread.
  const backward = src.buffer === dst.buffer && dst.byteOffset + dstStart > src.byteOffset + srcStart
  const pieces = Math.ceil(n / STAGE_BYTES)
  for (let p = 0; p < pieces; p++) {
    const k = backward ? pieces - 1 - p : p
    const off = k * STAGE_BYTES
    const len = Math.min(STAGE_BYTES, n - off)
    const s = srcStart + off
    const d = dstStart + off
    if (!srcShared) {
      // Plain to shared: stage at the destination's alignment, then an aligned copy into shared memory.
      const a = (dst.byteOffset + d) & 7
      stageA.set(src.subarray(s, s + len), a)
      dst.set(stageA.subarray(a, a + len), d)
    } else if (!dstShared) {
      // Shared to plain: an aligned copy out of shared memory, then a plain copy.
      const a = (src.byteOffset + s) & 7
      stageA.set(src.subarray(s, s + len), a)
      dst.set(stageA.subarray(a, a + len), d)
    } else {
      // Shared to shared: out at the source's alignment, realigned in plain memory, in at the destination's.
      stageB ??= new Uint8Array(STAGE_BYTES + 8)
      const a = (src.byteOffset + s) & 7
      const b = (dst.byteOffset + d) & 7
      stageA.set(src.subarray(s, s + len), a)
      stageB.set(stageA.subarray(a, a + len), b)
      dst.set(stageB.subarray(b, b + len), d)
    }
  }
  return n
}

/** Zeroes `dst[start, end)` (bounds checked by the caller). */
export function zeroBytes(dst: Uint8Array, start: number, end: number): void {
  const n = end - start
  if (n <= 0) return
  if (n < SHARED_COPY_DIRECT_BYTES || !isShared(dst)) {
    dst.fill(0, start, end)
    return
  }
  zeros ??= new Uint8Array(STAGE_BYTES + 8)
  for (let off = 0; off < n; off += STAGE_BYTES) {
    const len = Math.min(STAGE_BYTES, n - off)
    const a = (dst.byteOffset + start + off) & 7
    dst.set(zeros.subarray(a, a + len), start + off)
  }
}
