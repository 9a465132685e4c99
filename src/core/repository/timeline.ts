/**
 * Timeline: one branch of a tenant's history, a versioned key-value store (key, lsn) -> value.
 *
 * Writes (ingest) go to the open in-memory layer (values in slabs of the repository's SlabPool); `freeze`
 * closes it at last_record_lsn + 1 and `flush` writes frozen layers, oldest first, as L0 delta layer files
 * — on the flush worker thread (layer/flush-worker.ts), so ingest continues meanwhile — then, back on this
 * thread, adds each file to the layer map and advances disk_consistent_lsn in the metadata. Reads walk the
 * layers newest first — open, frozen, then historic files through the layer map
 * — collecting one key's values until an image or a will-init record, and continue on the ancestor
 * timeline at min(lsn, ancestor_lsn) for keys this branch never wrote. Hot image-only keys (relation
 * directories and sizes) are also read through a per-timeline cache of their last version (getImageCached).
 *
 * Invariants:
 * - disk_consistent_lsn <= last_record_lsn; every value at or below disk_consistent_lsn is in a layer file
 *   made durable before the metadata that names that LSN (file fsync + rename + dir fsync, then metadata).
 * - Layer files whose LSN range reaches beyond disk_consistent_lsn + 1 were written by a flush that did not
 *   finish: they are deleted on load, and the WAL above disk_consistent_lsn is ingested again.
 * - In-memory layers tile [disk_consistent_lsn + 1, inf): frozen ones in order, then the open one.
 * - One flush at a time (a promise chain); ingest continues into a new open layer meanwhile. A frozen layer
 *   keeps answering reads while its file is written (the worker only reads its memory), until the file is
 *   in the layer map.
 *
 * This class knows nothing of PostgreSQL: keys are opaque (datadir/ gives them meaning).
 */
import { join } from 'node:path'
import { assert, PageserverError, UnavailableError } from '../lib/errors.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import type { Key } from '../model/key.js'
import { formatLsn, lsn as toLsn, type Lsn } from '../pg/lsn.js'
import { DeltaLayer } from '../layer/delta-layer.js'
import { ImageLayer } from '../layer/image-layer.js'
import { sharedFlushWorker } from '../layer/flush-worker.js'
import { InMemoryLayer, removeEphemeralFiles } from '../layer/inmemory-layer.js'
import { writeL0, type L0FlushJob } from '../layer/l0-flush.js'
import type { FinishedLayer } from '../layer/layer-file-writer.js'
import { SlabPool } from '../layer/value-slabs.js'
import { LayerMap } from '../layer/layer-map.js'
import type { LayerDesc } from '../layer/layer-name.js'
import { LOOKUP, type LookupResult, type LsnValue } from '../layer/layer-read.js'
import { listFiles } from '../storage/directory.js'
import { moveFutureLayersAside, removeRedundantFutureLayers } from './future-layers.js'
import { removeTempFiles } from '../storage/durable-file.js'
import { LsnWaiters } from './lsn-waiters.js'
import { ImageCache } from './image-cache.js'
import { historyOf, imageOf, recordsAbove, type KeyHistory } from './key-history.js'
import { readMetadata, writeMetadata, type TimelineMetadata } from './metadata.js'
import { selectLayerFiles } from './layer-selection.js'

export type FileLayer = DeltaLayer | ImageLayer
export type { KeyHistory } from './key-history.js'

/** No floor: a history read down to its image or initialisation. */
const NO_FLOOR = 0n as Lsn

/**
 * A branch reads its ancestor at `at`, but the ancestor has not ingested that far: after a restart it is
 * still re-streaming its WAL, or (offline) its WAL above its last flush is held only by a running server.
 */
function ancestorBehind(child: Timeline, at: Lsn): UnavailableError {
  const a = child.ancestor!
  return new UnavailableError('ANCESTOR_BEHIND', `timeline ${a.timelineId} (ancestor of ${child.timelineId}) has WAL only up to ${formatLsn(a.lastRecordLsn)}, but the branch reads it at ${formatLsn(at)}`, {
    hint:
      'The ancestor has not received its WAL up to the branch point yet: let `pageserver serve` stream it (or run `timeline sync` on it). ' +
      'If it never will (its metadata restored from an older copy, its source gone), the layer files it had beyond are in future-layers/ of its directory.',
    details: { ancestor: a.timelineId, ancestorLastRecordLsn: formatLsn(a.lastRecordLsn), lsn: formatLsn(at) },
  })
}

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

