/**
 * WalCrcVerifier: checks the CRC-32C of decoded WAL records on a worker thread.
 *
 * Why: checksumming every byte is the largest single cost of decoding WAL (about a third of the CPU), and
 * it needs nothing but the record's bytes. A decoder running with `deferCrc` finds record boundaries,
 * checks page and record headers and decodes block references on its thread, while this worker checksums
 * earlier batches on the other core. Records are handed to consumers only once `check()` has settled for
 * their batch (WalReceiver does this; WalFileReader instead has the worker check records as it reads them,
 * wal-worker-source.ts); a mismatch is reported with the index of the first bad record, so the records
 * before it are still delivered and the error names the bad record's LSN.
 *
 * How: records whose bytes lie in SharedArrayBuffer memory (network chunks allocated as shared memory) are
 * sent as (buffer, offset, length) triples to the worker thread the process shares (wal-crc-worker.ts:
 * started on first use, kept for the next reader), which computes each CRC (body, then the header up to
 * xl_crc, as PostgreSQL does) and answers with the first mismatch. Records in ordinary memory (rare: a
 * record joined across two chunks) are checked on the calling thread at once. Batches are posted even
 * before the worker has started (it takes tens of ms); a caller about to wait for one calls `expedite()`,
 * which checks it on the calling thread if the worker is not up yet. After a worker failure every record is
 * checked on the calling thread: the result never depends on the worker, only the speed does.
 *
 * Invariants:
 * - Each check settles exactly once (never rejects) with the first mismatch of its batch, or null; the
 *   worker answers in posting order (one worker, one FIFO).
 * - The caller must not change a record's bytes until its check settled (decoders never touch a record's
 *   bytes once handed out).
 * - `close()` settles pending checks on the calling thread and lets go of the worker (which stops after a
 *   short linger when nobody else uses it, and never holds the process open); it is idempotent.
 *   `WalCrcVerifier.live` counts worker threads not yet exited; `stopIdleWorker()` stops an idle one now.
 */
import type { DecodedRecord } from './wal-record.js'
import { recordCrcAt, SizeOfXLogRecord } from './wal-record.js'
import { CrcWorkerHost, crcWorkerMessageId, type CrcWorkerClient, type CrcWorkerReply } from './wal-crc-worker.js'

export interface CrcMismatch {
  /** Index in the checked batch of the first record whose CRC is wrong. */
  readonly index: number
  readonly stored: number
  readonly computed: number
}

/** Records posted in one message at most (a 1 MiB chunk holds at most ~43,000 minimal 24-byte records). */
export const CRC_WORKER_BATCH_RECORDS_MAX = 64 * 1024

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

export interface WalCrcVerifierOptions {
  /**
   * When to use the worker: 'now' (default), 'later' (from `startWorker()` on, e.g. once a stream has a
   * backlog; until then every record is checked on the calling thread), or 'never' (tests).
   */
  worker?: 'now' | 'later' | 'never'
}

export class WalCrcVerifier implements CrcWorkerClient {
  private host: CrcWorkerHost | null = null
  private closed = false
  private readonly workerAllowed: boolean
  private busyAtStartMs = 0
  private readonly pending = new Map<number, Pending>()
  /** Why the worker was given up, for tests and diagnostics. */
  workerFailure: string | null = null
  /** Records checked by the worker and on the calling thread; the worker's busy time while we used it. */
  readonly stats = { workerRecords: 0, localRecords: 0, workerBusyMs: 0 }

  /** Worker threads started and not yet exited, in this process. */
  static get live(): number {
    return CrcWorkerHost.live
  }

  /** Stops the shared worker now if no verifier uses it (tests; otherwise it stops after a short linger). */
  static stopIdleWorker(): Promise<void> {
    return CrcWorkerHost.stopIdle()
  }

  constructor(opts: WalCrcVerifierOptions = {}) {
    const when = opts.worker ?? 'now'
    this.workerAllowed = when !== 'never'
    if (when === 'now') this.startWorker()
  }

