/**
 * WorkerWalSource: WalFileReader's chunk source when CRCs are checked off the decoding thread. The shared
 * CRC worker thread (wal-crc-worker.ts) reads each chunk of a segment file and, while the bytes are hot in
 * its core's cache, walks the records in it and checks their CRCs (wal-crc-walker.ts); the chunk comes back
 * (transferred, not copied) with the start LSNs of the records it checked. The decoding thread decodes the
 * chunk and takes each record's verdict from that list, checking by itself any record the worker gave no
 * verdict for (`CrcVerdicts`). So every byte is checksummed once, right after it was read, on the other core
 * — before, the decoding thread waited for reads from the thread pool, and the CRC worker then read every
 * byte again from memory.
 *
 * Balance (`balance`): reading and checksumming can cost the worker more than decoding costs the decoding
 * thread; then the decoder waits for chunks. While it does, a growing share of the chunks (up to half) is
 * only read and walked by the worker, and the decoding thread checks their records' CRCs itself (no
 * verdict: the same path as a walker that lost its place); while chunks are ready when asked for, the
 * share shrinks back.
 *
 * Reads run ahead of the decoder by up to `WORKER_READ_AHEAD` chunks (memory: that many chunks), in file
 * order; `read()` must be called for consecutive positions, as WalFileReader does. A segment that is not in
 * the list stops the read-ahead and comes out as 'missing' when its turn comes.
 *
 * Memory: with `reuse`, chunks are read into slots: SharedArrayBuffers of `chunkBytes` made here as the
 * read-ahead needs them, each given to the worker once with its first read and named by number after
 * that. A released chunk's slot is read into again; nothing is transferred, so no ArrayBuffer is created
 * per chunk on either thread. Slots are as many as are in use at once (the read-ahead plus what the decoder
 * and its consumer hold), and at most WAL_CHUNK_POOL_MAX free ones are kept. Without `reuse`, chunks are
 * fresh, unzeroed memory allocated by the worker and transferred (owned by the decoding thread from then on).
 *
 * Failure: errors of the worker's reads come back as the same typed errors as WalChunkSource's. If the
 * worker thread dies or cannot start, every read not yet answered, and every later one, is done on this
 * thread by a WalChunkSource, without verdicts (the decoding thread then checks every CRC).
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks'
import { assert } from '../lib/errors.js'
import { CrcWorkerHost, crcWorkerMessageId, type CrcWorkerClient, type ReadReply, type WalkStart } from './wal-crc-worker.js'
import type { WalkBad } from './wal-crc-walker.js'
import { segmentDisappeared, walReadFailed, walShortRead, WAL_CHUNK_POOL_MAX, WalChunkSource, type WalChunk, type WalChunkFile } from './wal-chunk-source.js'
import { recordCrcFault, walCrcError } from './wal-decoder-errors.js'
import type { DecodedRecord } from './wal-record.js'

/** Chunks read ahead of the one being decoded: enough to keep the worker busy while the decoder works. */
export const WORKER_READ_AHEAD = 4
/** Most of the chunks whose CRCs the decoding thread takes over when the worker is the slower thread. */
const LOCAL_CHECK_SHARE_MAX = 0.5
/** How the share moves per chunk: up while this thread idles, down while it is busy throughout. */
const LOCAL_CHECK_SHARE_STEP = 0.02
/** This thread's idle fraction between two reads above which the worker counts as the slower thread. */
const IDLE_FRACTION_SLOW_WORKER = 0.05

/** What the worker found in a chunk. */
export interface ChunkVerdict {
  /** Start LSNs of the records completed in the chunk whose CRC matched, in order. */
  readonly ok: Float64Array
  readonly bad: WalkBad | null
}

export type VerdictChunk = WalChunk & { verdict?: ChunkVerdict | null }

