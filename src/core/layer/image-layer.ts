/**
 * Image layers: the value of every live key of a key range at one LSN, as one immutable file (format in
 * layer-format.ts). A key inside the range but absent from the file does not exist at that LSN, which
 * `getValues` reports as 'missing' (distinct from 'incomplete', which sends the reader further down).
 *
 * ImageLayerWriter takes keys in strictly increasing order (asserted), each value will-init (an image:
 * asserted, since a reader stops at an image layer), and learns the end key at `finish()`.
 */
import { MIN_KEY, keyInRange, type Key } from '../model/key.js'
import { encodedValueWillInit } from '../model/value.js'
import type { Lsn } from '../pg/lsn.js'
import { assert } from '../lib/errors.js'
import { LayerFileReader, type LayerEntry, type LayerSummary, type OpenLayerOptions } from './layer-file-reader.js'
import { LayerFileWriter, type FinishedLayer, type LayerWriterOptions } from './layer-file-writer.js'
import { layerCorrupt } from './layer-format.js'
import type { LayerDesc } from './layer-name.js'
import { LOOKUP, type LookupResult, type LsnValue, type ReadableLayer } from './layer-read.js'

export interface ImageLayerWriterOptions extends LayerWriterOptions {
  /** First key the layer covers; default MIN_KEY. */
  readonly keyStart?: Key
  /** The one LSN of every value. */
  readonly lsn: Lsn
}

export class ImageLayerWriter {
  private constructor(
    private readonly w: LayerFileWriter,
    readonly lsn: Lsn,
  ) {}

  static async create(options: ImageLayerWriterOptions): Promise<ImageLayerWriter> {
    const range = { start: options.lsn, end: (options.lsn + 1n) as Lsn }
    return new ImageLayerWriter(await LayerFileWriter.create('image', options.keyStart ?? MIN_KEY, range, options), options.lsn)
  }

  get entries(): number {
    return this.w.entries
  }

  get sizeBytes(): number {
    return this.w.sizeBytes
  }

  /** Appends the image of `key`; returns false when the caller must `await drain()` first. */
  put(key: Key, value: Buffer): boolean {
    assert(value.length >= 2 && encodedValueWillInit(value), () => `image layer value of ${key} is not will-init`)
    return this.w.put(key, this.lsn, value, true)
  }

  drain(): Promise<void> {
    return this.w.drain()
  }

  /** Makes the file durable as `<dir>/<layer name>`; `keyEnd` is exclusive. */
  finish(keyEnd: Key): Promise<FinishedLayer> {
    return this.w.finish(keyEnd)
  }

  abort(): Promise<void> {
    return this.w.abort()
  }
}

export class ImageLayer implements ReadableLayer {
  private constructor(private readonly r: LayerFileReader) {}

  /** Opens and validates an image layer file; a delta layer file is refused. */
  static open(path: string, options: OpenLayerOptions = {}): ImageLayer {
    const r = LayerFileReader.open(path, options)
    if (r.desc.kind !== 'image') {
      r.close()
      throw layerCorrupt(path, 'it is a delta layer, expected an image layer')
    }
    return new ImageLayer(r)
  }

  get desc(): LayerDesc {
    return this.r.desc
  }

  get lsn(): Lsn {
    return this.r.desc.lsnRange.start
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

  /**
   * See layer-read.ts: 'complete' with the image appended when the key is present, 'missing' when the key
   * is in range but absent, 'incomplete' (nothing appended) when the LSN window excludes the image's LSN.
   */
  getValues(key: Key, lsnCeil: Lsn, out: LsnValue[], lsnFloor: Lsn = 0n as Lsn): LookupResult {
    assert(keyInRange(key, this.r.desc.keyRange), () => `key ${key} is outside layer ${this.r.desc.name}`)
    const lsn = this.lsn
    if (lsnCeil < lsn || lsnFloor > lsn) return LOOKUP.incomplete
    const before = out.length
    const complete = this.r.collect(key, lsn, lsn, out)
    if (out.length === before) return LOOKUP.missing
    if (!complete) throw layerCorrupt(this.r.path, `value of ${key} is not will-init`)
    return LOOKUP.complete
  }

  /** Does the layer hold `key`? (Reads the index only.) */
  containsKey(key: Key): boolean {
    assert(keyInRange(key, this.r.desc.keyRange), () => `key ${key} is outside layer ${this.r.desc.name}`)
    return this.r.hasEntry(key, this.lsn)
  }

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
