/**
 * The reader shared by delta and image layer files (format in layer-format.ts).
 *
 * Open reads and checks the header (CRC, magic, version, sizes against the real file size) and loads the
 * top-level index (CRC-checked). A lookup then costs: a search of the index (layer-file-index.ts: at most
 * one 4 KiB index block read), and one pread for the values of the key, each value CRC-checked — or, when
 * the process-wide value cache (value-cache.ts) holds them, copies from memory. Reads are synchronous on
 * purpose (see storage/positional-file.ts).
 *
 * Nothing read from the file is trusted before its CRC matched; a mismatch is a CorruptionError naming the
 * file, never a wrong value. Entries are compared as raw bytes (key ‖ lsn, 26 bytes, big-endian), so a
 * lookup decodes nothing but the entries it returns.
 */
import { CorruptionError } from '../lib/errors.js'
import { crc32c } from '../lib/crc32c.js'
import { KEY_BYTES, keyFromBytes, type Key } from '../model/key.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { PositionalFile } from '../storage/positional-file.js'
import { compareBytes, INDEX_BLOCK_CACHE_MAX_DEFAULT, LayerFileIndex } from './layer-file-index.js'
import { sharedValueCache, type ValueCache, type ValueCacheSpace } from './value-cache.js'
import {
  ENTRY_FLAG_LZ4,
  ENTRY_FLAG_WILL_INIT,
  HEADER_BYTES,
  INDEX_BLOCK_HEADER_BYTES,
  INDEX_ENTRY_BYTES,
  LAYER_FORMAT_VERSION_PLACED,
  TOP_ENTRY_BYTES,
  decodeHeader,
  decompressValue,
  layerCorrupt,
  type LayerHeader,
} from './layer-format.js'
import { deltaLayerDesc, imageLayerDesc, type LayerDesc } from './layer-name.js'
import type { LsnValue } from './layer-read.js'

export { INDEX_BLOCK_CACHE_MAX_DEFAULT }

/**
 * Value reads of up to VALUE_SLAB_SPAN_MAX_BYTES are carved from shared slabs of VALUE_SLAB_BYTES, never
 * reused: allocating a fresh 8 KiB Buffer costs 1.5-2 µs, a slice of a slab 50 ns. Slabs stay below
 * glibc's 128 KiB mmap threshold, so their memory comes warm from the heap (a pread into fresh mmap'd pages
 * pays page faults: measured 3.1 µs per 9 KiB read with 64 KiB slabs, 3.6 with 256 KiB, 3.9 with a fresh
 * Buffer each). The price: a value kept alive keeps its 64 KiB slab alive; copy values cached for long.
 */
const VALUE_SLAB_BYTES = 64 * 1024
const VALUE_SLAB_SPAN_MAX_BYTES = 16 * 1024
let valueSlab = Buffer.allocUnsafe(VALUE_SLAB_BYTES)
let valueSlabUsed = 0

function allocValueSpan(n: number): Buffer {
  if (n > VALUE_SLAB_SPAN_MAX_BYTES) return Buffer.allocUnsafe(n)
  if (valueSlabUsed + n > VALUE_SLAB_BYTES) {
    valueSlab = Buffer.allocUnsafe(VALUE_SLAB_BYTES)
    valueSlabUsed = 0
  }
  const span = valueSlab.subarray(valueSlabUsed, valueSlabUsed + n)
  valueSlabUsed += (n + 7) & ~7 // keep spans 8-byte aligned
  return span
}

/** `entries()` reads the value area in windows of this size. */
const SCAN_WINDOW_BYTES = 1024 * 1024

export interface OpenLayerOptions {
  /** Index blocks to cache for this file (default INDEX_BLOCK_CACHE_MAX_DEFAULT, layer-file-index.ts). */
  readonly indexBlockCacheMax?: number
  /** Cross-checks against the header: a renamed or misplaced file is corruption. */
  readonly expectedName?: string
  readonly expectedTenantId?: TenantId
  readonly expectedTimelineId?: TimelineId
  /** Where values read by lookups are cached (value-cache.ts); null: none. Default: the process-wide one. */
  readonly valueCache?: ValueCache | null
}