export interface WorkerWalSourceOptions {
  readonly segmentSizeBytes: number
  readonly chunkBytes: number
  readonly reuse: boolean
  /** Let the decoding thread take over the CRCs of some chunks when the worker is the slower thread. */
  readonly balance: boolean
  /** Where the worker's walk starts (WalFileReader's decode start). */
  readonly walkStart: WalkStart
  /** No read-ahead at or past this LSN (reads asked for are still done). */
  readonly endLsn: number
}

/** A read posted ahead of the decoder. */
interface AheadRead {
  readonly segno: bigint
  readonly offset: number
  readonly chunk: Promise<VerdictChunk>
}

export class WorkerWalSource implements CrcWorkerClient<ReadReply> {
  private readonly reader = crcWorkerMessageId()
  private readonly ahead: AheadRead[] = []
  private readonly waiting = new Map<number, { resolve: (c: VerdictChunk) => void; reject: (e: unknown) => void; segno: bigint; offset: number; length: number; path: string; slot: number }>()
  /** With `reuse`: the read slots (shared with the worker) by number, each slot's number by its memory, the free ones. */
  private readonly slots = new Map<number, SharedArrayBuffer>()
  private readonly slotOf = new Map<SharedArrayBuffer, number>()
  private readonly freeSlots: number[] = []
  private nextSlot = 0
  /** Position of the next read to post. */
  private nextSegno: bigint
  private nextOffset: number
  private stopped = false
  private host: CrcWorkerHost | null
  private local: WalChunkSource | null = null
  private localChain: Promise<unknown> = Promise.resolve()
  private readonly busyAtStart: number
  /**
   * Balance: the share of chunks the worker only reads (and walks, to keep its place), leaving their CRCs
   * to the decoding thread. It rises while this thread's event loop idles between two reads (it waited
   * for the worker: reading and checksumming cost the worker more than decoding and the consumer cost
   * this thread), and falls while this thread is busy throughout. Whether a chunk has arrived says nothing
   * here: its message is taken only when this thread yields, so it is never there when asked for.
   * `localCheckCredit` spreads the chunks left to this thread evenly.
   */
  private localCheckShare = 0
  private localCheckCredit = 0
  private readsAsked = 0
  private lastElu: EventLoopUtilization | null = null
  /** Chunks the worker read without checking. */
  localCheckChunks = 0
  /** Chunk buffers allocated for the worker's reads (by it, or slots here for it to read into). */
  private chunksMade = 0
  /** Records the worker checked. */
  workerRecords = 0
  workerBusyMs = 0

  constructor(
    private readonly bySegno: ReadonlyMap<bigint, WalChunkFile>,
    private readonly opts: WorkerWalSourceOptions,
    startSegno: bigint,
    startOffset: number,
  ) {
    this.nextSegno = startSegno
    this.nextOffset = startOffset
    let host: CrcWorkerHost | null = null
    try {
      host = CrcWorkerHost.acquire()
    } catch {
      host = null // no thread: everything is read here
    }
    this.host = host
    this.busyAtStart = host?.busyMs() ?? 0
  }

  /** The chunk at (segno, offset): the next position after the previous call's chunk. */
  read(segno: bigint, offset: number): Promise<VerdictChunk> {
    if (this.ahead.length === 0) this.post()
    const next = this.ahead.shift()
    if (next === undefined || next.segno !== segno || next.offset !== offset) {
      // Not the position the read-ahead followed (never so with WalFileReader): read it here.
      this.stopped = true
      return this.readLocally(segno, offset)
    }
    if (this.opts.balance) this.rebalance()
    this.fill()
    return next.chunk
  }

  /** Moves the share of chunks checked here by how much this thread idled since the previous read. */
  private rebalance(): void {
    const now = performance.eventLoopUtilization()
    const last = this.lastElu
    this.lastElu = now
    // The first reads wait for the worker whatever the balance: they say nothing about it.
    if (last === null || ++this.readsAsked <= WORKER_READ_AHEAD) return
    const d = performance.eventLoopUtilization(now, last)
    const total = d.idle + d.active
    if (total <= 0) return
    this.localCheckShare =
      d.idle / total > IDLE_FRACTION_SLOW_WORKER
        ? Math.min(LOCAL_CHECK_SHARE_MAX, this.localCheckShare + LOCAL_CHECK_SHARE_STEP)
        : Math.max(0, this.localCheckShare - LOCAL_CHECK_SHARE_STEP)
  }

