/**
 * BinaryReader / BinaryWriter: the one bounds-checked way to read and write binary formats.
 *
 * Endianness is in every method name (`u32le`, `u64be`) because PostgreSQL structs are little-endian while
 * network protocols, Neon's walredo pipe and our own layer files are big-endian; mixing them up is the most
 * common bug in this kind of code, and a name makes it visible in review.
 *
 * Reads past the end throw `ShortReadError` (a CorruptionError) carrying the offset and the wanted length;
 * callers that know more (which record, which LSN) catch and wrap it. 64-bit values are bigint.
 */
import { CorruptionError } from './errors.js'

export class ShortReadError extends CorruptionError {
  constructor(
    readonly offset: number,
    readonly wanted: number,
    readonly available: number,
    what = 'input',
  ) {
    super('SHORT_READ', `${what} is truncated: wanted ${wanted} bytes at offset ${offset}, only ${available} left`, {
      hint: 'The data ends early; it may be truncated or corrupt.',
      details: { offset, wanted, available },
    })
    this.name = 'ShortReadError'
  }
}

export class BinaryReader {
  private pos: number

  constructor(
    readonly buf: Buffer,
    start = 0,
    private readonly end = buf.length,
    private readonly what = 'input',
  ) {
    this.pos = start
  }

  get offset(): number {
    return this.pos
  }

  get remaining(): number {
    return this.end - this.pos
  }

  /** Throws unless `n` more bytes are available. */
  need(n: number): void {
    if (n < 0 || this.pos + n > this.end) throw new ShortReadError(this.pos, n, this.end - this.pos, this.what)
  }

  seek(offset: number): void {
    if (offset < 0 || offset > this.end) throw new ShortReadError(offset, 0, this.end - offset, this.what)
    this.pos = offset
  }

  skip(n: number): void {
    this.need(n)
    this.pos += n
  }

  u8(): number {
    this.need(1)
    return this.buf[this.pos++]!
  }

  i8(): number {
    this.need(1)
    return this.buf.readInt8(this.pos++)
  }

  u16le(): number {
    this.need(2)
    const v = this.buf.readUInt16LE(this.pos)
    this.pos += 2
    return v
  }

  u16be(): number {
    this.need(2)
    const v = this.buf.readUInt16BE(this.pos)
    this.pos += 2
    return v
  }

  i16le(): number {
    this.need(2)
    const v = this.buf.readInt16LE(this.pos)
    this.pos += 2
    return v
  }

  u32le(): number {
    this.need(4)
    const v = this.buf.readUInt32LE(this.pos)
    this.pos += 4
    return v
  }

  u32be(): number {
    this.need(4)
    const v = this.buf.readUInt32BE(this.pos)
    this.pos += 4
    return v
  }

  i32le(): number {
    this.need(4)
    const v = this.buf.readInt32LE(this.pos)
    this.pos += 4
    return v
  }

  i32be(): number {
    this.need(4)
    const v = this.buf.readInt32BE(this.pos)
    this.pos += 4
    return v
  }

  u64le(): bigint {
    this.need(8)
    const v = this.buf.readBigUInt64LE(this.pos)
    this.pos += 8
    return v
  }

  u64be(): bigint {
    this.need(8)
    const v = this.buf.readBigUInt64BE(this.pos)
    this.pos += 8
    return v
  }

  i64le(): bigint {
    this.need(8)
    const v = this.buf.readBigInt64LE(this.pos)
    this.pos += 8
    return v
  }

  i64be(): bigint {
    this.need(8)
    const v = this.buf.readBigInt64BE(this.pos)
    this.pos += 8
    return v
  }

  /** A view (no copy) of the next `n` bytes. Copy it if it must outlive the underlying buffer. */
  bytes(n: number): Buffer {
    this.need(n)
    const v = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return v
  }

  /** A view of everything left. */
  rest(): Buffer {
    const v = this.buf.subarray(this.pos, this.end)
    this.pos = this.end
    return v
  }

  /** A NUL-terminated string (the NUL is consumed, not returned). */
  cstring(encoding: BufferEncoding = 'utf8'): string {
    const nul = this.buf.indexOf(0, this.pos)
    if (nul < 0 || nul >= this.end) throw new ShortReadError(this.pos, this.end - this.pos + 1, this.end - this.pos, this.what)
    const s = this.buf.toString(encoding, this.pos, nul)
    this.pos = nul + 1
    return s
  }
}

/**
 * A growable writer. `finish()` returns a view of exactly the bytes written.
 * Hot paths that write fixed-size messages should size the writer up front.
 */
export class BinaryWriter {
  private buf: Buffer
  private pos = 0

  constructor(initialCapacity = 256) {
    this.buf = Buffer.allocUnsafe(Math.max(16, initialCapacity))
  }

