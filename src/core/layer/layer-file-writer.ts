/**
 * The writer shared by delta and image layer files (format in layer-format.ts).
 *
 * Values stream to `<dir>/<key start>__<lsn range>.<random>___temp` through a StreamingFileWriter (1 MiB
 * chunks written in the background); the index is built in memory as sealed 4 KiB blocks (41 bytes per
 * entry, in 256 KiB slabs, so about 30 % of the value bytes for 100-byte WAL records) and written after the
 * values, then the top-level index, then the header is written over the 512 zero bytes reserved at the
 * start. `finish(keyEnd)` makes the file durable under its layer name; `abort()` removes the temp file.
 *
 * Invariants (asserted on every put): entries come in strictly increasing (key, lsn) order, keys at or
 * above the start key, LSNs inside the layer's LSN range, values encoded (at least the 2-byte value
 * header) and at most LAYER_VALUE_MAX_BYTES. Backpressure: `put` returns false when the caller must
 * `await drain()` before the next put.
 *
 * The L0 flush writes its values another way (format version 2): `appendView` (or `appendCopy`) appends
 * whole slabs of values as they are, in any key order, and `putPlaced` then indexes each value, in (key,
 * lsn) order, at the offset where it lies, with its LSN as a number and no allocation per entry (an L0 has
 * a million entries per 250 MB of WAL; l0-stream.ts). A writer uses one way or the other.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { AssertionFailure, assert } from '../lib/errors.js'
import { crc32c } from '../lib/crc32c.js'
import { KEY_BYTES, keyToBytes, type Key } from '../model/key.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import { VALUE_HEADER_BYTES } from '../model/value.js'
import { formatLsnHex16, type Lsn } from '../pg/lsn.js'
import type { SyncOptions } from '../storage/durable-file.js'
import { StreamingFileWriter } from '../storage/streaming-file-writer.js'
import {
  ENTRY_FLAG_LZ4,
  ENTRY_FLAG_WILL_INIT,
  HEADER_BYTES,
  INDEX_BLOCK_BYTES_DEFAULT,
  INDEX_BLOCK_HEADER_BYTES,
  INDEX_ENTRY_BYTES,
  LAYER_ENTRIES_MAX,
  LAYER_FORMAT_VERSION,
  LAYER_FORMAT_VERSION_PLACED,
  LAYER_VALUE_MAX_BYTES,
  TOP_ENTRY_BYTES,
  encodeHeader,
  entriesPerBlock,
  isValidIndexBlockBytes,
  maybeCompress,
  sealIndexBlock,
  writeIndexEntry,
  type ValueCodec,
} from './layer-format.js'
import { deltaLayerDesc, imageLayerDesc, type LayerDesc, type LayerKind, type LsnRange } from './layer-name.js'
import { TEMP_SUFFIX } from '../storage/durable-file.js'

/** Largest value offset an index entry holds (u48). */
const INDEX_OFFSET_MAX = 2 ** 48 - 1
const LSN_EXACT_MAX = BigInt(Number.MAX_SAFE_INTEGER)
/** Index blocks are allocated in slabs of this many bytes (fewer, larger allocations). */
const INDEX_SLAB_BYTES = 256 * 1024

export interface LayerWriterOptions extends SyncOptions {
  /** The timeline directory the layer file is created in. */
  readonly dir: string
  readonly tenantId: TenantId
  readonly timelineId: TimelineId
  /**
   * Value compression (see layer-format.ts for when a value is compressed). Default: 'none' for delta layers
   * (an L0 flush is on the ingest path, where LZ4 at ~300 MB/s per core would cost more than it saves),
   * 'lz4' for image layers (written in the background, read by GetPage, a third smaller in the page cache).
   */
  readonly compression?: ValueCodec
  /** Index block size (a power of two, 128 B .. 64 KiB); default 4 KiB. Small values make tests cross block boundaries. */
  readonly indexBlockBytes?: number
  /** Write chunk of the underlying StreamingFileWriter; default 1 MiB. */
  readonly chunkBytes?: number
  /** Where to write until `finish` (a `layerTempPath` chosen by the caller); default: a fresh one. */
  readonly tempPath?: string
}

