/**
 * InMemorySlabs: the slabs an in-memory layer (inmemory-layer.ts) keeps its values in, and where each one
 * is: in memory, spilled to the layer's ephemeral file, or released after the L0 stream wrote it.
 *
 * Slabs come from the repository's SlabPool (value-slabs.ts), appended in arrival order; the layer fills
 * the last one and indexes its values (inmemory-index.ts). Memory is bounded: when the pool's budget is
 * reached, slabs are spilled — written whole to the layer's ephemeral file `<timeline dir>/ephemeral-<n>`
 * (spill-file.ts, created at the first spill) and returned to the pool. A spilled slab's values get their
 * CRC-32C then, and are checked when read back; values still in memory carry no CRC (the layer writer
 * computes the file's). Reads find a value in its slab or in the file.
 *
 * With a SlabStreamSink (the flush worker's, given by the timeline), every slab is sent, once full, to be
 * written to the layer's future L0 file while the layer still fills (l0-stream.ts), so the flush at freeze
 * has only the last slabs to write. Once written, the slab is released: its memory goes back to the pool
 * and its values are read from the stream's file (a descriptor opened on it, with the CRCs the stream
 * computed), as Neon's in-memory layer reads its ephemeral file. So a layer holds in memory only the slab
 * it fills and those being written, and ingest recycles a few dozen slabs instead of faulting in fresh
 * memory for each (peak RSS at the default ceiling 803 -> 450 MiB, bench/ingest-rss.ts). A slab is not
 * spilled while its write runs; if only such slabs could be spilled, the stream is dropped (the flush then
 * writes every slab, reading released ones through the layer's descriptor, which outlives the removed
 * file) rather than the memory bound broken.
 *
 * Why a class of its own: which slab is where, and moving slabs out of memory, is one concern; the layer
 * keeps the fill position, its lifecycle and the reads by key. The layer decides when slabs may leave
 * memory (`mayRelease`, and the slab it fills passed to `spillOne`). A put writes the fill level of its
 * slab into `used` directly (the layer holds the same array), so it calls into this class only when it
 * needs a new slab; a read of a value is one call (`read`).
 */
import { assert } from '../lib/errors.js'
import { crc32c, crc32cRange } from '../lib/crc32c.js'
import { copyBytes } from '../lib/shared-copy.js'
import type { Key } from '../model/key.js'
import {
  E_CRC,
  E_LENGTH,
  E_OFFSET,
  E_SLAB,
  F64_PER_ENTRY,
  LENGTH_MASK,
  U32_PER_ENTRY,
  type FrozenLayerData,
  type SlabStreamSink,
  type StreamedSlab,
} from './inmemory-format.js'
import type { InMemoryIndex } from './inmemory-index.js'
import { SpillFile, spilledValueCorrupt } from './spill-file.js'
import type { SlabPool } from './value-slabs.js'

/** The part of a frozen layer's data that describes its slabs (the layer adds its identity and records). */
export type FrozenSlabs = Pick<
  FrozenLayerData,
  'slabs' | 'slabFileOffsets' | 'slabStreamOffsets' | 'streamFd' | 'streamPath' | 'slabUsed' | 'reloadSlabs' | 'spilledBytes' | 'slabFirstEntries' | 'streamId'
>

export class InMemorySlabs {
  /**
   * Per slab: its memory (null once spilled or released), a Buffer view of it, bytes used, file offset once
   * spilled, offset in the stream's file once released, first entry id.
   */
  private readonly slabs: Array<SharedArrayBuffer | null> = []
  private readonly views: Array<Buffer | null> = []
  /** Written by the layer on every put into the slab it fills (see the header). */
  readonly used: number[] = []
  private readonly slabFileOffset: number[] = []
  private readonly slabStreamOffset: number[] = []
  private readonly slabFirstEntry: number[] = []
  /** Bytes of these slabs in memory (the rest is in the ephemeral file). */
  residentBytes = 0
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

  constructor(
    /** The layer's ephemeral file. */
    path: string,
    private readonly pool: SlabPool,
    /** The layer's index: the entries of each slab, and their CRCs once it leaves memory. */
    private readonly idx: InMemoryIndex,
    stream: SlabStreamSink | null,
    /** Whether slab `s`, written by the L0 stream, may be released now (asked by the layer: not the slab it fills, not while a flush reads them). */
    private readonly mayRelease: (s: number) => boolean,
  ) {
    this.file = new SpillFile(path)
    this.stream = stream
  }

  get count(): number {
    return this.slabs.length
  }

  /** Bytes written to the ephemeral file by spills. */
  get spilledBytes(): number {
    return this.file.lengthBytes
  }

