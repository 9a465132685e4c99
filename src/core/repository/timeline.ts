/**
 * Timeline: one branch of a tenant's history, a versioned key-value store (key, lsn) -> value.
 *
 * Writes (ingest) go to the open in-memory layer (values in slabs of the repository's SlabPool); `freeze`
 * closes it at last_record_lsn + 1 and `flush` writes frozen layers, oldest first, as L0 delta layer files
 * — on the flush worker thread (layer/flush-worker.ts), so ingest continues meanwhile — then, back on this
 * thread, adds each file to the layer map and advances disk_consistent_lsn in the metadata. Reads walk the
 * layers newest first and continue on the ancestor timeline for keys this branch never wrote.
 *
 * Shape, split by noun: this class holds the timeline's identity, metadata and LSN progress
 * (last_record_lsn and the readers waiting for it), the flush chain and the lifecycle, and is the API the
 * rest of the server uses. The layers (open, frozen, historic files) and every change to them are in
 * timeline-layers.ts (TimelineLayers: puts, freeze, L0 writes, opening files); the read path over them and
 * the ancestors, with the image cache, in timeline-reader.ts (TimelineReader). Both are made with the
 * timeline and live as long: a put or a read here is one call into them, with nothing allocated for it.
 *
 * Invariants:
 * - disk_consistent_lsn <= last_record_lsn; every value at or below disk_consistent_lsn is in a layer file
 *   made durable before the metadata that names that LSN (file fsync + rename + dir fsync, then metadata).
 * - Layer files whose LSN range reaches beyond disk_consistent_lsn + 1 were written by a flush that did not
 *   finish (or are newer than restored metadata): a load does not open them and, unless read-only, moves
 *   them aside (future-layers.ts); the WAL above disk_consistent_lsn is ingested again.
 * - In-memory layers tile [disk_consistent_lsn + 1, inf) (timeline-layers.ts).
 * - One flush at a time (a promise chain); ingest continues into a new open layer meanwhile. A frozen layer
 *   keeps answering reads while its file is written, until the file is in the layer map.
 *
 * This class knows nothing of PostgreSQL: keys are opaque (datadir/ gives them meaning).
 */
import { join } from 'node:path'
import { assert, PageserverError } from '../lib/errors.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import type { Key } from '../model/key.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { removeEphemeralFiles } from '../layer/inmemory-layer.js'
import type { SlabPool } from '../layer/value-slabs.js'
import type { LayerDesc } from '../layer/layer-name.js'
import { listFiles } from '../storage/directory.js'
import { moveFutureLayersAside, removeRedundantFutureLayers } from './future-layers.js'
import { removeTempFiles } from '../storage/durable-file.js'
import { LsnWaiters } from './lsn-waiters.js'
import type { KeyHistory } from './key-history.js'
import { readMetadata, writeMetadata, type TimelineMetadata } from './metadata.js'
import { selectLayerFiles } from './layer-selection.js'
import { TimelineLayers } from './timeline-layers.js'
import { TimelineReader } from './timeline-reader.js'

export type { FileLayer } from './timeline-layers.js'
export type { KeyHistory } from './key-history.js'

export const METADATA_FILE = 'metadata'

export interface TimelineOptions {
  readonly noSync: boolean
  /**
   * Open without changing the directory: no cleanup of temporary, ephemeral or future layer files (another
   * process may own them), and no writes. Offline readers use it while `serve` may be running.
   */
  readonly readOnly?: boolean
  readonly waitLsnTimeoutMs: number
  /** Index blocks cached per layer file. */
  readonly indexBlockCacheMax?: number
  /**
   * Where in-memory layers keep their values, shared by the timelines of a repository so that one budget
   * (max_in_memory_layers_bytes) bounds them all; default: a pool of this timeline's own.
   */
  readonly slabPool?: SlabPool
  /** Write L0 files on the flush worker thread (default) or on this thread ('inline'). */
  readonly flushThread?: 'worker' | 'inline'
}