/** A fresh temp path for a layer file starting at `keyStart` over `lsnRange` (random, so never reused). */
export function layerTempPath(dir: string, keyStart: Key, lsnRange: LsnRange): string {
  return join(dir, `${keyStart}__${formatLsnHex16(lsnRange.start)}-${formatLsnHex16(lsnRange.end)}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`)
}

export interface FinishedLayer {
  readonly desc: LayerDesc
  readonly path: string
  readonly sizeBytes: number
}

export class LayerFileWriter {
  private readonly perBlock: number
  private readonly blockBytes: number
  private readonly slabs: Buffer[] = []
  private slab: Buffer
  private slabUsed = 0
  private block: Buffer
  private blockCount = 0
  private blockEntries = 0
  private top: Buffer
  private topUsed = 0
  private entryCount = 0
  private keyCount = 0
  private rawValueBytes = 0
  private compressedCount = 0
  private lastKey: Key | null = null
  /** 18-byte form of lastKey. */
  private readonly lastKeyBytes = Buffer.alloc(KEY_BYTES)
  /** The last entry's LSN; null after a putPlaced, which keeps it as a number in lastLsnN. */
  private lastLsn: Lsn | null = 0n as Lsn
  /** The LSN range as numbers (end: Infinity beyond 2^53), for putPlaced. */
  private lastLsnN = 0
  private readonly lsnStartN: number
  private lsnEndN: number
  private state: 'open' | 'finished' | 'aborted' = 'open'
  /** Values were appended by appendView and indexed by putPlaced (format version 2). */
  private placed = false
  private readonly codec: ValueCodec

  private constructor(
    readonly kind: LayerKind,
    readonly keyStart: Key,
    private range: LsnRange,
    private readonly options: LayerWriterOptions,
    private readonly file: StreamingFileWriter,
  ) {
    this.codec = options.compression ?? (kind === 'image' ? 'lz4' : 'none')
    this.lsnStartN = Number(range.start)
    this.lsnEndN = range.end > LSN_EXACT_MAX ? Infinity : Number(range.end)
    this.blockBytes = options.indexBlockBytes ?? INDEX_BLOCK_BYTES_DEFAULT
    this.perBlock = entriesPerBlock(this.blockBytes)
    this.slab = Buffer.alloc(Math.max(INDEX_SLAB_BYTES, this.blockBytes))
    this.block = this.slab.subarray(0, this.blockBytes)
    this.top = Buffer.allocUnsafe(64 * TOP_ENTRY_BYTES)
  }

  static async create(kind: LayerKind, keyStart: Key, lsnRange: LsnRange, options: LayerWriterOptions): Promise<LayerFileWriter> {
    assert(lsnRange.start < lsnRange.end, 'layer writer needs a non-empty LSN range')
    assert(isValidIndexBlockBytes(options.indexBlockBytes ?? INDEX_BLOCK_BYTES_DEFAULT), 'index block size must be a power of two in 128..65536')
    const tempPath = options.tempPath ?? layerTempPath(options.dir, keyStart, lsnRange)
    const file = await StreamingFileWriter.create(tempPath, {
      tempPath,
      noSync: options.noSync ?? false,
      ...(options.chunkBytes !== undefined ? { chunkBytes: options.chunkBytes } : {}),
    })
    file.append(Buffer.alloc(HEADER_BYTES)) // the header goes here once the sizes are known
    return new LayerFileWriter(kind, keyStart, lsnRange, options, file)
  }

  /** Where the file is written until `finish` renames it. */
  get tempPath(): string {
    return this.file.tempPath
  }

  /** The layer's LSN range (its end may be set later: setLsnEnd). */
  get lsnRange(): LsnRange {
    return this.range
  }

  get entries(): number {
    return this.entryCount
  }