  /** Appends `slab` (taken from the pool), whose entries start at `firstEntry`; returns its view. */
  add(slab: SharedArrayBuffer, firstEntry: number): Buffer {
    const view = Buffer.from(slab)
    this.slabs.push(slab)
    this.views.push(view)
    this.used.push(0)
    this.slabFileOffset.push(-1)
    this.slabStreamOffset.push(-1)
    this.slabFirstEntry.push(firstEntry)
    this.residentBytes += slab.byteLength
    return view
  }

  /** Sends full slab `s` (the entries since its first, all of them) to the L0 stream. */
  send(s: number): void {
    const sink = this.stream
    if (sink === null) return
    if (!sink.alive || s !== this.streamedSlabs || this.slabs[s] === null) {
      // The stream's thread died, or a slab would be missing from it: the flush writes every slab itself.
      this.dropStream()
      return
    }
    this.streamPending[s] = true
    this.streamedSlabs = s + 1
    sink.slabFull(s, this.slabs[s]!, this.used[s]!, this.slabFirstEntry[s]!, this.idx.used, this.idx.records, (w) => {
      this.streamPending[s] = false
      if (w !== null && this.stream === sink) this.release(s, sink.path, w)
    })
  }

  /**
   * Gives back the memory of slab `s`, which the stream wrote (`w`) to `path`: its values are read from that
   * file from now on, checked against the CRCs the stream computed. Not when the layer says no
   * (`mayRelease`); and not when the file cannot be opened (the slab then simply stays).
   */
  private release(s: number, path: string, w: StreamedSlab): void {
    const slab = this.slabs[s]
    if (slab === null || slab === undefined || !this.mayRelease(s)) return
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
  dropStream(): void {
    this.stream?.abort()
    this.stream = null
    this.streamPending.length = 0
  }

  /** The value of entry `id` (of `key`, for errors), as a fresh Buffer: from its slab, or read back and checked. */
  read(id: number, key: Key): Buffer {
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

  /**
   * The slabs for the flush (shared memory, no copy; InMemoryLayer.beginFlush): the layer lets none of them
   * leave memory until `endFlush` or `close`. Spilled slabs get memory to be read back into when the pool
   * has it free (after a flush it usually does: the previous layer's slabs).
   */
  lend(): FrozenSlabs {
    // (Slabs the L0 stream wrote are not read again.)
    const streamId = this.stream !== null && this.stream.alive ? this.stream.id : null
    const streamed = streamId !== null ? this.streamedSlabs : 0
    this.reloadSlabs = this.slabs.map((slab, s) => (slab === null && s >= streamed ? this.pool.takeIfFree(this.used[s]!) : null))
    return {
      slabs: this.slabs.slice(),
      slabFileOffsets: this.slabFileOffset.slice(),
      slabStreamOffsets: this.slabStreamOffset.slice(),
      streamFd: this.streamFile?.descriptor ?? -1,
      streamPath: this.streamFile?.path ?? '',
      slabUsed: this.used.slice(),
      reloadSlabs: this.reloadSlabs.slice(),
      spilledBytes: this.file.lengthBytes,
      slabFirstEntries: this.slabFirstEntry.slice(),
      streamId,
    }
  }

  /** After a failed flush: it removed the L0 stream's file, so a retry writes every slab. */
  endFlush(): void {
    this.dropStream()
    this.returnReloadSlabs()
  }

  private returnReloadSlabs(): void {
    for (const r of this.reloadSlabs) if (r !== null) this.pool.give(r)
    this.reloadSlabs = []
  }

  /**
   * Writes the oldest resident slab (not `filling`, the one being filled; -1: none) to the ephemeral file.
   * Slabs the L0 stream is still writing are passed over; when only those are left, the stream is dropped
   * (the flush then writes every slab, as without one) so that the memory bound holds.
   */
  spillOne(filling: number): boolean {
    for (let pass = 0; pass < 2; pass++) {
      let passedOver = false
      for (let s = this.spillCursor; s < this.slabs.length; s++) {
        if (this.slabs[s] === null) {
          if (s === this.spillCursor) this.spillCursor++
          continue
        }
        if (s === filling) break
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
    const used = this.used[s]!
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

  /** Gives every slab back to the pool and closes the files (the ephemeral file stays on disk). */
  close(): void {
    for (let s = 0; s < this.slabs.length; s++) {
      const slab = this.slabs[s]
      if (slab === null || slab === undefined) continue
      this.slabs[s] = null
      this.views[s] = null
      this.pool.give(slab)
    }
    this.residentBytes = 0
    this.returnReloadSlabs()
    this.file.close()
    this.streamFile?.close()
  }

  /** Removes the ephemeral file (after `close`). */
  delete(): void {
    this.file.delete()
  }
}
