/**
 * L0Stream: the L0 delta layer file of an in-memory layer, written slab by slab while the layer still
 * fills, in the flush worker thread (or in-thread by writeL0).
 *
 * An L0's values are stored as the in-memory layer holds them: its slabs one after another, in the order
 * ingest filled them (layer file format version 2: values where they were placed, the index in (key, lsn)
 * order). So a slab can be written as soon as it is full — its CRC-32Cs computed while it is still in this
 * core's cache, then the slab itself queued to the file without a copy — and the flush at freeze time only
 * writes the last slabs, sorts the keys, writes the index and makes the file durable: most of the work of
 * a 256 MiB flush moves off the critical path at the end of an ingest (bench/ingest.ts).
 *
 * Until the flush finishes it the file is a `___temp` file, removed at startup if a crash leaves it; an
 * abandoned layer aborts its stream (the file is removed). CRCs are kept here per entry id: the flush
 * indexes each value with the CRC computed when its slab was written. Each written slab is reported back
 * with its offset and CRCs (`streamed`), and the in-memory layer then gives the slab's memory back and
 * reads those values from this file (inmemory-slabs.ts).
 */
import type { TenantId, TimelineId } from '../model/ids.js'
import { MIN_KEY } from '../model/key.js'
import { MAX_LSN, type Lsn } from '../pg/lsn.js'
import { crc32cRange } from '../lib/crc32c.js'
import { AssertionFailure } from '../lib/errors.js'
import { E_LENGTH, E_OFFSET, E_SLAB, LENGTH_MASK, U32_PER_ENTRY, type StreamedSlab } from './inmemory-format.js'
import { LayerFileWriter, layerTempPath } from './layer-file-writer.js'

export interface L0StreamTarget {
  /** The timeline directory. */
  readonly dir: string
  readonly tenantId: TenantId
  readonly timelineId: TimelineId
  /** The in-memory layer's start LSN (its end is set by the flush). */
  readonly lsnStart: Lsn
  readonly noSync: boolean
  /** The file's temp path (l0StreamTempPath), known to the layer before the stream writes anything. */
  readonly tempPath?: string
}

/** A fresh temp path for the L0 file of an in-memory layer starting at `lsnStart`. */
export function l0StreamTempPath(dir: string, lsnStart: Lsn): string {
  return layerTempPath(dir, MIN_KEY, { start: lsnStart, end: MAX_LSN })
}

/**
 * How a slab read back from the spill file is checked: each value's CRC against the one recorded at the
 * spill (`expectCrc`); a mismatch throws `onMismatch(id)`.
 */
export interface SpillCheck {
  expectCrc(id: number): number
  onMismatch(id: number): Error
}

export class L0Stream {
  /** Slabs written so far (slabs 0 .. slabsWritten - 1, in order). */
  slabsWritten = 0
  /** File offset of each written slab's first byte. */
  readonly slabOffsets: number[] = []
  /** CRC-32C of each entry's value, by entry id, for the entries of the written slabs. */
  private crcs = new Uint32Array(1024)

  private constructor(readonly writer: LayerFileWriter) {}

  static async open(t: L0StreamTarget): Promise<L0Stream> {
    const writer = await LayerFileWriter.create('delta', MIN_KEY, { start: t.lsnStart, end: MAX_LSN }, {
      dir: t.dir,
      tenantId: t.tenantId,
      timelineId: t.timelineId,
      noSync: t.noSync,
      compression: 'none',
      ...(t.tempPath !== undefined ? { tempPath: t.tempPath } : {}),
    })
    return new L0Stream(writer)
  }

  /** The CRC-32C of entry `id`'s value (its slab was written). */
  crcOf(id: number): number {
    return this.crcs[id]!
  }

  /**
   * What the in-memory layer needs to release written slab `index` (entries [firstEntry, endEntry)) and
   * read its values from this file instead: the slab's offset, its values' CRCs (a copy).
   */
  streamed(index: number, firstEntry: number, endEntry: number): StreamedSlab {
    return { offset: this.slabOffsets[index]!, crcs: this.crcs.slice(firstEntry, endEntry) }
  }

  /**
   * Writes slab `index` (`view`: its used bytes) after the slabs written before it. Its entries are the
   * ids [firstEntry, endEntry) of `records` (inmemory-format.ts); their CRCs are computed now, and for a
   * slab read back from the spill file checked (`check`). `view` is queued as it is and must not change
   * until `onWritten` runs.
   */
  addSlab(index: number, view: Buffer, records: SharedArrayBuffer, firstEntry: number, endEntry: number, onWritten: (() => void) | null, check: SpillCheck | null = null): void {
    this.recordCrcs(index, view, records, firstEntry, endEntry, check)
    this.slabOffsets.push(this.writer.appendView(view, onWritten))
    this.slabsWritten++
  }

  /**
   * `addSlab` of a slab read back from the spill file into a buffer the caller reuses: every value is
   * checked (`check`), and the bytes are copied under the writer's backpressure.
   */
  async addSpilledSlab(index: number, view: Buffer, records: SharedArrayBuffer, firstEntry: number, endEntry: number, check: SpillCheck): Promise<void> {
    this.recordCrcs(index, view, records, firstEntry, endEntry, check)
    this.slabOffsets.push(await this.writer.appendCopy(view))
    this.slabsWritten++
  }

  private recordCrcs(index: number, view: Buffer, records: SharedArrayBuffer, firstEntry: number, endEntry: number, check: SpillCheck | null): void {
    if (index !== this.slabsWritten) throw new AssertionFailure(`L0 stream: slab ${index} arrived, slab ${this.slabsWritten} expected`)
    const u32 = new Uint32Array(records)
    if (endEntry > this.crcs.length) {
      let n = this.crcs.length
      while (n < endEntry) n *= 2
      const grown = new Uint32Array(n)
      grown.set(this.crcs)
      this.crcs = grown
    }
    for (let id = firstEntry; id < endEntry; id++) {
      const u = id * U32_PER_ENTRY
      if (u32[u + E_SLAB] !== index) throw new AssertionFailure(`L0 stream: entry ${id} is not in slab ${index}`)
      const off = u32[u + E_OFFSET]!
      const crc = crc32cRange(view, off, off + (u32[u + E_LENGTH]! & LENGTH_MASK))
      if (check !== null && crc !== check.expectCrc(id)) throw check.onMismatch(id)
      this.crcs[id] = crc
    }
  }

  /** Removes the temp file (the layer was dropped, or its flush failed). */
  async abort(): Promise<void> {
    await this.writer.abort()
  }
}
