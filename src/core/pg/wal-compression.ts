/**
 * Decompression of full-page images in PostgreSQL 15 WAL: pglz, LZ4 (raw block) and zstd (frame).
 *
 * Each decoder writes exactly `expectedLength` bytes (8192 minus the image's hole) into `out` at `outOffset`
 * and fails with a CorruptionError otherwise. PostgreSQL itself demands an exact length for pglz
 * (`check_complete`); for LZ4 and zstd it only demands success, but a valid image always decodes to the
 * exact size, so anything else is treated as corruption here.
 *
 * pglz has no npm package; its decoder is small and written here from the format. LZ4 images are raw blocks
 * from `LZ4_compress_default` (not frames); a block decoder is short enough to own, and writing straight into
 * the caller's page avoids the copy a library's API would need. zstd frames are decoded by `fzstd` (pure JS,
 * decompression only), since Node 20's zlib has no zstd.
 */
import { copyBytes } from '../lib/shared-copy.js'
import { decompress as zstdDecompress } from 'fzstd'
import { CorruptionError } from '../lib/errors.js'

export type ImageCompression = 'none' | 'pglz' | 'lz4' | 'zstd'

function corrupt(method: string, why: string): CorruptionError {
  return new CorruptionError('WAL_IMAGE_DECOMPRESS', `${method} image does not decompress: ${why}`, {
    hint: 'The WAL record carrying this full-page image is corrupt.',
  })
}

/** Below this many bytes a JS loop beats a native copy call (each costs ~100 ns before copying a byte). */
const SHORT_COPY_MAX_BYTES = 32

/**
 * Copies a back-reference of `len` bytes starting `off` bytes back, as LZ decoders must: when off < len
 * the source overlaps the bytes being written, which repeats the last `off` bytes. Long copies double the
 * copied span each round (the written part is periodic in `off`), so a run of 4,000 zeros at offset 1 is
 * 12 native copies instead of 4,000 byte stores.
 */
function copyMatch(out: Uint8Array, dp: number, off: number, len: number): void {
  const s = dp - off
  if (len < SHORT_COPY_MAX_BYTES) {
    for (let k = 0; k < len; k++) out[dp + k] = out[s + k]!
    return
  }
  if (off >= len) {
    out.copyWithin(dp, s, s + len)
    return
  }
  let d = dp
  let remaining = len
  while (remaining > 0) {
    const n = Math.min(d - s, remaining)
    out.copyWithin(d, s, s + n)
    d += n
    remaining -= n
  }
}

/**
 * pglz: a control byte announces 8 items; a set bit is a 2-3 byte back-reference (length 3..273,
 * offset 1..4095), a clear bit a literal byte. Worked example: literal "abc" then tag (len 6, off 3)
 * yields "abcabcabc": the copy overlaps its own output, one byte at a time.
 */
export function pglzDecompress(src: Uint8Array, out: Uint8Array, outOffset: number, expectedLength: number): void {
  let sp = 0
  const srcEnd = src.length
  let dp = outOffset
  const destEnd = outOffset + expectedLength
  while (sp < srcEnd && dp < destEnd) {
    let ctrl = src[sp++]!
    for (let i = 0; i < 8 && sp < srcEnd && dp < destEnd; i++) {
      if (ctrl & 1) {
        if (sp + 2 > srcEnd) throw corrupt('pglz', 'truncated match tag')
        let len = (src[sp]! & 0x0f) + 3
        const off = ((src[sp]! & 0xf0) << 4) | src[sp + 1]!
        sp += 2
        if (len === 18) {
          if (sp >= srcEnd) throw corrupt('pglz', 'truncated extended length')
          len += src[sp++]!
        }
        if (off === 0 || off > dp - outOffset) throw corrupt('pglz', `bad match offset ${off}`)
        if (len > destEnd - dp) len = destEnd - dp
        copyMatch(out, dp, off, len) // may overlap the bytes it writes
        dp += len
      } else {
        out[dp++] = src[sp++]!
      }
      ctrl >>= 1
    }
  }
  if (dp !== destEnd || sp !== srcEnd) {
    throw corrupt('pglz', `produced ${dp - outOffset} of ${expectedLength} bytes, consumed ${sp} of ${srcEnd}`)
  }
}

