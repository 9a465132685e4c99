/**
 * InMemoryLayer: the open layer of a timeline, receiving every put since the last freeze; once frozen it
 * waits to be flushed to an L0 delta layer file (l0-flush.ts, in the flush worker thread).
 *
 * Values live in slabs from the repository's SlabPool (value-slabs.ts): appended in arrival order, a value
 * never straddles two slabs, and ingest encodes a value straight into its slab (`putRecord`, `reserve` +
 * `reserveImage` + `commit`): no intermediate buffer, no copy through a file. The slabs and where each one
 * is — in memory, spilled to the layer's ephemeral file when the pool's budget is reached, or released once
 * the L0 stream wrote it — are kept by InMemorySlabs (inmemory-slabs.ts, which explains spills and the
 * stream); this class keeps the slab being filled, the index, the lifecycle and the reads by key.
 *
 * The JS heap holds only a compact index with no object per entry (inmemory-index.ts: entry records in
 * shared memory, keys numbered by prefix and field6, so ingest puts by parts, `putRecordAt` / `commitAt`,
 * without building a key string). Per key, puts come with non-decreasing LSNs (asserted); a put at the same
 * LSN as the key's newest version replaces it. The frozen layer's keys are built once, in slot order, when
 * it is flushed.
 *
 * Lifecycle: create -> put* -> freeze(endLsn) -> beginFlush() (the data handed to the flush, which reads it
 * from another thread; no spill meanwhile) -> delete() (slabs back to the pool, ephemeral file removed), or
 * endFlush() after a failed flush. Every `ephemeral-*` file found at startup is garbage
 * (`removeEphemeralFiles`).
 */
import { join } from 'node:path'
import { assert } from '../lib/errors.js'
import { copyBytes } from '../lib/shared-copy.js'
import { keyField6, keyPrefixOf, type Key } from '../model/key.js'
import { VALUE_FLAG_WILL_INIT, VALUE_HEADER_BYTES, VALUE_KIND_IMAGE, VALUE_KIND_RECORD } from '../model/value.js'
import { MAX_LSN, formatLsn, type Lsn } from '../pg/lsn.js'
import { LAYER_VALUE_MAX_BYTES } from './layer-format.js'
import { EPHEMERAL_FILE_PREFIX, type LsnRange } from './layer-name.js'
import { LOOKUP, type LookupResult, type LsnValue, type ReadableLayer } from './layer-read.js'
import { E_LENGTH, E_PREV, F64_PER_ENTRY, U32_PER_ENTRY, WILL_INIT_BIT, type FrozenLayerData, type SlabStreamSink } from './inmemory-format.js'
import { InMemoryIndex } from './inmemory-index.js'
import { InMemorySlabs } from './inmemory-slabs.js'
import { SPILL_RANK, SlabPool, type SlabOwner } from './value-slabs.js'

export interface InMemoryLayerOptions {
  /** The timeline directory; the layer's spill file is `<dir>/ephemeral-<fileId>`. */
  readonly dir: string
  /** Unique among the timeline's live in-memory layers (a counter kept by the timeline). */
  readonly fileId: number
  /** The layer covers LSNs from here (inclusive). */
  readonly startLsn: Lsn
  /** Where values live; default: a pool of this layer's own (RESIDENT_BYTES_MAX_DEFAULT). */
  readonly pool?: SlabPool
  /** Where full slabs go to be written to the future L0 file ahead of the flush; default: nowhere. */
  readonly stream?: SlabStreamSink
}

type LayerState = 'open' | 'frozen' | 'flushing' | 'closed'

export class InMemoryLayer implements ReadableLayer, SlabOwner {
  readonly path: string
  private readonly pool: SlabPool
  /** Entry records and key numbering (their views are read in place here). */
  private readonly idx: InMemoryIndex
  private end: Lsn | null = null
  private state: LayerState = 'open'

  /** Where values live (the slabs, spills, the L0 stream, releases). */
  private readonly slabs: InMemorySlabs
  /** `slabs.used`, held here too: a put writes its slab's fill level without going through `slabs`. */
  private readonly slabUsed: number[]
  /** The slab being filled (index, view) and its fill level. */
  private cur: Buffer | null = null
  private curIdx = -1
  private curUsed = 0
  /** Bytes reserved by `reserve` and not yet committed (-1: none). */
  private reserved = -1
  private valueBytes = 0

  private constructor(
    readonly startLsn: Lsn,
    path: string,
    pool: SlabPool,
    stream: SlabStreamSink | null,
  ) {
    this.path = path
    this.idx = new InMemoryIndex(startLsn)
    this.pool = pool
    // Slab s may leave memory once the stream wrote it unless it is still being filled or a flush reads it.
    this.slabs = new InMemorySlabs(path, pool, this.idx, stream, (s) => s !== this.curIdx && (this.state === 'open' || this.state === 'frozen'))
    this.slabUsed = this.slabs.used
    pool.register(this)
  }

