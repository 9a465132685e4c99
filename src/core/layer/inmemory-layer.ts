/**
 * InMemoryLayer: the open layer of a timeline, receiving every put since the last freeze; once frozen it
 * waits to be flushed to an L0 delta layer file (l0-flush.ts, in the flush worker thread).
 *
 * Values live in slabs from the repository's SlabPool (value-slabs.ts): appended in arrival order, a value
 * never straddles two slabs, and ingest encodes a value straight into its slab (`putRecord`, `reserve` +
 * `reserveImage` + `commit`): no intermediate buffer, no copy through a file. Memory is bounded: when the pool's budget is
 * reached, slabs are spilled — written whole to the layer's ephemeral file `<timeline dir>/ephemeral-<n>`
 * (spill-file.ts, created at the first spill) and returned to the pool. A spilled slab's values get their
 * CRC-32C then, and are checked when read back; values still in memory carry no CRC (the layer writer
 * computes the file's). Reads find a value in its slab or in the file.
 *
 * The JS heap holds only a compact index with no object per entry (inmemory-index.ts: entry records in
 * shared memory, keys numbered by prefix and field6, so ingest puts by parts, `putRecordAt` / `commitAt`,
 * without building a key string). Per key, puts come with non-decreasing LSNs (asserted); a put at the same
 * LSN as the key's newest version replaces it. The frozen layer's keys are built once, in slot order, when
 * it is flushed.
 *
 * With a SlabStreamSink (the flush worker's, given by the timeline), every slab is sent, once full, to be
 * written to the layer's future L0 file while the layer still fills (l0-stream.ts), so the flush at freeze
 * has only the last slabs to write. Once written, the slab is released: its memory goes back to the pool
 * and its values are read from the stream's file (a descriptor the layer opens on it, with the CRCs the
 * stream computed), as Neon's in-memory layer reads its ephemeral file. So a layer holds in memory only
 * the slab it fills and those being written, and ingest recycles a few dozen slabs instead of faulting in
 * fresh memory for each (peak RSS at the default ceiling 803 -> 450 MiB, bench/ingest-rss.ts). A slab is
 * not spilled while its write runs; if only such slabs could be spilled, the stream is dropped (the flush
 * then writes every slab, reading released ones through the layer's descriptor, which outlives the removed
 * file) rather than the memory bound broken.
 *
 * Lifecycle: create -> put* -> freeze(endLsn) -> beginFlush() (the data handed to the flush, which reads it
 * from another thread; no spill meanwhile) -> delete() (slabs back to the pool, ephemeral file removed), or
 * endFlush() after a failed flush. Every `ephemeral-*` file found at startup is garbage
 * (`removeEphemeralFiles`).
 */
