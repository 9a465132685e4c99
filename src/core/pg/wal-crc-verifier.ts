/**
 * WalCrcVerifier: checks the CRC-32C of decoded WAL records on a worker thread.
 *
 * Why: checksumming every byte is the largest single cost of decoding WAL (about a third of the CPU), and
 * it needs nothing but the record's bytes. A decoder running with `deferCrc` finds record boundaries,
 * checks page and record headers and decodes block references on its thread, while this worker checksums
 * earlier batches on the other core. Records are handed to consumers only once `check()` has settled for
 * their batch (WalFileReader and WalReceiver do this); a mismatch is reported with the index of the first
 * bad record, so the records before it are still delivered and the error names the bad record's LSN.
 *
 * How: records whose bytes lie in SharedArrayBuffer memory (read chunks and network chunks allocated as
 * shared memory) are sent as (buffer, offset, length) triples; the worker computes each CRC (body, then the
 * header up to xl_crc, as PostgreSQL does: native for long bodies, JS for short ones) and answers with the
 * first mismatch. Records in ordinary memory (rare: a record joined across two chunks) are checked on the
 * calling thread at once. Batches are posted even before the worker has started (it takes tens of ms); a
 * caller about to wait for one calls `expedite()`, which checks it on the calling thread if the worker is
 * not up yet. After a worker failure every record is checked on the calling thread: the result never
 * depends on the worker, only the speed does.
 *
 * Invariants:
 * - Each check settles exactly once (never rejects) with the first mismatch of its batch, or null; the
 *   worker answers in posting order (one worker, one FIFO).
 * - The caller must not change a record's bytes until its check settled (decoders never touch a record's
 *   bytes once handed out).
 * - The worker holds the event loop open only while checks are pending; `close()` terminates it, settles
 *   pending checks on the calling thread, and is idempotent. `WalCrcVerifier.live` counts workers not yet
 *   exited (tests assert it returns to zero).
 */
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type { DecodedRecord } from './wal-record.js'
import { recordCrcAt, SizeOfXLogRecord } from './wal-record.js'

export interface CrcMismatch {
  /** Index in the checked batch of the first record whose CRC is wrong. */
  readonly index: number
  readonly stored: number
  readonly computed: number
}

/** Records posted in one message at most (a 1 MiB chunk holds at most ~43,000 minimal 24-byte records). */
export const CRC_WORKER_BATCH_RECORDS_MAX = 64 * 1024

/**
 * The worker's program, evaluated as a CommonJS script (a file path would not load under test runners that
 * compile TypeScript in memory). Its JS CRC mirrors crc32cJs in lib/crc32c.ts; a test compares the two on
 * every length around the native threshold.
 */