export class Timeline {
  private meta: TimelineMetadata
  private lastRecord: Lsn
  private prevRecord: Lsn | null
  /** Open, frozen and historic layers (timeline-layers.ts). */
  private readonly layers: TimelineLayers
  /** The read path over `layers` and the ancestors' readers (timeline-reader.ts). */
  private readonly reader: TimelineReader
  private flushChain: Promise<void> = Promise.resolve()
  private readonly waiters: LsnWaiters
  private closed = false
  /** Half-written files (`*___temp`) and spill files of in-memory layers this load removed (nothing durable). */
  leftoversRemoved: readonly string[] = []
  /** Layer files this load moved aside (above disk_consistent_lsn; future-layers.ts), for the caller to report. */
  layersMovedAside: readonly string[] = []
  /** FUTURE_LAYERS_DIR holds files the timeline's layers do not cover yet: each flush checks them again. */
  private futureLayersAside = false
  /** Called after every flush with the new disk_consistent_lsn (the WAL receiver reports it as flushed). */
  onDurable: ((lsn: Lsn) => void) | null = null
  /** Run by close(). */
  private readonly closeHooks = new Set<() => void>()

  private constructor(
    readonly tenantId: TenantId,
    readonly timelineId: TimelineId,
    readonly dir: string,
    meta: TimelineMetadata,
    readonly ancestor: Timeline | null,
    private readonly opts: TimelineOptions,
  ) {
    this.meta = meta
    this.layers = new TimelineLayers(dir, tenantId, timelineId, opts, meta.diskConsistentLsn)
    this.reader = new TimelineReader(this, this.layers, ancestor === null ? null : ancestor.reader)
    this.lastRecord = meta.diskConsistentLsn
    this.prevRecord = meta.prevRecordLsn
    this.waiters = new LsnWaiters(
      () => `last_record_lsn ${formatLsn(this.lastRecord)} disk_consistent_lsn ${formatLsn(this.meta.diskConsistentLsn)}`,
    )
    if (ancestor === null) assert(meta.ancestorTimeline === null, 'timeline with an ancestor id loaded without its ancestor')
    else assert(meta.ancestorTimeline === ancestor.timelineId, 'timeline loaded with the wrong ancestor')
  }

  /** Writes the metadata of a new timeline into `dir` (which must exist) and loads it. */
  static async create(
    dir: string,
    tenantId: TenantId,
    timelineId: TimelineId,
    meta: TimelineMetadata,
    ancestor: Timeline | null,
    opts: TimelineOptions,
  ): Promise<Timeline> {
    await writeMetadata(join(dir, METADATA_FILE), meta, { noSync: opts.noSync })
    return Timeline.load(dir, tenantId, timelineId, ancestor, opts)
  }

  /**
   * A new timeline in an empty directory whose metadata is first written by its first flush: for imports
   * that learn their LSN while already receiving data. The directory must not be visible yet (it is renamed
   * into place after the flush).
   */
  static createUnflushed(dir: string, tenantId: TenantId, timelineId: TimelineId, meta: TimelineMetadata, opts: TimelineOptions): Timeline {
    return new Timeline(tenantId, timelineId, dir, meta, null, opts)
  }

  /** Loads a timeline from its directory: metadata, then its layer files (layer-selection.ts says which). */
  static async load(dir: string, tenantId: TenantId, timelineId: TimelineId, ancestor: Timeline | null, opts: TimelineOptions): Promise<Timeline> {
    const meta = readMetadata(join(dir, METADATA_FILE))
    const tl = new Timeline(tenantId, timelineId, dir, meta, ancestor, opts)
    if (!opts.readOnly) {
      tl.leftoversRemoved = [...(await removeTempFiles(dir)), ...(await removeEphemeralFiles(dir))]
    }
    const { load, future } = selectLayerFiles(dir, timelineId, (await listFiles(dir)).map((f) => f.name), meta)
    tl.layers.openFiles(load)
    if (!opts.readOnly) {
      // Aside, not deleted (future-layers.ts): the metadata may be an older copy, and they the only one.
      await moveFutureLayersAside(dir, future, opts)
      tl.layersMovedAside = future
      tl.futureLayersAside = (await removeRedundantFutureLayers(dir, meta.diskConsistentLsn, opts)).kept.length > 0
    }
    return tl
  }