  static create(options: InMemoryLayerOptions): InMemoryLayer {
    assert(Number.isSafeInteger(options.fileId) && options.fileId >= 0, 'ephemeral file id must be a non-negative integer')
    return new InMemoryLayer(options.startLsn, join(options.dir, `${EPHEMERAL_FILE_PREFIX}${options.fileId}`), options.pool ?? new SlabPool(), options.stream ?? null)
  }

  get frozen(): boolean {
    return this.state === 'frozen' || this.state === 'flushing'
  }

  /** The exclusive end LSN once frozen; null while open. */
  get endLsn(): Lsn | null {
    return this.end
  }

  /** [startLsn, endLsn), or [startLsn, MAX_LSN) while open. */
  get lsnRange(): LsnRange {
    return { start: this.startLsn, end: this.end ?? MAX_LSN }
  }

  /** Value bytes held (in slabs or spilled): what the timeline counts against the memory ceiling. */
  get sizeBytes(): number {
    return this.valueBytes
  }

  /** Bytes of this layer's slabs in memory (the rest is in its ephemeral file). */
  get residentSlabBytesNow(): number {
    return this.slabs.residentBytes
  }

  /** Bytes written to the ephemeral file by spills. */
  get spilledBytes(): number {
    return this.slabs.spilledBytes
  }

  /** Estimated JS heap held by the index (typed arrays at capacity, the key numbering and a per-key cost). */
  get indexBytes(): number {
    return this.idx.bytes
  }

  get entryCount(): number {
    return this.idx.live
  }

  get keyCount(): number {
    return this.idx.keySlots.size
  }

  // --- writes ---

  /** Adds the encoded `value` of `key` at `lsn` (copied; LSNs non-decreasing per key). */
  put(key: Key, lsn: Lsn, value: Buffer): void {
    this.makeRoom(value.length)
    copyBytes(value, this.cur!, this.curUsed, 0, value.length)
    this.index(keyPrefixOf(key), keyField6(key), lsn, value.length, value[0] === VALUE_KIND_IMAGE || (value[1]! & VALUE_FLAG_WILL_INIT) !== 0 ? WILL_INIT_BIT : 0)
  }

  /** Adds a WAL record value (the 2-byte value header, then `raw`), encoded in place. */
  putRecord(key: Key, lsn: Lsn, raw: Buffer, willInit: boolean): void {
    this.putRecordAt(keyPrefixOf(key), keyField6(key), lsn, raw, willInit)
  }

  /** `putRecord` for the key given by its prefix (keyPrefixFromFields' form) and field6. */
  putRecordAt(prefix: string, field6: number, lsn: Lsn, raw: Buffer, willInit: boolean): void {
    const len = VALUE_HEADER_BYTES + raw.length
    this.makeRoom(len)
    const cur = this.cur!
    const at = this.curUsed
    cur[at] = VALUE_KIND_RECORD
    cur[at + 1] = willInit ? VALUE_FLAG_WILL_INIT : 0
    copyBytes(raw, cur, at + VALUE_HEADER_BYTES, 0, raw.length)
    this.index(prefix, field6, lsn, len, willInit ? WILL_INIT_BIT : 0)
  }

  /**
   * Room for an encoded value of `bytes` that the caller writes into the returned view, then `commit`s. A
   * reservation not committed is simply overwritten by the next one.
   */
  reserve(bytes: number): Buffer {
    this.makeRoom(bytes)
    this.reserved = bytes
    return this.cur!.subarray(this.curUsed, this.curUsed + bytes)
  }

  /** `reserve` for an image value of `dataBytes`: writes the value header and returns the payload view. */
  reserveImage(dataBytes: number): Buffer {
    const len = VALUE_HEADER_BYTES + dataBytes
    this.makeRoom(len)
    this.reserved = len
    const cur = this.cur!
    cur[this.curUsed] = VALUE_KIND_IMAGE
    cur[this.curUsed + 1] = 0
    return cur.subarray(this.curUsed + VALUE_HEADER_BYTES, this.curUsed + len)
  }

  /** Adds the value written into the last `reserve` as `key` at `lsn`. */
  commit(key: Key, lsn: Lsn): void {
    this.commitAt(keyPrefixOf(key), keyField6(key), lsn)
  }

  /** `commit` for the key given by its prefix and field6. */
  commitAt(prefix: string, field6: number, lsn: Lsn): void {
    const bytes = this.reserved
    assert(bytes >= 0, 'commit without a reservation')
    this.reserved = -1
    const cur = this.cur!
    const at = this.curUsed
    this.index(prefix, field6, lsn, bytes, cur[at] === VALUE_KIND_IMAGE || (cur[at + 1]! & VALUE_FLAG_WILL_INIT) !== 0 ? WILL_INIT_BIT : 0)
  }

  /** Makes the current slab hold `bytes` more (a new slab when it cannot). */
  private makeRoom(bytes: number): void {
    this.reserved = -1
    if (this.cur !== null && this.curUsed + bytes <= this.cur.length && bytes >= VALUE_HEADER_BYTES) return
    assert(this.state === 'open', () => `put into a ${this.state} in-memory layer`)
    assert(bytes >= VALUE_HEADER_BYTES && bytes <= LAYER_VALUE_MAX_BYTES, () => `value of ${bytes} bytes is out of bounds`)
    // The full slab is no longer current: it goes to the L0 stream, and the pool may spill it to make room
    // for the next (once the stream has written it).
    if (this.curIdx >= 0) this.slabs.send(this.curIdx)
    this.cur = null
    this.curIdx = -1
    const slab = this.pool.take(bytes, this)
    this.curIdx = this.slabs.count
    this.cur = this.slabs.add(slab, this.idx.used)
    this.curUsed = 0
  }