/** One (key, lsn, value) of a layer, as `entries()` yields it. */
export interface LayerEntry {
  readonly key: Key
  readonly lsn: Lsn
  /** The stored value, decompressed; stays valid (it is never overwritten). */
  readonly value: Buffer
  readonly willInit: boolean
  /** Bytes the value occupies in the file (compressed size when compressed). */
  readonly storedBytes: number
}

/** What `layer dump` prints first: the header, in words. LSNs stay Lsn (the CLI formats them). */
export interface LayerSummary {
  readonly path: string
  readonly name: string
  readonly kind: 'delta' | 'image'
  readonly formatVersion: number
  readonly tenantId: TenantId
  readonly timelineId: TimelineId
  readonly keyStart: Key
  readonly keyEnd: Key
  readonly lsnStart: Lsn
  readonly lsnEnd: Lsn
  readonly entryCount: number
  readonly keyCount: number
  readonly valueBytes: number
  readonly rawValueBytes: number
  readonly compressedCount: number
  readonly codec: string
  readonly indexBlockCount: number
  readonly indexBlockBytes: number
  readonly fileSizeBytes: number
}

/** Entries of one lookup's scratch kept for the next lookup; a longer lookup's scratch is dropped after it. */
const MATCH_SCRATCH_KEEP = 256

export class LayerFileReader {
  readonly header: LayerHeader
  readonly desc: LayerDesc
  private readonly index: LayerFileIndex
  /** The index's search target (key ‖ lsn of the last lookup), held here too so lookups reach it directly. */
  private readonly target: Buffer
  // Scratch of one lookup's matches (newest first), reused.
  private matchLsns: Lsn[] = []
  private matchOffsets: number[] = []
  private matchLens: number[] = []
  private matchFlags: number[] = []
  private matchCrcs: number[] = []
  /** This file's part of the value cache, or null. */
  private readonly cached: ValueCacheSpace | null
  private hitScratch: Buffer[] = []

  private constructor(
    readonly path: string,
    private readonly file: PositionalFile,
    options: OpenLayerOptions,
  ) {
    const hdr = file.sizeBytes >= HEADER_BYTES ? file.read(0, HEADER_BYTES) : file.read(0, file.sizeBytes)
    this.header = decodeHeader(hdr, file.sizeBytes, path)
    const h = this.header
    this.desc = h.kind === 'delta' ? deltaLayerDesc({ start: h.keyStart, end: h.keyEnd }, { start: h.lsnStart, end: h.lsnEnd }) : imageLayerDesc({ start: h.keyStart, end: h.keyEnd }, h.lsnStart)
    const misplaced = this.placementProblem(options)
    if (misplaced !== null) throw misplacedLayer(path, misplaced)
    // A space registers nothing in the cache until used: nothing to undo if the index below fails its checks.
    const vc = options.valueCache === undefined ? sharedValueCache : options.valueCache
    this.cached = vc === null ? null : vc.space()
    this.index = new LayerFileIndex(path, file, h, options.indexBlockCacheMax ?? INDEX_BLOCK_CACHE_MAX_DEFAULT, this.cached)
    this.target = this.index.target
  }

  /**
   * Why the file does not belong where `expected` says it is (its header names another layer, tenant or
   * timeline), or null. Opening a timeline's layer checks this; `layer dump` reports it after the entries.
   */
  placementProblem(expected: Pick<OpenLayerOptions, 'expectedName' | 'expectedTenantId' | 'expectedTimelineId'>): string | null {
    const h = this.header
    if (expected.expectedName !== undefined && expected.expectedName !== this.desc.name) return `its header describes layer ${this.desc.name}, not ${expected.expectedName}`
    if (expected.expectedTenantId !== undefined && expected.expectedTenantId !== h.tenantId) return `it belongs to tenant ${h.tenantId}`
    if (expected.expectedTimelineId !== undefined && expected.expectedTimelineId !== h.timelineId) return `it belongs to timeline ${h.timelineId}`
    return null
  }

