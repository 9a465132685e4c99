/**
 * TimelineIngestDriver: feeds decoded WAL records into one timeline and decides when its open layer is
 * frozen and flushed.
 *
 * Policy (Neon's): freeze when the WAL in the open layer reaches `checkpoint_distance`, when the layer is
 * older than `checkpoint_timeout`, or when the in-memory bytes reach `max_in_memory_layers_bytes` (for
 * several timelines the owner asks the one holding the oldest unflushed WAL to freeze: `freezeNow`).
 * Flushes run in the background, on the flush worker thread, while ingest goes on. When two frozen layers
 * are already waiting, or the ceiling is reached while a frozen layer is still being flushed, ingest waits
 * for the flush (back-pressure; freezing again then would only cut tiny L0 files). That bounds what a
 * timeline holds, index included; the slab pool's budget (layer/value-slabs.ts) bounds the values of all
 * timelines together, spilling slabs to ephemeral files beyond it (several timelines each under the
 * ceiling, a batch past it). Every flush advances disk_consistent_lsn, and `onDurable` tells the WAL
 * receiver, which reports it to the primary (so the replication slot keeps everything above it).
 */
import type { Lsn } from '../pg/lsn.js'
import type { DecodedRecord } from '../pg/wal-record.js'
import { WalIngest } from '../datadir/ingest.js'
import type { DatadirReader } from '../datadir/read.js'
import type { Timeline } from '../repository/timeline.js'

/** Frozen layers allowed to wait for their flush before ingest blocks. */
export const FROZEN_LAYERS_WAITING_MAX = 2

export interface IngestPolicy {
  checkpointDistanceBytes: number
  checkpointTimeoutMs: number
  maxInMemoryLayersBytes: number
}

export class TimelineIngestDriver {
  readonly ingest: WalIngest
  private flushing: Promise<void> | null = null
  private flushError: unknown = null
  /**
   * The wal_log_hints / data-checksums setting the WAL last asked for (a PARAMETER_CHANGE record) while it is
   * not yet durable in the metadata, else null. Kept until written, so a failed write is tried again by the
   * next checkpoint (which reports it if it fails again) instead of being lost or failing every checkpoint.
   */
  private hintBitsWanted: boolean | null = null
  private hintBitsWrite: Promise<void> = Promise.resolve()
  /**
   * The batch being ingested, while one is. A CREATE DATABASE awaits its reads midway, with its values
   * above last_record_lsn until the batch ends; a freeze then cannot close the open layer (timeline-layers.ts),
   * so a checkpoint asked for meanwhile (the server's sync) waits for the batch first.
   */
  private batch: Promise<void> | null = null

  constructor(
    readonly timeline: Timeline,
    reader: DatadirReader,
    private readonly policy: IngestPolicy,
  ) {
    const tl = timeline
    this.ingest = new WalIngest(
      {
        put: (key, at, value) => tl.put(key, at, value),
        putRecord: (key, at, raw, willInit) => tl.putRecord(key, at, raw, willInit),
        reserveImage: (at, bytes) => tl.reserveImage(at, bytes),
        commitValue: (key, at) => tl.commitValue(key, at),
        putRecordAt: (prefix, field6, at, raw, willInit) => tl.putRecordAt(prefix, field6, at, raw, willInit),
        commitValueAt: (prefix, field6, at) => tl.commitValueAt(prefix, field6, at),
        readLatestImage: (key) => tl.getImage(key, tl.lastRecordLsn),
        readPage: (key, at) => reader.getPage(key, at),
      },
      {
        onHintBitsLogged: (v) => {
          // Against the newest value asked for, not the durable one: a flip and a flip back before the first
          // write lands must both be written, in order (the timeline's flush chain orders its metadata writes).
          if (v === (this.hintBitsWanted ?? tl.metadata.hintBitsLogged)) return
          this.hintBitsWanted = v
          this.writeHintBits()
        },
      },
    )
  }

  /**
   * Ingests records in order; records at or below last_record_lsn (already ingested) are skipped.
   * last_record_lsn advances once per batch, and before a record whose ingest reads values back at it
   * (WalIngest.readsBack: CREATE DATABASE), which must see every earlier record; other records read only
   * through IngestState, which caches whatever it writes. Readers wait for whole batches.
   */
  async ingestRecords(records: readonly DecodedRecord[]): Promise<void> {
    const run = this.ingestBatch(records)
    this.batch = run
    try {
      await run
    } finally {
      if (this.batch === run) this.batch = null
    }
  }