  /** Gives a chunk back for reuse (only with `reuse`; nothing may refer to its bytes any more). */
  release(chunk: Buffer): void {
    const slot = chunk.buffer instanceof SharedArrayBuffer ? this.slotOf.get(chunk.buffer) : undefined
    if (slot !== undefined) this.freeSlot(slot)
    else this.local?.release(chunk)
  }

  /** Chunks allocated (for the worker's reads, and by the local reads after a failure). */
  get allocated(): number {
    return this.chunksMade + (this.local?.allocated ?? 0)
  }

  async close(): Promise<void> {
    this.stopped = true
    const host = this.host
    this.host = null
    if (host !== null) {
      this.workerBusyMs = host.busyMs() - this.busyAtStart
      for (const id of this.waiting.keys()) host.forget(id)
      host.closeReader(this.reader)
      host.release()
    }
    for (const w of this.waiting.values()) w.reject(new Error('WAL reader closed'))
    this.waiting.clear()
    for (const s of this.ahead) s.chunk.catch(() => undefined)
    this.ahead.length = 0
    await this.localChain.catch(() => undefined)
    await this.local?.close()
  }

  onReply(reply: ReadReply): void {
    const w = this.waiting.get(reply.id)
    if (w === undefined) return
    this.waiting.delete(reply.id)
    if ('readError' in reply) {
      this.freeSlot(w.slot)
      const e = reply.readError
      w.reject(e.code === 'ENOENT' ? segmentDisappeared(w.path) : walReadFailed(w.path, w.length, w.offset, e.message))
      return
    }
    const r = reply.read
    if (r.bytesRead !== w.length) {
      this.freeSlot(w.slot)
      w.reject(walShortRead(w.path, r.bytesRead, w.length, w.offset))
      return
    }
    let chunk: Buffer
    if (w.slot >= 0) {
      chunk = Buffer.from(this.slots.get(w.slot)!, 0, r.bytesRead)
    } else {
      this.chunksMade++
      chunk = Buffer.from(r.buffer!, 0, r.bytesRead)
    }
    this.workerRecords += r.ok.length
    w.resolve({ kind: 'chunk', segno: w.segno, offset: w.offset, chunk, verdict: { ok: r.ok, bad: r.bad } })
  }

  onLost(id: number): void {
    const w = this.waiting.get(id)
    if (w === undefined) return
    this.waiting.delete(id)
    this.host = null
    this.readLocally(w.segno, w.offset).then(w.resolve, w.reject)
  }

  /** Posts reads until WORKER_READ_AHEAD are under way. */
  private fill(): void {
    while (!this.stopped && this.ahead.length < WORKER_READ_AHEAD) {
      const lsn = Number(this.nextSegno) * this.opts.segmentSizeBytes + this.nextOffset
      if (lsn >= this.opts.endLsn) return
      this.post()
    }
  }

