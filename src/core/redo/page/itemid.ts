/**
 * ItemIdData, the 4-byte line pointer, addressed by 1-based offset number.
 *
 * C declares it as a bitfield `lp_off:15, lp_flags:2, lp_len:15`; on the little-endian ABIs PostgreSQL
 * runs on, GCC packs it from the least significant bit, so it is one u32 LE word:
 *
 *   bits  0..14  lp_off    byte offset of the item from the start of the page (or redirect target)
 *   bits 15..16  lp_flags  LP_UNUSED 0, LP_NORMAL 1, LP_REDIRECT 2, LP_DEAD 3
 *   bits 17..31  lp_len    byte length of the item (0 = no storage)
 *
 * Worked example: a normal item of 61 bytes at 8128 is 8128 | 1 << 15 | 61 << 17 = 0x007A9FC0, stored as
 * C0 9F 7A 00. Line pointer n lives at byte 24 + 4 * (n - 1).
 *
 * The helpers do not check that `offnum` is within pd_lower (callers that take offsets from WAL do); a
 * position outside the page throws Node's RangeError. Writes to a field truncate to its width, as the C
 * bitfield assignment does.
 */
import { SizeOfPageHeaderData, sizeOfItemIdData } from './page.js'

export const LP_UNUSED = 0
export const LP_NORMAL = 1
export const LP_REDIRECT = 2
export const LP_DEAD = 3

const LP_OFF_MASK = 0x7fff
const LP_LEN_MASK = 0x7fff

/** Byte position of line pointer `offnum` (1-based). */
export function itemIdPosition(offnum: number): number {
  return SizeOfPageHeaderData + (offnum - 1) * sizeOfItemIdData
}

// --- raw words -----------------------------------------------------------------------------------

export function makeItemId(lp_off: number, lp_flags: number, lp_len: number): number {
  return ((lp_off & LP_OFF_MASK) | ((lp_flags & 3) << 15) | ((lp_len & LP_LEN_MASK) << 17)) >>> 0
}
export function rawItemIdOffset(raw: number): number {
  return raw & LP_OFF_MASK
}
export function rawItemIdFlags(raw: number): number {
  return (raw >>> 15) & 3
}
export function rawItemIdLength(raw: number): number {
  return raw >>> 17
}

export function itemIdGetRaw(page: Buffer, offnum: number): number {
  return page.readUInt32LE(itemIdPosition(offnum))
}
export function itemIdSetRaw(page: Buffer, offnum: number, raw: number): void {
  page.writeUInt32LE(raw >>> 0, itemIdPosition(offnum))
}

// --- fields --------------------------------------------------------------------------------------

export function itemIdGetOffset(page: Buffer, offnum: number): number {
  return itemIdGetRaw(page, offnum) & LP_OFF_MASK
}
/** ItemIdGetRedirect: a redirect's target offset number lives in lp_off. */
export const itemIdGetRedirect = itemIdGetOffset
export function itemIdGetFlags(page: Buffer, offnum: number): number {
  return (itemIdGetRaw(page, offnum) >>> 15) & 3
}
export function itemIdGetLength(page: Buffer, offnum: number): number {
  return itemIdGetRaw(page, offnum) >>> 17
}

/** Sets lp_off only (C: `lp->lp_off = v`), keeping flags and length. */
export function itemIdSetOffset(page: Buffer, offnum: number, lp_off: number): void {
  const raw = itemIdGetRaw(page, offnum)
  itemIdSetRaw(page, offnum, (raw & ~LP_OFF_MASK) | (lp_off & LP_OFF_MASK))
}
/** Sets lp_flags only, keeping offset and length (ItemIdMarkDead, mask_lp_flags). */
export function itemIdSetFlags(page: Buffer, offnum: number, lp_flags: number): void {
  const raw = itemIdGetRaw(page, offnum)
  itemIdSetRaw(page, offnum, (raw & ~(3 << 15)) | ((lp_flags & 3) << 15))
}
/** Sets lp_len only, keeping offset and flags. */
export function itemIdSetLength(page: Buffer, offnum: number, lp_len: number): void {
  const raw = itemIdGetRaw(page, offnum)
  itemIdSetRaw(page, offnum, (raw & 0x1ffff) | ((lp_len & LP_LEN_MASK) << 17))
}

// --- predicates ----------------------------------------------------------------------------------

export function itemIdIsUsed(page: Buffer, offnum: number): boolean {
  return itemIdGetFlags(page, offnum) !== LP_UNUSED
}
export function itemIdIsNormal(page: Buffer, offnum: number): boolean {
  return itemIdGetFlags(page, offnum) === LP_NORMAL
}
export function itemIdIsRedirected(page: Buffer, offnum: number): boolean {
  return itemIdGetFlags(page, offnum) === LP_REDIRECT
}
export function itemIdIsDead(page: Buffer, offnum: number): boolean {
  return itemIdGetFlags(page, offnum) === LP_DEAD
}
/** ItemIdHasStorage: lp_len != 0. */
export function itemIdHasStorage(page: Buffer, offnum: number): boolean {
  return itemIdGetLength(page, offnum) !== 0
}

// --- whole-pointer setters (the ItemIdSet* macros) -----------------------------------------------

export function itemIdSetUnused(page: Buffer, offnum: number): void {
  itemIdSetRaw(page, offnum, 0)
}
export function itemIdSetNormal(page: Buffer, offnum: number, lp_off: number, lp_len: number): void {
  itemIdSetRaw(page, offnum, makeItemId(lp_off, LP_NORMAL, lp_len))
}
export function itemIdSetRedirect(page: Buffer, offnum: number, link: number): void {
  itemIdSetRaw(page, offnum, makeItemId(link, LP_REDIRECT, 0))
}
export function itemIdSetDead(page: Buffer, offnum: number): void {
  itemIdSetRaw(page, offnum, makeItemId(0, LP_DEAD, 0))
}
/** ItemIdMarkDead: flags only; the item keeps its storage (index AMs' LP_DEAD hint). */
export function itemIdMarkDead(page: Buffer, offnum: number): void {
  itemIdSetFlags(page, offnum, LP_DEAD)
}