  /** Opens and validates a layer file (synchronous; see the module header). */
  static open(path: string, options: OpenLayerOptions = {}): LayerFileReader {
    const file = PositionalFile.open(path)
    try {
      return new LayerFileReader(path, file, options)
    } catch (err) {
      file.close()
      throw err
    }
  }

  get fileSizeBytes(): number {
    return this.header.fileSize
  }

  /** This file's index block LRU (hits, misses, blocks held) and the index blocks lookups read from the file. */
  get cacheStats(): { hits: number; misses: number; blocks: number; reads: number } {
    return this.index.cacheStats
  }

  dumpSummary(): LayerSummary {
    const h = this.header
    return {
      path: this.path,
      name: this.desc.name,
      kind: h.kind,
      formatVersion: h.formatVersion,
      tenantId: h.tenantId,
      timelineId: h.timelineId,
      keyStart: h.keyStart,
      keyEnd: h.keyEnd,
      lsnStart: h.lsnStart,
      lsnEnd: h.lsnEnd,
      entryCount: h.entryCount,
      keyCount: h.keyCount,
      valueBytes: h.valueBytes,
      rawValueBytes: h.rawValueBytes,
      compressedCount: h.compressedCount,
      codec: h.codec,
      indexBlockCount: h.indexBlockCount,
      indexBlockBytes: h.indexBlockBytes,
      fileSizeBytes: h.fileSize,
    }
  }

  close(): void {
    this.file.close()
    this.index.clear()
    this.cached?.close()
  }

  /** Whether an entry (key, lsn) exists; reads the index only. */
  hasEntry(key: Key, lsn: Lsn): boolean {
    const pos = this.index.findLast(key, lsn)
    if (pos === null) return false
    const off = INDEX_BLOCK_HEADER_BYTES + pos.index * INDEX_ENTRY_BYTES
    return compareBytes(pos.block, off, this.target, 0, TOP_ENTRY_BYTES) === 0
  }

  /**
   * Collects the values of `key` with lsnFloor <= lsn <= lsnCeil, newest first, walking back from the last
   * entry <= (key, lsnCeil) and stopping after the first will-init entry. Appends them to `out`; returns
   * whether a will-init value ended the walk. For DeltaLayer and ImageLayer.
   */
  collect(key: Key, lsnCeil: Lsn, lsnFloor: Lsn, out: LsnValue[]): boolean {
    const pos = this.index.findLast(key, lsnCeil)
    if (pos === null) return false
    const t = this.target
    let { block, blockNo, index } = pos
    let n = 0
    let complete = false
    const h = this.header
    for (;;) {
      const off = INDEX_BLOCK_HEADER_BYTES + index * INDEX_ENTRY_BYTES
      if (compareBytes(block, off, t, 0, KEY_BYTES) !== 0) break
      const lsn = block.readBigUInt64BE(off + KEY_BYTES) as Lsn
      if (lsn < lsnFloor) break
      if (lsn < h.lsnStart || lsn >= h.lsnEnd) throw layerCorrupt(this.path, `entry ${key}@${formatLsn(lsn)} lies outside the layer's LSN range`)
      const flags = block[off + 36]!
      this.matchLsns[n] = lsn
      this.matchOffsets[n] = block.readUIntBE(off + 26, 6)
      this.matchLens[n] = block.readUInt32BE(off + 32)
      this.matchFlags[n] = flags
      this.matchCrcs[n] = block.readUInt32BE(off + 37)
      n++
      if ((flags & ENTRY_FLAG_WILL_INIT) !== 0) {
        complete = true
        break
      }
      if (--index < 0) {
        if (--blockNo < 0) break
        block = this.index.loadBlock(blockNo)
        index = block.readUInt16BE(4) - 1
      }
    }
    if (n > 0) this.readMatches(key, n, out)
    if (n > MATCH_SCRATCH_KEEP) this.dropMatchScratch()
    return complete
  }