/**
 * LZ4 raw block: sequences of (token, literals, offset u16 LE, match). Token high nibble = literal length,
 * low nibble = match length - 4; a nibble of 15 continues in following bytes (255 means "more"). The last
 * sequence has literals only.
 */
export function lz4BlockDecompress(src: Uint8Array, out: Uint8Array, outOffset: number, expectedLength: number): void {
  let sp = 0
  const srcEnd = src.length
  let dp = outOffset
  const destEnd = outOffset + expectedLength
  for (;;) {
    if (sp >= srcEnd) throw corrupt('lz4', 'truncated sequence')
    const token = src[sp++]!
    let litLen = token >>> 4
    if (litLen === 15) {
      let b: number
      do {
        if (sp >= srcEnd) throw corrupt('lz4', 'truncated literal length')
        b = src[sp++]!
        litLen += b
      } while (b === 255)
    }
    if (sp + litLen > srcEnd || dp + litLen > destEnd) throw corrupt('lz4', 'literal run out of bounds')
    if (litLen < SHORT_COPY_MAX_BYTES) {
      for (let k = 0; k < litLen; k++) out[dp + k] = src[sp + k]!
    } else {
      copyBytes(src, out, dp, sp, sp + litLen)
    }
    sp += litLen
    dp += litLen
    if (sp === srcEnd) break // the last sequence ends after its literals
    if (sp + 2 > srcEnd) throw corrupt('lz4', 'truncated match offset')
    const off = src[sp]! | (src[sp + 1]! << 8)
    sp += 2
    if (off === 0 || off > dp - outOffset) throw corrupt('lz4', `bad match offset ${off}`)
    let matchLen = (token & 0x0f) + 4
    if ((token & 0x0f) === 15) {
      let b: number
      do {
        if (sp >= srcEnd) throw corrupt('lz4', 'truncated match length')
        b = src[sp++]!
        matchLen += b
      } while (b === 255)
    }
    if (dp + matchLen > destEnd) throw corrupt('lz4', 'match out of bounds')
    copyMatch(out, dp, off, matchLen)
    dp += matchLen
  }
  if (dp !== destEnd) throw corrupt('lz4', `produced ${dp - outOffset} of ${expectedLength} bytes`)
}

/** zstd frame (as written by ZSTD_compress). */
export function zstdFrameDecompress(src: Uint8Array, out: Uint8Array, outOffset: number, expectedLength: number): void {
  // fzstd allocates the output itself: given a buffer it returns that buffer whole, whatever the frame
  // held, and the exact-length check below would be lost.
  let result: Uint8Array
  try {
    result = zstdDecompress(src)
  } catch (e) {
    throw corrupt('zstd', e instanceof Error ? e.message : String(e))
  }
  if (result.length !== expectedLength) throw corrupt('zstd', `produced ${result.length} of ${expectedLength} bytes`)
  out.set(result, outOffset)
}

export function decompressImage(
  method: ImageCompression,
  src: Uint8Array,
  out: Uint8Array,
  outOffset: number,
  expectedLength: number,
): void {
  switch (method) {
    case 'pglz':
      return pglzDecompress(src, out, outOffset, expectedLength)
    case 'lz4':
      return lz4BlockDecompress(src, out, outOffset, expectedLength)
    case 'zstd':
      return zstdFrameDecompress(src, out, outOffset, expectedLength)
    case 'none':
      if (src.length !== expectedLength) throw corrupt('uncompressed', `length ${src.length}, expected ${expectedLength}`)
      copyBytes(src, out, outOffset, 0, src.length)
      return
  }
}
