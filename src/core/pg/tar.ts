/**
 * ustar archives as PostgreSQL writes and reads them (BASE_BACKUP, pg_basebackup): 512-byte headers, file
 * data padded to 512 bytes, two zero blocks at the end.
 *
 * Header fields used (offsets in the 512-byte header): name 0..99, mode 100 (octal), uid 108, gid 116,
 * size 124 (12 bytes octal, or base-256 with the high bit set for values >= 8 GiB), mtime 136, checksum 148
 * (8 bytes, sum of all header bytes with the checksum field as spaces), typeflag 156 ('0' or NUL file,
 * '5' directory, '2' symlink), linkname 157, magic 257 "ustar\0" + version "00", prefix 345..499.
 *
 * The reader is incremental (feed chunks of any size; entries and their data come out as events) and
 * bounded: it holds at most one header and a little of the previous chunk, never a whole file. The writer
 * builds headers; data and padding are the caller's to stream. Owning this (about 200 lines) instead of using
 * a tar package lets the importer consume the replication stream synchronously, with no stream plumbing.
 */
import { CorruptionError } from '../lib/errors.js'

export const TAR_BLOCK = 512

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'other'

export interface TarEntryHeader {
  path: string
  type: TarEntryType
  size: number
  mode: number
  mtime: number
  linkname: string
}

export interface TarSink {
  entry(h: TarEntryHeader): void
  /** Data of the current file entry, in order; views of the fed chunk (copy to keep). */
  data(chunk: Buffer): void
  entryEnd(): void
}

function bad(why: string): CorruptionError {
  return new CorruptionError('TAR_CORRUPT', `the tar archive is corrupt: ${why}`, { hint: 'The backup stream was damaged or is not a tar archive.' })
}

function readString(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off)
  return b.toString('utf8', off, end < 0 || end > off + len ? off + len : end)
}

function readNumber(b: Buffer, off: number, len: number, what: string): number {
  if (b[off]! & 0x80) {
    // base-256: big-endian two's complement in the remaining bytes
    let v = 0
    for (let i = off + 1; i < off + len; i++) v = v * 256 + b[i]!
    if (!Number.isSafeInteger(v)) throw bad(`${what} is too large`)
    return v
  }
  const s = readString(b, off, len).trim()
  if (s === '') return 0
  if (!/^[0-7]+$/.test(s)) throw bad(`${what} "${s}" is not octal`)
  return parseInt(s, 8)
}

function headerChecksum(b: Buffer, off: number): number {
  let sum = 0
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : b[off + i]!
  return sum
}

export class TarReader {
  private readonly hdr = Buffer.alloc(TAR_BLOCK)
  private hdrLen = 0
  private remaining = 0
  private padding = 0
  private zeroBlocks = 0
  private done = false

  constructor(private readonly sink: TarSink) {}

  /** True after the end-of-archive marker (two zero blocks). */
  get finished(): boolean {
    return this.done
  }