  /** Bytes of the file so far (header and values), for deciding where to cut a layer. */
  get sizeBytes(): number {
    return this.file.position
  }

  /**
   * Appends one value; returns false when the caller must `await drain()` before the next put. `knownCrc`
   * is the value's CRC-32C when the caller has just verified it (a flush from the in-memory layer).
   */
  put(key: Key, lsn: Lsn, value: Buffer, willInit: boolean, knownCrc?: number): boolean {
    assert(this.state === 'open', () => `put on a ${this.state} layer writer`)
    assert(!this.placed, 'put on a layer writer whose values were placed with appendView')
    assert(key >= this.keyStart, () => `key ${key} is below the layer's start key ${this.keyStart}`)
    assert(lsn >= this.lsnRange.start && lsn < this.lsnRange.end, () => `LSN ${formatLsnHex16(lsn)} is outside the layer's LSN range`)
    const lastLsn = this.lastLsn ?? (BigInt(this.lastLsnN) as Lsn)
    assert(
      this.lastKey === null || key > this.lastKey || (key === this.lastKey && lsn > lastLsn),
      () => `entries must come in strictly increasing (key, lsn) order: ${key}@${formatLsnHex16(lsn)} after ${this.lastKey}@${formatLsnHex16(lastLsn)}`,
    )
    assert(value.length >= VALUE_HEADER_BYTES && value.length <= LAYER_VALUE_MAX_BYTES, () => `value of ${value.length} bytes is out of bounds`)
    assert(this.entryCount < LAYER_ENTRIES_MAX, 'too many entries for one layer file')

    const compressed = maybeCompress(value, this.codec)
    const stored = compressed ?? value
    const flags = (willInit ? ENTRY_FLAG_WILL_INIT : 0) | (compressed !== null ? ENTRY_FLAG_LZ4 : 0)
    const valueOffset = this.file.position

    if (key !== this.lastKey) keyToBytes(key, this.lastKeyBytes)
    if (this.blockEntries === 0) this.appendTop(lsn)
    const crc = compressed === null && knownCrc !== undefined ? knownCrc : crc32c(stored)
    writeIndexEntry(this.block, INDEX_BLOCK_HEADER_BYTES + this.blockEntries * INDEX_ENTRY_BYTES, this.lastKeyBytes, lsn, valueOffset, stored.length, flags, crc)
    if (++this.blockEntries === this.perBlock) this.sealBlock()

    if (key !== this.lastKey) this.keyCount++
    this.lastKey = key
    this.lastLsn = lsn
    this.lastLsnN = Number(lsn)
    this.entryCount++
    this.rawValueBytes += value.length
    if (compressed !== null) this.compressedCount++
    return this.file.append(stored)
  }

  /**
   * Appends a block of values as they are (no copy: `view` must not change until `onWritten` runs) and
   * returns the file offset it starts at. The values are indexed afterwards with `putPlaced`, in (key, lsn)
   * order, wherever they lie: the file's values are then in the order they were appended (format version
   * 2), not in key order. Not mixed with `put`; uncompressed codec only.
   */
  appendView(view: Buffer, onWritten: (() => void) | null = null): number {
    const at = this.placeValues()
    this.file.appendView(view, onWritten)
    return at
  }

  /**
   * `appendView` of a buffer the caller reuses at once: copied, under the writer's backpressure (a slab
   * read back from a spill file into one reused buffer).
   */
  async appendCopy(data: Buffer): Promise<number> {
    const at = this.placeValues()
    if (!this.file.append(data)) await this.file.drain()
    return at
  }

  /** Checks that values may be placed here, switches to placed values, and returns the next value offset. */
  private placeValues(): number {
    if (this.state !== 'open') throw new AssertionFailure(`append on a ${this.state} layer writer`)
    if (this.codec !== 'none') throw new AssertionFailure('values placed with appendView are stored uncompressed')
    if (!this.placed && this.entryCount > 0) throw new AssertionFailure('appendView after put: values would not be in key order')
    this.placed = true
    return this.file.position
  }

