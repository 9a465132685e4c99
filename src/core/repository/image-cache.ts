/**
 * ImageCache: per timeline, the last version read of small image-only keys (relation directories and
 * sizes, the database directory), so that the three lookups of every GetPage — "does the relation
 * exist", "how many blocks", "the page" — cost one layer search instead of three.
 *
 * An entry says: "the newest version of `key` at or below `knownUpToLsn` was written at `versionLsn`
 * (0 and `value` null when no version exists at all), and is `value`". A read at lsn hits when
 * versionLsn <= lsn <= knownUpToLsn. The facts behind an entry never become false: history at or below a
 * timeline's last_record_lsn is immutable (ingest puts a record's values before it advances
 * last_record_lsn, at that record's end LSN, and never below), so nothing is invalidated on writes. A
 * read above knownUpToLsn may *extend* the entry only after the timeline checked that no version arrived in
 * between (Timeline.getImageCached, timeline-reader.ts, does that against its in-memory layers); otherwise it
 * reads the layers.
 *
 * Bounds: at most IMAGE_CACHE_ENTRIES_MAX entries and IMAGE_CACHE_BYTES_MAX bytes (values plus
 * IMAGE_CACHE_ENTRY_OVERHEAD_BYTES each); values above IMAGE_CACHE_VALUE_BYTES_MAX are not cached (a huge
 * relation directory is read each time). Eviction is oldest-inserted first. Cached values are private copies
 * (ownedCopy), shared by every caller: read-only.
 */
import { ownedCopy } from '../lib/bytes.js'
import type { Key } from '../model/key.js'
import type { Lsn } from '../pg/lsn.js'

export const IMAGE_CACHE_ENTRIES_MAX = 65_536
export const IMAGE_CACHE_BYTES_MAX = 32 * 1024 * 1024
export const IMAGE_CACHE_VALUE_BYTES_MAX = 1024 * 1024
/** Counted per entry besides its value (the entry, its key and map slot), so tiny values cannot exceed the bound. */
export const IMAGE_CACHE_ENTRY_OVERHEAD_BYTES = 128

export interface ImageCacheEntry {
  /** The value (read-only, shared), or null: no version at or below knownUpToLsn. */
  readonly value: Buffer | null
  /** LSN of the version; 0 when value is null. */
  readonly versionLsn: Lsn
  /** The entry is known to be the newest version at every LSN from versionLsn up to this one. */
  knownUpToLsn: Lsn
}

export class ImageCache {
  private readonly map = new Map<Key, ImageCacheEntry>()
  private bytes = 0
  hits = 0
  misses = 0

  constructor(
    private readonly entriesMax = IMAGE_CACHE_ENTRIES_MAX,
    private readonly bytesMax = IMAGE_CACHE_BYTES_MAX,
  ) {}

  get size(): number {
    return this.map.size
  }

  /** Bytes counted against the bound: values plus the per-entry overhead. */
  get valueBytes(): number {
    return this.bytes
  }

  get(key: Key): ImageCacheEntry | undefined {
    return this.map.get(key)
  }

  /** Stores (a copy of) `value` as the newest version of `key` up to `knownUpToLsn`; returns the cached copy. */
  set(key: Key, value: Buffer | null, versionLsn: Lsn, knownUpToLsn: Lsn): Buffer | null {
    const valueBytes = value?.length ?? 0
    const size = valueBytes + IMAGE_CACHE_ENTRY_OVERHEAD_BYTES
    this.delete(key)
    if (valueBytes > IMAGE_CACHE_VALUE_BYTES_MAX || size > this.bytesMax) return value
    while (this.map.size > 0 && (this.map.size >= this.entriesMax || this.bytes + size > this.bytesMax)) {
      this.delete(this.map.keys().next().value as Key)
    }
    const copy = value === null ? null : ownedCopy(value)
    this.map.set(key, { value: copy, versionLsn, knownUpToLsn })
    this.bytes += size
    return copy
  }

  delete(key: Key): void {
    const e = this.map.get(key)
    if (e === undefined) return
    this.bytes -= (e.value?.length ?? 0) + IMAGE_CACHE_ENTRY_OVERHEAD_BYTES
    this.map.delete(key)
  }

  clear(): void {
    this.map.clear()
    this.bytes = 0
  }
}
