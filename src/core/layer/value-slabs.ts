/**
 * SlabPool: the memory that in-memory layers keep their values in, shared by every timeline of a
 * repository, with one resident budget (max_in_memory_layers_bytes).
 *
 * Values are appended to fixed-size slabs (1 MiB by default; a value larger than a slab gets a slab of
 * its own size). Slabs are SharedArrayBuffers so that a frozen layer's slabs can be handed to the flush
 * worker thread without a copy (flush-worker.ts); the main thread keeps reading them meanwhile (they no
 * longer change). A slab freed by a flushed layer goes back to the pool and is reused: on this kind of VM
 * a fresh page costs a page fault of several microseconds (400 MiB of new slabs cost 0.5-1.3 s of system
 * time, bench/ingest.ts), so pages are faulted in once per process and then recycled.
 *
 * The budget bounds slab memory, in use plus pooled, plus the owners' index memory (SlabOwner.indexBytes:
 * the layers' entry records and key maps, which the memory ceiling counts as well): when a layer needs a
 * new slab and the budget is
 * reached, the pool first reuses a free slab, else asks a layer to spill one of its slabs to the layer's
 * ephemeral file (SlabOwner.spillOne), which frees it. Victims, in order: frozen layers waiting for their
 * flush (the newest waits longest), then open layers (their oldest full slab), largest resident first.
 * A layer being flushed is never a victim (the worker reads its slabs). A layer with an L0 stream gives
 * each slab back as soon as the stream has written it (inmemory-slabs.ts), so during ingest slabs mostly
 * cycle through the pool without spills and without fresh memory. When no slab can be spilled the
 * pool allocates over budget: that overshoot is bounded by the slabs of layers being flushed, which come
 * back when their flush ends, and ingest waits for flushes above the ceiling (app/ingest-driver.ts).
 *
 * Fresh memory can be prepared off the ingest thread: with a `prefault` source (the flush worker thread,
 * which is idle until the first flush) the pool keeps up to PREFAULT_AHEAD_SLABS free slabs ahead of need,
 * allocated and touched page by page over there, within the budget. The page faults — most of the cost
 * of a first fill — then run on the other core while ingest copies values.
 *
 * Pooled slabs that go unused are given back: `trimUnused`, called periodically by the server, drops as
 * many free slabs as were never taken since its previous call (the low-water mark of the free list), so
 * after a burst of ingest the pool shrinks to what the steady state cycles through, within two periods.
 * The memory then returns to the system once the slabs are collected (most of it: slabs carved from the
 * C heap's middle stay mapped until the allocator trims).
 *
 * Invariant: residentBytes = bytes of slabs handed out and not yet returned; pooled slabs are all of
 * slabBytes; residentBytes + pooledBytes + the owners' indexBytes <= residentBytesMax unless nothing could
 * be spilled.
 */
import { assert } from '../lib/errors.js'

/** Default slab: large enough that per-slab bookkeeping is noise, small enough that waste (< 1 value per slab) is too. */
export const SLAB_BYTES_DEFAULT = 1024 * 1024
/** Bounds of a configured slab size (tests use small slabs to cross slab boundaries often). */
export const SLAB_BYTES_MIN = 256
export const SLAB_BYTES_MAX = 64 * 1024 * 1024
/** The resident budget of a timeline created without a shared pool (tests, tools). */
export const RESIDENT_BYTES_MAX_DEFAULT = 512 * 1024 * 1024

/** Free slabs the pool tries to keep ready when it has a prefault source, and how many it asks for at once. */
export const PREFAULT_AHEAD_SLABS = 64
export const PREFAULT_BATCH_SLABS = 32
/** How often the server gives back free slabs unused since the last time (SlabPool.trimUnused). */
export const SLAB_TRIM_PERIOD_MS = 60_000

/** Allocates `count` slabs of `slabBytes` with every page touched (somewhere else than the ingest thread). */
export type SlabSource = (count: number, slabBytes: number) => Promise<SharedArrayBuffer[]>

/** Spill ranks (higher spills first); NONE: nothing of this owner may be spilled now. */
export const SPILL_RANK = { none: 0, open: 1, frozenWaiting: 2 } as const