  /** Indexes a value appended with `appendView` at file offset `valueOffset`; `crc` is its CRC-32C. */
  putPlaced(key: Key, lsn: number, valueOffset: number, len: number, willInit: boolean, crc: number): void {
    if (!this.placed) throw new AssertionFailure('putPlaced without values appended by appendView')
    if (!(valueOffset >= HEADER_BYTES && valueOffset + len <= this.file.position)) {
      throw new AssertionFailure(`value at ${valueOffset} (${len} bytes) lies outside the values appended`)
    }
    this.indexEntry(key, lsn, valueOffset, len, willInit, crc >>> 0)
  }

  /** Sets the end of the LSN range (exclusive) of a writer created before it was known; before any entry. */
  setLsnEnd(end: Lsn): void {
    if (this.entryCount > 0) throw new AssertionFailure('the LSN range is fixed once entries were put')
    if (!(end > this.lsnRange.start)) throw new AssertionFailure('layer writer needs a non-empty LSN range')
    this.range = { start: this.range.start, end }
    this.lsnEndN = end > LSN_EXACT_MAX ? Infinity : Number(end)
  }

  /**
   * The index entry of a value of `len` bytes at `valueOffset` with CRC-32C `crc` (layer-format.ts
   * writeIndexEntry, written with numbers), after the order and bounds checks.
   */
  private indexEntry(key: Key, lsn: number, valueOffset: number, len: number, willInit: boolean, crc: number): void {
    if (this.state !== 'open') throw new AssertionFailure(`put on a ${this.state} layer writer`)
    if (!(lsn >= this.lsnStartN && lsn < this.lsnEndN && lsn <= Number.MAX_SAFE_INTEGER)) throw new AssertionFailure(`LSN ${lsn} is outside the layer's LSN range`)
    const newKey = key !== this.lastKey
    if (newKey) {
      if (!(key >= this.keyStart)) throw new AssertionFailure(`key ${key} is below the layer's start key ${this.keyStart}`)
      if (this.lastKey !== null && !(key > this.lastKey)) throw new AssertionFailure(`entries must come in strictly increasing (key, lsn) order: ${key} after ${this.lastKey}`)
    } else if (!(lsn > this.lastLsnN)) {
      throw new AssertionFailure(`entries must come in strictly increasing (key, lsn) order: ${key}@${lsn} after ${this.lastLsnN}`)
    }
    if (!(len >= VALUE_HEADER_BYTES && len <= LAYER_VALUE_MAX_BYTES)) throw new AssertionFailure(`value of ${len} bytes is out of bounds`)
    if (this.entryCount >= LAYER_ENTRIES_MAX) throw new AssertionFailure('too many entries for one layer file')
    if (valueOffset > INDEX_OFFSET_MAX) throw new AssertionFailure('value offset beyond u48')
    if (newKey) {
      keyToBytes(key, this.lastKeyBytes)
      this.keyCount++
      this.lastKey = key
    }
    if (this.blockEntries === 0) this.appendTop(BigInt(lsn) as Lsn)
    const b = this.block
    const o = INDEX_BLOCK_HEADER_BYTES + this.blockEntries * INDEX_ENTRY_BYTES
    this.lastKeyBytes.copy(b, o)
    const hi = Math.floor(lsn / 0x1_0000_0000)
    b.writeUInt32BE(hi, o + 18)
    b.writeUInt32BE(lsn - hi * 0x1_0000_0000, o + 22)
    const offHi = Math.floor(valueOffset / 0x1_0000_0000)
    b.writeUInt16BE(offHi, o + 26)
    b.writeUInt32BE(valueOffset - offHi * 0x1_0000_0000, o + 28)
    b.writeUInt32BE(len, o + 32)
    b[o + 36] = willInit ? ENTRY_FLAG_WILL_INIT : 0
    b.writeUInt32BE(crc, o + 37)
    if (++this.blockEntries === this.perBlock) this.sealBlock()
    this.lastLsn = null
    this.lastLsnN = lsn
    this.entryCount++
    this.rawValueBytes += len
  }

