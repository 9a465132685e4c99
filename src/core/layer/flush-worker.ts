/**
 * FlushWorker: runs L0 flushes (l0-flush.ts) on a worker thread, so that writing a 400 MiB layer file —
 * sorting its keys, walking its chains, computing CRCs, writing and fsyncing — overlaps with ingest on the
 * main thread instead of stopping it (about 1-2 CPU-seconds per 256 MiB of WAL, bench/ingest.ts).
 *
 * A job is the frozen layer's FrozenLayerData (shared memory: nothing is copied but the key list) plus
 * where to write. The worker writes, fsyncs and renames the file and answers with the FinishedLayer; the
 * caller (Timeline.flushFrozen, through TimelineLayers.writeL0) then adds it to the layer map and writes the
 * metadata, on the main thread, in the same order as before, so the crash guarantees are unchanged. Jobs
 * run concurrently in the one worker (each is mostly waiting for disk). Errors come back with their kind,
 * code and hint.
 *
 * It also runs the L0 streams of open layers (`openStream`, l0-stream.ts): each full slab is written to the
 * layer's future L0 file as ingest goes on, and the flush job of the layer finishes that file. A stream
 * whose thread dies is lost: its layer's flush, on the next worker, writes every slab itself, and the
 * layer removes the lost stream's file when it drops it (each stream's temp path is chosen here).
 *
 * One worker per process (`sharedFlushWorker()`), started at the first flush; it is unref'd while idle so
 * it never keeps the process alive, and a worker that dies fails its pending jobs and is replaced at the
 * next one. From sources (tests, benchmarks under tsx) the worker loads flush-worker-main.ts through
 * tsx's API; the installed build starts flush-worker-main.js directly.
 */
import { rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import {
  AssertionFailure,
  PageserverError,
  UnavailableError,
  errorOfKind,
  type ErrorKind,
} from '../lib/errors.js'
import { FatalIoError } from '../storage/io-errors.js'
import type { SlabStreamSink, StreamedSlab } from './inmemory-format.js'
import type { L0FlushJob } from './l0-flush.js'
import { l0StreamTempPath, type L0StreamTarget } from './l0-stream.js'
import type { FinishedLayer } from './layer-file-writer.js'

/** An error as it crosses the thread boundary. */
export interface WireError {
  readonly name: string
  readonly message: string
  readonly kind?: ErrorKind
  readonly code?: string
  readonly hint?: string
  readonly details?: Record<string, unknown>
}

/** A full slab of an in-memory layer for its L0 stream (l0-stream.ts); the first one names the file's target. */
export interface StreamSlabMessage {
  readonly streamId: number
  readonly index: number
  readonly slab: SharedArrayBuffer
  readonly used: number
  readonly firstEntry: number
  readonly endEntry: number
  readonly records: SharedArrayBuffer
  readonly target?: L0StreamTarget
}

/**
 * A flush job, or slabs to allocate with every page touched (SlabPool's prefault source), or a step of an
 * L0 stream (no reply but the stream messages below).
 */
export type FlushRequest =
  | { readonly id: number; readonly job: L0FlushJob }
  | { readonly id: number; readonly alloc: { readonly count: number; readonly slabBytes: number } }
  | { readonly id: 0; readonly streamSlab: StreamSlabMessage }
  | { readonly id: 0; readonly streamAbort: { readonly streamId: number } }
export type FlushReply =
  | { readonly id: number; readonly layer: FinishedLayer; readonly error?: undefined; readonly slabs?: undefined }
  | { readonly id: number; readonly slabs: SharedArrayBuffer[]; readonly error?: undefined; readonly layer?: undefined }
  | { readonly id: number; readonly error: WireError; readonly layer?: undefined; readonly slabs?: undefined }
/** A slab of a stream is written (its memory is no longer read), or the stream failed and its file is gone. */
export type StreamReply =
  | { readonly id: 0; readonly streamWritten: { readonly streamId: number; readonly index: number; readonly slab: StreamedSlab } }
  | { readonly id: 0; readonly streamFailed: { readonly streamId: number } }
  | { readonly id: 0; readonly streamAborted: { readonly streamId: number } }

/** Most slabs one prefault request may ask for. */
export const PREFAULT_REQUEST_SLABS_MAX = 256
/** Page size assumed when touching prefaulted memory (touching more often is harmless). */
const PAGE_BYTES = 4096

/** Allocates `count` SharedArrayBuffers of `slabBytes` and writes one byte per page so they are resident. */
export function allocTouchedSlabs(count: number, slabBytes: number): SharedArrayBuffer[] {
  const out: SharedArrayBuffer[] = []
  for (let i = 0; i < Math.min(count, PREFAULT_REQUEST_SLABS_MAX); i++) {
    const sab = new SharedArrayBuffer(slabBytes)
    const u8 = new Uint8Array(sab)
    for (let p = 0; p < slabBytes; p += PAGE_BYTES) u8[p] = 0
    out.push(sab)
  }
  return out
}

export function errorToWire(e: unknown): WireError {
  if (e instanceof PageserverError) {
    return { name: e.name, message: e.message, kind: e.kind, code: e.code, ...(e.hint !== undefined ? { hint: e.hint } : {}), ...(e.details ? { details: e.details } : {}) }
  }
  if (e instanceof Error) return { name: e.name, message: e.message }
  return { name: 'Error', message: String(e) }
}

/** Rebuilds the typed error (same class by kind, code, message, hint and details). */
export function errorFromWire(w: WireError): Error {
  if (w.kind === undefined || w.code === undefined) return new AssertionFailure(`flush worker failed: ${w.name}: ${w.message}`)
  if (w.name === 'FatalIoError') return new FatalIoError(w.code, w.message, undefined, String(w.details?.path ?? ''))
  const o = { ...(w.hint !== undefined ? { hint: w.hint } : {}), ...(w.details ? { details: w.details } : {}) }
  return errorOfKind(w.kind, w.code, w.message, o)
}

interface Pending {
  resolve: (r: FlushReply) => void
  reject: (e: unknown) => void
}

export class FlushWorker {
  private worker: Worker | null = null
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private readonly streams = new Map<number, WorkerSlabStream>()
  private nextStreamId = 1
  /** Streams aborted while live, by id: their files, until the thread says it removed them (streamAborted). */
  private readonly aborting = new Map<number, string>()

  /** Jobs sent and not answered. */
  get pendingJobs(): number {
    return this.pending.size
  }

  /**
   * Writes the L0 of `job` on the worker thread. A job without a stream gets its temp path here: a thread
   * that dies midway removes nothing, so this side removes the file (else it stayed, up to an L0's size,
   * until the next start). A job with a stream writes the stream's file, which its layer removes.
   */
  async run(job: L0FlushJob): Promise<FinishedLayer> {
    const placed = job.layer.streamId === null && job.tempPath === undefined ? { ...job, tempPath: l0StreamTempPath(job.dir, job.layer.lsnRange.start) } : job
    try {
      const r = await this.request((id) => ({ id, job: placed }))
      return r.layer!
    } catch (e) {
      // After a failure the worker removed it already (if it lived); after a finished rename it is gone.
      if (placed.tempPath !== undefined) removeQuietly(placed.tempPath)
      throw e
    }
  }

  /** `count` slabs of `slabBytes`, every page touched on the worker thread (a SlabPool prefault source). */
  async allocSlabs(count: number, slabBytes: number): Promise<SharedArrayBuffer[]> {
    const r = await this.request((id) => ({ id, alloc: { count, slabBytes } }))
    return r.slabs!
  }

  /**
   * An L0 stream for an in-memory layer (l0-stream.ts): its full slabs are written on the worker thread as
   * the layer fills; the flush job of the layer (its FrozenLayerData.streamId) finishes the file.
   */
  openStream(target: L0StreamTarget): SlabStreamSink {
    const s = new WorkerSlabStream(this.nextStreamId++, target, this)
    this.streams.set(s.id, s)
    return s
  }

  /** Posts a stream step (no reply awaited); false when the worker cannot take it. */
  postStream(m: FlushRequest): boolean {
    const w = this.worker ?? this.start()
    try {
      w.postMessage(m)
      return true
    } catch {
      return false
    }
  }

  /**
   * Asks the thread to abort a live stream and remove its file; until it answers, the file is this side's to
   * remove should the thread die first (else it stayed, up to an L0's size, until the next start).
   */
  abortStream(id: number, path: string): void {
    this.aborting.set(id, path)
    if (!this.postStream({ id: 0, streamAbort: { streamId: id } })) this.removeAborting()
  }

  /** Forgets a stream (aborted, or lost with its thread). */
  dropStream(id: number): void {
    this.streams.delete(id)
  }

  private request(make: (id: number) => FlushRequest): Promise<FlushReply> {
    const w = this.worker ?? this.start()
    const id = this.nextId++
    return new Promise<FlushReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      if (this.pending.size === 1) w.ref()
      w.postMessage(make(id))
    })
  }

  /** Stops the worker; pending jobs fail and streams are lost once the thread is gone (it no longer reads their slabs). */
  async close(): Promise<void> {
    const w = this.worker
    if (w === null) return
    this.worker = null
    await w.terminate()
    for (const st of [...this.streams.values()]) st.lose()
    this.removeAborting()
    this.failAll(new UnavailableError('FLUSH_WORKER_STOPPED', 'the flush worker was stopped', { hint: 'Retry the flush.' }))
  }

  private start(): Worker {
    const w = spawnFlushWorker()
    w.on('message', (m: FlushReply) => this.onReply(m))
    w.on('error', (e) => this.onDeath(w, e))
    w.on('exit', (code) => this.onDeath(w, new UnavailableError('FLUSH_WORKER_EXITED', `the flush worker thread exited with code ${code}`, { hint: 'Retry the flush; the layer was not written.' })))
    w.unref()
    this.worker = w
    return w
  }

  private onReply(m: FlushReply | StreamReply): void {
    if ('streamWritten' in m) {
      this.streams.get(m.streamWritten.streamId)?.written(m.streamWritten.index, m.streamWritten.slab)
      return
    }
    if ('streamAborted' in m) {
      this.aborting.delete(m.streamAborted.streamId)
      return
    }
    if ('streamFailed' in m) {
      this.streams.get(m.streamFailed.streamId)?.lose()
      return
    }
    const p = this.pending.get(m.id)
    if (p === undefined) return
    this.pending.delete(m.id)
    if (this.pending.size === 0) this.worker?.unref()
    if (m.error !== undefined) p.reject(errorFromWire(m.error))
    else p.resolve(m)
  }

  private onDeath(w: Worker, e: unknown): void {
    if (this.worker !== w) return
    this.worker = null
    // The thread no longer reads any slab; its streams' layers remove their files when they drop them.
    for (const st of [...this.streams.values()]) st.lose()
    this.removeAborting()
    const err =
      e instanceof PageserverError
        ? e
        : new UnavailableError('FLUSH_WORKER_FAILED', `the flush worker thread failed: ${e instanceof Error ? e.message : String(e)}`, {
            hint: 'Retry the flush; the layer was not written.',
            cause: e,
          })
    this.failAll(err)
  }

  /** The thread is gone: the files of streams it was asked to abort are removed here. */
  private removeAborting(): void {
    for (const path of this.aborting.values()) removeQuietly(path)
    this.aborting.clear()
  }

  private failAll(e: unknown): void {
    const all = [...this.pending.values()]
    this.pending.clear()
    for (const p of all) p.reject(e)
  }
}

