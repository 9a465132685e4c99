/**
 * The CRC worker thread shared by every WalCrcVerifier and WalFileReader of the process.
 *
 * One thread checks WAL record CRCs for all readers and receivers: starting a Node worker costs tens of ms
 * of CPU (a new isolate and its bootstrap), more than checking a few hundred MB of WAL saves, so it is
 * started once and kept while anyone uses it, then for `CRC_WORKER_LINGER_MS` more (a reader that follows
 * another reuses it). Idle, it never holds the process open: it is referenced only while requests are
 * pending, and its linger timer is unreferenced.
 *
 * Protocol (answers come in posting order; every request carries an id from `crcWorkerMessageId()`):
 * - check: {id, buffers: SharedArrayBuffer[], ranges: Int32Array of (buffer index, offset, length)
 *   triples} -> {id, bad, stored, computed} with the index of the first record whose CRC does not match
 *   (-1: none), or {id, failed} when it could not check the batch (then nothing it said about that batch
 *   is trusted). Used by WalCrcVerifier for records decoded elsewhere (the WAL receiver).
 * - read: {id, read: {reader, path, offset, length, lsn, start, check, slot?, sab?}} -> the worker reads
 *   `length` bytes of the file at `offset`, walks them with the reader's WalCrcWalker (created from `start`
 *   at its first read) while they are in its cache, checking CRCs unless `check` is false, and answers
 *   {id, read: {slot, buffer, bytesRead, ok: Float64Array of checked record LSNs, bad}}, or
 *   {id, readError: {code, message}}. With `slot` it reads
 *   into the reader's shared buffer of that number (given once, as `sab`, with the slot's first read) and
 *   nothing is transferred; without, into fresh memory that it transfers back as `buffer`. Used by
 *   WalFileReader (wal-worker-source.ts).
 * - {closeReader}: forget a reader's walker, file and slots (no answer); {dropSlot: {reader, slot}}: forget
 *   one slot (no answer).
 * The worker says {ready} once it has loaded the native CRC module.
 *
 * Failure: an error or exit of the thread settles every pending request through its client's `onLost`
 * (the client then does the work on its own thread) and the next `acquire()` starts a fresh thread.
 */
import { Worker } from 'node:worker_threads'
import { nativeCrc32cSource } from '../lib/crc32c-native.js'
import { WalCrcWalker, type WalkBad } from './wal-crc-walker.js'

/** How long an unused worker stays for the next reader before it is stopped. */
export const CRC_WORKER_LINGER_MS = 2_000

/**
 * The worker's program, evaluated as a CommonJS script (a file path would not load under test runners that
 * compile TypeScript in memory). Its JS CRC mirrors crc32cJs in lib/crc32c.ts; a test compares the worker
 * with the calling thread on every length around the native threshold.
 */
