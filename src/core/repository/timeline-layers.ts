/**
 * TimelineLayers: the layers of one timeline and every change to them — the open in-memory layer that takes
 * puts, the frozen ones queued for flushing, and the historic layer files (LayerMap). timeline.ts decides
 * when to freeze and flush and owns the metadata; timeline-reader.ts reads these layers through `open`,
 * `frozen` and `historic` and never changes them.
 *
 * Invariants:
 * - In-memory layers tile [disk_consistent_lsn + 1, inf): frozen ones in order, then the open one, which is
 *   created by the first put at or above `nextOpenStart` (the end of the last freeze).
 * - A frozen layer keeps answering reads while its file is written (the flush worker only reads its
 *   memory), until the file is in the layer map and named by durable metadata; only then is it dropped
 *   from the queue (`dropFlushed`).
 * - Every historic layer was opened with the timeline's ids and its file's expected name (`openFile`).
 *
 * Why a class of its own: the write path (puts, freeze, flush) and the read path (timeline-reader.ts) share
 * this state, and Timeline holds the metadata that says how much of it is durable. Here the state has one
 * owner, and both paths reach it in one call on a long-lived object (or a getter): nothing per put or read.
 */
import { join } from 'node:path'
import { assert } from '../lib/errors.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import { formatLsn, lsn as toLsn, type Lsn } from '../pg/lsn.js'
import { DeltaLayer } from '../layer/delta-layer.js'
import { ImageLayer } from '../layer/image-layer.js'
import { sharedFlushWorker } from '../layer/flush-worker.js'
import { InMemoryLayer } from '../layer/inmemory-layer.js'
import { writeL0, type L0FlushJob } from '../layer/l0-flush.js'
import type { FinishedLayer } from '../layer/layer-file-writer.js'
import { SlabPool } from '../layer/value-slabs.js'
import { LayerMap } from '../layer/layer-map.js'
import type { LayerDesc } from '../layer/layer-name.js'
import type { LayerSelection } from './layer-selection.js'
import type { TimelineOptions } from './timeline.js'

export type FileLayer = DeltaLayer | ImageLayer

export interface FrozenEntry {
  layer: InMemoryLayer | null
  /** last_record_lsn and prev_record_lsn when frozen: the metadata written once this entry is flushed. */
  lastRecordLsn: Lsn
  prevRecordLsn: Lsn | null
  /** Its L0 is durable and in the layer map (a later metadata write failed: a retry writes only that). */
  written?: boolean
}

export class TimelineLayers {
  /** The open layer: takes every put since the last freeze (null until the first one). */
  private writable: InMemoryLayer | null = null
  private openedAtMs = 0
  private readonly queue: FrozenEntry[] = []
  private nextOpenStart: Lsn
  private nextEphemeralId = 0
  /** The historic layers: delta and image files. */
  readonly historic = new LayerMap<FileLayer>()
  private readonly slabPool: SlabPool
  /** Set when the timeline starts closing: a put that needs a new open layer is then a bug. */
  private putsRefused = false

  constructor(
    private readonly dir: string,
    private readonly tenantId: TenantId,
    private readonly timelineId: TimelineId,
    private readonly opts: TimelineOptions,
    diskConsistentLsn: Lsn,
  ) {
    this.slabPool = opts.slabPool ?? new SlabPool()
    // Fresh slab memory is faulted in on the flush worker thread, off the ingest path.
    if (opts.flushThread !== 'inline' && !opts.readOnly) this.slabPool.setPrefaultSource((n, bytes) => sharedFlushWorker().allocSlabs(n, bytes))
    this.nextOpenStart = toLsn(diskConsistentLsn + 1n)
  }

  // --- historic layer files ---

  /** Opens the files a load selected (layer-selection.ts) into the layer map; on a failure, closes those opened. */
  openFiles(load: LayerSelection['load']): void {
    for (const l of load) {
      try {
        this.historic.add(l.desc, this.openFile(join(this.dir, l.fileName), l.desc))
      } catch (e) {
        this.closeFiles()
        throw e
      }
    }
  }

  private openFile(path: string, desc: LayerDesc): FileLayer {
    const o = {
      expectedName: desc.name,
      expectedTenantId: this.tenantId,
      expectedTimelineId: this.timelineId,
      indexBlockCacheMax: this.opts.indexBlockCacheMax,
    }
    return desc.kind === 'delta' ? DeltaLayer.open(path, o) : ImageLayer.open(path, o)
  }

  /** Historic layer files, ordered by LSN then key. */
  files(): Array<{ desc: LayerDesc; sizeBytes: number }> {
    return this.historic.layers().map((e) => ({ desc: e.desc, sizeBytes: e.handle.fileSizeBytes }))
  }

  /** The names of the historic layer files, sorted: the list the metadata keeps. */
  fileNames(): string[] {
    return this.historic.layers().map((e) => e.desc.name).sort()
  }

  /** Closes the descriptors of the layer files (at close, or when a load fails part way). */
  closeFiles(): void {
    for (const e of this.historic.layers()) e.handle.close()
  }

  // --- in-memory layers ---

  /** The open layer (null when none). */
  get open(): InMemoryLayer | null {
    return this.writable
  }

  /** Frozen layers waiting to be flushed, oldest first. */
  get frozen(): readonly FrozenEntry[] {
    return this.queue
  }