  /** Posts the read at the next position (or queues 'missing' and stops there). */
  private post(): void {
    const segno = this.nextSegno
    const offset = this.nextOffset
    const segSize = this.opts.segmentSizeBytes
    const seg = this.bySegno.get(segno)
    if (seg === undefined) {
      this.stopped = true
      this.ahead.push({ segno, offset, chunk: Promise.resolve({ kind: 'missing', segno }) })
      return
    }
    const length = Math.min(this.opts.chunkBytes, segSize - offset)
    if (offset + length < segSize) this.nextOffset = offset + length
    else {
      this.nextSegno = segno + 1n
      this.nextOffset = 0
    }
    const host = this.host
    if (host === null || host.isLost) {
      this.ahead.push({ segno, offset, chunk: this.readLocally(segno, offset) })
      return
    }
    const id = crcWorkerMessageId()
    let slot = -1
    let sab: SharedArrayBuffer | undefined
    if (this.opts.reuse) {
      slot = this.freeSlots.pop() ?? -1
      if (slot < 0) {
        sab = new SharedArrayBuffer(this.opts.chunkBytes)
        slot = this.nextSlot++
        this.slots.set(slot, sab)
        this.slotOf.set(sab, slot)
        this.chunksMade++
      }
    }
    const chunk = new Promise<VerdictChunk>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, segno, offset, length, path: seg.path, slot })
    })
    chunk.catch(() => undefined) // a read-ahead nobody asks for must not be an unhandled rejection
    this.ahead.push({ segno, offset, chunk })
    this.localCheckCredit += this.localCheckShare
    const check = this.localCheckCredit < 1
    if (!check) {
      this.localCheckCredit -= 1
      this.localCheckChunks++
    }
    host.postRead(id, this, {
      reader: this.reader,
      path: seg.path,
      offset,
      length,
      lsn: Number(segno) * segSize + offset,
      start: this.opts.walkStart,
      check,
      ...(slot < 0 ? {} : { slot }),
      ...(sab === undefined ? {} : { sab }),
    })
  }

  /**
   * A slot is free again (-1: no slot). Beyond WAL_CHUNK_POOL_MAX free ones it is dropped, here and in the
   * worker: a record spanning many chunks needs them all at once, but only once.
   */
  private freeSlot(slot: number): void {
    if (slot < 0) return
    // Freed twice, a slot would be read into by two reads at once.
    assert(!this.freeSlots.includes(slot), () => `WAL read slot ${slot} released twice`)
    if (this.freeSlots.length < WAL_CHUNK_POOL_MAX) {
      this.freeSlots.push(slot)
      return
    }
    this.slotOf.delete(this.slots.get(slot)!)
    this.slots.delete(slot)
    this.host?.dropSlot(this.reader, slot)
  }

  /** Chunk buffers kept: slots in use or free, and the local reads' free chunks. */
  get kept(): number {
    return this.slots.size + (this.local?.kept ?? 0)
  }

  /** Reads on this thread, one read at a time, in the order asked (after the worker is gone). */
  private readLocally(segno: bigint, offset: number): Promise<VerdictChunk> {
    this.local ??= new WalChunkSource(this.bySegno, { segmentSizeBytes: this.opts.segmentSizeBytes, chunkBytes: this.opts.chunkBytes, reuse: this.opts.reuse })
    const local = this.local
    const p = this.localChain.then(() => local.read(segno, offset))
    this.localChain = p.catch(() => undefined)
    return p
  }
}

/**
 * The decoding thread's side of the verdicts: records come out of the decoder in LSN order, verdicts in
 * chunk order, so one pass over both matches them. A record the worker checked passes; the record the worker
 * found bad is WAL_BAD_CRC; any other record (no verdict: its chunk was left to this thread by the balance,
 * the worker lost its place, or it was gone) is checked here.
 */
export class CrcVerdicts {
  private cur: Float64Array = new Float64Array(0)
  private at = 0
  private readonly queue: Float64Array[] = []
  private bad: WalkBad | null = null

  add(v: ChunkVerdict): void {
    if (v.ok.length > 0) this.queue.push(v.ok)
    if (v.bad !== null && this.bad === null) this.bad = v.bad
  }

  /** Null if `rec`'s CRC is good, else the error to report. */
  check(rec: DecodedRecord): Error | null {
    const lsn = rec.lsnNumber
    for (;;) {
      if (this.at < this.cur.length) {
        const x = this.cur[this.at]!
        if (x < lsn) {
          this.at++
          continue
        }
        if (x === lsn) {
          this.at++
          return null
        }
        break
      }
      const next = this.queue.shift()
      if (next === undefined) break
      this.cur = next
      this.at = 0
    }
    if (this.bad !== null && this.bad.lsn === lsn) return walCrcError(lsn, this.bad.stored, this.bad.computed)
    return recordCrcFault(rec.rawBytes, rec.rawOffset, rec.xl_tot_len, lsn)
  }
}
