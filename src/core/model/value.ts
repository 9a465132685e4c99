/**
 * Value: what a timeline stores at (key, lsn). Either an image (a whole page, or the whole content of a
 * metadata object such as a directory, a relation size, pg_control) or a PostgreSQL WAL record to apply on
 * top of older versions of the same key.
 *
 * A record value is the raw XLogRecord (header included) exactly as PostgreSQL wrote it; it is stored at the
 * record's end LSN, which is therefore the LSN the redo engine stamps on the page. The same record is
 * stored once for each page it changes. `willInit` records (and images) need no older version: readers stop
 * collecting history at the first one.
 *
 * Encoding (used in in-memory and delta layers):
 *   byte 0: kind (0 image, 1 WAL record) | byte 1: flags (bit 0 will-init) | bytes 2..: payload
 */
import { CorruptionError } from '../lib/errors.js'
import { copyBytes } from '../lib/shared-copy.js'

export type Value = { readonly kind: 'image'; readonly data: Buffer } | { readonly kind: 'record'; readonly willInit: boolean; readonly raw: Buffer }

export const VALUE_HEADER_BYTES = 2
/** Byte 0 and the byte-1 flag, for writers that encode a value in place (the in-memory layer's slabs). */
export const VALUE_KIND_IMAGE = 0
export const VALUE_KIND_RECORD = 1
export const VALUE_FLAG_WILL_INIT = 1
const KIND_IMAGE = VALUE_KIND_IMAGE
const KIND_RECORD = VALUE_KIND_RECORD
const FLAG_WILL_INIT = VALUE_FLAG_WILL_INIT

export function imageValue(data: Buffer): Value {
  return { kind: 'image', data }
}

export function recordValue(raw: Buffer, willInit: boolean): Value {
  return { kind: 'record', willInit, raw }
}

export function encodedValueLength(v: Value): number {
  return VALUE_HEADER_BYTES + (v.kind === 'image' ? v.data.length : v.raw.length)
}

/** Writes the encoding of `v` into `out` at `offset`; returns the number of bytes written. */
export function encodeValueInto(v: Value, out: Buffer, offset: number): number {
  if (v.kind === 'image') {
    out[offset] = KIND_IMAGE
    out[offset + 1] = 0
    copyBytes(v.data, out, offset + VALUE_HEADER_BYTES, 0, v.data.length)
    return VALUE_HEADER_BYTES + v.data.length
  }
  out[offset] = KIND_RECORD
  out[offset + 1] = v.willInit ? FLAG_WILL_INIT : 0
  copyBytes(v.raw, out, offset + VALUE_HEADER_BYTES, 0, v.raw.length)
  return VALUE_HEADER_BYTES + v.raw.length
}

export function encodeValue(v: Value): Buffer {
  const out = Buffer.allocUnsafe(encodedValueLength(v))
  encodeValueInto(v, out, 0)
  return out
}

/** Decodes a value; the payload is a view of `b` (copy it to keep it past `b`'s lifetime). */
export function decodeValue(b: Buffer): Value {
  if (b.length < VALUE_HEADER_BYTES) throw new CorruptionError('BAD_VALUE', `stored value of ${b.length} bytes is too short`)
  const kind = b[0]
  const payload = b.subarray(VALUE_HEADER_BYTES)
  if (kind === KIND_IMAGE) return { kind: 'image', data: payload }
  if (kind === KIND_RECORD) return { kind: 'record', willInit: (b[1]! & FLAG_WILL_INIT) !== 0, raw: payload }
  throw new CorruptionError('BAD_VALUE', `stored value has unknown kind ${kind}`)
}

/** will-init without decoding (readers skip older history on this). */
export function encodedValueWillInit(b: Buffer): boolean {
  return b[0] === KIND_IMAGE || (b[1]! & FLAG_WILL_INIT) !== 0
}
