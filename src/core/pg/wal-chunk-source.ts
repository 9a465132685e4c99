/**
 * WalChunkSource: reads WAL segment files a chunk at a time for WalFileReader.
 *
 * One file is open at a time and one read is in flight at most (the caller awaits each read before asking
 * for the next), so opening and closing never race with a read.
 *
 * Memory: each chunk is fresh memory by default, so the records decoded from it (views into it) may be kept
 * as long as anyone likes. With `reuse`, chunks come from a free list and go back to it with `release()`
 * once nothing refers to them any more (the caller decides: WalFileReader releases a chunk when its
 * consumer has moved past the batch and the decoder holds no piece of it). Fresh memory costs page faults,
 * zeroing and garbage collection: about a tenth of the decoding CPU at 1 MiB per chunk.
 * The free list holds at most `WAL_CHUNK_POOL_MAX` chunks; a released chunk beyond that is dropped.
 */
import { open, type FileHandle } from 'node:fs/promises'
import { CorruptionError, isNotFoundFsError, messageOf, NotFoundError, UnavailableError } from '../lib/errors.js'

export interface WalChunkFile {
  readonly path: string
}

export type WalChunk = { kind: 'chunk'; segno: bigint; offset: number; chunk: Buffer } | { kind: 'missing'; segno: bigint }

/** Free chunks kept for reuse: the pipeline holds about six at once (read ahead, decoding, checks, consumer). */
export const WAL_CHUNK_POOL_MAX = 8

export interface WalChunkSourceOptions {
  readonly segmentSizeBytes: number
  readonly chunkBytes: number
  /** Reuse released chunks. */
  readonly reuse: boolean
}

export class WalChunkSource {
  private open: { segno: bigint; fh: FileHandle; path: string } | null = null
  private readonly free: Buffer[] = []
  /** Chunks allocated (tests and benchmarks: with reuse, this stays small). */
  allocated = 0

  constructor(
    private readonly bySegno: ReadonlyMap<bigint, WalChunkFile>,
    private readonly opts: WalChunkSourceOptions,
  ) {}

  async read(segno: bigint, offset: number): Promise<WalChunk> {
    if (this.open?.segno !== segno) {
      await this.close()
      const seg = this.bySegno.get(segno)
      if (seg === undefined) return { kind: 'missing', segno }
      try {
        this.open = { segno, fh: await open(seg.path, 'r'), path: seg.path }
      } catch (e) {
        if (isNotFoundFsError(e)) throw segmentDisappeared(seg.path)
        throw e
      }
    }
    const len = Math.min(this.opts.chunkBytes, this.opts.segmentSizeBytes - offset)
    const chunk = this.take(len)
    let bytesRead: number
    try {
      ;({ bytesRead } = await this.open!.fh.read(chunk, 0, len, offset))
    } catch (e) {
      throw walReadFailed(this.open!.path, len, offset, messageOf(e), e)
    }
    if (bytesRead !== len) throw walShortRead(this.open!.path, bytesRead, len, offset)
    return { kind: 'chunk', segno, offset, chunk }
  }

  /** Gives a chunk back for reuse (only with `reuse`; nothing may refer to its bytes any more). */
  release(chunk: Buffer): void {
    if (!this.opts.reuse || this.free.length >= WAL_CHUNK_POOL_MAX) return
    // Chunks are views from offset 0 of a whole allocation of chunkBytes (a segment's last chunk may be shorter).
    if (chunk.byteOffset !== 0 || chunk.buffer.byteLength !== this.opts.chunkBytes) return
    this.free.push(chunk)
  }

  /** Chunks kept for reuse. */
  get kept(): number {
    return this.free.length
  }

  async close(): Promise<void> {
    const o = this.open
    this.open = null
    if (o !== null) await o.fh.close()
  }

  private take(len: number): Buffer {
    const reused = this.free.pop()
    if (reused !== undefined) return len === reused.length ? reused : Buffer.from(reused.buffer, 0, len)
    this.allocated++
    const size = this.opts.reuse ? this.opts.chunkBytes : len
    const whole = Buffer.allocUnsafeSlow(size)
    return len === size ? whole : whole.subarray(0, len)
  }
}

/** A segment file that was listed when the reader opened is gone. */
export function segmentDisappeared(path: string): NotFoundError {
  return new NotFoundError('WAL_SEGMENT_MISSING', `${path} disappeared while reading`, { hint: 'Do not remove WAL files while they are read.' })
}

export function walReadFailed(path: string, len: number, offset: number, why: string, cause?: unknown): UnavailableError {
  return new UnavailableError('WAL_READ_FAILED', `${path}: reading ${len} bytes at offset ${offset} failed: ${why}`, {
    hint: 'Check the file and the disk it is on.',
    ...(cause === undefined ? {} : { cause }),
  })
}

export function walShortRead(path: string, bytesRead: number, len: number, offset: number): CorruptionError {
  return new CorruptionError('WAL_SHORT_READ', `${path}: read ${bytesRead} of ${len} bytes at offset ${offset}`, {
    hint: 'The file was truncated while being read.',
  })
}