  feed(chunk: Buffer): void {
    let p = 0
    while (p < chunk.length) {
      if (this.done) {
        // Bytes after the end marker (padding to a record size) must be zeros.
        for (; p < chunk.length; p++) if (chunk[p] !== 0) throw bad('data after the end of the archive')
        return
      }
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - p)
        this.sink.data(chunk.subarray(p, p + n))
        p += n
        this.remaining -= n
        if (this.remaining === 0) {
          this.sink.entryEnd()
          if (this.padding === 0) continue
        }
        continue
      }
      if (this.padding > 0) {
        const n = Math.min(this.padding, chunk.length - p)
        p += n
        this.padding -= n
        continue
      }
      const n = Math.min(TAR_BLOCK - this.hdrLen, chunk.length - p)
      chunk.copy(this.hdr, this.hdrLen, p, p + n)
      this.hdrLen += n
      p += n
      if (this.hdrLen === TAR_BLOCK) {
        this.hdrLen = 0
        this.onHeader()
      }
    }
  }

  /** Call at the end of input: a truncated archive is an error. */
  end(): void {
    if (this.done) return
    if (this.hdrLen !== 0 || this.remaining !== 0 || this.padding !== 0) throw bad('it ends in the middle of an entry')
    // PostgreSQL always writes the end marker; a missing one means a truncated stream.
    throw bad('the end-of-archive marker is missing')
  }

  private onHeader(): void {
    const b = this.hdr
    if (b.every((x) => x === 0)) {
      this.zeroBlocks++
      if (this.zeroBlocks === 2) this.done = true
      return
    }
    if (this.zeroBlocks > 0) throw bad('a single zero block inside the archive')
    const stored = readNumber(b, 148, 8, 'header checksum')
    if (stored !== headerChecksum(b, 0)) throw bad('a header checksum does not match')
    const name = readString(b, 0, 100)
    const magic = b.toString('latin1', 257, 263)
    const prefix = magic.startsWith('ustar') ? readString(b, 345, 155) : ''
    const path = prefix ? `${prefix}/${name}` : name
    const flag = String.fromCharCode(b[156]!)
    const type: TarEntryType = flag === '0' || flag === '\0' ? 'file' : flag === '5' ? 'directory' : flag === '2' ? 'symlink' : 'other'
    const size = readNumber(b, 124, 12, 'size')
    if (path === '' || path.includes('\0')) throw bad('an entry has no name')
    const h: TarEntryHeader = { path, type, size, mode: readNumber(b, 100, 8, 'mode'), mtime: readNumber(b, 136, 12, 'mtime'), linkname: readString(b, 157, 100) }
    this.sink.entry(h)
    this.remaining = size
    this.padding = (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK
    if (size === 0) this.sink.entryEnd()
  }
}

function writeOctal(b: Buffer, off: number, len: number, v: number): void {
  if (v >= 8 ** (len - 1)) {
    // base-256 for large values
    b.fill(0, off, off + len)
    b[off] = 0x80
    let x = v
    for (let i = off + len - 1; i > off && x > 0; i--) {
      b[i] = x % 256
      x = Math.floor(x / 256)
    }
    return
  }
  b.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1')
}

/** A ustar header for a file, directory or symlink. Names longer than 100 bytes use the prefix field. */
export function tarHeader(h: { path: string; type: TarEntryType; size?: number; mode?: number; mtime?: number; linkname?: string }): Buffer {
  const b = Buffer.alloc(TAR_BLOCK)
  let name = h.path
  let prefix = ''
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155)
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new CorruptionError('TAR_NAME_TOO_LONG', `path ${h.path} is too long for a tar header`)
    prefix = name.slice(0, cut)
    name = name.slice(cut + 1)
  }
  b.write(name, 0, 100, 'utf8')
  writeOctal(b, 100, 8, h.mode ?? (h.type === 'directory' ? 0o700 : 0o600))
  writeOctal(b, 108, 8, 0)
  writeOctal(b, 116, 8, 0)
  writeOctal(b, 124, 12, h.type === 'file' ? (h.size ?? 0) : 0)
  writeOctal(b, 136, 12, h.mtime ?? Math.floor(Date.now() / 1000))
  b[156] = (h.type === 'directory' ? '5' : h.type === 'symlink' ? '2' : '0').charCodeAt(0)
  if (h.linkname) b.write(h.linkname, 157, 100, 'utf8')
  b.write('ustar\0', 257, 6, 'latin1')
  b.write('00', 263, 2, 'latin1')
  b.write(prefix, 345, 155, 'utf8')
  writeOctal(b, 148, 8, headerChecksum(b, 0))
  return b
}

/** Zero bytes that pad `size` bytes of file data to a 512-byte boundary. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK)
}

/** The end-of-archive marker. */
export function tarEnd(): Buffer {
  return Buffer.alloc(2 * TAR_BLOCK)
}