/** A user of slabs that can give one back by writing it to disk (an in-memory layer). */
export interface SlabOwner {
  /** Which owners spill first (SPILL_RANK); none while a flush reads the slabs. */
  spillRank(): number
  /** Bytes of this owner's slabs held in memory. */
  residentSlabBytes(): number
  /** Bytes of memory besides slabs this owner holds (its index), counted in the budget too. */
  readonly indexBytes: number
  /** Writes one resident slab to disk and returns it to the pool; false when none can be spilled. */
  spillOne(): boolean
}

export interface SlabPoolOptions {
  /** Slab memory (resident and pooled) above which slabs are spilled; default RESIDENT_BYTES_MAX_DEFAULT. */
  readonly residentBytesMax?: number
  readonly slabBytes?: number
}

export interface SlabPoolStats {
  /** Slabs allocated fresh (page faults), reused from the pool, and spilled to ephemeral files. */
  allocated: number
  reused: number
  spilled: number
  spilledBytes: number
  /** Allocations made over budget because nothing could be spilled. */
  overBudget: number
  /** Slabs received from the prefault source. */
  prefaulted: number
  /** Slabs given back once their layer's L0 stream had written them (their values are read from there). */
  released: number
  /** Free slabs dropped by trimUnused (unused for a whole period). */
  trimmed: number
}

export class SlabPool {
  readonly slabBytes: number
  readonly residentBytesMax: number
  private readonly free: SharedArrayBuffer[] = []
  private resident = 0
  private readonly owners = new Set<SlabOwner>()
  readonly stats: SlabPoolStats = { allocated: 0, reused: 0, spilled: 0, spilledBytes: 0, overBudget: 0, prefaulted: 0, released: 0, trimmed: 0 }
  private prefault: SlabSource | null = null
  private prefaulting = false
  /** The fewest free slabs seen since the last trimUnused: that many sat unused the whole period. */
  private freeLow = 0

  constructor(options: SlabPoolOptions = {}) {
    this.slabBytes = options.slabBytes ?? SLAB_BYTES_DEFAULT
    this.residentBytesMax = options.residentBytesMax ?? RESIDENT_BYTES_MAX_DEFAULT
    assert(
      Number.isSafeInteger(this.slabBytes) && this.slabBytes >= SLAB_BYTES_MIN && this.slabBytes <= SLAB_BYTES_MAX,
      () => `slab size of ${this.slabBytes} bytes is out of bounds`,
    )
    assert(this.residentBytesMax > 0, 'the slab budget must be positive')
  }

  /** Bytes of slabs handed out to owners and not returned. */
  get residentBytes(): number {
    return this.resident
  }

  /** Bytes of free slabs kept for reuse. */
  get pooledBytes(): number {
    return this.free.length * this.slabBytes
  }

  /** Where to get fresh slabs ahead of need (once; later calls keep the first source). */
  setPrefaultSource(source: SlabSource): void {
    this.prefault ??= source
  }

  register(owner: SlabOwner): void {
    this.owners.add(owner)
  }

  unregister(owner: SlabOwner): void {
    this.owners.delete(owner)
  }

  /**
   * A slab of at least `minBytes` for `requester` (which is not asked to spill for it: its current slab is
   * what it is filling). Slabs of `slabBytes` come from the pool when one is free.
   */
  take(minBytes: number, requester: SlabOwner | null): SharedArrayBuffer {
    const size = Math.max(minBytes, this.slabBytes)
    if (this.prefault !== null) this.prefaultAhead()
    // Owners that had nothing to spill this time (an open layer whose only resident slab is the one it fills).
    let tried: Set<SlabOwner> | null = null
    for (;;) {
      if (size === this.slabBytes && this.free.length > 0) return this.reuse()
      if (this.resident + this.pooledBytes + size + this.ownersIndexBytes() <= this.residentBytesMax) break
      // A large slab: free pooled slabs make room first.
      if (this.free.length > 0) {
        this.popFree()
        continue
      }
      const victim = this.pickVictim(requester, tried)
      if (victim === null) {
        this.stats.overBudget++
        break
      }
      if (!victim.spillOne()) (tried ??= new Set()).add(victim)
    }
    this.stats.allocated++
    this.resident += size
    return new SharedArrayBuffer(size)
  }

