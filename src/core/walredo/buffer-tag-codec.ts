/**
 * The BufferTag as Neon's walredo pipe protocol writes it, and the SLRU "pseudo-forks".
 *
 * Wire layout (17 bytes, all big-endian, the order of `walredoproc.c`'s reads):
 *
 *   offset 0  forknum u8
 *   offset 1  spcnode u32
 *   offset 5  dbnode  u32
 *   offset 9  relnode u32
 *   offset 13 blkno   u32
 *
 * Worked example: the VM page 0 of 1663/5/16384 is 02 | 00 00 06 7f | 00 00 00 05 | 00 00 40 00 | 00 00 00 00.
 *
 * Pseudo-forks (our extension; Neon applies SLRU changes in Rust and never sends them to the process):
 * SLRU pages are redone by our workers, so they need a name in the same 17 bytes (a pool running another
 * worker program redoes them in the page server instead: `slruInProcess`, slru-in-process.ts). forknum 0x40 is
 * pg_xact (CLOG), 0x41 pg_multixact/offsets, 0x42 pg_multixact/members; spc = db = rel = 0 and blkno is the
 * SLRU page number, i.e. segment * 32 + page within the segment (SLRU_PAGES_PER_SEGMENT = 32 in PG 15).
 * Relation forks stay 0..3. Any other forknum, or a pseudo-fork with a non-zero relation, is rejected on
 * both sides so a mix-up cannot silently redo the wrong page.
 */
import { CorruptionError, UsageError } from '../lib/errors.js'
import type { BinaryReader, BinaryWriter } from '../lib/bytes.js'
import { INVALID_BLOCK_NUMBER, MAX_FORK_NUMBER, formatBufferTag, type BufferTag } from '../pg/reltag.js'
import { isSlruFork, SLRU_DIRS, SLRU_PAGES_PER_SEGMENT, SlruKind, type SlruKindFork } from '../pg/slru.js'

export const BUFFER_TAG_BYTES = 17

/** Pseudo-fork numbers naming SLRU pages in a walredo BufferTag (defined with the SLRU geometry in pg/slru.ts). */
export const SlruFork = SlruKind
export type SlruForkNumber = SlruKindFork
export { isSlruFork, SLRU_PAGES_PER_SEGMENT }

/** The BufferTag of SLRU page `segno * 32 + pageInSegment`. */
export function slruBufferTag(fork: SlruForkNumber, segno: number, pageInSegment: number): BufferTag {
  if (!Number.isInteger(pageInSegment) || pageInSegment < 0 || pageInSegment >= SLRU_PAGES_PER_SEGMENT) {
    throw new UsageError('BAD_SLRU_PAGE', `SLRU page ${pageInSegment} is outside a segment`, {
      hint: `A segment holds pages 0 to ${SLRU_PAGES_PER_SEGMENT - 1}.`,
    })
  }
  const blkno = segno * SLRU_PAGES_PER_SEGMENT + pageInSegment
  if (!Number.isInteger(segno) || segno < 0 || blkno >= INVALID_BLOCK_NUMBER) {
    throw new UsageError('BAD_SLRU_PAGE', `SLRU segment ${segno} is out of range`, {
      hint: 'An SLRU segment number is a non-negative integer (the file name in hex).',
    })
  }
  return { spcNode: 0, dbNode: 0, relNode: 0, forkNum: fork, blkno }
}

function u32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff
}

/** Why `tag` cannot travel in the protocol, or null when it can. */
export function bufferTagProblem(tag: BufferTag): string | null {
  if (!u32(tag.spcNode) || !u32(tag.dbNode) || !u32(tag.relNode)) return 'an oid is not a u32'
  if (!u32(tag.blkno) || tag.blkno === INVALID_BLOCK_NUMBER) return 'the block number is not a valid block'
  if (isSlruFork(tag.forkNum)) {
    if (tag.spcNode !== 0 || tag.dbNode !== 0 || tag.relNode !== 0) return 'an SLRU pseudo-fork needs spc = db = rel = 0'
    return null
  }
  if (!Number.isInteger(tag.forkNum) || tag.forkNum < 0 || tag.forkNum > MAX_FORK_NUMBER) {
    return `fork ${tag.forkNum} is neither a relation fork (0..3) nor an SLRU pseudo-fork (0x40..0x42)`
  }
  return null
}

/** "1663/5/16384_vm blk 0", or "pg_xact page 37" for SLRU pseudo-forks. */
export function formatRedoTag(tag: BufferTag): string {
  if (isSlruFork(tag.forkNum)) return `${SLRU_DIRS[tag.forkNum]} page ${tag.blkno}`
  return formatBufferTag(tag)
}

/** Writes the 17-byte form. Throws UsageError for a tag the protocol cannot carry (checked before writing). */
export function writeBufferTag(w: BinaryWriter, tag: BufferTag): void {
  const problem = bufferTagProblem(tag)
  if (problem !== null) {
    throw new UsageError('WALREDO_BAD_BUFFER_TAG', `cannot send a redo request for ${formatRedoTag(tag)}: ${problem}`, {
      hint: 'This is a bug in the caller of the WAL redo manager; the page key maps to no redoable page.',
    })
  }
  w.u8(tag.forkNum).u32be(tag.spcNode).u32be(tag.dbNode).u32be(tag.relNode).u32be(tag.blkno)
}

/** Reads the 17-byte form and validates it (CorruptionError on a tag the sender should never have sent). */
export function readBufferTag(r: BinaryReader): BufferTag {
  const forkNum = r.u8()
  const spcNode = r.u32be()
  const dbNode = r.u32be()
  const relNode = r.u32be()
  const blkno = r.u32be()
  const tag: BufferTag = { spcNode, dbNode, relNode, forkNum, blkno }
  const problem = bufferTagProblem(tag)
  if (problem !== null) {
    throw new CorruptionError('WALREDO_BAD_BUFFER_TAG', `received a BufferTag that names no page: ${problem}`, {
      hint: 'The redo request is corrupt; check that the page server and the redo worker are the same version.',
      details: { forkNum, spcNode, dbNode, relNode, blkno },
    })
  }
  return tag
}