interface FrozenEntry {
  layer: InMemoryLayer | null
  /** last_record_lsn and prev_record_lsn when frozen: the metadata written once this entry is flushed. */
  lastRecordLsn: Lsn
  prevRecordLsn: Lsn | null
  /** Its L0 is durable and in the layer map (a later metadata write failed: a retry writes only that). */
  written?: boolean
}

export class Timeline {
  private meta: TimelineMetadata
  private lastRecord: Lsn
  private prevRecord: Lsn | null
  private open: InMemoryLayer | null = null
  private openedAtMs = 0
  private readonly frozen: FrozenEntry[] = []
  private nextOpenStart: Lsn
  private nextEphemeralId = 0
  private readonly layers = new LayerMap<FileLayer>()
  private flushChain: Promise<void> = Promise.resolve()
  private readonly slabPool: SlabPool
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
  /** Read path: the last version read of hot image-only keys (see getImageCached). */
  private readonly imageCache = new ImageCache()
  /** Run by close(). */
  private readonly closeHooks = new Set<() => void>()
  /** Read path: scratch of unchangedBetween. */
  private readonly versionScratch: LsnValue[] = []

  private constructor(
    readonly tenantId: TenantId,
    readonly timelineId: TimelineId,
    readonly dir: string,
    meta: TimelineMetadata,
    readonly ancestor: Timeline | null,
    private readonly opts: TimelineOptions,
  ) {
    this.meta = meta
    this.slabPool = opts.slabPool ?? new SlabPool()
    // Fresh slab memory is faulted in on the flush worker thread, off the ingest path.
    if (opts.flushThread !== 'inline' && !opts.readOnly) this.slabPool.setPrefaultSource((n, bytes) => sharedFlushWorker().allocSlabs(n, bytes))
    this.lastRecord = meta.diskConsistentLsn
    this.prevRecord = meta.prevRecordLsn
    this.nextOpenStart = toLsn(meta.diskConsistentLsn + 1n)
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
    for (const l of load) {
      try {
        tl.layers.add(l.desc, tl.openLayerFile(join(dir, l.fileName), l.desc))
      } catch (e) {
        tl.closeLayerFiles()
        throw e
      }
    }
    if (!opts.readOnly) {
      // Aside, not deleted (future-layers.ts): the metadata may be an older copy, and they the only one.
      await moveFutureLayersAside(dir, future, opts)
      tl.layersMovedAside = future
      tl.futureLayersAside = (await removeRedundantFutureLayers(dir, meta.diskConsistentLsn, opts)).kept.length > 0
    }
    return tl
  }

  private openLayerFile(path: string, desc: LayerDesc): FileLayer {
    const o = {
      expectedName: desc.name,
      expectedTenantId: this.tenantId,
      expectedTimelineId: this.timelineId,
      indexBlockCacheMax: this.opts.indexBlockCacheMax,
    }
    return desc.kind === 'delta' ? DeltaLayer.open(path, o) : ImageLayer.open(path, o)
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
    let n = this.open ? this.open.sizeBytes + this.open.indexBytes : 0
    for (const f of this.frozen) if (f.layer) n += f.layer.sizeBytes + f.layer.indexBytes
    return n
  }

  /** The oldest LSN not yet durable (start of the oldest in-memory layer), or null when all is flushed. */
  get oldestUnflushedLsn(): Lsn | null {
    if (this.frozen.length > 0) return this.frozen[0]!.layer?.startLsn ?? this.nextOpenStart
    return this.open ? this.open.startLsn : null
  }

  /** WAL bytes ingested into the open layer since it was opened. */
  get openLayerWalBytes(): bigint {
    return this.open ? this.lastRecord - this.open.startLsn + 1n : 0n
  }

  get openLayerAgeMs(): number {
    return this.open ? Date.now() - this.openedAtMs : 0
  }

  get frozenLayerCount(): number {
    return this.frozen.length
  }

  /** Historic layer files, ordered by LSN then key. */
  layerFiles(): Array<{ desc: LayerDesc; sizeBytes: number }> {
    return this.layers.layers().map((e) => ({ desc: e.desc, sizeBytes: e.handle.fileSizeBytes }))
  }

  // --- write path (single writer: the ingest of this timeline) ---

  /** Stores an encoded value at (key, lsn). lsn must be above last_record_lsn's durable part. */
  put(key: Key, lsn: Lsn, value: Buffer): void {
    this.openLayer(lsn).put(key, lsn, value)
  }

  /** Stores a WAL record value at (key, lsn), encoded straight into the open layer (no intermediate buffer). */
  putRecord(key: Key, lsn: Lsn, raw: Buffer, willInit: boolean): void {
    this.openLayer(lsn).putRecord(key, lsn, raw, willInit)
  }