  /** Starts using the worker if not yet (idempotent; a no-op after close(), a failure, or with 'never'). */
  startWorker(): void {
    if (this.host !== null || this.closed || this.workerFailure !== null || !this.workerAllowed) return
    try {
      this.host = CrcWorkerHost.acquire()
      this.busyAtStartMs = this.host.busyMs()
    } catch (e) {
      this.workerFailure = `worker did not start: ${e instanceof Error ? e.message : String(e)}`
    }
  }

  /** startWorker() was called (or the worker was used from construction). */
  get workerStarted(): boolean {
    return this.host !== null || this.workerFailure !== null || this.closed
  }

  /** The worker is up and answering. */
  get usingWorker(): boolean {
    return this.host !== null && this.host.isReady
  }

  /** Resolves true once the worker answers, false if it never will (not started, failed, closed). For tests. */
  whenReady(): Promise<boolean> {
    return this.host === null ? Promise.resolve(false) : this.host.whenReady()
  }

  /**
   * Checks the CRC of every record of `records` (in order); the result is the first mismatch, or null when
   * all are right. The records' bytes must stay unchanged until then. Batches go to the worker even before
   * it has started (a caller that cannot wait calls `expedite`).
   */
  check(records: readonly DecodedRecord[]): CrcCheck {
    const n = records.length
    if (n === 0) return settled(null)
    const host = this.liveHost()
    if (host === null) return settled(this.checkHere(records, 0, n))
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
    const p = new Pending(crcWorkerMessageId(), records, sent, local)
    this.pending.set(p.id, p)
    this.stats.workerRecords += count
    host.post(p.id, this, buffers, ranges)
    return p
  }

  /**
   * The caller is about to wait for `c`: if the worker has not even started yet, check the batch here now
   * rather than wait for it (its late answer is then ignored).
   */
  expedite(c: CrcCheck): void {
    if (c.done || !(c instanceof Pending) || !this.pending.has(c.id)) return
    if (this.host !== null && this.host.isReady) return
    this.pending.delete(c.id)
    this.host?.forget(c.id)
    this.stats.workerRecords -= c.sent.length
    this.settleHere(c)
  }

  /** Lets go of the worker (pending checks are finished on the calling thread). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const host = this.host
    this.host = null
    for (const id of this.pending.keys()) host?.forget(id)
    this.settleAllHere()
    if (host !== null) {
      this.stats.workerBusyMs = Math.max(0, host.busyMs() - this.busyAtStartMs)
      host.release()
    }
  }

  /** For tests: makes the worker throw, as a crash would. */
  crashWorkerForTest(): void {
    this.host?.crashForTest()
  }

  onReply(m: CrcWorkerReply): void {
    const p = this.pending.get(m.id)
    if (p === undefined) return
    this.pending.delete(m.id)
    if ('failed' in m) {
      // A bug or a bad range: trust nothing from the worker for this batch, nor for later ones.
      this.settleHere(p)
      this.giveUp(`worker could not check a batch: ${m.failed}`)
      return
    }
    p.settle(m.bad >= 0 ? { index: p.sent[m.bad]!, stored: m.stored, computed: m.computed } : p.local)
  }

  onLost(id: number): void {
    const p = this.pending.get(id)
    if (p !== undefined) {
      this.pending.delete(id)
      this.settleHere(p)
    }
    this.giveUp('the worker thread stopped')
  }

  /** The host, unless it was lost (then the verifier gives the worker up). */
  private liveHost(): CrcWorkerHost | null {
    if (this.host !== null && this.host.isLost) this.giveUp('the worker thread stopped')
    return this.host
  }

  /** The worker is unusable: finish what it held here, check everything here from now on. */
  private giveUp(why: string): void {
    if (this.host === null) return
    this.workerFailure ??= why
    const host = this.host
    this.host = null
    for (const id of this.pending.keys()) host.forget(id)
    this.settleAllHere()
    host.release()
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