  get length(): number {
    return this.pos
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    let cap = this.buf.length * 2
    while (cap < this.pos + n) cap *= 2
    const next = Buffer.allocUnsafe(cap)
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  u8(v: number): this {
    this.ensure(1)
    this.buf.writeUInt8(v, this.pos)
    this.pos += 1
    return this
  }

  u16le(v: number): this {
    this.ensure(2)
    this.buf.writeUInt16LE(v, this.pos)
    this.pos += 2
    return this
  }

  u16be(v: number): this {
    this.ensure(2)
    this.buf.writeUInt16BE(v, this.pos)
    this.pos += 2
    return this
  }

  u32le(v: number): this {
    this.ensure(4)
    this.buf.writeUInt32LE(v, this.pos)
    this.pos += 4
    return this
  }

  u32be(v: number): this {
    this.ensure(4)
    this.buf.writeUInt32BE(v, this.pos)
    this.pos += 4
    return this
  }

  i32be(v: number): this {
    this.ensure(4)
    this.buf.writeInt32BE(v, this.pos)
    this.pos += 4
    return this
  }

  i32le(v: number): this {
    this.ensure(4)
    this.buf.writeInt32LE(v, this.pos)
    this.pos += 4
    return this
  }

  u64le(v: bigint): this {
    this.ensure(8)
    this.buf.writeBigUInt64LE(v, this.pos)
    this.pos += 8
    return this
  }

  u64be(v: bigint): this {
    this.ensure(8)
    this.buf.writeBigUInt64BE(v, this.pos)
    this.pos += 8
    return this
  }

  i64be(v: bigint): this {
    this.ensure(8)
    this.buf.writeBigInt64BE(v, this.pos)
    this.pos += 8
    return this
  }

  i64le(v: bigint): this {
    this.ensure(8)
    this.buf.writeBigInt64LE(v, this.pos)
    this.pos += 8
    return this
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
    return this
  }

  zeros(n: number): this {
    this.ensure(n)
    this.buf.fill(0, this.pos, this.pos + n)
    this.pos += n
    return this
  }

  /** A NUL-terminated string. */
  cstring(s: string): this {
    const b = Buffer.from(s, 'utf8')
    return this.bytes(b).u8(0)
  }

  /** Overwrites a u32 big-endian at an earlier offset (for length prefixes). */
  patchU32be(offset: number, v: number): this {
    this.buf.writeUInt32BE(v, offset)
    return this
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos)
  }
}

/**
 * A copy of `b` in memory of its own, for a cache that keeps it: a view of a larger read buffer would keep
 * the whole buffer alive, and a slice of Node's shared pool (what Buffer.from gives a small value) 8 KiB of
 * the pool per entry.
 */
export function ownedCopy(b: Uint8Array): Buffer {
  const copy = Buffer.allocUnsafeSlow(b.length)
  copy.set(b)
  return copy
}

// ---- 64-bit big-endian without Buffer's BigInt arithmetic ----------------------------------------------
// Buffer.writeBigUInt64BE range-checks with BigInt compares and splits the value with BigInt shifts and
// masks (allocations); on the page service's per-request path that measured ~1.4 µs for the three u64 of
// a pagestream header. These go through one typed-array slot in host byte order instead (~10 ns each); a
// big-endian host takes Buffer's own methods.
const u64Scratch = new BigUint64Array(1)
const u64Bytes = new Uint8Array(u64Scratch.buffer)
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1
const U64_MAX = 0xffff_ffff_ffff_ffffn

/** Writes `v` (0 <= v < 2^64, else RangeError) big-endian at `off` (8 bytes, caller-checked bounds). */
export function writeU64BE(b: Buffer, v: bigint, off: number): void {
  if (!HOST_LITTLE_ENDIAN) {
    b.writeBigUInt64BE(v, off)
    return
  }
  if (v < 0n || v > U64_MAX) throw new RangeError(`${v} is not an unsigned 64-bit value`)
  u64Scratch[0] = v
  const s = u64Bytes
  b[off] = s[7]!
  b[off + 1] = s[6]!
  b[off + 2] = s[5]!
  b[off + 3] = s[4]!
  b[off + 4] = s[3]!
  b[off + 5] = s[2]!
  b[off + 6] = s[1]!
  b[off + 7] = s[0]!
}

/** The unsigned 64-bit big-endian value at `off` (8 bytes, caller-checked bounds). */
export function readU64BE(b: Buffer, off: number): bigint {
  if (!HOST_LITTLE_ENDIAN) return b.readBigUInt64BE(off)
  const s = u64Bytes
  s[7] = b[off]!
  s[6] = b[off + 1]!
  s[5] = b[off + 2]!
  s[4] = b[off + 3]!
  s[3] = b[off + 4]!
  s[2] = b[off + 5]!
  s[1] = b[off + 6]!
  s[0] = b[off + 7]!
  return u64Scratch[0]!
}
