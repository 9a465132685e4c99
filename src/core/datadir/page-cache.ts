/**
 * PageCache: relation pages as GetPage serves them (checksum set), so that a page asked for again costs a
 * map lookup instead of a history lookup, a value copy and a checksum. Only pages whose newest version is
 * an image are kept (what redo produces is rebuilt each time). Shared by every reader of the process and
 * bounded as a whole; each reader (one per timeline) has its own space of entries, keyed by page key.
 *
 * Validity, as the timeline's image cache (repository/image-cache.ts): an entry says "the newest version of
 * the key at or below knownUpToLsn is the image written at versionLsn, and this is it, served". A read at
 * lsn hits when versionLsn <= lsn <= knownUpToLsn; above knownUpToLsn it hits only once the timeline proved
 * that no version arrived in between (`unchangedBetween`), which extends the entry; reads above the
 * timeline's last_record_lsn never use the cache. History at or below last_record_lsn never changes, so
 * nothing is invalidated on writes.
 *
 * Admission and eviction: a page is kept the second time it is offered while still among the last
 * GHOSTS_MAX pages offered once (a scan that touches every page once passes through); eviction is CLOCK.
 * Bound: `bytesMax` counts each entry as its page plus ENTRY_OVERHEAD_BYTES.
 *
 * Pages handed out by a hit are the cached buffers themselves: callers must not change them (the page
 * service writes them to the socket as they are).
 */
import { assert } from '../lib/errors.js'
import type { Key } from '../model/key.js'
import type { Lsn } from '../pg/lsn.js'

export const PAGE_CACHE_BYTES_MAX_DEFAULT = 32 * 1024 * 1024
export const ENTRY_OVERHEAD_BYTES = 256
/** Pages remembered as offered once. */
export const GHOSTS_MAX = 16_384

/** What validating an entry needs from the timeline (repository/timeline.ts implements it). */
export interface VersionOracle {
  readonly lastRecordLsn: Lsn
  /** True only when provably no version of `key` lies in (from, to]. */
  unchangedBetween(key: Key, from: Lsn, to: Lsn): boolean
}

interface Entry {
  readonly space: PageCacheSpace
  readonly key: Key
  readonly page: Buffer
  readonly versionLsn: Lsn
  knownUpToLsn: Lsn
  referenced: boolean
}

export class PageCache {
  private readonly clock = new Set<Entry>()
  private bytes = 0
  private readonly ghostSpaces: Array<PageCacheSpace | null>
  private readonly ghostKeys: Array<Key | null>
  private ghostNext = 0
  hits = 0
  misses = 0
  /** While set, every lookup misses and nothing is admitted; the contents stay (to measure without it). */
  bypass = false

  constructor(
    private bytesMax: number = PAGE_CACHE_BYTES_MAX_DEFAULT,
    ghostsMax: number = GHOSTS_MAX,
  ) {
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0, 'page cache size must be a non-negative integer')
    assert(Number.isSafeInteger(ghostsMax) && ghostsMax >= 1, 'page cache ghost list must hold at least one page')
    this.ghostSpaces = new Array<PageCacheSpace | null>(ghostsMax).fill(null)
    this.ghostKeys = new Array<Key | null>(ghostsMax).fill(null)
  }

  get sizeBytes(): number {
    return this.bytes
  }

  get entries(): number {
    return this.clock.size
  }

  get capacityBytes(): number {
    return this.bytesMax
  }

  /** Changes the bound (0 disables the cache), evicting as needed. */
  resize(bytesMax: number): void {
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0, 'page cache size must be a non-negative integer')
    this.bytesMax = bytesMax
    this.evictUntil(0)
  }

  /** A new, empty space for the pages of one timeline's reader. */
  space(oracle: VersionOracle): PageCacheSpace {
    return new PageCacheSpace(this, oracle)
  }

  /** The served page of `key` at `lsn` (shared: read-only), or null. */
  get(space: PageCacheSpace, key: Key, lsn: Lsn): Buffer | null {
    if (this.bypass) return null
    const e = space.map.get(key)
    const oracle = space.oracle
    if (e === undefined || lsn > oracle.lastRecordLsn || lsn < e.versionLsn) {
      this.misses++
      return null
    }
    if (lsn > e.knownUpToLsn) {
      if (!oracle.unchangedBetween(key, e.knownUpToLsn, lsn)) {
        this.misses++
        return null
      }
      e.knownUpToLsn = lsn
    }
    this.hits++
    e.referenced = true
    return e.page
  }

  /**
   * Offers the page served for `key` at `readLsn`, built from the image written at `versionLsn` with
   * nothing newer up to readLsn. If admitted (see Admission), `page` itself is kept: the caller must not
   * change it afterwards.
   */
  offer(space: PageCacheSpace, key: Key, versionLsn: Lsn, readLsn: Lsn, page: Buffer): void {
    if (this.bypass || readLsn > space.oracle.lastRecordLsn) return
    const size = page.length + ENTRY_OVERHEAD_BYTES
    if (size > this.bytesMax) return
    const old = space.map.get(key)
    if (old !== undefined) {
      // A newer read replaces the entry; an older one leaves it (the entry serves the latest reads).
      if (readLsn <= old.knownUpToLsn) return
      this.remove(old)
    } else if (!space.ghosts.delete(key)) {
      const i = this.ghostNext
      const gs = this.ghostSpaces[i]
      if (gs !== null) gs.ghosts.delete(this.ghostKeys[i]!)
      this.ghostSpaces[i] = space
      this.ghostKeys[i] = key
      this.ghostNext = i + 1 === this.ghostKeys.length ? 0 : i + 1
      space.ghosts.add(key)
      return
    }
    this.evictUntil(size)
    const e: Entry = { space, key, page, versionLsn, knownUpToLsn: readLsn, referenced: false }
    space.map.set(key, e)
    this.clock.add(e)
    this.bytes += size
  }

  /** Drops every entry of a space. */
  drop(space: PageCacheSpace): void {
    for (const e of [...space.map.values()]) this.remove(e)
    space.ghosts.clear()
  }

  private remove(e: Entry): void {
    if (this.clock.delete(e)) this.bytes -= e.page.length + ENTRY_OVERHEAD_BYTES
    if (e.space.map.get(e.key) === e) e.space.map.delete(e.key)
  }

  private evictUntil(incoming: number): void {
    while (this.clock.size > 0 && this.bytes + incoming > this.bytesMax) {
      const e = this.clock.values().next().value as Entry
      if (e.referenced) {
        e.referenced = false
        this.clock.delete(e)
        this.clock.add(e)
        continue
      }
      this.remove(e)
    }
  }
}

/** The entries of one reader (one timeline). */
export class PageCacheSpace {
  readonly map = new Map<Key, Entry>()
  /** Keys offered once and not yet cached (members of the cache's ghost ring). */
  readonly ghosts = new Set<Key>()

  constructor(
    readonly cache: PageCache,
    readonly oracle: VersionOracle,
  ) {}

  get(key: Key, lsn: Lsn): Buffer | null {
    return this.cache.get(this, key, lsn)
  }

  offer(key: Key, versionLsn: Lsn, readLsn: Lsn, page: Buffer): void {
    this.cache.offer(this, key, versionLsn, readLsn, page)
  }
}

/** The process-wide cache every DatadirReader uses unless given another. */
export const sharedPageCache = new PageCache()
