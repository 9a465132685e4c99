/**
 * StreamingFileWriter: writes a large file (a 256 MiB layer) without blocking the event loop, then makes
 * it durable under its final name.
 *
 * Appends are synchronous copies into a chunk buffer (1 MiB by default); full chunks are written in the
 * background with async positional `FileHandle.write`, one at a time (see WRITES_IN_FLIGHT_MAX). So a caller appending
 * millions of small values pays a memcpy per value and no promise per value. Backpressure works like
 * Node's `Writable.write`: `append` returns false once `pendingChunksMax` chunks wait to be written, and
 * the caller must then `await drain()` before appending again (asserted: ignoring it is a bug, and the
 * backlog is what bounds the memory).
 *
 * `appendView` queues a caller's buffer as it is, without the copy (a 1 MiB slab of values); the caller keeps
 * it unchanged until its `onWritten` callback runs. Views do not count against the backlog: the caller
 * already holds their memory.
 *
 * `finish()` writes the last chunk, fsyncs, renames `<path>___temp` to the final name and fsyncs the
 * directory; `abort()` stops and removes the temp file. A background write error is kept and thrown by
 * the next append, drain or finish; a failed fsync is a FatalIoError and is never retried.
 */
import { open, rename, rm, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { PageserverError, assert } from '../lib/errors.js'
import { fsyncDir, tempPathFor, type SyncOptions } from './durable-file.js'
import { fsyncFailed, ioFailed } from './io-errors.js'

/** Writes in big chunks: one syscall per MiB instead of per value. */
export const STREAM_CHUNK_BYTES_DEFAULT = 1024 * 1024
/** Chunks written or waiting before `append` asks the caller to drain: bounds memory to about 4 MiB. */
export const STREAM_PENDING_CHUNKS_MAX_DEFAULT = 4
/**
 * Writes running at once. One: a buffered write holds the file's inode lock while it copies into the page
 * cache (ext4 and xfs alike), so a second write to the same file only spins on that lock, burning the CPU
 * the writer's producer needs. With 4 at once, file ingest (bench/support/ingest-phases.ts, alternated)
 * spent ~0.1-0.3 s more CPU per run (`rwsem_spin_on_owner` ~3 % of its samples) and took longer.
 */
const WRITES_IN_FLIGHT_MAX = 1
/** Free chunk buffers kept for reuse (allocating 1 MiB per MiB written would churn the allocator). */
const FREE_CHUNKS_MAX = 2

export interface StreamingFileWriterOptions extends SyncOptions {
  readonly chunkBytes?: number
  readonly pendingChunksMax?: number
  /** Where bytes go until `finish()`; default `<path>___temp`. */
  readonly tempPath?: string
}

interface PendingChunk {
  readonly buf: Buffer
  readonly len: number
  readonly position: number
  /** A chunk buffer of ours (recycled after its write), or a caller's view (appendView). */
  readonly owned: boolean
  readonly onWritten: (() => void) | null
}

interface Waiter {
  readonly ready: () => boolean
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
}

export class StreamingFileWriter {
  private chunk: Buffer
  private chunkUsed = 0
  /** File offset of the first byte of `chunk`. */
  private chunkPosition = 0
  /** Chunks waiting for their write to start. */
  private readonly pending: PendingChunk[] = []
  private readonly free: Buffer[] = []
  private readonly waiters: Waiter[] = []
  /** Chunks of ours waiting or being written (the backlog that backpressure bounds). */
  private ownedPending = 0
  private inFlight = 0
  /** An append returned false and no drain has completed since. */
  private mustDrain = false
  private error: PageserverError | null = null
  private state: 'open' | 'finished' | 'aborted' = 'open'
  private readonly chunkBytes: number
  private readonly pendingChunksMax: number

  private constructor(
    /** The final path, used by `finish()` unless it is given another. */
    readonly path: string,
    readonly tempPath: string,
    private readonly fh: FileHandle,
    private readonly options: StreamingFileWriterOptions,
  ) {
    this.chunkBytes = options.chunkBytes ?? STREAM_CHUNK_BYTES_DEFAULT
    this.pendingChunksMax = options.pendingChunksMax ?? STREAM_PENDING_CHUNKS_MAX_DEFAULT
    assert(this.chunkBytes >= 512 && this.pendingChunksMax >= 1, 'bad StreamingFileWriter options')
    this.chunk = Buffer.allocUnsafe(this.chunkBytes)
  }

  /** Creates (or truncates) the temp file of `path`. */
  static async create(path: string, options: StreamingFileWriterOptions = {}): Promise<StreamingFileWriter> {
    const tempPath = options.tempPath ?? tempPathFor(path)
    let fh: FileHandle
    try {
      fh = await open(tempPath, 'w')
    } catch (err) {
      throw ioFailed('creating', tempPath, err)
    }
    return new StreamingFileWriter(path, tempPath, fh, options)
  }

  /** Bytes appended so far: the file offset the next append lands at. */
  get position(): number {
    return this.chunkPosition + this.chunkUsed
  }

  /**
   * Copies `data` to the end of the file (buffered). Returns false when the backlog is full: the caller
   * must `await drain()` before the next append.
   */
  append(data: Uint8Array): boolean {
    this.checkUsable()
    assert(!this.mustDrain, () => `append to ${this.path} ignored backpressure: await drain() when append returns false`)
    let done = 0
    while (done < data.length) {
      const n = Math.min(data.length - done, this.chunkBytes - this.chunkUsed)
      this.chunk.set(data.subarray(done, done + n), this.chunkUsed)
      this.chunkUsed += n
      done += n
      if (this.chunkUsed === this.chunkBytes) this.sealChunk()
    }
    if (this.ownedPending <= this.pendingChunksMax) return true
    this.mustDrain = true
    return false
  }

  /**
   * Appends `data` without copying it: what was appended before is written first, then `data` itself.
   * `data` must not change until `onWritten` runs (it is not called when the writer fails or is aborted).
   */
  appendView(data: Buffer, onWritten: (() => void) | null = null): void {
    this.checkUsable()
    this.sealChunk()
    if (data.length === 0) {
      onWritten?.()
      return
    }
    this.pending.push({ buf: data, len: data.length, position: this.chunkPosition, owned: false, onWritten })
    this.chunkPosition += data.length
    this.startWriting()
  }

  /** Resolves once `append` may be called again (the backlog is within its limit). */
  async drain(): Promise<void> {
    await this.waitUntil(() => this.ownedPending <= this.pendingChunksMax)
    this.mustDrain = false
  }

  /**
   * Writes `data` at an earlier `position` (e.g. a header reserved with zeros at the start). Everything
   * appended so far is written first, so no later chunk write can overwrite the patch.
   */
  async writeAt(position: number, data: Uint8Array): Promise<void> {
    this.checkUsable()
    assert(position >= 0 && position + data.length <= this.position, 'writeAt must stay inside the bytes already appended')
    await this.flushAll()
    let done = 0
    try {
      while (done < data.length) {
        const { bytesWritten } = await this.fh.write(data, done, data.length - done, position + done)
        done += bytesWritten
      }
    } catch (err) {
      this.error = ioFailed('writing', this.tempPath, err)
      throw this.error
    }
  }

  /**
   * Writes what is buffered, fsyncs, renames the temp file to `finalPath` (default: `path`) and fsyncs
   * its directory. Returns the final path and size.
   */
  async finish(finalPath: string = this.path): Promise<{ path: string; sizeBytes: number }> {
    this.checkUsable()
    await this.flushAll()
    if (!this.options.noSync) {
      try {
        await this.fh.sync()
      } catch (err) {
        this.error = fsyncFailed(this.tempPath, err)
        throw this.error
      }
    }
    this.state = 'finished'
    const sizeBytes = this.position
    await this.fh.close()
    try {
      await rename(this.tempPath, finalPath)
    } catch (err) {
      await rm(this.tempPath, { force: true }).catch(() => {})
      throw ioFailed('renaming', this.tempPath, err)
    }
    await fsyncDir(dirname(finalPath), this.options)
    return { path: finalPath, sizeBytes }
  }

  /** Stops writing and removes the temp file. Safe to call at any point, also after a failure; idempotent. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return
    this.state = 'aborted'
    // The writes in flight finish; nothing after them starts.
    for (const c of this.pending.splice(0)) if (c.owned) this.ownedPending--
    await this.waitUntil(() => this.inFlight === 0).catch(() => {})
    this.rejectWaiters(new PageserverError('internal', 'WRITER_ABORTED', `writing ${this.path} was aborted`))
    await this.fh.close().catch(() => {})
    await rm(this.tempPath, { force: true })
  }

  private isAborted(): boolean {
    return this.state === 'aborted'
  }

  private checkUsable(): void {
    if (this.error !== null) throw this.error
    assert(this.state === 'open', () => `${this.path}: writer is already ${this.state}`)
  }

  private sealChunk(): void {
    if (this.chunkUsed === 0) return
    this.pending.push({ buf: this.chunk, len: this.chunkUsed, position: this.chunkPosition, owned: true, onWritten: null })
    this.ownedPending++
    this.chunkPosition += this.chunkUsed
    this.chunkUsed = 0
    this.chunk = this.free.pop() ?? Buffer.allocUnsafe(this.chunkBytes)
    this.startWriting()
  }

  private async flushAll(): Promise<void> {
    this.sealChunk()
    await this.waitUntil(() => this.pending.length === 0 && this.inFlight === 0)
  }

  private startWriting(): void {
    while (this.inFlight < WRITES_IN_FLIGHT_MAX && this.pending.length > 0 && this.error === null && !this.isAborted()) {
      this.inFlight++
      // writeChunk never rejects: a failure is stored in `error` and reported to waiters.
      void this.writeChunk(this.pending.shift()!)
    }
  }

  private async writeChunk(c: PendingChunk): Promise<void> {
    try {
      let done = 0
      while (done < c.len) {
        const { bytesWritten } = await this.fh.write(c.buf, done, c.len - done, c.position + done)
        done += bytesWritten
      }
      if (c.owned) {
        this.ownedPending--
        if (this.free.length < FREE_CHUNKS_MAX) this.free.push(c.buf)
      }
      // Aborted meanwhile: the view's owner no longer waits for it.
      if (!this.isAborted()) c.onWritten?.()
    } catch (err) {
      this.error ??= ioFailed('writing', this.tempPath, err)
    } finally {
      this.inFlight--
    }
    if (this.error !== null) {
      this.rejectWaiters(this.error)
      return
    }
    this.startWriting()
    this.notify()
  }

  private waitUntil(ready: () => boolean): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error)
    if (ready()) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ ready, resolve, reject })
    })
  }

  private notify(): void {
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i]!
      if (w.ready()) {
        this.waiters.splice(i, 1)
        w.resolve()
      } else {
        i++
      }
    }
  }

  private rejectWaiters(err: unknown): void {
    const ws = this.waiters.splice(0)
    for (const w of ws) w.reject(err)
  }
}