const WORKER_SOURCE = `'use strict'
const { parentPort, workerData } = require('node:worker_threads')
const { openSync, readSync, closeSync } = require('node:fs')
const crc32c = require(workerData.crc.modulePath)[workerData.crc.exportName]
const JS_MAX = workerData.crc.jsMaxBytes
// The walker's source may come from a compiler that names functions through this helper.
var __name = (f) => f
const WalCrcWalker = (${WalCrcWalker.toString()})
const T = new Int32Array(2048)
for (let i = 0; i < 256; i++) {
  let c = i
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
  T[i] = c
}
for (let i = 0; i < 256; i++) for (let t = 1; t < 8; t++) T[t * 256 + i] = (T[(t - 1) * 256 + i] >>> 8) ^ T[T[(t - 1) * 256 + i] & 0xff]
function crcJs(b, i, end, prev) {
  let c = ~prev
  for (; i + 8 <= end; i += 8) {
    const a = c ^ (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24))
    c = T[1792 + (a & 0xff)] ^ T[1536 + ((a >>> 8) & 0xff)] ^ T[1280 + ((a >>> 16) & 0xff)] ^ T[1024 + (a >>> 24)] ^
      T[768 + b[i + 4]] ^ T[512 + b[i + 5]] ^ T[256 + b[i + 6]] ^ T[b[i + 7]]
  }
  for (; i < end; i++) c = T[(c ^ b[i]) & 0xff] ^ (c >>> 8)
  return ~c >>> 0
}
const crcRange = (b, start, end, prev) => (end - start < JS_MAX ? crcJs(b, start, end, prev) : crc32c(b.subarray(start, end), prev) >>> 0)
const readers = new Map()
function closeReader(key) {
  const r = readers.get(key)
  readers.delete(key)
  if (r !== undefined && r.fd >= 0) closeSync(r.fd)
}
function read(id, q) {
  let r = readers.get(q.reader)
  if (r === undefined) {
    r = { walker: new WalCrcWalker(q.start.lsn, q.start.segSize, q.start.recordMax, crcRange), fd: -1, path: null, slots: new Map() }
    readers.set(q.reader, r)
  }
  if (q.sab !== undefined) r.slots.set(q.slot, Buffer.from(q.sab))
  try {
    if (r.path !== q.path) {
      if (r.fd >= 0) closeSync(r.fd)
      r.fd = -1
      r.path = null
      r.fd = openSync(q.path, 'r')
      r.path = q.path
    }
    const shared = q.slot === undefined ? undefined : r.slots.get(q.slot)
    if (q.slot !== undefined && (shared === undefined || shared.length < q.length)) throw new Error('unknown read slot ' + q.slot)
    const b = shared !== undefined ? shared.subarray(0, q.length) : Buffer.allocUnsafeSlow(q.length)
    let got = 0
    while (got < q.length) {
      const k = readSync(r.fd, b, got, q.length - got, q.offset + got)
      if (k === 0) break
      got += k
    }
    const ok = []
    const bad = got === q.length ? r.walker.walk(b, q.lsn, ok, q.check !== false) : null
    const okLsns = Float64Array.from(ok)
    if (shared !== undefined) parentPort.postMessage({ id, read: { slot: q.slot, buffer: null, bytesRead: got, ok: okLsns, bad } }, [okLsns.buffer])
    else parentPort.postMessage({ id, read: { slot: -1, buffer: b.buffer, bytesRead: got, ok: okLsns, bad } }, [b.buffer, okLsns.buffer])
  } catch (e) {
    r.walker.state = 2
    parentPort.postMessage({ id, readError: { code: e && e.code, message: String((e && e.message) || e) } })
  }
}
parentPort.on('message', (m) => {
  if (m.crash) throw new Error('crash requested by a test')
  if (m.read) return read(m.id, m.read)
  if (m.closeReader !== undefined) return closeReader(m.closeReader)
  if (m.dropSlot !== undefined) return void readers.get(m.dropSlot.reader)?.slots.delete(m.dropSlot.slot)
  try {
    const bufs = m.buffers.map((sab) => Buffer.from(sab))
    const r = m.ranges
    let bad = -1, stored = 0, computed = 0
    for (let i = 0; i < r.length; i += 3) {
      const b = bufs[r[i]], off = r[i + 1], end = off + r[i + 2]
      if (b === undefined || off < 0 || end > b.length || end - off < 24) throw new Error('bad range')
      const body = end - off - 24 < JS_MAX ? crcJs(b, off + 24, end, 0) : crc32c(b.subarray(off + 24, end)) >>> 0
      const c = crcJs(b, off, off + 20, body)
      const s = (b[off + 20] | (b[off + 21] << 8) | (b[off + 22] << 16) | (b[off + 23] << 24)) >>> 0
      if (c !== s) { bad = i / 3; stored = s; computed = c; break }
    }
    parentPort.postMessage({ id: m.id, bad, stored, computed })
  } catch (e) {
    parentPort.postMessage({ id: m.id, failed: String(e && e.message || e) })
  }
})
parentPort.postMessage({ ready: true })
`

export type CrcWorkerReply = { id: number; bad: number; stored: number; computed: number } | { id: number; failed: string }

/** Where a reader's walk starts (sent with every read; used at its first). */
export interface WalkStart {
  readonly lsn: number
  readonly segSize: number
  readonly recordMax: number
}

export interface ReadRequest {
  /** The reader's key, unique in the process (`crcWorkerMessageId()`). */
  readonly reader: number
  readonly path: string
  readonly offset: number
  readonly length: number
  /** LSN of the first byte read. */
  readonly lsn: number
  readonly start: WalkStart
  /** False: only keep the walker's place; the decoding thread checks this chunk's records. */
  readonly check: boolean
  /** The reader's shared buffer to read into (at least `length` bytes), by number; else fresh memory. */
  readonly slot?: number
  /** The slot's memory, sent with its first read only (the worker keeps it until closeReader). */
  readonly sab?: SharedArrayBuffer
}

export type ReadReply =
  | { id: number; read: { slot: number; buffer: ArrayBuffer | null; bytesRead: number; ok: Float64Array; bad: WalkBad | null } }
  | { id: number; readError: { code: string | undefined; message: string } }

/** What the host needs from a client for each request it posted. */
export interface CrcWorkerClient<R = CrcWorkerReply> {
  onReply(reply: R): void
  /** The thread is gone: settle this request some other way. */
  onLost(id: number): void
}

type Message = { ready: true } | CrcWorkerReply | ReadReply

let nextMessageId = 1

/** An id for a request (or a reader), unique in the process. */
export function crcWorkerMessageId(): number {
  return nextMessageId++
}


export class CrcWorkerHost {
  private static shared: CrcWorkerHost | null = null
  private static liveThreads = 0
  private static readonly exiting = new Set<Promise<void>>()
  private readonly worker: Worker
  private readonly exited: Promise<void>
  private ready = false
  private lost = false
  private users = 0
  private lingerTimer: NodeJS.Timeout | undefined
  // Each client is called only with the replies to its own requests.
  private readonly pending = new Map<number, CrcWorkerClient<never>>()
  private readyWaiters: Array<(ready: boolean) => void> = []