  // --- state ---

  get metadata(): Readonly<TimelineMetadata> {
    return this.meta
  }

  get lastRecordLsn(): Lsn {
    return this.lastRecord
  }

  get prevRecordLsn(): Lsn | null {
    return this.prevRecord
  }

  get diskConsistentLsn(): Lsn {
    return this.meta.diskConsistentLsn
  }

  get ancestorLsn(): Lsn | null {
    return this.meta.ancestorLsn
  }

  /** Bytes held by in-memory layers (open and frozen): what counts against the memory ceiling. */
  get inMemoryBytes(): number {
    return this.layers.inMemoryBytes
  }

  /** The oldest LSN not yet durable (start of the oldest in-memory layer), or null when all is flushed. */
  get oldestUnflushedLsn(): Lsn | null {
    return this.layers.oldestUnflushedLsn
  }

  /** Where the open layer's WAL starts (the oldest WAL a freeze now would send to flush), or null without one. */
  get openLayerStartLsn(): Lsn | null {
    return this.layers.open?.startLsn ?? null
  }

  /** WAL bytes ingested into the open layer since it was opened. */
  get openLayerWalBytes(): bigint {
    const open = this.layers.open
    return open ? this.lastRecord - open.startLsn + 1n : 0n
  }

  get openLayerAgeMs(): number {
    return this.layers.openLayerAgeMs
  }

  get frozenLayerCount(): number {
    return this.layers.frozen.length
  }

  /** Historic layer files, ordered by LSN then key. */
  layerFiles(): Array<{ desc: LayerDesc; sizeBytes: number }> {
    return this.layers.files()
  }

  // --- write path (single writer: the ingest of this timeline) ---

  /** Stores an encoded value at (key, lsn). lsn must be above last_record_lsn's durable part. */
  put(key: Key, lsn: Lsn, value: Buffer): void {
    this.layers.forPut(lsn).put(key, lsn, value)
  }

  /** Stores a WAL record value at (key, lsn), encoded straight into the open layer (no intermediate buffer). */
  putRecord(key: Key, lsn: Lsn, raw: Buffer, willInit: boolean): void {
    this.layers.forPut(lsn).putRecord(key, lsn, raw, willInit)
  }

  /**
   * Room for an image value of `dataBytes` in the open layer, for pages built in place (a full-page image
   * restored into it): returns the page's bytes; the caller fills them, then `commitValue`s. Reserve and
   * commit as one step: no other put in between.
   */
  reserveImage(lsn: Lsn, dataBytes: number): Buffer {
    return this.layers.forPut(lsn).reserveImage(dataBytes)
  }

  /** Stores the value written into the last `reserveImage` at (key, lsn). */
  commitValue(key: Key, lsn: Lsn): void {
    this.layers.open!.commit(key, lsn)
  }

  /** `putRecord` for the key given by its prefix (keyPrefixFromFields' form) and field6: no key string built. */
  putRecordAt(prefix: string, field6: number, lsn: Lsn, raw: Buffer, willInit: boolean): void {
    this.layers.forPut(lsn).putRecordAt(prefix, field6, lsn, raw, willInit)
  }

  /** `commitValue` for the key given by its prefix and field6. */
  commitValueAt(prefix: string, field6: number, lsn: Lsn): void {
    this.layers.open!.commitAt(prefix, field6, lsn)
  }

  /**
   * Ingest is about to start: fresh slab memory starts being prepared on the flush worker thread now, so
   * the first puts do not fault it in themselves.
   */
  prepareForIngest(): void {
    this.layers.prepareForIngest()
  }

