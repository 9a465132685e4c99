/**
 * The index of an open delta or image layer file (format in layer-format.ts), owned by its LayerFileReader:
 * the top-level index, loaded and CRC-checked on open, and the index blocks, read on demand.
 *
 * A search costs a binary search in the top-level index, at most one 4 KiB index block read (CRC-checked on
 * load, then kept in a per-file LRU of `indexBlockCacheMax` blocks and, from its second use, in the
 * process-wide value cache), and a binary search in the block. Entries are compared as raw bytes
 * (key ‖ lsn, 26 bytes, big-endian) against one target buffer reused by every lookup, so a search decodes
 * nothing and allocates nothing but the position it returns.
 *
 * Why a part of its own: the reader's lookups and its full scan both go through these blocks, and the
 * reader's other half — reading and checking values — needs nothing of them but positions.
 */
import { assert } from '../lib/errors.js'
import { crc32c } from '../lib/crc32c.js'
import { KEY_BYTES, keyToBytes, type Key } from '../model/key.js'
import type { Lsn } from '../pg/lsn.js'
import type { PositionalFile } from '../storage/positional-file.js'
import { BlockCache } from './block-cache.js'
import type { ValueCacheSpace } from './value-cache.js'
import { INDEX_BLOCK_HEADER_BYTES, INDEX_ENTRY_BYTES, TOP_ENTRY_BYTES, entriesPerBlock, layerCorrupt, verifyIndexBlock, type LayerHeader } from './layer-format.js'

/**
 * Index blocks kept per open file by default (4 KiB each: 64 KiB per file). Small on purpose: layers only
 * accumulate, and memory per file adds up outside any budget; a block used again after it left this LRU
 * comes from the process-wide value cache, which page_cache_size bounds for every file together.
 */
export const INDEX_BLOCK_CACHE_MAX_DEFAULT = 16

/**
 * Compares a[aOff, aOff+len) with b[bOff, bOff+len) as unsigned bytes. In JS on purpose: Buffer.compare
 * with offsets costs ~200 ns per call through the binding, and keys of one relation share their first
 * 13 bytes, so a byte loop ends in a few dozen nanoseconds.
 */
export function compareBytes(a: Buffer, aOff: number, b: Buffer, bOff: number, len: number): number {
  for (let i = 0; i < len; i++) {
    const d = a[aOff + i]! - b[bOff + i]!
    if (d !== 0) return d
  }
  return 0
}

/** Position of an index entry. */
export interface EntryPos {
  block: Buffer
  blockNo: number
  index: number
}

export class LayerFileIndex {
  /** Search target key ‖ lsn, reused by every lookup; the reader compares the entries it walks against it. */
  readonly target = Buffer.alloc(TOP_ENTRY_BYTES)
  private readonly top: Buffer
  private readonly cache: BlockCache
  private readonly perBlock: number
  /** Index blocks read from the file by lookups. */
  private blockReads = 0

  /**
   * Loads and checks the top-level index. `cached` is the file's part of the value cache (the reader's, which
   * keeps values there too), or null.
   */
  constructor(
    private readonly path: string,
    private readonly file: PositionalFile,
    private readonly header: LayerHeader,
    indexBlockCacheMax: number,
    private readonly cached: ValueCacheSpace | null,
  ) {
    const h = header
    this.top = file.read(h.topOffset, h.topBytes)
    if (crc32c(this.top) !== h.topCrc) throw layerCorrupt(path, 'top-level index checksum mismatch')
    this.perBlock = entriesPerBlock(h.indexBlockBytes)
    this.cache = new BlockCache(indexBlockCacheMax)
  }

  /** This file's index block LRU (hits, misses, blocks held) and the index blocks lookups read from the file. */
  get cacheStats(): { hits: number; misses: number; blocks: number; reads: number } {
    return { hits: this.cache.hits, misses: this.cache.misses, blocks: this.cache.size, reads: this.blockReads }
  }

  /** Drops the blocks held; the reader closes the file and the value cache space. */
  clear(): void {
    this.cache.clear()
  }

  /** The position of the last entry <= (key, lsn), or null when every entry is above it. */
  findLast(key: Key, lsn: Lsn): EntryPos | null {
    const t = this.target
    keyToBytes(key, t, 0)
    t.writeBigUInt64BE(lsn, KEY_BYTES)
    // Top level: last block whose first entry <= target.
    let lo = 0
    let hi = this.header.indexBlockCount - 1
    let blockNo = -1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      if (compareBytes(this.top, mid * TOP_ENTRY_BYTES, t, 0, TOP_ENTRY_BYTES) <= 0) {
        blockNo = mid
        lo = mid + 1
      } else {
        hi = mid - 1
      }
    }
    if (blockNo < 0) return null
    const block = this.loadBlock(blockNo)
    const count = block.readUInt16BE(4)
    lo = 0
    hi = count - 1
    let index = 0 // the first entry equals the top entry, which is <= target
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const off = INDEX_BLOCK_HEADER_BYTES + mid * INDEX_ENTRY_BYTES
      if (compareBytes(block, off, t, 0, TOP_ENTRY_BYTES) <= 0) {
        index = mid
        lo = mid + 1
      } else {
        hi = mid - 1
      }
    }
    return { block, blockNo, index }
  }

  /**
   * An index block: from this file's LRU, else from the process-wide cache (second level: an LRU smaller
   * than the index thrashes on lookups that cycle over more blocks than it holds, and every miss is a pread
   * and a CRC of 4 KiB), else read, checked and offered to both. In the shared cache, block n of the file is
   * key -(n + 1): values are keyed by their offset (>= 0), so neither can ever be taken for the other.
   */
  loadBlock(blockNo: number): Buffer {
    const cached = this.cache.get(blockNo)
    if (cached !== undefined) return cached
    const space = this.cached
    let block = space !== null ? space.cache.get(space, -(blockNo + 1)) : undefined
    if (block === undefined) {
      block = this.readBlock(blockNo)
      this.blockReads++
      if (space !== null) space.cache.offer(space, -(blockNo + 1), block)
    }
    this.cache.set(blockNo, block)
    return block
  }

  /**
   * An index block for the reader's full scan: from this file's LRU, else read and checked without being
   * cached in either (a scan reads each block once).
   */
  scanBlock(blockNo: number): Buffer {
    return this.cache.get(blockNo) ?? this.readBlock(blockNo)
  }

  private readBlock(blockNo: number): Buffer {
    const h = this.header
    assert(blockNo >= 0 && blockNo < h.indexBlockCount, 'index block number out of range')
    const block = this.file.read(h.indexOffset + blockNo * h.indexBlockBytes, h.indexBlockBytes)
    const expected = blockNo < h.indexBlockCount - 1 ? this.perBlock : h.entryCount - this.perBlock * (h.indexBlockCount - 1)
    verifyIndexBlock(block, expected, h, blockNo, this.path)
    const topOff = blockNo * TOP_ENTRY_BYTES
    if (block.compare(this.top, topOff, topOff + TOP_ENTRY_BYTES, INDEX_BLOCK_HEADER_BYTES, INDEX_BLOCK_HEADER_BYTES + TOP_ENTRY_BYTES) !== 0) {
      throw layerCorrupt(this.path, `index block ${blockNo} does not start with the key its top-level entry names`)
    }
    return block
  }
}