  /** Bytes held by in-memory layers (open and frozen): what counts against the memory ceiling. */
  get inMemoryBytes(): number {
    let n = this.writable ? this.writable.sizeBytes + this.writable.indexBytes : 0
    for (const f of this.queue) if (f.layer) n += f.layer.sizeBytes + f.layer.indexBytes
    return n
  }

  /** The oldest LSN not yet durable (start of the oldest in-memory layer), or null when all is flushed. */
  get oldestUnflushedLsn(): Lsn | null {
    if (this.queue.length > 0) return this.queue[0]!.layer?.startLsn ?? this.nextOpenStart
    return this.writable ? this.writable.startLsn : null
  }

  get openLayerAgeMs(): number {
    return this.writable ? Date.now() - this.openedAtMs : 0
  }

  /** The open layer for a put at `lsn`, created (starting at the end of the last freeze) when there is none. */
  forPut(lsn: Lsn): InMemoryLayer {
    if (this.writable !== null && lsn >= this.nextOpenStart) return this.writable
    assert(!this.putsRefused, 'put into a closed timeline')
    assert(!this.opts.readOnly, 'put into a timeline opened read-only')
    assert(lsn >= this.nextOpenStart, () => `put at ${formatLsn(lsn)} below the open layer start ${formatLsn(this.nextOpenStart)}`)
    if (this.writable === null) {
      // With the flush worker, the layer's full slabs are written to its L0 file as it fills (l0-stream.ts).
      const stream =
        this.opts.flushThread !== 'inline'
          ? sharedFlushWorker().openStream({ dir: this.dir, tenantId: this.tenantId, timelineId: this.timelineId, lsnStart: this.nextOpenStart, noSync: this.opts.noSync })
          : undefined
      this.writable = InMemoryLayer.create({ dir: this.dir, fileId: this.nextEphemeralId++, startLsn: this.nextOpenStart, pool: this.slabPool, ...(stream ? { stream } : {}) })
      this.openedAtMs = Date.now()
    }
    return this.writable
  }

  /** Fresh slab memory starts being prepared on the flush worker thread (Timeline.prepareForIngest). */
  prepareForIngest(): void {
    if (!this.opts.readOnly) this.slabPool.prefaultSoon()
  }

  /** Timeline.freeze, given the timeline's last_record_lsn, prev_record_lsn and disk_consistent_lsn. */
  freeze(last: Lsn, prev: Lsn | null, diskConsistentLsn: Lsn): void {
    // Closed: the in-memory layers were dropped, so nothing may be queued, least of all a metadata-only step
    // that would declare their WAL durable.
    if (this.putsRefused) return
    if (this.writable !== null) {
      // A record that failed midway (say, a spill on a full disk) left values above last_record_lsn; they
      // are replaced when the record is ingested again. Until then the open layer cannot close at
      // last_record_lsn + 1, and stays open (its WAL is above disk_consistent_lsn, so nothing is lost).
      if (this.writable.hasPutsFrom(toLsn(last + 1n))) return
      this.writable.freeze(toLsn(last + 1n))
      this.queue.push({ layer: this.writable, lastRecordLsn: last, prevRecordLsn: prev })
      this.writable = null
      this.nextOpenStart = toLsn(last + 1n)
      return
    }
    const queuedUpTo = this.queue.length > 0 ? this.queue[this.queue.length - 1]!.lastRecordLsn : diskConsistentLsn
    if (last > queuedUpTo) {
      this.queue.push({ layer: null, lastRecordLsn: last, prevRecordLsn: prev })
      this.nextOpenStart = toLsn(last + 1n)
    }
  }

  /**
   * Writes the layer of frozen entry `f` as an L0 delta layer file and adds it to the layer map, unless it
   * holds no values or was written already. Resolves once the file is durable under its name.
   */
  async writeL0(f: FrozenEntry): Promise<void> {
    if (f.layer !== null && f.layer.entryCount > 0 && f.written !== true) {
      const layer = f.layer
      const job: L0FlushJob = { layer: layer.beginFlush(), dir: this.dir, tenantId: this.tenantId, timelineId: this.timelineId, noSync: this.opts.noSync }
      try {
        // The file is durable under its name when this resolves (written, fsynced, renamed, dir fsynced).
        const done: FinishedLayer = this.opts.flushThread === 'inline' ? await writeL0(job) : await sharedFlushWorker().run(job)
        this.historic.add(done.desc, this.openFile(done.path, done.desc))
      } catch (e) {
        // Nothing was added: the layer takes puts of no one but stays readable, and a retry writes it again.
        layer.endFlush()
        throw e
      }
      f.written = true
    }
  }

  /** Drops the oldest frozen entry, flushed and named by durable metadata: its file answers reads now. */
  dropFlushed(): void {
    this.queue.shift()?.layer?.delete()
  }

  // --- lifecycle ---

  /** The timeline is closing: from now on a put that needs a new open layer is a bug. */
  refusePuts(): void {
    this.putsRefused = true
  }

  /** Drops the open and frozen layers (their values are re-ingested from WAL on the next load). */
  dropInMemory(): void {
    this.writable?.delete()
    // Not kept as the open layer: a put after close must meet the closed-timeline assert (forPut), not a
    // deleted layer, and the in-memory figures must say nothing is held.
    this.writable = null
    for (const f of this.queue) f.layer?.delete()
    this.queue.length = 0
    if (this.opts.slabPool === undefined) this.slabPool.trim()
  }
}