  /**
   * Lets the scratch of a long lookup go: a CLOG page's chain is thousands of entries, and arrays grown to
   * the longest lookup ever made stayed so in each of up to 512 open readers (a soak audit counted 400k
   * BigInts held that way).
   */
  private dropMatchScratch(): void {
    this.matchLsns = []
    this.matchOffsets = []
    this.matchLens = []
    this.matchFlags = []
    this.matchCrcs = []
  }

  /**
   * Reads the `n` matched values: copies from the value cache when it holds all of them, else from the file
   * (one pread when they lie back to back, as our writer puts them), caching what was read.
   */
  private readMatches(key: Key, n: number, out: LsnValue[]): void {
    const space = this.cached
    if (space !== null) {
      const hits = this.hitScratch
      let i = 0
      for (; i < n; i++) {
        const v = space.cache.get(space, this.matchOffsets[i]!)
        if (v === undefined) break
        hits[i] = v
      }
      if (i === n) {
        for (let j = 0; j < n; j++) {
          const v = hits[j]!
          const copy = allocValueSpan(v.length)
          v.copy(copy)
          out.push({ lsn: this.matchLsns[j]!, value: copy })
        }
        hits.length = 0
        return
      }
      hits.length = 0
    }
    const first = this.matchOffsets[n - 1]!
    const end = this.matchOffsets[0]! + this.matchLens[0]!
    let total = 0
    for (let i = 0; i < n; i++) total += this.matchLens[i]!
    let span: Buffer | null = null
    if (end - first === total) {
      span = allocValueSpan(total)
      this.file.readInto(span, 0, total, first)
    }
    for (let i = 0; i < n; i++) {
      const off = this.matchOffsets[i]!
      const len = this.matchLens[i]!
      const stored = span !== null ? span.subarray(off - first, off - first + len) : this.file.read(off, len)
      const value = this.decodeStored(stored, this.matchFlags[i]!, this.matchCrcs[i]!, key, this.matchLsns[i]!)
      if (space !== null) space.cache.offer(space, off, value)
      out.push({ lsn: this.matchLsns[i]!, value })
    }
  }

  private decodeStored(stored: Buffer, flags: number, crc: number, key: Key, lsn: Lsn): Buffer {
    if (crc32c(stored) !== crc) throw layerCorrupt(this.path, `value of ${key} at ${formatLsn(lsn)} fails its checksum`)
    return (flags & ENTRY_FLAG_LZ4) !== 0 ? decompressValue(stored, this.path) : stored
  }

