/**
 * InMemoryLayer: the open layer of a timeline, receiving every put since the last freeze; once frozen it
 * waits to be flushed to an L0 delta layer file.
 *
 * Memory is bounded: values go to an append-only ephemeral file `<timeline dir>/ephemeral-<n>` through a
 * write buffer (storage/ephemeral-file.ts), and the JS heap holds only a compact index with no object per
 * entry: a 32-byte record per entry id in one typed array (lsn, value offset, length with the will-init bit,
 * CRC-32C of the value, previous entry id of the same key), grown by doubling, plus one Map from key to a
 * dense key index whose slot in another typed array holds the id of the key's newest entry. A key's
 * versions form a chain newest -> oldest through `prev`, which is exactly the order a read wants. 32 bytes
 * per entry, plus the Map entry, the key string and 4 bytes per distinct key (bench/layer.ts measures it).
 *
 * LSNs are kept as doubles: exact below 2^53 (8 PiB of WAL; asserted on put). Per key, puts come with
 * non-decreasing LSNs (asserted); a put at the same LSN as the key's newest version replaces it (the
 * delta layer a flush writes takes strictly increasing (key, lsn)).
 *
 * Lifecycle: create -> put* -> freeze(endLsn) -> sortedEntries() (the flush) -> delete(). Every
 * `ephemeral-*` file found at startup is garbage (`removeEphemeralFiles`).
 */
import { join } from 'node:path'
import { CorruptionError, assert } from '../lib/errors.js'
import { crc32c, crc32cRange } from '../lib/crc32c.js'
import type { Key } from '../model/key.js'
import { VALUE_HEADER_BYTES, encodedValueWillInit } from '../model/value.js'
import { MAX_LSN, formatLsn, type Lsn } from '../pg/lsn.js'
import { removeFilesWhere } from '../storage/directory.js'
import { EPHEMERAL_WRITE_BUFFER_BYTES_DEFAULT, EphemeralFile } from '../storage/ephemeral-file.js'
import { LAYER_VALUE_MAX_BYTES } from './layer-format.js'
import { EPHEMERAL_FILE_PREFIX, type LsnRange } from './layer-name.js'
import { LOOKUP, type LookupResult, type LsnValue, type ReadableLayer } from './layer-read.js'

/**
 * Bytes of index per entry, one 32-byte record per entry in a single ArrayBuffer (array of structs: a
 * flush walks entries in key order, i.e. at random, and one record costs one cache miss where five
 * parallel arrays cost five): f64 lsn | f64 value offset | u32 length with will-init bit | u32 crc32c |
 * i32 previous entry of the same key | u32 spare.
 */
export const INMEMORY_INDEX_BYTES_PER_ENTRY = 32
const F64_PER_ENTRY = 4
const U32_PER_ENTRY = 8
const U32_LENGTH = 4
const U32_CRC = 5
const I32_PREV = 6
/** Heap cost per distinct key, estimated: Map slot and a 36-character key string (bench/layer.ts measures it). */
export const INMEMORY_BYTES_PER_KEY_ESTIMATE = 96
/** Entry ids are i32 (the prev links). */
export const INMEMORY_ENTRIES_MAX = 2 ** 31 - 1
/** A flush reads the whole ephemeral file into one buffer when it is at most this large, else value by value. */
export const SORTED_READ_ALL_MAX_BYTES = 512 * 1024 * 1024
const INITIAL_CAPACITY = 1024
const LSN_EXACT_MAX = BigInt(Number.MAX_SAFE_INTEGER)
const WILL_INIT_BIT = 0x8000_0000
const LENGTH_MASK = 0x7fff_ffff

/**
 * The read buffer of `sortedEntries`, kept by the owner of consecutive flushes (a timeline) and reused.
 *
 * Why: a fresh buffer per flush costs a page fault per 4 KiB on first touch (about a third of a second of
 * system time for a 400 MiB layer) and, worse for memory, the previous flush's buffer is garbage that V8
 * frees only at its next major GC, so two layers' worth could be resident at once: RSS above the
 * in-memory ceiling (bench/ingest-rss.ts measured 1.2-1.8x the bound). The buffer is allocated once at
 * its full capacity, which costs address space only: pages become resident when a flush first reads into
 * them, so the resident part is the largest layer flushed so far, which the ceiling already counts (a
 * frozen layer's bytes count until its flush ends). Growing it instead would leave the old buffer to the
 * GC, the very doubling this avoids. Views handed out by a flush are valid until the next flush using the
 * same scratch; flushes of one timeline are serialized.
 */