const WORKER_SOURCE = `'use strict'
const { parentPort, workerData } = require('node:worker_threads')
const { crc32c } = require(workerData.crcModulePath)
const JS_MAX = workerData.jsMaxBytes
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
parentPort.on('message', (m) => {
  if (m.crash) throw new Error('crash requested by a test')
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

/** Bodies shorter than this are checksummed in JS by the worker (a native call costs ~300 ns). */
const WORKER_JS_MAX_BYTES = 256

/** A batch's CRC check: settled (`done`) once `result` has resolved. */
export interface CrcCheck {
  readonly result: Promise<CrcMismatch | null>
  readonly done: boolean
}

class Pending implements CrcCheck {
  done = false
  readonly result: Promise<CrcMismatch | null>
  private resolveFn!: (m: CrcMismatch | null) => void

  constructor(
    readonly id: number,
    readonly records: readonly DecodedRecord[],
    /** Indices (in `records`) of the records sent to the worker, in order. */
    readonly sent: Int32Array,
    /** First mismatch among the records checked here before posting (they all come after the sent ones). */
    readonly local: CrcMismatch | null,
  ) {
    this.result = new Promise((resolve) => (this.resolveFn = resolve))
  }

  settle(m: CrcMismatch | null): void {
    if (this.done) return
    this.done = true
    this.resolveFn(m)
  }
}

const settled = (m: CrcMismatch | null): CrcCheck => ({ result: Promise.resolve(m), done: true })

type WorkerReply = { ready: true } | { id: number; bad: number; stored: number; computed: number } | { id: number; failed: string }

let crcModulePath: string | null = null

export interface WalCrcVerifierOptions {
  /**
   * When to start the worker: 'now' (default), 'later' (at `startWorker()`, e.g. once a stream has a
   * backlog; until then every record is checked on the calling thread), or 'never' (tests).
   */
  worker?: 'now' | 'later' | 'never'
}

export class WalCrcVerifier {
  private static liveWorkers = 0
  private worker: Worker | null = null
  private ready = false
  private closed = false
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private exited: Promise<void> = Promise.resolve()
  /** Why the worker was given up, for tests and diagnostics. */
  workerFailure: string | null = null
  /** Records checked by the worker and on the calling thread, for tests and benchmarks. */
  readonly stats = { workerRecords: 0, localRecords: 0, workerBusyMs: 0 }

  /** Workers started and not yet exited, in this process. */
  static get live(): number {
    return WalCrcVerifier.liveWorkers
  }

  private readonly workerAllowed: boolean
  private readyWaiters: Array<(ready: boolean) => void> = []

  constructor(opts: WalCrcVerifierOptions = {}) {
    const when = opts.worker ?? 'now'
    this.workerAllowed = when !== 'never'
    if (when === 'now') this.startWorker()
  }

  /** Starts the worker if it never was (idempotent; a no-op after close(), a failure, or with 'never'). */
  startWorker(): void {
    if (this.worker !== null || this.closed || this.workerFailure !== null || !this.workerAllowed) return
    try {
      crcModulePath ??= createRequire(import.meta.url).resolve('@node-rs/crc32')
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { crcModulePath, jsMaxBytes: WORKER_JS_MAX_BYTES },
        // No loader hooks or flags of the parent: the script is plain CommonJS, and hooks slow the start.
        execArgv: [],
        env: {},
      })
      WalCrcVerifier.liveWorkers++
      this.exited = new Promise((resolve) => {
        w.once('exit', () => {
          WalCrcVerifier.liveWorkers--
          resolve()
        })
      })
      w.on('message', (m: WorkerReply) => this.onReply(m))
      w.on('error', (e) => this.giveUp(`worker failed: ${e instanceof Error ? e.message : String(e)}`))
      w.on('exit', (code) => this.giveUp(`worker exited with code ${code}`))
      w.unref() // referenced only while checks are pending (see check)
      this.worker = w
    } catch (e) {
      this.workerFailure = `worker did not start: ${e instanceof Error ? e.message : String(e)}`
    }
  }

  /** Resolves true once the worker answers, false if it never will (not started, failed, closed). For tests. */
  whenReady(): Promise<boolean> {
    if (this.ready) return Promise.resolve(true)
    if (this.worker === null) return Promise.resolve(false)
    return new Promise((resolve) => this.readyWaiters.push(resolve))
  }

  private wakeReadyWaiters(ready: boolean): void {
    const ws = this.readyWaiters
    this.readyWaiters = []
    for (const w of ws) w(ready)
  }

  /** startWorker() was called (or the worker started at construction). */
  get workerStarted(): boolean {
    return this.worker !== null || this.workerFailure !== null || this.closed
  }

  /** The worker is up and answering. */
  get usingWorker(): boolean {
    return this.ready && this.worker !== null
  }

  /**
   * Checks the CRC of every record of `records` (in order); the result is the first mismatch, or null when
   * all are right. The records' bytes must stay unchanged until then. Batches go to the worker even before
   * it has started (a caller that cannot wait calls `expedite`).
   */
  check(records: readonly DecodedRecord[]): CrcCheck {
    const n = records.length
    if (n === 0) return settled(null)
    if (this.worker === null) return settled(this.checkHere(records, 0, n))
    const buffers: SharedArrayBuffer[] = []
    let ranges = new Int32Array(Math.min(n, CRC_WORKER_BATCH_RECORDS_MAX) * 3)
    let sent = new Int32Array(Math.min(n, CRC_WORKER_BATCH_RECORDS_MAX))
    let count = 0
    let local: CrcMismatch | null = null
    // Records of one batch mostly lie in one chunk: look its memory up once per run of records.
    let lastBytes: Buffer | null = null
    let lastIdx = -1 // index in `buffers`, or -1 when lastBytes is not shared memory
    let lastBase = 0
    for (let i = 0; i < n; i++) {
      const rec = records[i]!
      const bytes = rec.rawBytes
      if (bytes !== lastBytes) {
        lastBytes = bytes
        const ab = bytes.buffer
        if (ab instanceof SharedArrayBuffer) {
          lastIdx = buffers.indexOf(ab)
          if (lastIdx < 0) lastIdx = buffers.push(ab) - 1
          lastBase = bytes.byteOffset
        } else {
          lastIdx = -1
        }
      }
      if (lastIdx >= 0 && count < sent.length) {
        ranges[count * 3] = lastIdx
        ranges[count * 3 + 1] = lastBase + rec.rawOffset
        ranges[count * 3 + 2] = rec.xl_tot_len
        sent[count++] = i
      } else {
        // Checked here now. A mismatch here ends the batch: later records cannot matter.
        local = this.checkHere(records, i, i + 1)
        if (local !== null) break
      }
    }
    if (count === 0) return settled(local)
    if (count < sent.length) {
      ranges = ranges.slice(0, count * 3)
      sent = sent.slice(0, count)
    }
    const p = new Pending(this.nextId++, records, sent, local)
    if (this.pending.size === 0) this.worker.ref()
    this.pending.set(p.id, p)
    this.stats.workerRecords += count
    this.worker.postMessage({ id: p.id, buffers, ranges }, [ranges.buffer])
    return p
  }

  /**
   * The caller is about to wait for `c`: if the worker has not even started yet, check the batch here now
   * rather than wait for it (its late answer is then ignored).
   */
  expedite(c: CrcCheck): void {
    if (c.done || this.ready || !(c instanceof Pending) || !this.pending.has(c.id)) return
    this.pending.delete(c.id)
    if (this.pending.size === 0) this.worker?.unref()
    this.stats.workerRecords -= c.sent.length
    this.settleHere(c)
  }

  /** Stops the worker (pending checks are finished on the calling thread). Idempotent. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true
      const w = this.worker
      this.worker = null
      this.ready = false
      this.settleAllHere()
      this.wakeReadyWaiters(false)
      if (w !== null) {
        this.stats.workerBusyMs = w.performance.eventLoopUtilization().active
        await w.terminate()
      }
    }
    await this.exited
  }

  /** For tests: makes the worker throw, as a crash would. */
  crashWorkerForTest(): void {
    this.worker?.postMessage({ crash: true })
  }

  private onReply(m: WorkerReply): void {
    if ('ready' in m) {
      if (!this.closed && this.worker !== null) this.ready = true
      this.wakeReadyWaiters(this.ready)
      return
    }
    const p = this.pending.get(m.id)
    if (p === undefined) return // expedited, or finished here after a failure
    this.pending.delete(m.id)
    if (this.pending.size === 0) this.worker?.unref()
    if ('failed' in m) {
      // A bug or a bad range: trust nothing from the worker for this batch.
      this.settleHere(p)
      this.giveUp(`worker could not check a batch: ${m.failed}`)
      return
    }
    p.settle(m.bad >= 0 ? { index: p.sent[m.bad]!, stored: m.stored, computed: m.computed } : p.local)
  }

  /** The worker is unusable: finish what it held here, check everything here from now on. */
  private giveUp(why: string): void {
    if (this.worker === null) return
    this.workerFailure ??= why
    const w = this.worker
    this.worker = null
    this.ready = false
    this.settleAllHere()
    this.wakeReadyWaiters(false)
    void w.terminate()
  }

  private settleAllHere(): void {
    const all = [...this.pending.values()]
    this.pending.clear()
    for (const p of all) this.settleHere(p)
  }

  private settleHere(p: Pending): void {
    // Only the records that went to the worker are left to check; the local ones come after them.
    this.stats.localRecords += p.sent.length
    for (let k = 0; k < p.sent.length; k++) {
      const i = p.sent[k]!
      const m = this.checkOne(p.records, i)
      if (m !== null) {
        p.settle(m)
        return
      }
    }
    p.settle(p.local)
  }

  private checkHere(records: readonly DecodedRecord[], from: number, to: number): CrcMismatch | null {
    this.stats.localRecords += to - from
    for (let i = from; i < to; i++) {
      const m = this.checkOne(records, i)
      if (m !== null) return m
    }
    return null
  }

  private checkOne(records: readonly DecodedRecord[], i: number): CrcMismatch | null {
    const rec = records[i]!
    const len = rec.xl_tot_len
    if (len < SizeOfXLogRecord) return { index: i, stored: 0, computed: 0 } // never from a decoder
    const stored = rec.xl_crc
    const computed = recordCrcAt(rec.rawBytes, rec.rawOffset, len)
    return stored === computed ? null : { index: i, stored, computed }
  }
}