  /**
   * Every entry in (key, lsn) order with its value. Version 1 reads the value area sequentially in 1 MiB
   * windows; version 2 (values where they were placed) reads each value where it lies, through the last
   * window when it is inside. Also checks what lookups cannot: entries strictly increasing, the header's
   * entry and key counts, and in version 1 values back to back covering the whole value area (in version 2,
   * values adding up to no more than it).
   *
   * A fault throws, unless `onFault` is given (`layer dump`, which shows the extent of the damage): then each
   * is reported to it and the scan goes on past it: a bad index block is skipped whole, a bad entry or value
   * alone; the counts are checked only when no block was skipped (they could not agree then).
   */
  *entries(onFault?: (fault: CorruptionError) => void): Generator<LayerEntry, void, undefined> {
    const fault = (e: unknown): void => {
      if (onFault === undefined || !(e instanceof CorruptionError)) throw e
      onFault(e)
    }
    const h = this.header
    const valueEnd = h.valueOffset + h.valueBytes
    const placed = h.formatVersion === LAYER_FORMAT_VERSION_PLACED
    let expectOffset = h.valueOffset
    let window: Buffer = Buffer.alloc(0)
    let windowStart = 0
    let prev: Buffer | null = null
    let seen = 0
    let keys = 0
    let blocksSkipped = 0
    // After a skipped block the next value's offset is not known: taken from the entry that follows.
    let resync = false
    for (let b = 0; b < h.indexBlockCount; b++) {
      let block: Buffer
      try {
        block = this.index.scanBlock(b)
      } catch (e) {
        fault(e)
        blocksSkipped++
        prev = null
        resync = true
        continue
      }
      const count = block.readUInt16BE(4)
      for (let i = 0; i < count; i++) {
        const off = INDEX_BLOCK_HEADER_BYTES + i * INDEX_ENTRY_BYTES
        const entryKey = block.subarray(off, off + TOP_ENTRY_BYTES)
        const key = keyFromBytes(block, off)
        const lsn = block.readBigUInt64BE(off + KEY_BYTES) as Lsn
        const vOff = block.readUIntBE(off + 26, 6)
        const len = block.readUInt32BE(off + 32)
        const flags = block[off + 36]!
        if (resync) {
          expectOffset = vOff
          resync = false
        }
        let value: Buffer
        try {
          if (prev !== null) {
            const c = prev.compare(entryKey, 0, TOP_ENTRY_BYTES)
            if (c >= 0) throw layerCorrupt(this.path, `index entries out of order in block ${b}`)
            if (prev.compare(entryKey, 0, KEY_BYTES, 0, KEY_BYTES) !== 0) keys++
          } else {
            keys++
          }
          prev = entryKey
          if (key < h.keyStart || key >= h.keyEnd) throw layerCorrupt(this.path, `key ${key} lies outside the layer's key range`)
          if (lsn < h.lsnStart || lsn >= h.lsnEnd) throw layerCorrupt(this.path, `entry ${key}@${formatLsn(lsn)} lies outside the layer's LSN range`)
          if (!placed && vOff !== expectOffset) throw layerCorrupt(this.path, `value of ${key} at ${formatLsn(lsn)} is not where the previous one ended`)
          let stored: Buffer
          if (vOff >= windowStart && vOff + len <= windowStart + window.length) {
            stored = window.subarray(vOff - windowStart, vOff - windowStart + len)
          } else if (placed || len > SCAN_WINDOW_BYTES) {
            stored = this.file.read(vOff, len)
          } else {
            // A fresh window each time: values already yielded may still be referenced by the caller.
            windowStart = vOff
            window = this.file.read(vOff, Math.min(SCAN_WINDOW_BYTES, valueEnd - vOff))
            stored = window.subarray(0, len)
          }
          value = this.decodeStored(stored, flags, block.readUInt32BE(off + 37), key, lsn)
        } catch (e) {
          fault(e)
          seen++
          expectOffset = vOff + len
          continue
        }
        expectOffset += len
        seen++
        yield { key, lsn, value, willInit: (flags & ENTRY_FLAG_WILL_INIT) !== 0, storedBytes: len }
      }
    }
    try {
      if (blocksSkipped === 0) {
        if (placed ? expectOffset > valueEnd : expectOffset !== valueEnd) throw layerCorrupt(this.path, placed ? 'values add up to more than the value area' : 'values do not fill the value area')
        if (seen !== h.entryCount) throw layerCorrupt(this.path, `found ${seen} entries, header says ${h.entryCount}`)
        if (keys !== h.keyCount) throw layerCorrupt(this.path, `found ${keys} keys, header says ${h.keyCount}`)
      }
    } catch (e) {
      fault(e)
    }
  }
}

/** An intact layer file at a path the page server refuses it at (`placementProblem`): not damage to restore. */
export function misplacedLayer(path: string, why: string): CorruptionError {
  return new CorruptionError('LAYER_MISPLACED', `layer file ${path} does not belong at this path: ${why}; the page server refuses it here`, {
    hint: 'Its contents are intact. Put back the file that belongs here (from a backup of the workdir), and move this one to the timeline and name its header gives.',
    details: { path },
  })
}