  /**
   * Room for an image value of `dataBytes` in the open layer, for pages built in place (a full-page image
   * restored into it): returns the page's bytes; the caller fills them, then `commitValue`s. Reserve and
   * commit as one step: no other put in between.
   */
  reserveImage(lsn: Lsn, dataBytes: number): Buffer {
    return this.openLayer(lsn).reserveImage(dataBytes)
  }

  /** Stores the value written into the last `reserveImage` at (key, lsn). */
  commitValue(key: Key, lsn: Lsn): void {
    this.open!.commit(key, lsn)
  }

  /** `putRecord` for the key given by its prefix (keyPrefixFromFields' form) and field6: no key string built. */
  putRecordAt(prefix: string, field6: number, lsn: Lsn, raw: Buffer, willInit: boolean): void {
    this.openLayer(lsn).putRecordAt(prefix, field6, lsn, raw, willInit)
  }

  /** `commitValue` for the key given by its prefix and field6. */
  commitValueAt(prefix: string, field6: number, lsn: Lsn): void {
    this.open!.commitAt(prefix, field6, lsn)
  }

  private openLayer(lsn: Lsn): InMemoryLayer {
    if (this.open !== null && lsn >= this.nextOpenStart) return this.open
    assert(!this.closed, 'put into a closed timeline')
    assert(!this.opts.readOnly, 'put into a timeline opened read-only')
    assert(lsn >= this.nextOpenStart, () => `put at ${formatLsn(lsn)} below the open layer start ${formatLsn(this.nextOpenStart)}`)
    if (this.open === null) {
      // With the flush worker, the layer's full slabs are written to its L0 file as it fills (l0-stream.ts).
      const stream =
        this.opts.flushThread !== 'inline'
          ? sharedFlushWorker().openStream({ dir: this.dir, tenantId: this.tenantId, timelineId: this.timelineId, lsnStart: this.nextOpenStart, noSync: this.opts.noSync })
          : undefined
      this.open = InMemoryLayer.create({ dir: this.dir, fileId: this.nextEphemeralId++, startLsn: this.nextOpenStart, pool: this.slabPool, ...(stream ? { stream } : {}) })
      this.openedAtMs = Date.now()
    }
    return this.open
  }

  /**
   * Ingest is about to start: fresh slab memory starts being prepared on the flush worker thread now, so
   * the first puts do not fault it in themselves.
   */
  prepareForIngest(): void {
    if (!this.opts.readOnly) this.slabPool.prefaultSoon()
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
    const last = this.lastRecord
    if (this.open !== null) {
      // A record that failed midway (say, a spill on a full disk) left values above last_record_lsn; they
      // are replaced when the record is ingested again. Until then the open layer cannot close at
      // last_record_lsn + 1, and stays open (its WAL is above disk_consistent_lsn, so nothing is lost).
      if (this.open.hasPutsFrom(toLsn(last + 1n))) return
      this.open.freeze(toLsn(last + 1n))
      this.frozen.push({ layer: this.open, lastRecordLsn: last, prevRecordLsn: this.prevRecord })
      this.open = null
      this.nextOpenStart = toLsn(last + 1n)
      return
    }
    const queuedUpTo = this.frozen.length > 0 ? this.frozen[this.frozen.length - 1]!.lastRecordLsn : this.meta.diskConsistentLsn
    if (last > queuedUpTo) {
      this.frozen.push({ layer: null, lastRecordLsn: last, prevRecordLsn: this.prevRecord })
      this.nextOpenStart = toLsn(last + 1n)
    }
  }

  /** Flushes every frozen layer (serialized with other flushes). Resolves when they are durable. */
  flush(): Promise<void> {
    const next = this.flushChain.then(() => this.flushFrozen())
    // Keep the chain alive after a failure; the caller of this flush sees the error.
    this.flushChain = next.catch(() => {})
    return next
  }

  /** Freeze and flush everything ingested so far. */
  async checkpoint(): Promise<void> {
    this.freeze()
    await this.flush()
  }