export class FlushScratch {
  private buf: Buffer | null = null

  constructor(readonly capacityBytes: number = SORTED_READ_ALL_MAX_BYTES) {}

  /** A buffer of exactly `bytes` (at most the capacity), a view of the kept one. */
  take(bytes: number): Buffer {
    assert(bytes <= this.capacityBytes, () => `flush scratch of ${this.capacityBytes} bytes asked for ${bytes}`)
    this.buf ??= Buffer.allocUnsafe(this.capacityBytes)
    return this.buf.subarray(0, bytes)
  }

  /** Lets the buffer go (timeline closed). */
  release(): void {
    this.buf = null
  }
}

export interface InMemoryLayerOptions {
  /** The timeline directory; the layer's scratch file is `<dir>/ephemeral-<fileId>`. */
  readonly dir: string
  /** Unique among the timeline's live in-memory layers (a counter kept by the timeline). */
  readonly fileId: number
  /** The layer covers LSNs from here (inclusive). */
  readonly startLsn: Lsn
  readonly writeBufferBytes?: number
}

/** One entry of `sortedEntries()`. */
export interface InMemoryEntry {
  readonly key: Key
  readonly lsn: Lsn
  readonly value: Buffer
  readonly willInit: boolean
  /** CRC-32C of `value`, just verified: DeltaLayerWriter.put can reuse it instead of computing it again. */
  readonly crc: number
}

export class InMemoryLayer implements ReadableLayer {
  private readonly file: EphemeralFile
  /** Key -> dense key index; `headOf[index]` is the id of the key's newest entry (one Map lookup per put). */
  private readonly keyIndex = new Map<Key, number>()
  private headOf: Int32Array = new Int32Array(INITIAL_CAPACITY)
  /** Entry records; f64, u32 and i32 views of one ArrayBuffer (see INMEMORY_INDEX_BYTES_PER_ENTRY). */
  private f64 = new Float64Array(INITIAL_CAPACITY * F64_PER_ENTRY)
  private u32 = new Uint32Array(this.f64.buffer)
  private i32 = new Int32Array(this.f64.buffer)
  private capacity = INITIAL_CAPACITY
  /** Entry ids used (replaced versions included). */
  private used = 0
  /** Live entries (replaced versions excluded). */
  private live = 0
  private maxLsnPut = -1
  private end: Lsn | null = null
  private state: 'open' | 'frozen' | 'closed' = 'open'

  private constructor(
    readonly startLsn: Lsn,
    file: EphemeralFile,
  ) {
    this.file = file
  }

  static create(options: InMemoryLayerOptions): InMemoryLayer {
    assert(Number.isSafeInteger(options.fileId) && options.fileId >= 0, 'ephemeral file id must be a non-negative integer')
    const path = join(options.dir, `${EPHEMERAL_FILE_PREFIX}${options.fileId}`)
    return new InMemoryLayer(options.startLsn, EphemeralFile.create(path, options.writeBufferBytes ?? EPHEMERAL_WRITE_BUFFER_BYTES_DEFAULT))
  }

  get path(): string {
    return this.file.path
  }

  get frozen(): boolean {
    return this.state === 'frozen'
  }

  /** The exclusive end LSN once frozen; null while open. */
  get endLsn(): Lsn | null {
    return this.end
  }

  /** [startLsn, endLsn), or [startLsn, MAX_LSN) while open. */
  get lsnRange(): LsnRange {
    return { start: this.startLsn, end: this.end ?? MAX_LSN }
  }

  /** Value bytes held (in the ephemeral file and its buffer): what the timeline counts against the memory ceiling. */
  get sizeBytes(): number {
    return this.file.lengthBytes
  }

  /** Estimated JS heap held by the index (typed arrays at capacity plus the per-key Map cost). */
  get indexBytes(): number {
    return this.capacity * INMEMORY_INDEX_BYTES_PER_ENTRY + this.headOf.length * 4 + this.keyIndex.size * INMEMORY_BYTES_PER_KEY_ESTIMATE
  }

  get entryCount(): number {
    return this.live
  }

  get keyCount(): number {
    return this.keyIndex.size
  }