  /**
   * A slab of at least `minBytes` only if the budget has room without spilling anything (a pooled slab or
   * a new one within the budget); else null. For optional uses: reading a spilled layer back for its flush.
   */
  takeIfFree(minBytes: number): SharedArrayBuffer | null {
    const size = Math.max(minBytes, this.slabBytes)
    if (size === this.slabBytes && this.free.length > 0) return this.reuse()
    if (this.resident + this.pooledBytes + size + this.ownersIndexBytes() > this.residentBytesMax) return null
    this.stats.allocated++
    this.resident += size
    return new SharedArrayBuffer(size)
  }

  /** Returns a slab taken from this pool (its owner no longer reads it). */
  give(slab: SharedArrayBuffer): void {
    this.resident -= slab.byteLength
    assert(this.resident >= 0, 'slab pool: more bytes returned than taken')
    if (slab.byteLength === this.slabBytes && this.resident + this.pooledBytes + slab.byteLength + this.ownersIndexBytes() <= this.residentBytesMax) this.free.push(slab)
  }

  /** Notes a release after an L0 stream's write (for stats); the owner then gives the slab back. */
  noteRelease(): void {
    this.stats.released++
  }

  /** Notes a spill (for stats); the owner then gives the slab back. */
  noteSpill(bytes: number): void {
    this.stats.spilled++
    this.stats.spilledBytes += bytes
  }

  /** Drops the free slabs (their memory goes back to the system once collected). */
  trim(): void {
    this.free.length = 0
    this.freeLow = 0
  }

  /**
   * Drops the free slabs that were not needed since the previous call (the least recently returned ones);
   * returns how many. Meant to be called at a fixed period (SLAB_TRIM_PERIOD_MS).
   */
  trimUnused(): number {
    const n = Math.min(this.freeLow, this.free.length)
    if (n > 0) {
      this.free.splice(0, n)
      this.stats.trimmed += n
    }
    this.freeLow = this.free.length
    return n
  }

  private reuse(): SharedArrayBuffer {
    this.stats.reused++
    this.resident += this.slabBytes
    return this.popFree()
  }

  /** Takes the most recently returned free slab, keeping the period's low-water mark (trimUnused). */
  private popFree(): SharedArrayBuffer {
    const slab = this.free.pop()!
    if (this.free.length < this.freeLow) this.freeLow = this.free.length
    return slab
  }

  /** Starts preparing free slabs now (before a burst of puts), if there is a prefault source. */
  prefaultSoon(): void {
    if (this.prefault !== null) this.prefaultAhead()
  }

  /** Asks the prefault source for slabs when fewer than PREFAULT_AHEAD_SLABS are free and the budget has room. */
  private prefaultAhead(): void {
    if (this.prefaulting || this.free.length >= PREFAULT_AHEAD_SLABS) return
    const room = Math.floor((this.residentBytesMax - this.resident - this.pooledBytes - this.ownersIndexBytes()) / this.slabBytes)
    const n = Math.min(PREFAULT_BATCH_SLABS, room - 1)
    if (n <= 0) return
    this.prefaulting = true
    this.prefault!(n, this.slabBytes).then(
      (slabs) => {
        this.prefaulting = false
        for (const slab of slabs) {
          // Takes since the request may have used the room: keep only what fits.
          if (slab.byteLength !== this.slabBytes || this.resident + this.pooledBytes + slab.byteLength + this.ownersIndexBytes() > this.residentBytesMax) break
          this.free.push(slab)
          this.stats.prefaulted++
        }
      },
      () => {
        // The source failed (its thread died): allocate here from now on.
        this.prefaulting = false
        this.prefault = null
      },
    )
  }

  private ownersIndexBytes(): number {
    let n = 0
    for (const o of this.owners) n += o.indexBytes
    return n
  }

  private pickVictim(requester: SlabOwner | null, tried: ReadonlySet<SlabOwner> | null): SlabOwner | null {
    let best: SlabOwner | null = null
    let bestRank = SPILL_RANK.none as number
    let bestBytes = 0
    for (const o of this.owners) {
      if (tried?.has(o)) continue
      const rank = o.spillRank()
      if (rank === SPILL_RANK.none) continue
      const bytes = o.residentSlabBytes()
      if (bytes === 0) continue
      // The requester's own full slabs may go too (an open layer larger than the budget), but others first.
      const r = o === requester ? rank - 0.5 : rank
      if (r > bestRank || (r === bestRank && bytes > bestBytes)) {
        best = o
        bestRank = r
        bestBytes = bytes
      }
    }
    return best
  }
}