  private async flushFrozen(): Promise<void> {
    while (this.frozen.length > 0) {
      const f = this.frozen[0]!
      if (f.layer !== null && f.layer.entryCount > 0 && f.written !== true) {
        const layer = f.layer
        const job: L0FlushJob = { layer: layer.beginFlush(), dir: this.dir, tenantId: this.tenantId, timelineId: this.timelineId, noSync: this.opts.noSync }
        try {
          // The file is durable under its name when this resolves (written, fsynced, renamed, dir fsynced).
          const done: FinishedLayer = this.opts.flushThread === 'inline' ? await writeL0(job) : await sharedFlushWorker().run(job)
          this.layers.add(done.desc, this.openLayerFile(done.path, done.desc))
        } catch (e) {
          // Nothing was added: the layer takes puts of no one but stays readable, and a retry writes it again.
          layer.endFlush()
          throw e
        }
        f.written = true
      }
      const meta: TimelineMetadata = {
        ...this.meta,
        layers: this.layers.layers().map((e) => e.desc.name).sort(),
        diskConsistentLsn: f.lastRecordLsn,
        lastRecordLsn: f.lastRecordLsn,
        prevRecordLsn: f.prevRecordLsn !== null && f.prevRecordLsn < f.lastRecordLsn ? f.prevRecordLsn : null,
      }
      // disk_consistent_lsn advances here only once it is durable; a failed write is retried by the next flush.
      await writeMetadata(join(this.dir, METADATA_FILE), meta, { noSync: this.opts.noSync })
      this.meta = meta
      if (this.futureLayersAside) await this.dropRedundantFutureLayers()
      this.frozen.shift()
      f.layer?.delete()
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
    const next = this.flushChain.then(async () => {
      const meta = { ...this.meta, ...patch }
      await writeMetadata(join(this.dir, METADATA_FILE), meta, { noSync: this.opts.noSync })
      this.meta = meta
    })
    this.flushChain = next.catch(() => {})
    return next
  }

  // --- read path ---

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
    const found: LsnValue[] = []
    if (this.collect(key, lsn, NO_FLOOR, found) === LOOKUP.missing) return { image: null, records: [], missing: true }
    return historyOf(found)
  }

  /**
   * The records of `key` above `base` up to `lsn`, oldest first, when `base` is the LSN of one of its
   * versions and no image or initialisation lies above it: what a page known as of `base` (a page cache
   * entry) needs to be brought to `lsn`. Reads no layer below `base`. Null when `base` is not such a version;
   * the caller then reads the whole history.
   */
  getKeyRecordsAbove(key: Key, lsn: Lsn, base: Lsn): KeyHistory['records'] | null {
    const found: LsnValue[] = []
    this.collect(key, lsn, base, found)
    return recordsAbove(found, base)
  }

  /**
   * Values of `key` at or below `lsn`, newest first, across this timeline's layers and its ancestors, down
   * to an image or a will-init record, or down to `floor` (inclusive) when no layer below it is needed.
   */
  private collect(key: Key, lsn: Lsn, floor: Lsn, found: LsnValue[]): LookupResult {
    let tl: Timeline | null = this
    let cur = lsn
    let result: LookupResult = LOOKUP.incomplete
    while (tl !== null) {
      result = tl.collectOwn(key, cur, found, floor)
      if (result !== LOOKUP.incomplete) break
      if (tl.ancestor === null || tl.meta.ancestorLsn === null) break
      if (tl.meta.ancestorLsn < cur) cur = tl.meta.ancestorLsn
      if (cur < floor) break
      if (cur > tl.ancestor.lastRecordLsn) throw ancestorBehind(tl, cur)
      tl = tl.ancestor
    }
    return result
  }

  /**
   * The value of a key whose versions are always images (metadata: directories, sizes, pg_control), or null
   * when the key does not exist at `lsn`.
   */
  getImage(key: Key, lsn: Lsn): Buffer | null {
    return imageOf(this.getKeyHistory(key, lsn), key, lsn)
  }

  /**
   * getImage through the timeline's ImageCache (image-cache.ts), for hot, small image-only keys (relation
   * directories and sizes). The returned buffer is shared with the cache: never modify it.
   *
   * A cached entry answers reads between its version's LSN and the LSN it is known up to. A read above
   * that extends the entry when no version of the key arrived in between (unchangedBetween), else it reads
   * the layers. Reads above last_record_lsn are not settled (a record's values may be half put) and are
   * never cached.
   */
  getImageCached(key: Key, lsn: Lsn): Buffer | null {
    if (lsn > this.lastRecord) return this.getImage(key, lsn)
    const cache = this.imageCache
    const e = cache.get(key)
    if (e !== undefined) {
      if (lsn <= e.knownUpToLsn) {
        if (lsn >= e.versionLsn) {
          cache.hits++
          return e.value
        }
      } else if (this.unchangedBetween(key, e.knownUpToLsn, lsn)) {
        e.knownUpToLsn = lsn
        cache.hits++
        return e.value
      }
    }
    cache.misses++
    const h = this.getKeyHistory(key, lsn)
    const value = imageOf(h, key, lsn)
    // An older read than the entry's: keep the entry, which serves the newest reads.
    if (e !== undefined && lsn < e.knownUpToLsn) return value
    return cache.set(key, value, h.missing ? (0n as Lsn) : h.image!.lsn, lsn)
  }

