/**
 * TarChunker: builds a ustar stream (headers from pg/tar.ts) out of directory entries and files whose
 * bytes arrive piecewise, and hands it out in chunks of about `chunkBytes`.
 *
 * Why chunks: a backup is mostly 8 KiB pages; one yield (and one CopyData message) per page would cost more
 * than the pages themselves. Small pieces are gathered until `chunkBytes`; a piece at least that large
 * (a run of WAL zeros) is handed out as it is, after what was gathered before it.
 *
 * Invariants: a file's header announces its size, and exactly that many bytes follow before the next
 * entry (checked in `endFile`); padding to 512 bytes follows every file; `finish` appends the end-of-archive
 * marker. Memory: at most `chunkBytes` gathered plus the chunks not yet taken by the consumer.
 */
import { assert } from '../lib/errors.js'
import { tarEnd, tarHeader, tarPadding } from '../pg/tar.js'

export const TAR_CHUNK_BYTES_DEFAULT = 256 * 1024

export class TarChunker {
  private parts: Buffer[] = []
  private partsBytes = 0
  private readonly ready: Buffer[] = []
  private open: { path: string; size: number; written: number } | null = null
  /** Entries written (files and directories). */
  entries = 0
  /** Bytes of file data written (without headers and padding). */
  dataBytes = 0

  constructor(
    private readonly mtimeSec: number,
    private readonly chunkBytes = TAR_CHUNK_BYTES_DEFAULT,
  ) {
    assert(chunkBytes >= 512, 'tar chunks must hold at least one block')
  }

  dir(path: string): void {
    assert(this.open === null, () => `directory ${path} inside file ${this.open?.path}`)
    this.push(tarHeader({ path, type: 'directory', mode: 0o700, mtime: this.mtimeSec }))
    this.entries++
  }

  /** A whole small file. */
  file(path: string, content: Buffer | string): void {
    const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content
    this.beginFile(path, bytes.length)
    this.data(bytes)
    this.endFile()
  }

  beginFile(path: string, size: number): void {
    assert(this.open === null, () => `file ${path} begun inside file ${this.open?.path}`)
    this.push(tarHeader({ path, type: 'file', size, mode: 0o600, mtime: this.mtimeSec }))
    this.open = { path, size, written: 0 }
    this.entries++
  }

  data(bytes: Buffer): void {
    const f = this.open
    assert(f !== null, 'file data outside a file')
    assert(f.written + bytes.length <= f.size, () => `file ${f.path} gets more than its ${f.size} bytes`)
    f.written += bytes.length
    this.dataBytes += bytes.length
    this.push(bytes)
  }

  endFile(): void {
    const f = this.open
    assert(f !== null, 'endFile without a file')
    assert(f.written === f.size, () => `file ${f.path} got ${f.written} of its ${f.size} bytes`)
    const pad = tarPadding(f.size)
    if (pad.length > 0) this.push(pad)
    this.open = null
  }

  finish(): void {
    assert(this.open === null, () => `archive finished inside file ${this.open?.path}`)
    this.push(tarEnd())
    this.cut()
  }

  /** Chunks ready to hand out (taking them empties the queue). */
  take(): Buffer[] {
    return this.ready.splice(0, this.ready.length)
  }

  private push(b: Buffer): void {
    if (b.length >= this.chunkBytes) {
      this.cut()
      this.ready.push(b)
      return
    }
    this.parts.push(b)
    this.partsBytes += b.length
    if (this.partsBytes >= this.chunkBytes) this.cut()
  }

  private cut(): void {
    if (this.partsBytes === 0) return
    this.ready.push(this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partsBytes))
    this.parts = []
    this.partsBytes = 0
  }
}
