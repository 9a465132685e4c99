/**
 * Joining the pieces of a WAL record that spans pages (or fed chunks) once WalStreamDecoder has them all.
 *
 * The decoder keeps piece i as pieceBuf[i][pieceStart[i], pieceStart[i] + pieceLen[i]) in three parallel
 * arrays of its own, reused from record to record; a record header split across pages sits in the
 * decoder's `hdrBuf` and is one of the pieces. These are plain functions over those arrays, called only
 * for a page-spanning record once it is complete: no object stands between the decoder and its arrays, so
 * the per-record path has no extra hop, and nothing is allocated here (the copy's room is the decoder's).
 */
import { copyBytes } from '../lib/shared-copy.js'

/**
 * With the decoder's `inPlace`, a record whose pieces all lie in the current input buffer is joined there: the longest
 * piece stays where it is, the pieces before it move right and those after it move left over the page
 * headers between them, so the fewest bytes move. Only bytes of this record and its page headers are
 * overwritten. Worked example: a 8,000-byte record at 0/1001F00 has 256 bytes before 0/1002000, then a
 * 24-byte page header, then 7,744 bytes; the 7,744 bytes stay, the first 256 move 24 bytes right, and
 * raw = [0/1001F18, 0/1003F58). Had the split been 7,744 then 256, the 256 would move 24 bytes left.
 * A header split across pages sits in hdrBuf and is written to its place. `buf` is the decoder's current
 * input. Returns where the record now starts in `buf`, or -1 (copy instead: copyPieces) when a piece came
 * in an earlier buffer.
 */
export function joinPiecesInPlace(
  buf: Buffer,
  hdrBuf: Buffer,
  pieceBuf: readonly Buffer[],
  pieceStart: readonly number[],
  pieceLen: readonly number[],
  n: number,
): number {
  let anchor = -1
  let anchorLen = -1
  for (let i = 0; i < n; i++) {
    const b = pieceBuf[i]!
    if (b === hdrBuf) continue // separate memory: written to its place below
    if (b !== buf) return -1
    if (pieceLen[i]! > anchorLen) {
      anchor = i
      anchorLen = pieceLen[i]!
    }
  }
  if (anchor < 0) return -1
  let recStart = pieceStart[anchor]!
  for (let i = 0; i < anchor; i++) recStart -= pieceLen[i]!
  if (recStart < 0) return -1
  // Pieces before the anchor move right: the one nearest the anchor first, so none overwrites a piece
  // still to move. Those after it move left, nearest first, for the same reason.
  let dest = pieceStart[anchor]!
  for (let i = anchor - 1; i >= 0; i--) {
    const len = pieceLen[i]!
    dest -= len
    if (pieceBuf[i] === hdrBuf) {
      buf.set(hdrBuf, dest)
    } else {
      const src = pieceStart[i]!
      if (src !== dest) buf.copyWithin(dest, src, src + len)
    }
  }
  dest = pieceStart[anchor]! + anchorLen
  for (let i = anchor + 1; i < n; i++) {
    const src = pieceStart[i]!
    const len = pieceLen[i]!
    if (src !== dest) buf.copyWithin(dest, src, src + len)
    dest += len
  }
  return recStart
}

/** Copies the `n` pieces, in order, into `raw` (exactly their total length: the record's xl_tot_len). */
export function copyPieces(raw: Buffer, pieceBuf: readonly Buffer[], pieceStart: readonly number[], pieceLen: readonly number[], n: number): void {
  let o = 0
  for (let i = 0; i < n; i++) {
    const b = pieceBuf[i]!
    const start = pieceStart[i]!
    const len = pieceLen[i]!
    copyBytes(b, raw, o, start, start + len)
    o += len
  }
}
