/**
 * A small LRU map from block number to a verified index block, one per open layer file.
 *
 * Why not lru-cache: this sits on the GetPage path and needs only get/set/evict-oldest; a Map keeps
 * insertion order, so "move to newest" is delete + set and "evict oldest" is the first key. Bounded by
 * `capacity` entries (each one index block, 4 KiB by default).
 */
import { assert } from '../lib/errors.js'

export class BlockCache {
  private readonly map = new Map<number, Buffer>()
  /** The most recently used block (the Map's last key): hits on it skip the reorder. */
  private newest = -1
  hits = 0
  misses = 0

  constructor(readonly capacity: number) {
    assert(Number.isInteger(capacity) && capacity >= 1, 'block cache capacity must be at least 1')
  }

  get size(): number {
    return this.map.size
  }

  get(blockNo: number): Buffer | undefined {
    const b = this.map.get(blockNo)
    if (b === undefined) {
      this.misses++
      return undefined
    }
    this.hits++
    // Most lookups hit the block they hit last time; skip the reorder when it is already the newest.
    if (blockNo !== this.newest) {
      this.map.delete(blockNo)
      this.map.set(blockNo, b)
      this.newest = blockNo
    }
    return b
  }

  set(blockNo: number, block: Buffer): void {
    this.map.delete(blockNo)
    if (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next().value as number
      this.map.delete(oldest)
    }
    this.map.set(blockNo, block)
    this.newest = blockNo
  }

  clear(): void {
    this.map.clear()
    this.newest = -1
  }
}
