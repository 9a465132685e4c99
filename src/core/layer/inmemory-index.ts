/**
 * InMemoryIndex: the index of an in-memory layer (inmemory-layer.ts), whose slabs keep the values themselves
 * (inmemory-slabs.ts).
 *
 * No object per entry: a 32-byte record per entry id in one SharedArrayBuffer (layout in
 * inmemory-format.ts: lsn, slab, offset, length with the will-init bit, CRC-32C once the value left memory,
 * previous entry id of the same key, key index), grown by doubling, plus the dense numbering of the keys
 * (KeySlots, found by key prefix and field6: ingest puts by parts without building a key string) whose
 * slots in a Float64Array hold the id and LSN of the key's newest entry. A key's versions form a chain
 * newest -> oldest through `prev`, which is exactly the order a read wants.
 *
 * LSNs are kept as doubles: exact below 2^53 (8 PiB of WAL; asserted on add). Per key, entries come with
 * non-decreasing LSNs (asserted); an entry at the same LSN as the key's newest version replaces it (marked
 * DEAD_KEY; the delta layer a flush writes takes strictly increasing (key, lsn)).
 *
 * The record views are public fields read in place by the layer's lookups and its slabs' spills and
 * releases (inmemory-slabs.ts); they are replaced when the records grow, so read them again after an `add`.
 */
import { AssertionFailure, assert } from '../lib/errors.js'
import { keyFromPrefix, type Key } from '../model/key.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { DEAD_KEY, ENTRY_BYTES, E_KEY, E_LENGTH, E_OFFSET, E_PREV, E_SLAB, F64_PER_ENTRY, U32_PER_ENTRY } from './inmemory-format.js'
import { KeySlots } from './key-slots.js'

/** Heap cost per distinct key besides KeySlots' own count: its two slots in `heads` are counted at capacity. */
export const INMEMORY_BYTES_PER_KEY_ESTIMATE = 16
/** Entry ids are i32 (the prev links). */
export const INMEMORY_ENTRIES_MAX = 2 ** 31 - 1
const INITIAL_CAPACITY = 1024
const LSN_EXACT_MAX = BigInt(Number.MAX_SAFE_INTEGER)

export class InMemoryIndex {
  /**
   * Key -> dense key index; `heads[2 * index]` is the id of the key's newest entry and `heads[2 * index + 1]`
   * its LSN (one lookup and one cache line per add: the ordering check needs no read of the record).
   */
  readonly keySlots = new KeySlots()
  private heads: Float64Array = new Float64Array(INITIAL_CAPACITY * 2)
  /** Entry records; f64, u32 and i32 views of one SharedArrayBuffer (see inmemory-format.ts). */
  f64 = new Float64Array(new SharedArrayBuffer(INITIAL_CAPACITY * ENTRY_BYTES))
  u32 = new Uint32Array(this.f64.buffer)
  i32 = new Int32Array(this.f64.buffer)
  private capacity = INITIAL_CAPACITY
  /** Entry ids used (replaced versions included). */
  used = 0
  /** Live entries (replaced versions excluded). */
  live = 0
  /** The highest LSN added, as a number (-1: none). */
  maxLsn = -1
  /** The LSN of the last add and its number (a record's values share one bigint). */
  private lastLsn: Lsn | null = null
  private lastLsnN = 0

  /** `startLsn`: the layer's start; no entry may be below it. */
  constructor(private readonly startLsn: Lsn) {}

  /** The entry records (shared memory: the flush reads them from another thread). */
  get records(): SharedArrayBuffer {
    return this.f64.buffer as SharedArrayBuffer
  }

  /** Estimated JS heap held (typed arrays at capacity, the key numbering and a per-key cost). */
  get bytes(): number {
    return this.capacity * ENTRY_BYTES + this.heads.length * 8 + this.keySlots.bytes + this.keySlots.size * INMEMORY_BYTES_PER_KEY_ESTIMATE
  }

  /** The id of `key`'s newest entry, or -1. */
  newest(key: Key): number {
    const k = this.keySlots.findKey(key)
    return k < 0 ? -1 : this.heads[2 * k]!
  }

  /**
   * Adds the entry (prefix, field6) at `lsn` for `len` bytes at `offset` of slab `slab`. The values of one
   * record share its LSN (the same bigint): it is checked and converted once.
   */
  add(prefix: string, field6: number, lsn: Lsn, slab: number, offset: number, len: number, willInitBit: number): void {
    let lsnN = this.lastLsnN
    if (lsn !== this.lastLsn) {
      if (!(lsn >= this.startLsn)) throw new AssertionFailure(`put at ${formatLsn(lsn)} below the layer start ${formatLsn(this.startLsn)}`)
      if (!(lsn <= LSN_EXACT_MAX)) throw new AssertionFailure('LSN beyond 2^53')
      lsnN = Number(lsn)
      this.lastLsn = lsn
      this.lastLsnN = lsnN
    }
    let k = this.keySlots.find(prefix, field6)
    let prev = -1
    if (k < 0) {
      k = this.keySlots.add(prefix, field6)
      if (2 * k === this.heads.length) this.heads = grownFloat64(this.heads)
      this.live++
    } else {
      const head = this.heads[2 * k]!
      const headLsn = this.heads[2 * k + 1]!
      if (!(lsnN >= headLsn)) throw new AssertionFailure(`put of ${keyFromPrefix(prefix, field6)} at ${formatLsn(lsn)} is older than its version at ${formatLsn(BigInt(headLsn))}`)
      if (lsnN === headLsn) {
        prev = this.i32[head * U32_PER_ENTRY + E_PREV]! // replaces the head
        this.u32[head * U32_PER_ENTRY + E_KEY] = DEAD_KEY
      } else {
        prev = head
        this.live++
      }
    }
    if (this.used === this.capacity) this.grow()
    const id = this.used++
    const u = id * U32_PER_ENTRY
    this.f64[id * F64_PER_ENTRY] = lsnN
    this.u32[u + E_SLAB] = slab
    this.u32[u + E_OFFSET] = offset
    this.u32[u + E_LENGTH] = (len | willInitBit) >>> 0
    this.i32[u + E_PREV] = prev
    this.u32[u + E_KEY] = k
    this.heads[2 * k] = id
    this.heads[2 * k + 1] = lsnN
    if (lsnN > this.maxLsn) this.maxLsn = lsnN
  }

  private grow(): void {
    assert(this.capacity * 2 <= INMEMORY_ENTRIES_MAX + 1, 'in-memory layer has too many entries')
    this.capacity *= 2
    const f64 = new Float64Array(new SharedArrayBuffer(this.capacity * ENTRY_BYTES))
    f64.set(this.f64)
    this.f64 = f64
    this.u32 = new Uint32Array(f64.buffer)
    this.i32 = new Int32Array(f64.buffer)
  }
}

function grownFloat64(a: Float64Array): Float64Array {
  const b = new Float64Array(a.length * 2)
  b.set(a)
  return b
}
