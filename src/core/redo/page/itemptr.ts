/**
 * ItemPointerData (a TID): 6 bytes, BlockIdData as two u16 LE halves (bi_hi first), then ip_posid u16 LE.
 *
 * Worked example: block 0x00012345, offset 7 is stored as 01 00 45 23 07 00.
 *
 * Helpers take the buffer and the byte position of the pointer (inside a heap tuple header, an index
 * tuple, a posting list, a WAL record). "NoCheck" in PostgreSQL's names means the value may be a marker
 * (SpecTokenOffsetNumber, posting-list status bits); these helpers never check.
 */

export const SizeOfIptrData = 6

/** Offset number of a speculative-insertion token in t_ctid (its block number holds the token). */
export const SpecTokenOffsetNumber = 0xfffe
/** t_ctid of a tuple moved to another partition: block InvalidBlockNumber, this offset. */
export const MovedPartitionsOffsetNumber = 0xfffd
export const InvalidBlockNumber = 0xffff_ffff
export const MovedPartitionsBlockNumber = InvalidBlockNumber

export function itemPointerGetBlockNumber(buf: Buffer, at: number): number {
  return ((buf.readUInt16LE(at) << 16) | buf.readUInt16LE(at + 2)) >>> 0
}

export function itemPointerGetOffsetNumber(buf: Buffer, at: number): number {
  return buf.readUInt16LE(at + 4)
}

export function itemPointerSetBlockNumber(buf: Buffer, at: number, block: number): void {
  buf.writeUInt16LE((block >>> 16) & 0xffff, at)
  buf.writeUInt16LE(block & 0xffff, at + 2)
}

export function itemPointerSetOffsetNumber(buf: Buffer, at: number, offset: number): void {
  buf.writeUInt16LE(offset & 0xffff, at + 4)
}

/** ItemPointerSet(pointer, block, offset). */
export function itemPointerSet(buf: Buffer, at: number, block: number, offset: number): void {
  itemPointerSetBlockNumber(buf, at, block)
  itemPointerSetOffsetNumber(buf, at, offset)
}

/** ItemPointerSetInvalid: block InvalidBlockNumber, offset 0. */
export function itemPointerSetInvalid(buf: Buffer, at: number): void {
  itemPointerSet(buf, at, InvalidBlockNumber, 0)
}

/** ItemPointerCompare: block first, then offset; -1, 0 or 1. */
export function itemPointerCompare(a: Buffer, aAt: number, b: Buffer, bAt: number): number {
  const ab = itemPointerGetBlockNumber(a, aAt)
  const bb = itemPointerGetBlockNumber(b, bAt)
  if (ab !== bb) return ab < bb ? -1 : 1
  const ao = itemPointerGetOffsetNumber(a, aAt)
  const bo = itemPointerGetOffsetNumber(b, bAt)
  return ao === bo ? 0 : ao < bo ? -1 : 1
}