  /** Indexes the `len` bytes at the current slab's fill level as (key, lsn) and advances it. */
  private index(prefix: string, field6: number, lsn: Lsn, len: number, willInitBit: number): void {
    const at = this.curUsed
    this.idx.add(prefix, field6, lsn, this.curIdx, at, len, willInitBit)
    this.curUsed = at + len
    this.slabUsed[this.curIdx] = this.curUsed
    this.valueBytes += len
  }

  // --- reads ---

  /** See layer-read.ts; never 'missing'. Values are fresh Buffers (slabs are reused after the flush). */
  getValues(key: Key, lsnCeil: Lsn, out: LsnValue[], lsnFloor: Lsn = 0n as Lsn): LookupResult {
    assert(this.state !== 'closed', 'read from a closed in-memory layer')
    const { f64, u32, i32 } = this.idx
    let id = this.idx.newest(key)
    const ceil = Number(lsnCeil)
    const floor = Number(lsnFloor)
    while (id >= 0) {
      const u = id * U32_PER_ENTRY
      const l = f64[id * F64_PER_ENTRY]!
      if (l > ceil) {
        id = i32[u + E_PREV]!
        continue
      }
      if (l < floor) break
      out.push({ lsn: BigInt(l) as Lsn, value: this.slabs.read(id, key) })
      if ((u32[u + E_LENGTH]! & WILL_INIT_BIT) !== 0) return LOOKUP.complete
      id = i32[u + E_PREV]!
    }
    return LOOKUP.incomplete
  }

  // --- freeze and flush ---

  /** True when a value was put at an LSN at or above `lsn`. */
  hasPutsFrom(lsn: Lsn): boolean {
    return this.idx.maxLsn >= Number(lsn)
  }

  /** Closes the layer to puts; `endLsn` (exclusive) must be above every LSN put. */
  freeze(endLsn: Lsn): void {
    assert(this.state === 'open', () => `freeze of a ${this.state} in-memory layer`)
    assert(endLsn > this.startLsn, 'frozen layer would be empty')
    assert(Number(endLsn) > this.idx.maxLsn, () => `freeze at ${formatLsn(endLsn)} below a put at ${formatLsn(BigInt(this.idx.maxLsn))}`)
    this.end = endLsn
    this.state = 'frozen'
    this.cur = null
    this.reserved = -1
  }

  /**
   * The layer's contents for the flush (shared memory, no copy): from here until `delete` or `endFlush`
   * nothing of it is spilled, so another thread may read it. Spilled slabs get memory to be read back
   * into when the pool has it free (after a flush it usually does: the previous layer's slabs).
   */
  beginFlush(): FrozenLayerData {
    assert(this.state === 'frozen', () => `flush of a ${this.state} in-memory layer`)
    this.state = 'flushing'
    const slabs = this.slabs.lend()
    return {
      path: this.path,
      lsnRange: { start: this.startLsn, end: this.end! },
      keys: this.idx.keySlots.keys(),
      records: this.idx.records,
      entryCount: this.idx.used,
      ...slabs,
    }
  }

  /**
   * After a failed flush: the layer waits again (and may be spilled). The failed flush removed the L0
   * stream's file, so a retry writes every slab.
   */
  endFlush(): void {
    if (this.state !== 'flushing') return
    this.state = 'frozen'
    this.slabs.endFlush()
  }

  // --- spilling (SlabOwner) ---

  spillRank(): number {
    if (this.state === 'frozen') return SPILL_RANK.frozenWaiting
    if (this.state === 'open') return SPILL_RANK.open
    return SPILL_RANK.none
  }

  residentSlabBytes(): number {
    return this.slabs.residentBytes
  }

  /**
   * Writes the oldest resident slab to the ephemeral file (InMemorySlabs.spillOne): not while a flush reads
   * the slabs, and while the layer is open not the slab being filled.
   */
  spillOne(): boolean {
    if (this.state !== 'open' && this.state !== 'frozen') return false
    return this.slabs.spillOne(this.state === 'open' ? this.curIdx : -1)
  }

  // --- end of life ---

  /**
   * Drops the values (slabs back to the pool) and closes the ephemeral file, which stays on disk; an L0
   * stream not finished by a flush is abandoned (a slab write still running then only reads into a file
   * being removed). Idempotent.
   */
  close(): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.slabs.dropStream()
    this.pool.unregister(this)
    this.slabs.close()
    this.cur = null
  }

  /** Closes and removes the ephemeral file (after the flush). Idempotent. */
  delete(): void {
    this.close()
    this.slabs.delete()
  }
}

export { removeEphemeralFiles } from './spill-file.js'
