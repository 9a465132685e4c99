/**
 * KeySlots: the dense numbering of an in-memory layer's keys — slot 0, 1, 2, ... in the order of each key's
 * first put — looked up by the key's two parts: its prefix (field1..field5, the 28 hex digits a relation
 * fork's keys share) and its field6 (a block number for relation and SLRU blocks).
 *
 * Ingest stores a value for every block a record touches, nearly always in a few hot relations. Looked up
 * by the whole 36-character key, each put built a new string and hashed it in a Map of every key the layer
 * holds (≈ 0.6 µs per put, and the strings were garbage at once); by parts it is one lookup of a prefix
 * string that ingest reuses (its hash is cached in the string) and an array index, and a key string is
 * built once per key, when the layer is flushed (`keys()`).
 *
 * Per prefix, field6 values below FIELD6_PAGED_MAX are found in pages of 1,024 slots (memory follows the
 * ranges of blocks used, never one huge array for a lone high block); larger ones (relation size keys
 * at FFFFFFFF, two-phase xids) in a Map.
 *
 * Nothing here depends on what the fields mean: any key is its prefix and its field6.
 */
import { keyField6, keyFromPrefix, keyPrefixOf, type Key } from '../model/key.js'

/** field6 values from here on go to a prefix's Map. */
export const FIELD6_PAGED_MAX = 1 << 22
const PAGE_SHIFT = 10
const PAGE_SLOTS = 1 << PAGE_SHIFT
/** Heap bytes per prefix and per Map entry, estimated (bench/layer.ts checks the per-key total). */
const PREFIX_BYTES = 200
const MAP_ENTRY_BYTES = 40

interface PrefixSlots {
  readonly prefix: string
  /** field6 >> PAGE_SHIFT -> a page of (slot + 1), 0 = none. */
  pages: Array<Int32Array | undefined>
  /** field6 >= FIELD6_PAGED_MAX -> slot. */
  big: Map<number, number> | null
}

export class KeySlots {
  private readonly byPrefix = new Map<string, PrefixSlots>()
  /** The prefix looked up last (consecutive puts are often in one relation). */
  private last: PrefixSlots | null = null
  /** Per slot: its prefix and field6. */
  private prefixOf: PrefixSlots[] = []
  private field6Of = new Uint32Array(1024)
  private n = 0
  private heapBytes = 0

  /** Keys numbered. */
  get size(): number {
    return this.n
  }

  /** Estimated heap bytes of the numbering (pages, Maps, per-slot arrays). */
  get bytes(): number {
    return this.heapBytes + this.field6Of.byteLength + this.prefixOf.length * 8
  }

  /** The slot of (prefix, field6), or -1. */
  find(prefix: string, field6: number): number {
    const p = this.prefixSlots(prefix, false)
    if (p === null) return -1
    if (field6 >= FIELD6_PAGED_MAX) return p.big?.get(field6) ?? -1
    const page = p.pages[field6 >>> PAGE_SHIFT]
    return page === undefined ? -1 : page[field6 & (PAGE_SLOTS - 1)]! - 1
  }

  /** Numbers (prefix, field6), which `find` does not know: its slot is the previous `size`. */
  add(prefix: string, field6: number): number {
    const p = this.prefixSlots(prefix, true)!
    const slot = this.n++
    if (slot === this.field6Of.length) {
      const grown = new Uint32Array(slot * 2)
      grown.set(this.field6Of)
      this.field6Of = grown
    }
    this.field6Of[slot] = field6
    this.prefixOf.push(p)
    if (field6 >= FIELD6_PAGED_MAX) {
      p.big ??= new Map()
      p.big.set(field6, slot)
      this.heapBytes += MAP_ENTRY_BYTES
      return slot
    }
    const pi = field6 >>> PAGE_SHIFT
    let page = p.pages[pi]
    if (page === undefined) {
      page = new Int32Array(PAGE_SLOTS)
      p.pages[pi] = page
      this.heapBytes += page.byteLength
    }
    page[field6 & (PAGE_SLOTS - 1)] = slot + 1
    return slot
  }

  /** `find` for a whole key. */
  findKey(key: Key): number {
    return this.find(keyPrefixOf(key), keyField6(key))
  }

  /** The key of a slot. */
  key(slot: number): Key {
    return keyFromPrefix(this.prefixOf[slot]!.prefix, this.field6Of[slot]!)
  }

  /** Every key, by slot. */
  keys(): Key[] {
    const out = new Array<Key>(this.n)
    for (let s = 0; s < this.n; s++) out[s] = this.key(s)
    return out
  }

  private prefixSlots(prefix: string, create: boolean): PrefixSlots | null {
    const last = this.last
    if (last !== null && last.prefix === prefix) return last
    let p = this.byPrefix.get(prefix)
    if (p === undefined) {
      if (!create) return null
      p = { prefix, pages: [], big: null }
      this.byPrefix.set(prefix, p)
      this.heapBytes += PREFIX_BYTES
    }
    this.last = p
    return p
  }
}