  /** Adds the encoded `value` of `key` at `lsn` (synchronous; LSNs non-decreasing per key). */
  put(key: Key, lsn: Lsn, value: Buffer): void {
    assert(this.state === 'open', () => `put into a ${this.state} in-memory layer`)
    assert(lsn >= this.startLsn, () => `put at ${formatLsn(lsn)} below the layer start ${formatLsn(this.startLsn)}`)
    assert(lsn <= LSN_EXACT_MAX, 'LSN beyond 2^53')
    assert(value.length >= VALUE_HEADER_BYTES && value.length <= LAYER_VALUE_MAX_BYTES, () => `value of ${value.length} bytes is out of bounds`)
    const lsnN = Number(lsn)
    let k = this.keyIndex.get(key)
    let prev = -1
    if (k === undefined) {
      k = this.keyIndex.size
      if (k === this.headOf.length) this.headOf = grownInt32(this.headOf)
      this.keyIndex.set(key, k)
      this.live++
    } else {
      const head = this.headOf[k]!
      const headLsn = this.f64[head * F64_PER_ENTRY]!
      assert(lsnN >= headLsn, () => `put of ${key} at ${formatLsn(lsn)} is older than its version at ${formatLsn(BigInt(headLsn))}`)
      if (lsnN === headLsn) {
        prev = this.i32[head * U32_PER_ENTRY + I32_PREV]! // replaces the head
      } else {
        prev = head
        this.live++
      }
    }
    if (this.used === this.capacity) this.grow()
    const id = this.used++
    const f = id * F64_PER_ENTRY
    const u = id * U32_PER_ENTRY
    this.f64[f] = lsnN
    this.f64[f + 1] = this.file.append(value)
    this.u32[u + U32_LENGTH] = value.length | (encodedValueWillInit(value) ? WILL_INIT_BIT : 0)
    this.u32[u + U32_CRC] = crc32c(value)
    this.i32[u + I32_PREV] = prev
    this.headOf[k] = id
    if (lsnN > this.maxLsnPut) this.maxLsnPut = lsnN
  }

  /** See layer-read.ts; never 'missing'. Values are fresh Buffers. */
  getValues(key: Key, lsnCeil: Lsn, out: LsnValue[], lsnFloor: Lsn = 0n as Lsn): LookupResult {
    assert(this.state !== 'closed', 'read from a closed in-memory layer')
    const k = this.keyIndex.get(key)
    let id = k === undefined ? -1 : this.headOf[k]!
    const ceil = Number(lsnCeil)
    const floor = Number(lsnFloor)
    while (id >= 0) {
      const f = id * F64_PER_ENTRY
      const u = id * U32_PER_ENTRY
      const l = this.f64[f]!
      if (l > ceil) {
        id = this.i32[u + I32_PREV]!
        continue
      }
      if (l < floor) break
      const lenFlags = this.u32[u + U32_LENGTH]!
      const value = this.file.read(this.f64[f + 1]!, lenFlags & LENGTH_MASK)
      this.checkCrc(value, id, key)
      out.push({ lsn: BigInt(l) as Lsn, value })
      if ((lenFlags & WILL_INIT_BIT) !== 0) return LOOKUP.complete
      id = this.i32[u + I32_PREV]!
    }
    return LOOKUP.incomplete
  }

  /** Closes the layer to puts; `endLsn` (exclusive) must be above every LSN put. */
  freeze(endLsn: Lsn): void {
    assert(this.state === 'open', () => `freeze of a ${this.state} in-memory layer`)
    assert(endLsn > this.startLsn, 'frozen layer would be empty')
    assert(Number(endLsn) > this.maxLsnPut, () => `freeze at ${formatLsn(endLsn)} below a put at ${formatLsn(BigInt(this.maxLsnPut))}`)
    this.end = endLsn
    this.state = 'frozen'
  }

