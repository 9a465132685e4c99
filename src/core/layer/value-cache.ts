/**
 * ValueCache: values of layer files, already read, CRC-checked and decompressed, kept in memory so that a
 * hot value costs a map lookup and a copy instead of a pread, a CRC-32C and possibly an LZ4 decode. It plays
 * the part of Neon's page cache for immutable layer files; the OS page cache still holds the files.
 *
 * One cache per process, shared by every open layer file, bounded by `bytesMax` (value bytes plus a fixed
 * ENTRY_OVERHEAD_BYTES per entry, so many tiny WAL records cannot exceed it through bookkeeping); values
 * above VALUE_CACHE_VALUE_BYTES_MAX are never cached. Eviction is CLOCK (second chance): a hit only sets a
 * bit; the oldest entry is dropped unless its bit is set, in which case it is moved to the back.
 *
 * Admission: a value is cached the second time it is offered while its offset is still among the last
 * GHOSTS_MAX offsets offered once (a "ghost" list). A scan that reads every value once — a basebackup, an
 * export — then costs a set lookup per value instead of a copy, and does not flush what GetPage reuses.
 *
 * Correctness: layer files are immutable, so (file, offset) names one value forever; a file's entries live
 * in a `ValueCacheSpace` owned by its reader and are dropped when the reader closes. What is cached passed
 * its CRC when read. Values handed out are copies: callers may keep or modify them (the read contract of
 * layer-read.ts), and the cached bytes cannot be changed from outside.
 */
import { assert } from '../lib/errors.js'

export const VALUE_CACHE_BYTES_MAX_DEFAULT = 32 * 1024 * 1024
/** Larger values (big WAL records) are read from the file each time. */
export const VALUE_CACHE_VALUE_BYTES_MAX = 64 * 1024
/** Bookkeeping counted per entry (object, map and set slots). */
export const ENTRY_OVERHEAD_BYTES = 128
/** Offsets remembered as offered once (about 40 bytes each). */
export const GHOSTS_MAX = 65_536

interface Entry {
  readonly space: ValueCacheSpace
  readonly offset: number
  readonly value: Buffer
  referenced: boolean
}

export class ValueCache {
  private readonly clock = new Set<Entry>()
  private bytes = 0
  /** Ring of the offsets offered once: slot i is (ghostSpaces[i], ghostOffsets[i]). */
  private readonly ghostSpaces: Array<ValueCacheSpace | null>
  private readonly ghostOffsets: Float64Array
  private ghostNext = 0
  hits = 0
  misses = 0
  /** While set, lookups miss and nothing is admitted; the contents stay (to measure reads without it). */
  bypass = false

  constructor(
    private bytesMax: number = VALUE_CACHE_BYTES_MAX_DEFAULT,
    ghostsMax: number = GHOSTS_MAX,
  ) {
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0, 'value cache size must be a non-negative integer')
    assert(Number.isSafeInteger(ghostsMax) && ghostsMax >= 1, 'value cache ghost list must hold at least one offset')
    this.ghostSpaces = new Array<ValueCacheSpace | null>(ghostsMax).fill(null)
    this.ghostOffsets = new Float64Array(ghostsMax)
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
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0, 'value cache size must be a non-negative integer')
    this.bytesMax = bytesMax
    this.evictUntil(0)
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
    this.hits++
    e.referenced = true
    return e.value
  }

  /**
   * Offers `value`, just read and checked at `offset` of the space's file: a copy is cached if it was offered
   * recently already (see Admission) and fits.
   */
  offer(space: ValueCacheSpace, offset: number, value: Buffer): void {
    if (this.bypass || space.closed || value.length > VALUE_CACHE_VALUE_BYTES_MAX) return
    const size = value.length + ENTRY_OVERHEAD_BYTES
    if (size > this.bytesMax || space.map.has(offset)) return
    if (!space.ghosts.delete(offset)) {
      const i = this.ghostNext
      this.ghostSpaces[i]?.ghosts.delete(this.ghostOffsets[i]!)
      this.ghostSpaces[i] = space
      this.ghostOffsets[i] = offset
      this.ghostNext = i + 1 === this.ghostOffsets.length ? 0 : i + 1
      space.ghosts.add(offset)
      return
    }
    this.evictUntil(size)
    const copy = Buffer.allocUnsafeSlow(value.length)
    value.copy(copy)
    const e: Entry = { space, offset, value: copy, referenced: false }
    space.map.set(offset, e)
    this.clock.add(e)
    this.bytes += size
  }

  /** Drops every entry of a space (its file is closed). */
  drop(space: ValueCacheSpace): void {
    for (const e of space.map.values()) this.remove(e)
    space.map.clear()
    space.ghosts.clear()
  }

  private remove(e: Entry): void {
    if (!this.clock.delete(e)) return
    this.bytes -= e.value.length + ENTRY_OVERHEAD_BYTES
  }

  /** Evicts until `incoming` more bytes fit under the bound. */
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
      e.space.map.delete(e.offset)
    }
  }
}

/** The entries of one layer file, by value offset. */
export class ValueCacheSpace {
  readonly map = new Map<number, Entry>()
  /** Offsets offered once and not yet cached (members of the cache's ghost ring). */
  readonly ghosts = new Set<number>()
  closed = false

  constructor(readonly cache: ValueCache) {}

  close(): void {
    this.closed = true
    this.cache.drop(this)
  }
}

/** The process-wide cache every layer file reader uses unless given another. */
export const sharedValueCache = new ValueCache()
