/**
 * ValueCache: values of layer files, already read, CRC-checked and decompressed, kept in memory so that a
 * hot value costs a map lookup and a copy instead of a pread, a CRC-32C and possibly an LZ4 decode. It plays
 * the part of Neon's page cache for immutable layer files; the OS page cache still holds the files. The
 * files' index blocks are kept here too, behind each reader's own small LRU (layer-file-index.ts), under
 * negative keys (block n is -(n + 1)) that no value offset can take.
 *
 * One cache per process, shared by every open layer file, bounded by `bytesMax` (value bytes plus a fixed
 * ENTRY_OVERHEAD_BYTES per entry); values above VALUE_CACHE_VALUE_BYTES_MAX are never cached. Admission on
 * the second offer and CLOCK eviction are lib/clock-cache.ts: a scan that reads every value once — a
 * basebackup, an export — passes through without copies and does not flush what GetPage reuses.
 *
 * Correctness: layer files are immutable, so (file, offset) names one value forever; a file's entries live
 * in a `ValueCacheSpace` owned by its reader and are dropped when the reader closes. What is cached passed
 * its CRC when read. Values handed out are copies: callers may keep or modify them (the read contract of
 * layer-read.ts), and the cached bytes cannot be changed from outside.
 */
import { ClockCache, ClockSpace, type ClockEntry } from '../lib/clock-cache.js'
import { ownedCopy } from '../lib/bytes.js'

export const VALUE_CACHE_BYTES_MAX_DEFAULT = 32 * 1024 * 1024
/** Larger values (big WAL records) are read from the file each time. */
export const VALUE_CACHE_VALUE_BYTES_MAX = 64 * 1024
/** Bookkeeping counted per entry (object, map and set slots). */
export const ENTRY_OVERHEAD_BYTES = 128
/** Offsets remembered as offered once (about 40 bytes each). */
export const GHOSTS_MAX = 65_536

interface Entry extends ClockEntry<number> {
  readonly value: Buffer
}

export class ValueCache extends ClockCache<number, Entry> {
  constructor(bytesMax: number = VALUE_CACHE_BYTES_MAX_DEFAULT, ghostsMax: number = GHOSTS_MAX) {
    super('value cache', bytesMax, ghostsMax)
  }

  /** A new, empty space for one layer file. */
  space(): ValueCacheSpace {
    return new ValueCacheSpace(this)
  }

  /** The cached value at `offset` of `space`'s file (shared: copy before handing it out), or undefined. */
  get(space: ValueCacheSpace, offset: number): Buffer | undefined {
    if (this.bypass) return undefined
    const e = space.map.get(offset)
    if (e === undefined) {
      this.misses++
      return undefined
    }
    this.hit(e)
    return e.value
  }

  /**
   * Offers `value`, just read and checked at `offset` of the space's file: a copy is cached if it was offered
   * recently already (admission) and fits.
   */
  offer(space: ValueCacheSpace, offset: number, value: Buffer): void {
    if (space.closed || value.length > VALUE_CACHE_VALUE_BYTES_MAX) return
    const bytes = value.length + ENTRY_OVERHEAD_BYTES
    if (!this.fits(bytes) || space.map.has(offset) || !this.admit(space, offset)) return
    this.insert({ space, key: offset, bytes, value: ownedCopy(value), referenced: false, prev: null, next: null })
  }
}

/** The entries of one layer file, by value offset. */
export class ValueCacheSpace extends ClockSpace<number, Entry> {
  constructor(readonly cache: ValueCache) {
    super()
  }

  close(): void {
    this.cache.drop(this)
  }
}

/** The process-wide cache every layer file reader uses unless given another. */
export const sharedValueCache = new ValueCache()