  /**
   * Every live entry in (key, lsn) order, for the flush. Frozen layers only. The whole ephemeral file is
   * read once when it is at most SORTED_READ_ALL_MAX_BYTES (entries come in key order, the file is in
   * arrival order: one big read beats a pread per value); values are views of that buffer: a fresh one,
   * or `scratch`'s (then valid only until the scratch's next use).
   */
  *sortedEntries(readAllMaxBytes = SORTED_READ_ALL_MAX_BYTES, scratch?: FlushScratch): Generator<InMemoryEntry, void, undefined> {
    assert(this.state === 'frozen', 'sortedEntries of an in-memory layer that is not frozen')
    const keys = [...this.keyIndex.keys()].sort()
    const total = this.file.lengthBytes
    let all: Buffer | null = null
    if (total <= readAllMaxBytes) {
      all = scratch && total <= scratch.capacityBytes ? scratch.take(total) : Buffer.allocUnsafe(total)
      this.file.readInto(all, 0, total, 0)
    }
    // With the whole file in memory, verify every value in file order (sequential memory, ~2x cheaper than
    // the key-order walk below, which then only copies).
    if (all !== null) for (let id = 0; id < this.used; id++) this.checkCrcAt(all, id)
    let chain = new Int32Array(64)
    for (const key of keys) {
      let n = 0
      for (let id = this.headOf[this.keyIndex.get(key)!]!; id >= 0; id = this.i32[id * U32_PER_ENTRY + I32_PREV]!) {
        if (n === chain.length) {
          const bigger = new Int32Array(chain.length * 2)
          bigger.set(chain)
          chain = bigger
        }
        chain[n++] = id
      }
      for (let i = n - 1; i >= 0; i--) {
        const id = chain[i]!
        const f = id * F64_PER_ENTRY
        const u = id * U32_PER_ENTRY
        const lenFlags = this.u32[u + U32_LENGTH]!
        const len = lenFlags & LENGTH_MASK
        const off = this.f64[f + 1]!
        const value = all !== null ? all.subarray(off, off + len) : this.file.read(off, len)
        if (all === null) this.checkCrc(value, id, key)
        yield { key, lsn: BigInt(this.f64[f]!) as Lsn, value, willInit: (lenFlags & WILL_INIT_BIT) !== 0, crc: this.u32[u + U32_CRC]! }
      }
    }
  }

  /** Closes the ephemeral file (it stays on disk). Idempotent. */
  close(): void {
    this.state = 'closed'
    this.file.close()
  }

  /** Closes and removes the ephemeral file (after the flush). Idempotent. */
  delete(): void {
    this.state = 'closed'
    this.file.delete()
  }

  /** checkCrc of entry `id` inside a buffer holding the whole file (no view made unless it fails). */
  private checkCrcAt(all: Buffer, id: number): void {
    const off = this.f64[id * F64_PER_ENTRY + 1]!
    const len = this.u32[id * U32_PER_ENTRY + U32_LENGTH]! & LENGTH_MASK
    if (crc32cRange(all, off, off + len) !== this.u32[id * U32_PER_ENTRY + U32_CRC]) this.checkCrc(all.subarray(off, off + len), id, this.keyOfEntry(id))
  }

  /** The key of an entry (slow: only for error messages). */
  private keyOfEntry(id: number): Key {
    for (const [key, k] of this.keyIndex) {
      for (let e = this.headOf[k]!; e >= 0; e = this.i32[e * U32_PER_ENTRY + I32_PREV]!) if (e === id) return key
    }
    return '(unknown key)' as Key
  }

  private checkCrc(value: Buffer, id: number, key: Key): void {
    if (crc32c(value) !== this.u32[id * U32_PER_ENTRY + U32_CRC]) {
      throw new CorruptionError('EPHEMERAL_CORRUPT', `${this.file.path}: value of ${key} at ${formatLsn(BigInt(this.f64[id * F64_PER_ENTRY]!))} fails its checksum`, {
        hint: 'The scratch file of the in-memory layer was damaged; restart the page server, which replays WAL from disk_consistent_lsn.',
        details: { path: this.file.path },
      })
    }
  }

  private grow(): void {
    assert(this.capacity * 2 <= INMEMORY_ENTRIES_MAX + 1, 'in-memory layer has too many entries')
    this.capacity *= 2
    const f64 = new Float64Array(this.capacity * F64_PER_ENTRY)
    f64.set(this.f64)
    this.f64 = f64
    this.u32 = new Uint32Array(f64.buffer)
    this.i32 = new Int32Array(f64.buffer)
  }

}

function grownInt32(a: Int32Array): Int32Array {
  const b = new Int32Array(a.length * 2)
  b.set(a)
  return b
}

/** Removes every `ephemeral-*` file of a timeline directory (garbage at startup); returns their names. */
export async function removeEphemeralFiles(dir: string): Promise<string[]> {
  return removeFilesWhere(dir, (name) => name.startsWith(EPHEMERAL_FILE_PREFIX))
}