  /** Worker threads started and not yet exited, in this process. */
  static get live(): number {
    return CrcWorkerHost.liveThreads
  }

  /** The shared worker, started if there is none; every acquire() needs one release(). Throws if it cannot start. */
  static acquire(): CrcWorkerHost {
    let h = CrcWorkerHost.shared
    if (h === null || h.lost) h = CrcWorkerHost.shared = new CrcWorkerHost()
    h.users++
    if (h.lingerTimer !== undefined) {
      clearTimeout(h.lingerTimer)
      h.lingerTimer = undefined
    }
    return h
  }

  /**
   * Stops the shared worker now if nobody uses it, and waits for every stopping thread to exit (tests; a
   * lingering worker otherwise stops by itself).
   */
  static async stopIdle(): Promise<void> {
    const h = CrcWorkerHost.shared
    if (h !== null && h.users === 0) h.loseThread()
    await Promise.all([...CrcWorkerHost.exiting])
  }

  private constructor() {
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { crc: nativeCrc32cSource },
      // No loader hooks or flags of the parent: the script is plain CommonJS, and hooks slow the start.
      execArgv: [],
      env: {},
    })
    CrcWorkerHost.liveThreads++
    this.exited = new Promise((resolve) => {
      w.once('exit', () => {
        CrcWorkerHost.liveThreads--
        CrcWorkerHost.exiting.delete(this.exited)
        resolve()
      })
    })
    CrcWorkerHost.exiting.add(this.exited)
    w.on('message', (m: Message) => this.onMessage(m))
    w.on('error', () => this.loseThread())
    w.on('exit', () => this.loseThread())
    w.unref() // referenced only while checks are pending
    this.worker = w
  }

  /** The thread is up and answering. */
  get isReady(): boolean {
    return this.ready && !this.lost
  }

  get isLost(): boolean {
    return this.lost
  }

  /** Resolves true once the thread answers, false if it never will. */
  whenReady(): Promise<boolean> {
    if (this.ready || this.lost) return Promise.resolve(this.isReady)
    return new Promise((resolve) => this.readyWaiters.push(resolve))
  }

  /** The thread's busy time so far (its event loop's active time, ms). */
  busyMs(): number {
    return this.lost ? 0 : this.worker.performance.eventLoopUtilization().active
  }

  post(id: number, client: CrcWorkerClient, buffers: SharedArrayBuffer[], ranges: Int32Array<ArrayBuffer>): void {
    this.send(id, client, { id, buffers, ranges }, [ranges.buffer])
  }

  /** Reads and walks a chunk of a WAL file on the worker (see the protocol above). */
  postRead(id: number, client: CrcWorkerClient<ReadReply>, read: ReadRequest): void {
    this.send(id, client, { id, read }, [])
  }

  /** The worker forgets one of a reader's slots. */
  dropSlot(reader: number, slot: number): void {
    if (!this.lost) this.worker.postMessage({ dropSlot: { reader, slot } })
  }

  /** The reader is done: its walker, open file and slots are dropped. */
  closeReader(reader: number): void {
    if (!this.lost) this.worker.postMessage({ closeReader: reader })
  }

  private send<R>(id: number, client: CrcWorkerClient<R>, message: unknown, transfer: ArrayBuffer[]): void {
    if (this.lost) {
      client.onLost(id)
      return
    }
    if (this.pending.size === 0) this.worker.ref()
    this.pending.set(id, client as CrcWorkerClient<never>)
    this.worker.postMessage(message, transfer)
  }

  /** The caller settled `id` itself: its answer will be ignored. */
  forget(id: number): void {
    if (this.pending.delete(id) && this.pending.size === 0 && !this.lost) this.worker.unref()
  }

  release(): void {
    if (this.users > 0) this.users--
    if (this.users > 0 || this.lost) return
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = undefined
      if (this.users === 0) this.loseThread()
    }, CRC_WORKER_LINGER_MS)
    this.lingerTimer.unref()
  }

  /** For tests: makes the thread throw, as a crash would. */
  crashForTest(): void {
    if (!this.lost) this.worker.postMessage({ crash: true })
  }

  private onMessage(m: Message): void {
    if ('ready' in m) {
      if (!this.lost) this.ready = true
      this.wakeReadyWaiters()
      return
    }
    const client = this.pending.get(m.id) as CrcWorkerClient<typeof m> | undefined
    if (client === undefined) return // settled by its client meanwhile
    this.forget(m.id)
    client.onReply(m)
  }

  private wakeReadyWaiters(): void {
    const ws = this.readyWaiters
    this.readyWaiters = []
    for (const w of ws) w(this.isReady)
  }

  /** The thread failed, exited or is stopped: hand every pending batch back; a later acquire() starts anew. */
  private loseThread(): void {
    if (this.lost) return
    this.lost = true
    if (CrcWorkerHost.shared === this) CrcWorkerHost.shared = null
    if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer)
    const all = [...this.pending]
    this.pending.clear()
    for (const [id, client] of all) client.onLost(id)
    this.wakeReadyWaiters()
    void this.worker.terminate()
  }
}