  /** Advances last_record_lsn after the values of the records up to `endLsn` were put; wakes readers. */
  finishRecords(endLsn: Lsn, lastRecordStartLsn: Lsn | null): void {
    assert(endLsn >= this.lastRecord, () => `last_record_lsn moving back from ${formatLsn(this.lastRecord)} to ${formatLsn(endLsn)}`)
    this.lastRecord = endLsn
    this.prevRecord = lastRecordStartLsn
    this.waiters.advance(endLsn)
  }

  /**
   * Closes the open layer at last_record_lsn + 1 and queues it for flushing. Without an open layer, queues
   * a metadata-only step when last_record_lsn moved past what is durable (records that wrote no values).
   * Does nothing while the open layer holds values of a record not finished (above last_record_lsn).
   */
  freeze(): void {
    this.layers.freeze(this.lastRecord, this.prevRecord, this.meta.diskConsistentLsn)
  }

  /** Flushes every frozen layer (serialized with other flushes). Resolves when they are durable. */
  flush(): Promise<void> {
    // Closed: its in-memory layers are gone; a flush now would write metadata past WAL it never wrote (one
    // asked for before the close is in the chain, which the close waits for).
    if (this.closed) return Promise.reject(timelineClosed(this.timelineId))
    const next = this.flushChain.then(() => this.flushFrozen())
    // Keep the chain alive after a failure; the caller of this flush sees the error.
    this.flushChain = next.catch(() => {})
    return next
  }

  /** Freeze and flush everything ingested so far. */
  async checkpoint(): Promise<void> {
    // Closed: freeze does nothing and flush refuses (TIMELINE_CLOSED).
    this.freeze()
    await this.flush()
  }

  private async flushFrozen(): Promise<void> {
    const frozen = this.layers.frozen
    while (frozen.length > 0) {
      const f = frozen[0]!
      await this.layers.writeL0(f)
      const meta: TimelineMetadata = {
        ...this.meta,
        layers: this.layers.fileNames(),
        diskConsistentLsn: f.lastRecordLsn,
        lastRecordLsn: f.lastRecordLsn,
        prevRecordLsn: f.prevRecordLsn !== null && f.prevRecordLsn < f.lastRecordLsn ? f.prevRecordLsn : null,
      }
      // disk_consistent_lsn advances here only once it is durable; a failed write is retried by the next flush.
      await writeMetadata(join(this.dir, METADATA_FILE), meta, { noSync: this.opts.noSync })
      this.meta = meta
      if (this.futureLayersAside) await this.dropRedundantFutureLayers()
      this.layers.dropFlushed()
      this.onDurable?.(f.lastRecordLsn)
    }
  }

  /** The layer files moved aside that the layers flushed since cover again; best effort, tried at each flush. */
  private async dropRedundantFutureLayers(): Promise<void> {
    try {
      this.futureLayersAside = (await removeRedundantFutureLayers(this.dir, this.meta.diskConsistentLsn, this.opts)).kept.length > 0
    } catch {
      // kept for now: the next flush tries again
    }
  }

  /** Replaces durable metadata fields that are not LSN progress (GC cutoff, WAL source, flags). */
  async updateMetadata(patch: Partial<Pick<TimelineMetadata, 'walSource' | 'latestGcCutoffLsn' | 'dataChecksums' | 'hintBitsLogged' | 'minReadableLsn'>>): Promise<void> {
    // In the flush chain: a flush and this write never interleave, so neither loses the other's fields.
    // A closed timeline writes nothing more (after a delete its directory is gone, or going); an update asked
    // for before the close is in the flush chain, which the close waits for.
    if (this.closed) return Promise.reject(timelineClosed(this.timelineId))
    const next = this.flushChain.then(async () => {
      const meta = { ...this.meta, ...patch }
      await writeMetadata(join(this.dir, METADATA_FILE), meta, { noSync: this.opts.noSync })
      this.meta = meta
    })
    this.flushChain = next.catch(() => {})
    return next
  }

