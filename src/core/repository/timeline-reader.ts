/**
 * TimelineReader: the read path of one timeline. A read of key K at LSN L asks the timeline's layers
 * (timeline-layers.ts) newest first — the open layer, the frozen ones newest to oldest, then the historic
 * files the layer map names — for K's values at or below L, until an image or a will-init record ends the
 * history (key-history.ts builds it); a key this branch never wrote continues on the ancestor at
 * min(L, ancestor_lsn), which must have ingested that far (else ANCESTOR_BEHIND). Hot image-only keys
 * (relation directories and sizes) are also read through a cache of their last version (image-cache.ts).
 *
 * Each Timeline makes one and keeps it; readers chain as their timelines do (`ancestor`). A reader changes
 * no layer and reads the LSNs it needs (last_record_lsn, disk_consistent_lsn, ancestor_lsn) through the
 * timeline's getters. Values are checked against their CRCs as they are read; corruption throws naming the
 * file.
 *
 * Why a class of its own: the read path needs none of the metadata writes, flushes and lifecycle of
 * timeline.ts. GetPage calls it for every page, so a read allocates only the values it gathers and the
 * history built from them (unchangedBetween reuses a scratch array), and walks ancestors in a loop.
 */
import { UnavailableError } from '../lib/errors.js'
import type { Key } from '../model/key.js'
import { formatLsn, lsn as toLsn, type Lsn } from '../pg/lsn.js'
import { LOOKUP, type LookupResult, type LsnValue } from '../layer/layer-read.js'
import { ImageCache } from './image-cache.js'
import { historyOf, imageOf, recordsAbove, type KeyHistory } from './key-history.js'
import type { Timeline } from './timeline.js'
import type { TimelineLayers } from './timeline-layers.js'

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

export class TimelineReader {
  /** The last version read of hot image-only keys (see getImageCached). */
  private readonly imageCache = new ImageCache()
  /** Scratch of unchangedBetween. */
  private readonly versionScratch: LsnValue[] = []

  /** `ancestor` is the reader of `timeline.ancestor` (null when it has none). */
  constructor(
    private readonly timeline: Timeline,
    private readonly layers: TimelineLayers,
    private readonly ancestor: TimelineReader | null,
  ) {}

  /** Timeline.getKeyHistory. */
  getKeyHistory(key: Key, lsn: Lsn): KeyHistory {
    const found: LsnValue[] = []
    if (this.collect(key, lsn, NO_FLOOR, found) === LOOKUP.missing) return { image: null, records: [], missing: true }
    return historyOf(found)
  }

  /** Timeline.getKeyRecordsAbove. */
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
    let r: TimelineReader | null = this
    let cur = lsn
    let result: LookupResult = LOOKUP.incomplete
    while (r !== null) {
      result = r.collectOwn(key, cur, found, floor)
      if (result !== LOOKUP.incomplete) break
      const ancestorLsn = r.timeline.ancestorLsn
      if (r.ancestor === null || ancestorLsn === null) break
      if (ancestorLsn < cur) cur = ancestorLsn
      if (cur < floor) break
      if (cur > r.ancestor.timeline.lastRecordLsn) throw ancestorBehind(r.timeline, cur)
      r = r.ancestor
    }
    return result
  }

  /** Timeline.getImage. */
  getImage(key: Key, lsn: Lsn): Buffer | null {
    return imageOf(this.getKeyHistory(key, lsn), key, lsn)
  }

  /**
   * Timeline.getImageCached. A cached entry answers reads between its version's LSN and the LSN it is known
   * up to. A read above that extends the entry when no version of the key arrived in between
   * (unchangedBetween), else it reads the layers. Reads above last_record_lsn are not settled (a record's
   * values may be half put) and are never cached.
   */
  getImageCached(key: Key, lsn: Lsn): Buffer | null {
    if (lsn > this.timeline.lastRecordLsn) return this.getImage(key, lsn)
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

  /** Timeline.imageCacheStats. */
  get imageCacheStats(): { hits: number; misses: number; entries: number; valueBytes: number } {
    const c = this.imageCache
    return { hits: c.hits, misses: c.misses, entries: c.size, valueBytes: c.valueBytes }
  }

  /** Drops the image cache (the timeline closes). */
  clearImageCache(): void {
    this.imageCache.clear()
  }

  /**
   * Timeline.unchangedBetween. Provable only when every version above `from` can only be in this timeline's
   * in-memory layers: `from` at or above disk_consistent_lsn (layer files hold nothing above it; a flush
   * advances it in the same tick it adds the file) and at or above the branch point (nothing above it comes
   * from the ancestor; implied by the first, since a branch starts with disk_consistent_lsn at its branch
   * point, and checked anyway). Then the open and frozen layers are asked for values in [from + 1, to],
   * which reads no value when there is none.
   */
  unchangedBetween(key: Key, from: Lsn, to: Lsn): boolean {
    if (from < this.timeline.diskConsistentLsn) return false
    const ancestorLsn = this.timeline.ancestorLsn
    if (ancestorLsn !== null && from < ancestorLsn) return false
    const floor = toLsn(from + 1n)
    const out = this.versionScratch
    out.length = 0
    const open = this.layers.open
    if (open !== null && open.startLsn <= to) open.getValues(key, to, out, floor)
    const frozen = this.layers.frozen
    for (let i = 0; out.length === 0 && i < frozen.length; i++) {
      const layer = frozen[i]!.layer
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
    // The in-memory layers, newest first: the open one (as index frozen.length), then the frozen ones.
    const frozen = this.layers.frozen
    for (let i = frozen.length; i >= 0; i--) {
      const layer = i === frozen.length ? this.layers.open : frozen[i]!.layer
      if (layer === null || cur < layer.startLsn) continue
      const r = layer.getValues(key, cur, out, floor)
      if (r !== LOOKUP.incomplete) return r
      if (layer.startLsn === 0n) return LOOKUP.incomplete
      if (layer.startLsn <= floor) return LOOKUP.complete
      cur = toLsn(layer.startLsn - 1n)
    }
    const historic = this.layers.historic
    for (;;) {
      const s = historic.search(key, cur)
      if (s === null) return LOOKUP.incomplete
      const r = s.handle.getValues(key, cur, out, s.lsnFloor > floor ? s.lsnFloor : floor)
      if (r !== LOOKUP.incomplete) return r
      if (s.lsnFloor === 0n) return LOOKUP.incomplete
      if (s.lsnFloor <= floor) return LOOKUP.complete
      cur = toLsn(s.lsnFloor - 1n)
    }
  }
}