/** The main thread's side of an L0 stream (SlabStreamSink for InMemoryLayer). */
class WorkerSlabStream implements SlabStreamSink {
  private live = true
  /** Slabs sent and not yet written: their `written` callbacks. */
  private readonly outstanding = new Map<number, (w: StreamedSlab | null) => void>()

  /** The stream's file until its flush renames it (chosen here, so the layer knows it if the thread dies). */
  readonly path: string
  private readonly target: L0StreamTarget

  constructor(
    readonly id: number,
    target: L0StreamTarget,
    private readonly owner: FlushWorker,
  ) {
    this.path = target.tempPath ?? l0StreamTempPath(target.dir, target.lsnStart)
    this.target = { ...target, tempPath: this.path }
  }

  get alive(): boolean {
    return this.live
  }

  slabFull(index: number, slab: SharedArrayBuffer, used: number, firstEntry: number, endEntry: number, records: SharedArrayBuffer, written: (w: StreamedSlab | null) => void): void {
    if (!this.live) {
      written(null)
      return
    }
    this.outstanding.set(index, written)
    const m: StreamSlabMessage = { streamId: this.id, index, slab, used, firstEntry, endEntry, records, ...(index === 0 ? { target: this.target } : {}) }
    if (!this.owner.postStream({ id: 0, streamSlab: m })) this.lose()
  }

  written(index: number, slab: StreamedSlab): void {
    const w = this.outstanding.get(index)
    this.outstanding.delete(index)
    w?.(slab)
  }

  /** The stream is gone (failed, or its thread died): no slab is read any more. */
  lose(): void {
    this.live = false
    this.owner.dropStream(this.id)
    const ws = [...this.outstanding.values()]
    this.outstanding.clear()
    for (const w of ws) w(null)
  }

  abort(): void {
    const wasLive = this.live
    this.lose()
    if (wasLive) this.owner.abortStream(this.id, this.path)
    // Lost: a failed stream's thread removed its file, a dead thread did not.
    else removeQuietly(this.path)
  }
}

/** Removes a temp file the worker thread may have left; on failure it stays, removed at the next startup. */
function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true })
  } catch {
    // removed at the next startup (removeTempFiles)
  }
}

let shared: FlushWorker | null = null

/** The process's flush worker (started lazily at the first job). */
export function sharedFlushWorker(): FlushWorker {
  shared ??= new FlushWorker()
  return shared
}

function spawnFlushWorker(): Worker {
  if (import.meta.url.endsWith('.ts')) {
    // Running from sources: load the TypeScript entry through tsx (a dev dependency, present exactly then).
    // tsx's ESM API (its CommonJS build cannot load ESM entries), found through its package exports.
    const entry = new URL('./flush-worker-main.ts', import.meta.url).href
    const require = createRequire(import.meta.url)
    const pkgPath = require.resolve('tsx/package.json')
    const pkg = require(pkgPath) as { exports: Record<string, { import?: { default?: string } } | string> }
    const esmApi = pkg.exports['./esm/api']
    const rel = typeof esmApi === 'object' ? esmApi.import?.default : undefined
    if (rel === undefined) throw new UnavailableError('FLUSH_WORKER_NO_TSX', 'tsx has no ESM API export', { hint: 'Run from the built package (npm run build), or install the tsx version in package.json.' })
    const api = new URL(rel, pathToFileURL(pkgPath)).href
    const code = `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(entry)}, ${JSON.stringify(entry)}))`
    return new Worker(code, { eval: true })
  }
  return new Worker(new URL('./flush-worker-main.js', import.meta.url))
}