  // --- read path (timeline-reader.ts) ---

  /**
   * Waits until WAL up to `lsn` has been ingested here, and up to the branch point in every ancestor that
   * reads at `lsn` will reach (after a restart an ancestor re-streams WAL above its disk_consistent_lsn).
   * Bounded by wait_lsn_timeout unless given.
   */
  async waitForLsn(lsn: Lsn, timeoutMs = this.opts.waitLsnTimeoutMs, signal?: AbortSignal): Promise<void> {
    if (this.lastRecord < lsn) await this.waiters.wait(lsn, timeoutMs, signal)
    let at = lsn
    for (let tl: Timeline = this; tl.ancestor !== null && tl.meta.ancestorLsn !== null; tl = tl.ancestor) {
      if (tl.meta.ancestorLsn < at) at = tl.meta.ancestorLsn
      if (tl.ancestor.lastRecord < at) await tl.ancestor.waiters.wait(at, timeoutMs, signal)
    }
  }

  /**
   * The history of `key` at `lsn`, across this timeline's layers and its ancestors. Values are checked
   * against their CRCs as they are read; any corruption throws naming the file.
   */
  getKeyHistory(key: Key, lsn: Lsn): KeyHistory {
    return this.reader.getKeyHistory(key, lsn)
  }

  /**
   * The records of `key` above `base` up to `lsn`, oldest first, when `base` is the LSN of one of its
   * versions and no image or initialisation lies above it: what a page known as of `base` (a page cache
   * entry) needs to be brought to `lsn`. Reads no layer below `base`. Null when `base` is not such a version;
   * the caller then reads the whole history.
   */
  getKeyRecordsAbove(key: Key, lsn: Lsn, base: Lsn): KeyHistory['records'] | null {
    return this.reader.getKeyRecordsAbove(key, lsn, base)
  }

  /**
   * The value of a key whose versions are always images (metadata: directories, sizes, pg_control), or null
   * when the key does not exist at `lsn`.
   */
  getImage(key: Key, lsn: Lsn): Buffer | null {
    return this.reader.getImage(key, lsn)
  }

  /**
   * getImage through the timeline's ImageCache (image-cache.ts), for hot, small image-only keys (relation
   * directories and sizes). The returned buffer is shared with the cache: never modify it.
   */
  getImageCached(key: Key, lsn: Lsn): Buffer | null {
    return this.reader.getImageCached(key, lsn)
  }

  /** Hits and misses of getImageCached, and its size (tests, metrics). */
  get imageCacheStats(): { hits: number; misses: number; entries: number; valueBytes: number } {
    return this.reader.imageCacheStats
  }

  /**
   * True when provably no version of `key` lies in (from, to] (to <= last_record_lsn); false when one does or
   * it cannot be told cheaply. For caches of read results (getImageCached, datadir/page-cache.ts).
   */
  unchangedBetween(key: Key, from: Lsn, to: Lsn): boolean {
    return this.reader.unchangedBetween(key, from, to)
  }

  // --- lifecycle ---

  /** Flushes nothing; drops in-memory state (unflushed data is re-ingested from WAL on the next load). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.layers.refusePuts()
    await this.flushChain
    this.waiters.failAll(timelineClosed(this.timelineId))
    this.layers.dropInMemory()
    this.reader.clearImageCache()
    for (const hook of this.closeHooks) hook()
    this.closeHooks.clear()
    this.layers.closeFiles()
  }

  /** Runs `hook` when the timeline closes (readers drop what they cache for it). */
  onClose(hook: () => void): void {
    if (this.closed) hook()
    else this.closeHooks.add(hook)
  }
}

function timelineClosed(id: TimelineId): PageserverError {
  return new PageserverError('unavailable', 'TIMELINE_CLOSED', `timeline ${id} is shutting down`)
}
