/**
 * ClockCache: the bookkeeping shared by the process-wide caches of the read path (layer/value-cache.ts,
 * datadir/page-cache.ts): entries grouped in spaces (one per layer file, one per timeline reader), a byte
 * bound over all spaces, admission on the second offer, CLOCK eviction. What an entry holds and when it is
 * valid is the caller's.
 *
 * Admission: a key is admitted the second time it is offered while still among the last `ghostsMax` keys
 * offered once (a "ghost" ring), so a scan that touches every key once — a basebackup, an export — costs a
 * set lookup per key and does not flush what GetPage reuses.
 *
 * Eviction is CLOCK (second chance): a hit only sets the entry's bit; the oldest entry is dropped unless
 * its bit is set, in which case it is cleared and the entry moves to the back. The order is a doubly linked
 * list through the entries themselves (`prev`/`next`), so every step is O(1). (It was a `Set` used as a
 * queue: V8 leaves a deleted entry's slot in place until the table is rebuilt, so finding the first entry
 * walked over every entry evicted since: ≈ 1.4 µs per insert with 4,000 entries, growing with the cache,
 * and a scan that inserts on every read — a repeated backup — held the event loop for 100 ms at a time.) `bytes` of each entry counts
 * what it holds plus the caller's per-entry overhead, so many tiny entries cannot exceed the bound through
 * bookkeeping.
 */
import { assert } from './errors.js'

export interface ClockEntry<K> {
  readonly space: ClockSpace<K, ClockEntry<K>>
  readonly key: K
  /** Bytes counted against the bound. */
  readonly bytes: number
  referenced: boolean
  /** The cache's links in its eviction order (null while not cached): set by the cache only. */
  prev: ClockEntry<K> | null
  next: ClockEntry<K> | null
}

/** The entries of one group, by key. */
export class ClockSpace<K, E extends ClockEntry<K>> {
  readonly map = new Map<K, E>()
  /** Keys offered once and not yet cached, with their slot in the cache's ghost ring. */
  readonly ghosts = new Map<K, number>()
  /**
   * Set by `drop`: the space admits nothing more. A read in flight when its timeline (or layer file) closed
   * offers its result afterwards (a page rebuilt by redo); kept, it would stay counted and keep the closed
   * timeline reachable until evicted.
   */
  closed = false
}

export class ClockCache<K, E extends ClockEntry<K>> {
  /** Oldest and newest entry of the eviction order. */
  private head: E | null = null
  private tail: E | null = null
  private count = 0
  private bytes = 0
  /** Ring of the keys offered once: slot i is (ghostSpaces[i], ghostKeys[i]). */
  private readonly ghostSpaces: Array<ClockSpace<K, E> | null>
  private readonly ghostKeys: Array<K | null>
  private ghostNext = 0
  hits = 0
  misses = 0
  /** While set, callers miss and admit nothing; the contents stay (to measure reads without the cache). */
  bypass = false

  constructor(
    private readonly what: string,
    private bytesMax: number,
    ghostsMax: number,
  ) {
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0, `${what} size must be a non-negative integer`)
    assert(Number.isSafeInteger(ghostsMax) && ghostsMax >= 1, `${what} ghost list must hold at least one key`)
    this.ghostSpaces = new Array<ClockSpace<K, E> | null>(ghostsMax).fill(null)
    this.ghostKeys = new Array<K | null>(ghostsMax).fill(null)
  }

  get sizeBytes(): number {
    return this.bytes
  }

  get entries(): number {
    return this.count
  }

  get capacityBytes(): number {
    return this.bytesMax
  }

  /** Changes the bound (0 disables the cache), evicting as needed. */
  resize(bytesMax: number): void {
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0, `${this.what} size must be a non-negative integer`)
    this.bytesMax = bytesMax
    this.evictUntil(0)
  }

  /** Whether an entry of `bytes` could be cached at all. */
  fits(bytes: number): boolean {
    return !this.bypass && bytes <= this.bytesMax
  }

  /** Counts a hit on `e` and marks it referenced. */
  hit(e: E): void {
    this.hits++
    e.referenced = true
  }

  /**
   * True when `key` was offered recently (now admitted: add its entry); otherwise remembers it in the ghost
   * ring and returns false.
   */
  admit(space: ClockSpace<K, E>, key: K): boolean {
    if (space.closed) return false
    if (space.ghosts.delete(key)) return true
    const i = this.ghostNext
    // The slot's previous key leaves the ring, unless it was admitted and offered once again since (its
    // ghost then lives in a newer slot).
    const old = this.ghostSpaces[i]
    if (old != null) {
      const oldKey = this.ghostKeys[i]!
      if (old.ghosts.get(oldKey) === i) old.ghosts.delete(oldKey)
    }
    this.ghostSpaces[i] = space
    this.ghostKeys[i] = key
    this.ghostNext = i + 1 === this.ghostKeys.length ? 0 : i + 1
    space.ghosts.set(key, i)
    return false
  }

  /** Adds `e` (not cached before) to its space, evicting first until it fits; nothing once the space is dropped. */
  insert(e: E): void {
    assert(e.prev === null && e.next === null && this.head !== e, `${this.what}: an entry is inserted twice`)
    if (e.space.closed) return
    this.evictUntil(e.bytes)
    ;(e.space as ClockSpace<K, E>).map.set(e.key, e)
    this.append(e)
    this.count++
    this.bytes += e.bytes
  }

  /** Removes `e` from the cache and from its space. */
  remove(e: E): void {
    if (e.prev !== null || this.head === e) {
      this.unlink(e)
      this.count--
      this.bytes -= e.bytes
    }
    const map = (e.space as ClockSpace<K, E>).map
    if (map.get(e.key) === e) map.delete(e.key)
  }

  /**
   * Drops every entry and ghost of a space. Its slots in the ghost ring are cleared too, those of keys since
   * admitted included: they would keep the space (and what it reads from: a deleted timeline) reachable until
   * the ring came round to them. One pass over the ring; spaces are dropped when a timeline closes. The space
   * admits nothing afterwards.
   */
  drop(space: ClockSpace<K, E>): void {
    space.closed = true
    for (const e of [...space.map.values()]) this.remove(e)
    for (let i = 0; i < this.ghostSpaces.length; i++) {
      if (this.ghostSpaces[i] === space) {
        this.ghostSpaces[i] = null
        this.ghostKeys[i] = null
      }
    }
    space.ghosts.clear()
  }

  private evictUntil(incoming: number): void {
    while (this.head !== null && this.bytes + incoming > this.bytesMax) {
      const e = this.head
      if (e.referenced) {
        e.referenced = false
        if (e !== this.tail) {
          this.unlink(e)
          this.append(e)
        }
        continue
      }
      this.remove(e)
    }
  }

  private append(e: E): void {
    e.prev = this.tail
    e.next = null
    if (this.tail === null) this.head = e
    else this.tail.next = e
    this.tail = e
  }

  private unlink(e: E): void {
    if (e.prev === null) this.head = e.next as E | null
    else e.prev.next = e.next
    if (e.next === null) this.tail = e.prev as E | null
    else e.next.prev = e.prev
    e.prev = null
    e.next = null
  }
}
