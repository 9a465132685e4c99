/**
 * PositionalFile: a read-only file read with synchronous positional reads (pread) into caller buffers.
 *
 * Why sync: a layer lookup reads one 4 KiB index block and one value, both usually in the OS page
 * cache, where a pread costs about 2 µs while a hop through libuv's threadpool costs about 20 µs.
 * GetPage latency matters more than blocking the event loop for microseconds.
 *
 * Descriptors are bounded: at most `openFilesMax` files of a thread hold one at a time (CLOCK over the
 * open ones: a read marks its file used). A file whose descriptor was taken back reopens its path on its
 * next read and must still be the same file (device and inode as at open; layer files are immutable and
 * never replaced in place). Without the bound a long-running server kept one descriptor per layer file,
 * and layers only accumulate (a soak audit: ~6 a minute at an 8 MiB checkpoint_distance, toward EMFILE).
 *
 * Invariant: a read returns exactly the bytes asked for or throws. A short read means the file is
 * shorter than its own header claims, which is corruption: the CorruptionError names the file.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { CorruptionError, assert } from '../lib/errors.js'
import { ioFailed } from './io-errors.js'

/** Default bound on the descriptors held by the PositionalFiles of one thread. */
export const OPEN_FILES_MAX_DEFAULT = 512

/** The files of this thread that hold a descriptor, and the CLOCK hand over them. */
const holding: PositionalFile[] = []
let hand = 0
let openFilesMax = OPEN_FILES_MAX_DEFAULT

/** Changes the bound (tests; a server with a low RLIMIT_NOFILE); files over it give theirs back at once. */
export function setOpenFilesMax(n: number): void {
  assert(Number.isSafeInteger(n) && n >= 1, `open files bound must be a positive integer, got ${n}`)
  openFilesMax = n
  while (holding.length > openFilesMax) evictOne()
}

/** Descriptors held now by this thread's PositionalFiles. */
export function openFileDescriptors(): number {
  return holding.length
}

function evictOne(): void {
  for (;;) {
    if (hand >= holding.length) hand = 0
    const f = holding[hand]!
    if (f.used) {
      f.used = false
      hand++
      continue
    }
    // Swap the last one into its place: CLOCK order is approximate, which is all it needs to be.
    holding[hand] = holding[holding.length - 1]!
    holding.pop()
    f.giveBackDescriptor()
    return
  }
}

function hold(f: PositionalFile): void {
  while (holding.length >= openFilesMax) evictOne()
  holding.push(f)
}

function release(f: PositionalFile): void {
  const i = holding.indexOf(f)
  if (i < 0) return
  holding[i] = holding[holding.length - 1]!
  holding.pop()
}

export class PositionalFile {
  private fd: number
  private isClosed = false
  /** Read since the CLOCK hand last passed (module use). */
  used = true

  private constructor(
    readonly path: string,
    fd: number,
    /** Size at open time; layer files are immutable, so it does not change. */
    readonly sizeBytes: number,
    private readonly dev: number,
    private readonly ino: number,
  ) {
    this.fd = fd
  }

  /** Opens `path` read-only; a missing file is a NotFoundError. */
  static open(path: string): PositionalFile {
    const { fd, dev, ino, size } = openAndStat(path)
    const f = new PositionalFile(path, fd, size, dev, ino)
    hold(f)
    return f
  }

  get closed(): boolean {
    return this.isClosed
  }

  /** Reads exactly `length` bytes at `position` into `buf[offset..]`. */
  readInto(buf: Uint8Array, offset: number, length: number, position: number): void {
    assert(!this.isClosed, () => `read from closed file ${this.path}`)
    assert(offset >= 0 && length >= 0 && offset + length <= buf.length, 'read target out of bounds')
    if (this.fd < 0) this.reopen()
    this.used = true
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
    if (this.isClosed) return
    this.isClosed = true
    if (this.fd >= 0) {
      release(this)
      this.giveBackDescriptor()
    }
  }

  /** Closes the descriptor only (the bound took it back); the next read reopens the path. Module use. */
  giveBackDescriptor(): void {
    const fd = this.fd
    this.fd = -1
    if (fd >= 0) closeSync(fd)
  }

  private reopen(): void {
    const { fd, dev, ino, size } = openAndStat(this.path)
    if (dev !== this.dev || ino !== this.ino || size !== this.sizeBytes) {
      closeSync(fd)
      throw new CorruptionError('FILE_REPLACED', `${this.path} was replaced while the page server had it open (another file is at its path now)`, {
        hint: 'Layer files are never rewritten in place: put back the file that was there (from a backup of the workdir) and restart the server.',
        details: { path: this.path },
      })
    }
    this.fd = fd
    hold(this)
  }
}

function openAndStat(path: string): { fd: number; dev: number; ino: number; size: number } {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    throw ioFailed('opening', path, err)
  }
  try {
    const st = fstatSync(fd)
    return { fd, dev: st.dev, ino: st.ino, size: st.size }
  } catch (err) {
    closeSync(fd)
    throw ioFailed('inspecting', path, err)
  }
}