  private async ingestBatch(records: readonly DecodedRecord[]): Promise<void> {
    await this.retryFailedFlush()
    const tl = this.timeline
    const from = tl.lastRecordLsn
    let last: DecodedRecord | null = null
    try {
      for (const rec of records) {
        if (rec.endLsn <= from) continue
        if (last !== null && WalIngest.readsBack(rec)) tl.finishRecords(last.endLsn, last.lsn)
        const pending = this.ingest.ingest(rec)
        if (pending) await pending
        last = rec
      }
    } finally {
      // Also when a record fails midway (a spill hitting a full disk): the records before it are in, and a
      // retry resumes after them; without this it would re-put their values below their newest version.
      if (last !== null && last.endLsn > tl.lastRecordLsn) tl.finishRecords(last.endLsn, last.lsn)
    }
    await this.afterBatch()
  }

  /**
   * ingestRecords for a command that stops at the first failure (sync, file ingest): the records before the
   * failing one are made durable before its error propagates, so the timeline stays readable up to the
   * record before it, as USER_TABLESPACE's hint says (`serve` gets there through its own flushes). A failure
   * of that flush does not hide the original error.
   */
  async ingestRecordsOrFlush(records: readonly DecodedRecord[]): Promise<void> {
    try {
      await this.ingestRecords(records)
    } catch (err) {
      await this.checkpoint().catch(() => undefined)
      throw err
    }
  }

  private async afterBatch(): Promise<void> {
    const tl = this.timeline
    const overCeiling = tl.inMemoryBytes >= this.policy.maxInMemoryLayersBytes
    // Over the memory ceiling, freezing helps only when nothing frozen is waiting: otherwise the bytes are
    // in layers already being flushed, and freezing the open layer after every batch would only cut a
    // stream of tiny L0 files. Then ingest waits for the flush instead (the bound holds either way).
    if (
      tl.openLayerWalBytes >= BigInt(this.policy.checkpointDistanceBytes) ||
      (overCeiling && tl.frozenLayerCount === 0) ||
      (tl.openLayerAgeMs >= this.policy.checkpointTimeoutMs && tl.openLayerWalBytes > 0n)
    ) {
      this.freezeNow()
    }
    if ((tl.frozenLayerCount > FROZEN_LAYERS_WAITING_MAX || (overCeiling && tl.frozenLayerCount > 0)) && this.flushing) await this.flushing
    if (this.flushError) throw this.flushError
  }

  /** Freezes the open layer and starts flushing it in the background. */
  freezeNow(): void {
    this.timeline.freeze()
    this.startFlush()
  }

  /** For a timer: freezes an open layer older than checkpoint_timeout even when no WAL arrives. */
  tick(): void {
    const tl = this.timeline
    if (tl.openLayerAgeMs >= this.policy.checkpointTimeoutMs && tl.openLayerWalBytes > 0n) this.freezeNow()
    else if (tl.lastRecordLsn > tl.diskConsistentLsn && tl.openLayerWalBytes === 0n && tl.frozenLayerCount === 0) this.freezeNow()
  }

  /**
   * After a flush failed (a full disk, an I/O error), the frozen layers are still in memory and readable, and
   * the timeline's flush writes them again from there, into new files. So before more WAL is taken, or a
   * checkpoint is made, the flush is retried: once it succeeds the error is gone and ingest goes on where it
   * stopped (nothing was lost, disk_consistent_lsn never passed what is durable); while it fails, the caller
   * gets the new error (the WAL loop then retries after its pause).
   */
  private async retryFailedFlush(): Promise<void> {
    if (this.flushError === null) return
    try {
      await this.timeline.flush()
      this.flushError = null
    } catch (e) {
      this.flushError = e
      throw e
    }
  }

  private startFlush(): void {
    // Timeline.flush serializes flushes itself; this promise resolves when everything frozen so far is durable.
    const mine = this.timeline.flush()
    this.flushing = mine
    mine.then(
      () => {
        if (this.flushing === mine) this.flushing = null
      },
      (e) => {
        this.flushError ??= e
        if (this.flushing === mine) this.flushing = null
      },
    )
  }

  /**
   * Writes the wanted hint-bits setting now (asked for synchronously, so a close that follows still waits for
   * it). Never an unhandled rejection: a failure leaves the value wanted, for checkpoint() to try again.
   */
  private writeHintBits(): Promise<void> {
    const v = this.hintBitsWanted
    if (v === null) return Promise.resolve()
    const write = this.timeline.updateMetadata({ hintBitsLogged: v }).then(() => {
      if (this.hintBitsWanted === v) this.hintBitsWanted = null
    })
    write.catch(() => {})
    this.hintBitsWrite = write
    return write
  }

  /** Freezes and flushes everything ingested; resolves with the new disk_consistent_lsn. */
  async checkpoint(): Promise<Lsn> {
    if (this.batch) await this.batch.catch(() => {})
    if (this.flushing) await this.flushing.catch(() => {})
    await this.retryFailedFlush()
    await this.hintBitsWrite.catch(() => {})
    // A write that failed is tried once more here; if it fails again the checkpoint reports it.
    if (this.hintBitsWanted !== null) await this.writeHintBits()
    await this.timeline.checkpoint()
    return this.timeline.diskConsistentLsn
  }
}
