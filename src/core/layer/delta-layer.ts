/**
 * Delta layers: every value of the keys of a key range written in an LSN range [start, end), as one
 * immutable file (format in layer-format.ts). L0 deltas (the whole key space) come from flushing an
 * in-memory layer; L1 deltas (a part of the key space) from compaction.
 *
 * DeltaLayerWriter takes entries in strictly increasing (key, lsn) order (asserted) and learns the end key
 * at `finish()`, so compaction can cut a layer where it likes. DeltaLayer answers `getValues` (see
 * layer-read.ts): the values of one key at or below an LSN, newest first, down to the first will-init one.
 */
import { MAX_KEY, MIN_KEY, keyInRange, type Key } from '../model/key.js'
import { encodedValueWillInit } from '../model/value.js'
import type { Lsn } from '../pg/lsn.js'
import { assert } from '../lib/errors.js'
import { LayerFileReader, type LayerEntry, type LayerSummary, type OpenLayerOptions } from './layer-file-reader.js'
import { LayerFileWriter, type FinishedLayer, type LayerWriterOptions } from './layer-file-writer.js'
import { layerCorrupt } from './layer-format.js'
import type { LayerDesc, LsnRange } from './layer-name.js'
import { LOOKUP, type LookupResult, type LsnValue, type ReadableLayer } from './layer-read.js'

export interface DeltaLayerWriterOptions extends LayerWriterOptions {
  /** First key the layer covers; default MIN_KEY (an L0). */
  readonly keyStart?: Key
  /** The LSN range the layer covers; every entry's LSN lies inside it. */
  readonly lsnRange: LsnRange
}

export class DeltaLayerWriter {
  private constructor(private readonly w: LayerFileWriter) {}

  static async create(options: DeltaLayerWriterOptions): Promise<DeltaLayerWriter> {
    return new DeltaLayerWriter(await LayerFileWriter.create('delta', options.keyStart ?? MIN_KEY, options.lsnRange, options))
  }

  /** Entries written so far. */
  get entries(): number {
    return this.w.entries
  }

  /** File bytes so far (header and values; the index comes at finish). */
  get sizeBytes(): number {
    return this.w.sizeBytes
  }

  /**
   * Appends an encoded value; returns false when the caller must `await drain()` first. `knownCrc`: the
   * value's CRC-32C when just verified by the caller (InMemoryEntry.crc), saving a second computation.
   */
  put(key: Key, lsn: Lsn, value: Buffer, knownCrc?: number): boolean {
    return this.w.put(key, lsn, value, value.length >= 2 && encodedValueWillInit(value), knownCrc)
  }

  drain(): Promise<void> {
    return this.w.drain()
  }

  /** Makes the file durable as `<dir>/<layer name>`; `keyEnd` (exclusive) defaults to MAX_KEY. */
  finish(keyEnd: Key = MAX_KEY): Promise<FinishedLayer> {
    return this.w.finish(keyEnd)
  }

  abort(): Promise<void> {
    return this.w.abort()
  }
}

export class DeltaLayer implements ReadableLayer {
  private constructor(private readonly r: LayerFileReader) {}

  /** Opens and validates a delta layer file; an image layer file is refused. */
  static open(path: string, options: OpenLayerOptions = {}): DeltaLayer {
    const r = LayerFileReader.open(path, options)
    if (r.desc.kind !== 'delta') {
      r.close()
      throw layerCorrupt(path, 'it is an image layer, expected a delta layer')
    }
    return new DeltaLayer(r)
  }

  get desc(): LayerDesc {
    return this.r.desc
  }

  get path(): string {
    return this.r.path
  }

  get fileSizeBytes(): number {
    return this.r.fileSizeBytes
  }

  get cacheStats(): { hits: number; misses: number; blocks: number; reads: number } {
    return this.r.cacheStats
  }

  /** See layer-read.ts. Never 'missing': a delta layer says nothing about keys it does not hold. */
  getValues(key: Key, lsnCeil: Lsn, out: LsnValue[], lsnFloor: Lsn = 0n as Lsn): LookupResult {
    assert(keyInRange(key, this.r.desc.keyRange), () => `key ${key} is outside layer ${this.r.desc.name}`)
    if (lsnCeil < this.r.desc.lsnRange.start || lsnFloor >= this.r.desc.lsnRange.end || lsnFloor > lsnCeil) return LOOKUP.incomplete
    return this.r.collect(key, lsnCeil, lsnFloor, out) ? LOOKUP.complete : LOOKUP.incomplete
  }

  /** Every entry in (key, lsn) order, values CRC-checked (for dump and compaction). */
  entries(): Generator<LayerEntry, void, undefined> {
    return this.r.entries()
  }

  dumpSummary(): LayerSummary {
    return this.r.dumpSummary()
  }

  close(): void {
    this.r.close()
  }
}