import { join } from 'node:path'
import { assert } from '../lib/errors.js'
import { crc32c, crc32cRange } from '../lib/crc32c.js'
import { copyBytes } from '../lib/shared-copy.js'
import { keyField6, keyPrefixOf, type Key } from '../model/key.js'
import { VALUE_FLAG_WILL_INIT, VALUE_HEADER_BYTES, VALUE_KIND_IMAGE, VALUE_KIND_RECORD } from '../model/value.js'
import { MAX_LSN, formatLsn, type Lsn } from '../pg/lsn.js'
import { LAYER_VALUE_MAX_BYTES } from './layer-format.js'
import { EPHEMERAL_FILE_PREFIX, type LsnRange } from './layer-name.js'
import { LOOKUP, type LookupResult, type LsnValue, type ReadableLayer } from './layer-read.js'
import {
  E_CRC,
  E_LENGTH,
  E_OFFSET,
  E_PREV,
  E_SLAB,
  F64_PER_ENTRY,
  LENGTH_MASK,
  U32_PER_ENTRY,
  WILL_INIT_BIT,
  type FrozenLayerData,
  type SlabStreamSink,
  type StreamedSlab,
} from './inmemory-format.js'
import { InMemoryIndex } from './inmemory-index.js'
import { SpillFile, spilledValueCorrupt } from './spill-file.js'
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

  // --- slabs ---
  /**
   * Per slab: its memory (null once spilled or released), a Buffer view of it, bytes used, file offset once
   * spilled, offset in the stream's file once released, first entry id.
   */
  private readonly slabs: Array<SharedArrayBuffer | null> = []
  private readonly views: Array<Buffer | null> = []
  private readonly slabUsed: number[] = []
  private readonly slabFileOffset: number[] = []
  private readonly slabStreamOffset: number[] = []
  private readonly slabFirstEntry: number[] = []
  /** The slab being filled (index, view) and its fill level. */
  private cur: Buffer | null = null
  private curIdx = -1
  private curUsed = 0
  /** Bytes reserved by `reserve` and not yet committed (-1: none). */
  private reserved = -1
  private valueBytes = 0
  private residentBytes = 0
  /** Spills go oldest slab first: the next slab index to try. */
  private spillCursor = 0
  /** Slabs lent to the flush to read spilled slabs back into (returned with the layer's). */
  private reloadSlabs: Array<SharedArrayBuffer | null> = []
  /** The spill file: descriptor (-1 until the first spill) and its length. */
  private readonly file: SpillFile
  /** The L0 stream full slabs are sent to (null: none, or dropped), the slabs sent, and those still being written. */
  private stream: SlabStreamSink | null
  private streamedSlabs = 0
  private readonly streamPending: boolean[] = []
  /** The stream's file, opened at the first release to read released slabs' values. */
  private streamFile: SpillFile | null = null

  private constructor(
    readonly startLsn: Lsn,
    path: string,
    pool: SlabPool,
    stream: SlabStreamSink | null,
  ) {
    this.path = path
    this.idx = new InMemoryIndex(startLsn)
    this.file = new SpillFile(path)
    this.pool = pool
    this.stream = stream
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
    return this.residentBytes
  }

  /** Bytes written to the ephemeral file by spills. */
  get spilledBytes(): number {
    return this.file.lengthBytes
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
    if (this.curIdx >= 0) this.streamSlab(this.curIdx)
    this.cur = null
    this.curIdx = -1
    const slab = this.pool.take(bytes, this)
    this.curIdx = this.slabs.length
    this.slabs.push(slab)
    this.cur = Buffer.from(slab)
    this.views.push(this.cur)
    this.slabUsed.push(0)
    this.slabFileOffset.push(-1)
    this.slabStreamOffset.push(-1)
    this.slabFirstEntry.push(this.idx.used)
    this.curUsed = 0
    this.residentBytes += slab.byteLength
  }

  /** Indexes the `len` bytes at the current slab's fill level as (key, lsn) and advances it. */
  private index(prefix: string, field6: number, lsn: Lsn, len: number, willInitBit: number): void {
    const at = this.curUsed
    this.idx.add(prefix, field6, lsn, this.curIdx, at, len, willInitBit)
    this.curUsed = at + len
    this.slabUsed[this.curIdx] = this.curUsed
    this.valueBytes += len
  }

  /** Sends full slab `s` (the entries since its first, all of them) to the L0 stream. */
  private streamSlab(s: number): void {
    const sink = this.stream
    if (sink === null) return
    if (!sink.alive || s !== this.streamedSlabs || this.slabs[s] === null) {
      // The stream's thread died, or a slab would be missing from it: the flush writes every slab itself.
      this.dropStream()
      return
    }
    this.streamPending[s] = true
    this.streamedSlabs = s + 1
    sink.slabFull(s, this.slabs[s]!, this.slabUsed[s]!, this.slabFirstEntry[s]!, this.idx.used, this.idx.records, (w) => {
      this.streamPending[s] = false
      if (w !== null && this.stream === sink) this.release(s, sink.path, w)
    })
  }

  /**
   * Gives back the memory of slab `s`, which the stream wrote (`w`) to `path`: its values are read from that
   * file from now on, checked against the CRCs the stream computed. Not while a flush reads the slabs; and
   * not when the file cannot be opened (the slab then simply stays).
   */
  private release(s: number, path: string, w: StreamedSlab): void {
    const slab = this.slabs[s]
    if (slab === null || slab === undefined || s === this.curIdx || (this.state !== 'open' && this.state !== 'frozen')) return
    if (this.streamFile === null) {
      try {
        this.streamFile = SpillFile.openForReading(path)
      } catch {
        return
      }
    }
    const first = this.slabFirstEntry[s]!
    const end = this.slabEntryEnd(s)
    assert(w.crcs.length === end - first, () => `L0 stream reported ${w.crcs.length} CRCs for the ${end - first} values of slab ${s}`)
    const u32 = this.idx.u32
    for (let id = first; id < end; id++) u32[id * U32_PER_ENTRY + E_CRC] = w.crcs[id - first]!
    this.slabStreamOffset[s] = w.offset
    this.slabs[s] = null
    this.views[s] = null
    this.residentBytes -= slab.byteLength
    this.pool.noteRelease()
    this.pool.give(slab)
  }

  /** The end of slab `s`'s entry ids (its entries are [slabFirstEntry[s], this)). */
  private slabEntryEnd(s: number): number {
    return s + 1 < this.slabFirstEntry.length ? this.slabFirstEntry[s + 1]! : this.idx.used
  }

  /** Abandons the L0 stream (its file is removed); its slab writes have ended or no longer matter. */
  private dropStream(): void {
    this.stream?.abort()
    this.stream = null
    this.streamPending.length = 0
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
      out.push({ lsn: BigInt(l) as Lsn, value: this.readValue(id, key) })
      if ((u32[u + E_LENGTH]! & WILL_INIT_BIT) !== 0) return LOOKUP.complete
      id = i32[u + E_PREV]!
    }
    return LOOKUP.incomplete
  }

  private readValue(id: number, key: Key): Buffer {
    const u32 = this.idx.u32
    const u = id * U32_PER_ENTRY
    const s = u32[u + E_SLAB]!
    const off = u32[u + E_OFFSET]!
    const len = u32[u + E_LENGTH]! & LENGTH_MASK
    const out = Buffer.allocUnsafe(len)
    const view = this.views[s]
    if (view !== null && view !== undefined) {
      copyBytes(view, out, 0, off, off + len)
      return out
    }
    const released = this.slabStreamOffset[s]! >= 0
    const file = released ? this.streamFile! : this.file
    file.readInto(out, (released ? this.slabStreamOffset[s]! : this.slabFileOffset[s]!) + off)
    if (crc32c(out) !== u32[u + E_CRC]) throw spilledValueCorrupt(file.path, key, BigInt(this.idx.f64[id * F64_PER_ENTRY]!))
    return out
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
    // (Slabs the L0 stream wrote are not read again.)
    const streamId = this.stream !== null && this.stream.alive ? this.stream.id : null
    const streamed = streamId !== null ? this.streamedSlabs : 0
    this.reloadSlabs = this.slabs.map((slab, s) => (slab === null && s >= streamed ? this.pool.takeIfFree(this.slabUsed[s]!) : null))
    return {
      path: this.path,
      lsnRange: { start: this.startLsn, end: this.end! },
      keys: this.idx.keySlots.keys(),
      records: this.idx.records,
      entryCount: this.idx.used,
      slabs: this.slabs.slice(),
      slabFileOffsets: this.slabFileOffset.slice(),
      slabStreamOffsets: this.slabStreamOffset.slice(),
      streamFd: this.streamFile?.descriptor ?? -1,
      streamPath: this.streamFile?.path ?? '',
      slabUsed: this.slabUsed.slice(),
      reloadSlabs: this.reloadSlabs.slice(),
      spilledBytes: this.file.lengthBytes,
      slabFirstEntries: this.slabFirstEntry.slice(),
      streamId,
    }
  }

  /**
   * After a failed flush: the layer waits again (and may be spilled). The failed flush removed the L0
   * stream's file, so a retry writes every slab.
   */
  endFlush(): void {
    if (this.state !== 'flushing') return
    this.state = 'frozen'
    this.dropStream()
    this.returnReloadSlabs()
  }

  private returnReloadSlabs(): void {
    for (const r of this.reloadSlabs) if (r !== null) this.pool.give(r)
    this.reloadSlabs = []
  }

  // --- spilling (SlabOwner) ---

  spillRank(): number {
    if (this.state === 'frozen') return SPILL_RANK.frozenWaiting
    if (this.state === 'open') return SPILL_RANK.open
    return SPILL_RANK.none
  }

  residentSlabBytes(): number {
    return this.residentBytes
  }

  /**
   * Writes the oldest resident slab (not the one being filled) to the ephemeral file. Slabs the L0 stream
   * is still writing are passed over; when only those are left, the stream is dropped (the flush then
   * writes every slab, as without one) so that the memory bound holds.
   */
  spillOne(): boolean {
    if (this.state !== 'open' && this.state !== 'frozen') return false
    for (let pass = 0; pass < 2; pass++) {
      let passedOver = false
      for (let s = this.spillCursor; s < this.slabs.length; s++) {
        if (this.slabs[s] === null) {
          if (s === this.spillCursor) this.spillCursor++
          continue
        }
        if (s === this.curIdx && this.state === 'open') break
        if (this.streamPending[s] === true) {
          passedOver = true
          continue
        }
        this.spillSlab(s)
        if (s === this.spillCursor) this.spillCursor++
        return true
      }
      if (!passedOver) return false
      this.dropStream()
    }
    return false
  }

  private spillSlab(s: number): void {
    const slab = this.slabs[s]!
    const view = this.views[s]!
    const used = this.slabUsed[s]!
    // The values of slab s are the entries [first, next slab's first): they get their CRC now.
    const endId = this.slabEntryEnd(s)
    const u32 = this.idx.u32
    for (let id = this.slabFirstEntry[s]!; id < endId; id++) {
      const u = id * U32_PER_ENTRY
      const off = u32[u + E_OFFSET]!
      u32[u + E_CRC] = crc32cRange(view, off, off + (u32[u + E_LENGTH]! & LENGTH_MASK))
    }
    this.slabFileOffset[s] = this.file.append(view, used)
    this.slabs[s] = null
    this.views[s] = null
    this.residentBytes -= slab.byteLength
    this.pool.noteSpill(used)
    this.pool.give(slab)
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
    this.dropStream()
    this.pool.unregister(this)
    for (let s = 0; s < this.slabs.length; s++) {
      const slab = this.slabs[s]
      if (slab === null || slab === undefined) continue
      this.slabs[s] = null
      this.views[s] = null
      this.pool.give(slab)
    }
    this.residentBytes = 0
    this.returnReloadSlabs()
    this.cur = null
    this.file.close()
    this.streamFile?.close()
  }

  /** Closes and removes the ephemeral file (after the flush). Idempotent. */
  delete(): void {
    this.close()
    this.file.delete()
  }
}

export { removeEphemeralFiles } from './spill-file.js'
