/**
 * PositionalFile: a read-only file opened once, read with synchronous positional reads (pread) into
 * caller buffers.
 *
 * Why sync: a layer lookup reads one 4 KiB index block and one value, both usually in the OS page
 * cache, where a pread costs about 2 µs while a hop through libuv's threadpool costs about 20 µs.
 * GetPage latency matters more than blocking the event loop for microseconds.
 *
 * Invariant: a read returns exactly the bytes asked for or throws. A short read means the file is
 * shorter than its own header claims, which is corruption: the CorruptionError names the file.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { CorruptionError, assert } from '../lib/errors.js'
import { ioFailed } from './io-errors.js'

export class PositionalFile {
  private fd: number

  private constructor(
    readonly path: string,
    fd: number,
    /** Size at open time; layer files are immutable, so it does not change. */
    readonly sizeBytes: number,
  ) {
    this.fd = fd
  }

  /** Opens `path` read-only; a missing file is a NotFoundError. */
  static open(path: string): PositionalFile {
    let fd: number
    try {
      fd = openSync(path, 'r')
    } catch (err) {
      throw ioFailed('opening', path, err)
    }
    try {
      const st = fstatSync(fd)
      return new PositionalFile(path, fd, st.size)
    } catch (err) {
      closeSync(fd)
      throw ioFailed('inspecting', path, err)
    }
  }

  get closed(): boolean {
    return this.fd < 0
  }

  /** Reads exactly `length` bytes at `position` into `buf[offset..]`. */
  readInto(buf: Uint8Array, offset: number, length: number, position: number): void {
    assert(this.fd >= 0, () => `read from closed file ${this.path}`)
    assert(offset >= 0 && length >= 0 && offset + length <= buf.length, 'read target out of bounds')
    let done = 0
    while (done < length) {
      let n: number
      try {
        n = readSync(this.fd, buf, offset + done, length - done, position + done)
      } catch (err) {
        throw ioFailed('reading', this.path, err)
      }
      if (n === 0) {
        throw new CorruptionError('SHORT_FILE', `${this.path} is truncated: wanted ${length} bytes at offset ${position}, the file has ${this.sizeBytes}`, {
          hint: 'The file is damaged; restore it from a backup of the workdir (the page server keeps no other copy).',
          details: { path: this.path, position, length },
        })
      }
      done += n
    }
  }

  /** Reads exactly `length` bytes at `position` into a new Buffer. */
  read(position: number, length: number): Buffer {
    const buf = Buffer.allocUnsafe(length)
    this.readInto(buf, 0, length, position)
    return buf
  }

  /** Closes the file; later reads are assertion failures. Idempotent. */
  close(): void {
    if (this.fd < 0) return
    const fd = this.fd
    this.fd = -1
    closeSync(fd)
  }
}
