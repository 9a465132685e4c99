/**
 * Lsn: a byte position in PostgreSQL's endless WAL stream (u64).
 *
 * Branded bigint so it cannot be mixed with byte counts or block numbers. Text form is PostgreSQL's:
 * high 32 bits and low 32 bits in upper-case hex without padding, `16/B374D848`. `Lsn.MAX` (all ones) is
 * the pagestream "latest" marker; `Lsn.INVALID` (0) is never a real position.
 *
 * Worked example: 0x16_B374D848 -> "16/B374D848"; segment (16 MiB) = 0x16B374D848 >> 24 = 0x16B3,
 * so the WAL file on timeline 1 is 00000001 00000016 000000B3.
 */
import { UsageError } from '../lib/errors.js'

export type Lsn = bigint & { readonly __brand: 'Lsn' }

const U64_MAX = 0xffff_ffff_ffff_ffffn

export const INVALID_LSN = 0n as Lsn
export const MAX_LSN = U64_MAX as Lsn

/** Brands a bigint or safe integer as an Lsn; throws on values outside u64. */
export function lsn(value: bigint | number): Lsn {
  const v = typeof value === 'number' ? BigInt(value) : value
  if (v < 0n || v > U64_MAX) throw new RangeError(`LSN out of range: ${v}`)
  return v as Lsn
}

/** "16/B374D848" (upper-case hex, no padding, like PostgreSQL and Neon). */
export function formatLsn(l: Lsn | bigint): string {
  const hi = Number(l >> 32n)
  const lo = Number(l & 0xffff_ffffn)
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`
}

const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/

/** Parses "X/X"; also accepts a 16-digit hex form (layer file names). `what` names the input in errors. */
export function parseLsn(text: string, what = 'LSN'): Lsn {
  const s = text.trim()
  const m = LSN_RE.exec(s)
  if (m) return ((BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2])) as Lsn
  if (/^[0-9A-Fa-f]{16}$/.test(s)) return BigInt('0x' + s) as Lsn
  throw new UsageError('BAD_LSN', `${what}: "${text}" is not an LSN`, {
    hint: 'Write an LSN as PostgreSQL prints it, e.g. 0/16B3748 or 16/B374D848.',
  })
}

/** 16 upper-case hex digits, as in layer file names. */
export function formatLsnHex16(l: Lsn | bigint): string {
  return l.toString(16).toUpperCase().padStart(16, '0')
}

/** Rounds up to the next multiple of 8: WAL records start 8-byte aligned (MAXALIGN). */
export function alignLsn8(l: Lsn | bigint): Lsn {
  return ((BigInt(l) + 7n) & ~7n) as Lsn
}

export function minLsn(a: Lsn, b: Lsn): Lsn {
  return a < b ? a : b
}

export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b
}

/** Lsn -> number, for arithmetic on positions known to be below 2^53 (e.g. offsets inside a segment). */
export function lsnToNumber(l: Lsn | bigint): number {
  const n = Number(l)
  if (!Number.isSafeInteger(n)) throw new RangeError(`LSN ${formatLsn(l)} does not fit a safe integer`)
  return n
}
