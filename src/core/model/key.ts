/**
 * Key: the 18-byte address of every value a timeline stores (Neon's key layout).
 *
 *   field1 u8 | field2 u32 | field3 u32 | field4 u32 | field5 u8 | field6 u32      (big-endian, 18 bytes)
 *
 * In memory a Key is its 36-character upper-case hex form: byte order and string order agree (digits sort
 * before A-F in ASCII), so keys sort with `<`, serve as Map keys, and print as they appear in layer file
 * names. What the fields mean (relation block, relation size, directories, SLRU, ...) is known only to
 * src/core/datadir/mapping.ts; everything else treats keys as opaque ordered strings.
 *
 * Ranges are half-open: {start, end} contains start and not end.
 */
import { CorruptionError, UsageError } from '../lib/errors.js'

export type Key = string & { readonly __brand: 'Key' }

export const KEY_BYTES = 18
export const KEY_HEX_LENGTH = 36

export const MIN_KEY = '0'.repeat(KEY_HEX_LENGTH) as Key
export const MAX_KEY = 'F'.repeat(KEY_HEX_LENGTH) as Key

export interface KeyRange {
  readonly start: Key
  readonly end: Key
}

export interface KeyFields {
  field1: number
  field2: number
  field3: number
  field4: number
  field5: number
  field6: number
}

const HEX_KEY_RE = /^[0-9A-F]{36}$/

/**
 * "00".."FF" by byte value. Ingest builds a key for every page version it stores; a table lookup per byte
 * costs about half of `toString(16).toUpperCase().padStart()` (bench/ingest.ts profile).
 */
const HEX_BYTE: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).toUpperCase().padStart(2, '0'))

/** Two hex digits of a u8 field. */
function hex2(n: number): string {
  return HEX_BYTE[n & 0xff]!
}

/** Eight hex digits of a u32 field. */
function hex8(n: number): string {
  return HEX_BYTE[n >>> 24]! + HEX_BYTE[(n >>> 16) & 0xff]! + HEX_BYTE[(n >>> 8) & 0xff]! + HEX_BYTE[n & 0xff]!
}

export function keyFromFields(f: KeyFields): Key {
  return (hex2(f.field1) + hex8(f.field2) + hex8(f.field3) + hex8(f.field4) + hex2(f.field5) + hex8(f.field6)) as Key
}

/** Hex digits of field1..field5 (28): the part shared by keys that differ only in field6. */
export function keyPrefixFromFields(field1: number, field2: number, field3: number, field4: number, field5: number): string {
  return hex2(field1) + hex8(field2) + hex8(field3) + hex8(field4) + hex2(field5)
}

/** Characters of a key's prefix (field1..field5); field6 is the last 8. */
export const KEY_PREFIX_LENGTH = 28

/** The key with a prefix from keyPrefixFromFields and the given field6. */
export function keyFromPrefix(prefix: string, field6: number): Key {
  return (prefix + hex8(field6)) as Key
}

/** A key's prefix (keyPrefixFromFields' form). */
export function keyPrefixOf(k: Key): string {
  return k.slice(0, KEY_PREFIX_LENGTH)
}

/** A key's field6. */
export function keyField6(k: Key): number {
  return parseInt(k.slice(KEY_PREFIX_LENGTH), 16)
}

export function keyFields(k: Key): KeyFields {
  return {
    field1: parseInt(k.slice(0, 2), 16),
    field2: parseInt(k.slice(2, 10), 16),
    field3: parseInt(k.slice(10, 18), 16),
    field4: parseInt(k.slice(18, 26), 16),
    field5: parseInt(k.slice(26, 28), 16),
    field6: parseInt(k.slice(28, 36), 16),
  }
}

/** Parses the hex text form (as in layer file names and `--key` flags). */
export function parseKey(text: string): Key {
  const s = text.trim().toUpperCase()
  if (!HEX_KEY_RE.test(s)) {
    throw new UsageError('BAD_KEY', `"${text}" is not a key (36 hex digits)`, {
      hint: 'A key is 18 bytes written as 36 hexadecimal digits, as in layer file names.',
    })
  }
  return s as Key
}

export function keyToBytes(k: Key, out: Buffer = Buffer.allocUnsafe(KEY_BYTES), offset = 0): Buffer {
  out.write(k, offset, KEY_BYTES, 'hex')
  return out
}

export function keyFromBytes(b: Buffer, offset = 0): Key {
  if (offset + KEY_BYTES > b.length) throw new CorruptionError('BAD_KEY_BYTES', 'key bytes are truncated')
  return b.toString('hex', offset, offset + KEY_BYTES).toUpperCase() as Key
}

/** The key right after `k` (k + 1), for turning an inclusive end into an exclusive one. */
export function nextKey(k: Key): Key {
  const b = keyToBytes(k)
  for (let i = KEY_BYTES - 1; i >= 0; i--) {
    if (b[i] === 0xff) {
      b[i] = 0
      continue
    }
    b[i]!++
    return keyFromBytes(b)
  }
  throw new RangeError('no key after MAX_KEY')
}

export function keyInRange(k: Key, r: KeyRange): boolean {
  return k >= r.start && k < r.end
}

export function rangesOverlap(a: KeyRange, b: KeyRange): boolean {
  return a.start < b.end && b.start < a.end
}
