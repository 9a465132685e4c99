/**
 * PageCache: relation pages as GetPage serves them (checksum set), so that a page asked for again costs a
 * map lookup instead of a history lookup, a value copy and a checksum, or, for a page rebuilt by redo, a
 * round trip to a redo worker (a materialized page: the page as of its newest record, the version named by
 * that record's LSN). Shared by every reader of the process and bounded as a whole; each reader (one per
 * timeline) has its own space of entries, keyed by page key.
 *
 * Validity, as the timeline's image cache (repository/image-cache.ts): an entry says "the newest version of
 * the key at or below knownUpToLsn was written at versionLsn (an image, or the last record redone), and
 * this is the page it makes, served". A read at lsn hits when versionLsn <= lsn <= knownUpToLsn; above
 * knownUpToLsn it hits only once the timeline proved that no version arrived in between
 * (`unchangedBetween`), which extends the entry; reads above the timeline's last_record_lsn never use the
 * cache. History at or below last_record_lsn never changes, so nothing is invalidated on writes.
 *
 * Admission and eviction (lib/clock-cache.ts): a page is kept the second time it is offered while still
 * among the last GHOSTS_MAX pages offered once (a scan that touches every page once passes through);
 * eviction is CLOCK. Bound: `bytesMax` counts each entry as its page plus ENTRY_OVERHEAD_BYTES.
 *
 * Pages handed out by a hit are the cached buffers themselves: callers must not change them (the page
 * service writes them to the socket as they are).
 *
 * An entry also serves as a redo base (`versionAtOrBelow`): when newer records of the page arrived, the
 * reader redoes only those, on top of the cached page, instead of the whole chain from the last image.
 */
import { ClockCache, ClockSpace, type ClockEntry } from '../lib/clock-cache.js'
import { ownedCopy } from '../lib/bytes.js'
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

interface Entry extends ClockEntry<Key> {
  readonly page: Buffer
  readonly versionLsn: Lsn
  knownUpToLsn: Lsn
}

export class PageCache extends ClockCache<Key, Entry> {
  constructor(bytesMax: number = PAGE_CACHE_BYTES_MAX_DEFAULT, ghostsMax: number = GHOSTS_MAX) {
    super('page cache', bytesMax, ghostsMax)
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
    this.hit(e)
    return e.page
  }

  /**
   * The cached page of `key` and the version it is (the page as of versionLsn), when that version is at or
   * below `lsn`, whether or not anything newer arrived since: a base from which redo of the newer records
   * rebuilds the page at `lsn` (read-only; no hit is counted).
   */
  versionAtOrBelow(space: PageCacheSpace, key: Key, lsn: Lsn): { page: Buffer; versionLsn: Lsn } | null {
    if (this.bypass) return null
    const e = space.map.get(key)
    if (e === undefined || e.versionLsn > lsn) return null
    return { page: e.page, versionLsn: e.versionLsn }
  }

  /**
   * Offers the page served for `key` at `readLsn`, whose newest version (an image, or the last record
   * redone) was written at `versionLsn`, with nothing newer up to readLsn. If admitted, a copy is kept:
   * `page` may be a view of a larger read buffer, which a cached view would keep alive whole. `atOnce` admits
   * it on its first offer (an SLRU page, few and costly to rebuild: a backup reads each once, and the pages
   * GetPage offers between two backups would push it out of the ghosts).
   */
  offer(space: PageCacheSpace, key: Key, versionLsn: Lsn, readLsn: Lsn, page: Buffer, atOnce = false): void {
    if (space.closed || readLsn > space.oracle.lastRecordLsn) return
    const bytes = page.length + ENTRY_OVERHEAD_BYTES
    if (!this.fits(bytes)) return
    const old = space.map.get(key)
    if (old !== undefined) {
      // A newer read replaces the entry; an older one leaves it (the entry serves the latest reads).
      if (readLsn <= old.knownUpToLsn) return
      this.remove(old)
    } else if (!atOnce && !this.admit(space, key)) {
      return
    }
    this.insert({ space, key, bytes, page: ownedCopy(page), versionLsn, knownUpToLsn: readLsn, referenced: false, prev: null, next: null })
  }
}

/** The entries of one reader (one timeline). */
export class PageCacheSpace extends ClockSpace<Key, Entry> {
  constructor(
    readonly cache: PageCache,
    readonly oracle: VersionOracle,
  ) {
    super()
  }

  get(key: Key, lsn: Lsn): Buffer | null {
    return this.cache.get(this, key, lsn)
  }

  offer(key: Key, versionLsn: Lsn, readLsn: Lsn, page: Buffer, atOnce = false): void {
    this.cache.offer(this, key, versionLsn, readLsn, page, atOnce)
  }

  versionAtOrBelow(key: Key, lsn: Lsn): { page: Buffer; versionLsn: Lsn } | null {
    return this.cache.versionAtOrBelow(this, key, lsn)
  }
}

/** The process-wide cache every DatadirReader uses unless given another. */
export const sharedPageCache = new PageCache()