  /** Hits and misses of getImageCached, and its size (tests, metrics). */
  get imageCacheStats(): { hits: number; misses: number; entries: number; valueBytes: number } {
    const c = this.imageCache
    return { hits: c.hits, misses: c.misses, entries: c.size, valueBytes: c.valueBytes }
  }

  /**
   * True when provably no version of `key` lies in (from, to] (to <= last_record_lsn); false when one does or
   * it cannot be told cheaply. For caches of read results (getImageCached, datadir/page-cache.ts). Provable only
   * when every version above `from` can only be in this timeline's in-memory layers: `from` at or above
   * disk_consistent_lsn (layer files hold nothing above it; a flush advances it in the same tick it adds
   * the file) and at or above the branch point (nothing above it comes from the ancestor; implied by the
   * first, since a branch starts with disk_consistent_lsn at its branch point, and checked anyway). Then the open
   * and frozen layers are asked for values in [from + 1, to], which reads no value when there is none.
   */
  unchangedBetween(key: Key, from: Lsn, to: Lsn): boolean {
    if (from < this.meta.diskConsistentLsn) return false
    if (this.meta.ancestorLsn !== null && from < this.meta.ancestorLsn) return false
    const floor = toLsn(from + 1n)
    const out = this.versionScratch
    out.length = 0
    if (this.open !== null && this.open.startLsn <= to) this.open.getValues(key, to, out, floor)
    for (let i = 0; out.length === 0 && i < this.frozen.length; i++) {
      const layer = this.frozen[i]!.layer
      if (layer !== null && layer.startLsn <= to) layer.getValues(key, to, out, floor)
    }
    const none = out.length === 0
    out.length = 0
    return none
  }

  /**
   * This timeline's values of `key` at or below `lsnIn`, newest first, into `out`: complete once an image or
   * a will-init record is in, or once every layer reaching down to `floor` was read (values below `floor`
   * found in those layers are included; the caller ignores them).
   */
  private collectOwn(key: Key, lsnIn: Lsn, out: LsnValue[], floor: Lsn): LookupResult {
    let cur = lsnIn
    if (this.open !== null && cur >= this.open.startLsn) {
      const r = this.open.getValues(key, cur, out, floor)
      if (r !== LOOKUP.incomplete) return r
      if (this.open.startLsn === 0n) return LOOKUP.incomplete
      if (this.open.startLsn <= floor) return LOOKUP.complete
      cur = toLsn(this.open.startLsn - 1n)
    }
    for (let i = this.frozen.length - 1; i >= 0; i--) {
      const layer = this.frozen[i]!.layer
      if (layer === null || cur < layer.startLsn) continue
      const r = layer.getValues(key, cur, out, floor)
      if (r !== LOOKUP.incomplete) return r
      if (layer.startLsn === 0n) return LOOKUP.incomplete
      if (layer.startLsn <= floor) return LOOKUP.complete
      cur = toLsn(layer.startLsn - 1n)
    }
    for (;;) {
      const s = this.layers.search(key, cur)
      if (s === null) return LOOKUP.incomplete
      const r = s.handle.getValues(key, cur, out, s.lsnFloor > floor ? s.lsnFloor : floor)
      if (r !== LOOKUP.incomplete) return r
      if (s.lsnFloor === 0n) return LOOKUP.incomplete
      if (s.lsnFloor <= floor) return LOOKUP.complete
      cur = toLsn(s.lsnFloor - 1n)
    }
  }

  // --- lifecycle ---

  /** Flushes nothing; drops in-memory state (unflushed data is re-ingested from WAL on the next load). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.flushChain
    this.waiters.failAll(new PageserverError('unavailable', 'TIMELINE_CLOSED', `timeline ${this.timelineId} is shutting down`))
    this.open?.delete()
    for (const f of this.frozen) f.layer?.delete()
    this.frozen.length = 0
    if (this.opts.slabPool === undefined) this.slabPool.trim()
    this.imageCache.clear()
    for (const hook of this.closeHooks) hook()
    this.closeHooks.clear()
    this.closeLayerFiles()
  }

  /** Closes the descriptors of the layer files (at close, or when a load fails part way). */
  private closeLayerFiles(): void {
    for (const e of this.layers.layers()) e.handle.close()
  }

  /** Runs `hook` when the timeline closes (readers drop what they cache for it). */
  onClose(hook: () => void): void {
    if (this.closed) hook()
    else this.closeHooks.add(hook)
  }
}