  async drain(): Promise<void> {
    await this.file.drain()
  }

  /** Writes the index and header, makes the file durable under its layer name. `keyEnd` is exclusive. */
  async finish(keyEnd: Key): Promise<FinishedLayer> {
    assert(this.state === 'open', () => `finish on a ${this.state} layer writer`)
    assert(keyEnd > this.keyStart, 'the end key must be above the start key')
    assert(this.lastKey === null || keyEnd > this.lastKey, () => `end key ${keyEnd} must be above the last key ${this.lastKey}`)
    if (this.blockEntries > 0) this.sealBlock()
    await this.file.drain()
    const valueBytes = this.file.position - HEADER_BYTES
    const indexOffset = this.file.position
    for (const slab of this.slabs) if (!this.file.append(slab)) await this.file.drain()
    if (this.slabUsed > 0 && !this.file.append(this.slab.subarray(0, this.slabUsed))) await this.file.drain()
    const topOffset = this.file.position
    const top = this.top.subarray(0, this.topUsed)
    this.file.append(top)
    const fileSize = this.file.position
    assert(indexOffset + this.blockCount * this.blockBytes === topOffset, 'index blocks were not written whole')
    const desc = this.kind === 'delta' ? deltaLayerDesc({ start: this.keyStart, end: keyEnd }, this.lsnRange) : imageLayerDesc({ start: this.keyStart, end: keyEnd }, this.lsnRange.start)
    const header = encodeHeader({
      kind: this.kind,
      formatVersion: this.placed ? LAYER_FORMAT_VERSION_PLACED : LAYER_FORMAT_VERSION,
      tenantId: this.options.tenantId,
      timelineId: this.options.timelineId,
      keyStart: this.keyStart,
      keyEnd,
      lsnStart: desc.lsnRange.start,
      lsnEnd: desc.lsnRange.end,
      entryCount: this.entryCount,
      keyCount: this.keyCount,
      valueOffset: HEADER_BYTES,
      valueBytes,
      rawValueBytes: this.rawValueBytes,
      compressedCount: this.compressedCount,
      indexOffset,
      indexBlockBytes: this.blockBytes,
      indexBlockCount: this.blockCount,
      topOffset,
      topBytes: this.topUsed,
      topCrc: crc32c(top),
      fileSize,
      codec: this.codec,
    })
    await this.file.writeAt(0, header)
    const { path, sizeBytes } = await this.file.finish(join(this.options.dir, desc.name))
    this.state = 'finished'
    return { desc, path, sizeBytes }
  }

  /** Removes the temp file; safe after a failed put or finish; idempotent. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return
    this.state = 'aborted'
    await this.file.abort()
  }

  /** The first (key, lsn) of a new index block; lastKeyBytes already holds the key. */
  private appendTop(lsn: Lsn): void {
    if (this.topUsed + TOP_ENTRY_BYTES > this.top.length) {
      const bigger = Buffer.allocUnsafe(this.top.length * 2)
      this.top.copy(bigger, 0, 0, this.topUsed)
      this.top = bigger
    }
    this.lastKeyBytes.copy(this.top, this.topUsed)
    this.top.writeBigUInt64BE(lsn, this.topUsed + 18)
    this.topUsed += TOP_ENTRY_BYTES
  }

  private sealBlock(): void {
    sealIndexBlock(this.block, this.blockEntries)
    this.blockCount++
    this.blockEntries = 0
    this.slabUsed += this.blockBytes
    if (this.slabUsed + this.blockBytes > this.slab.length) {
      this.slabs.push(this.slab.subarray(0, this.slabUsed))
      this.slab = Buffer.alloc(this.slab.length)
      this.slabUsed = 0
    }
    this.block = this.slab.subarray(this.slabUsed, this.slabUsed + this.blockBytes)
  }
}
