/**
 * The in-memory layer's index record layout and the shape of a frozen layer handed to the flush, shared by
 * inmemory-index.ts, inmemory-slabs.ts and inmemory-layer.ts (which write them on the main thread) and
 * l0-flush.ts and l0-stream.ts (which read them, usually in the flush worker thread, from the same shared
 * memory).
 *
 * One 32-byte record per entry id, array of structs in one SharedArrayBuffer (a flush walks entries in key
 * order, i.e. at random, and one record costs one cache miss where five parallel arrays cost five):
 *
 *   f64 lsn | u32 slab | u32 offset in slab | u32 length with will-init bit | u32 crc32c | i32 prev | u32 key
 *
 * `crc32c` is set only for values whose slab left memory — spilled to the ephemeral file, or released once
 * the L0 stream wrote it — and is checked when they are read back; `prev` is the previous entry id of the same key (-1: none), the chain reads follow; `key` is
 * the dense key index, or DEAD_KEY for a version replaced by a put at the same LSN: the flush sorts entries
 * by key with one sequential pass over the records instead of chasing `prev` links at random.
 */
import type { Key } from '../model/key.js'
import type { LsnRange } from './layer-name.js'

export const ENTRY_BYTES = 32
export const F64_PER_ENTRY = 4
export const U32_PER_ENTRY = 8
/** u32/i32 indexes of the fields within a record. */
export const E_SLAB = 2
export const E_OFFSET = 3
export const E_LENGTH = 4
export const E_CRC = 5
export const E_PREV = 6
export const E_KEY = 7
export const DEAD_KEY = 0xffff_ffff
export const WILL_INIT_BIT = 0x8000_0000
export const LENGTH_MASK = 0x7fff_ffff

/**
 * A frozen in-memory layer, as the flush reads it: everything is shared memory or small copies, so it can
 * be posted to a worker thread without copying values. Immutable while the flush runs.
 */
export interface FrozenLayerData {
  /** The layer's ephemeral (spill) file, for naming it and reading spilled slabs. */
  readonly path: string
  readonly lsnRange: LsnRange
  /** Keys by dense key index. */
  readonly keys: readonly Key[]
  /** Entry records (ENTRY_BYTES each), `entryCount` of them in use. */
  readonly records: SharedArrayBuffer
  readonly entryCount: number
  /**
   * Per slab: its memory, or null when it left memory: spilled (at slabFileOffsets[slab] in the ephemeral
   * file) or released after the L0 stream wrote it (at slabStreamOffsets[slab] in the stream's file).
   */
  readonly slabs: ReadonlyArray<SharedArrayBuffer | null>
  readonly slabFileOffsets: readonly number[]
  /** Per slab: where the L0 stream wrote it, for a slab released since (-1: not released). */
  readonly slabStreamOffsets: readonly number[]
  /**
   * A descriptor of the stream's file, opened by the layer (it stays readable after the stream is
   * abandoned and its file removed), and the file's path, for naming it; -1 / '' when no slab was released.
   * Released slabs are read from it only when the stream was lost: a live stream does not write them again.
   */
  readonly streamFd: number
  readonly streamPath: string
  /** Bytes used per slab (what a spilled slab occupies in the file). */
  readonly slabUsed: readonly number[]
  /**
   * Per spilled slab, empty memory to read it back into before the flush walks the layer in key order
   * (one sequential read instead of a read per value); null: no memory was free, values are read one by
   * one. Null for slabs in memory.
   */
  readonly reloadSlabs: ReadonlyArray<SharedArrayBuffer | null>
  /** Bytes in the ephemeral file (0: no file). */
  readonly spilledBytes: number
  /** Per slab, the id of its first entry (a slab's entries are the ids up to the next slab's first). */
  readonly slabFirstEntries: readonly number[]
  /** The layer's L0 stream (the slabs written while it filled, slabFull), or null: none, or abandoned. */
  readonly streamId: number | null
}

/** A slab the L0 stream has written: its offset in the stream's file, the CRC-32C of each of its values (in id order). */
export interface StreamedSlab {
  readonly offset: number
  readonly crcs: Uint32Array
}

/**
 * Where an in-memory layer sends each slab it has filled, to be written to its future L0 file ahead of the
 * flush (l0-stream.ts, in the flush worker thread). The slab's memory is read until `written` runs: with
 * where it was written, or null when the stream ended without writing it (lost or aborted).
 */
export interface SlabStreamSink {
  readonly id: number
  /** The stream's file until its flush renames it (a temp name, removed at startup after a crash). */
  readonly path: string
  /** False once the stream is gone (its thread died): the flush then writes every slab itself. */
  readonly alive: boolean
  /** Slab `index` is full: its used bytes and its entries, ids [firstEntry, endEntry) of `records`. */
  slabFull(index: number, slab: SharedArrayBuffer, used: number, firstEntry: number, endEntry: number, records: SharedArrayBuffer, written: (w: StreamedSlab | null) => void): void
  /**
   * The layer is dropped without a flush, or its flush failed: the file is removed (by the stream's thread;
   * by the layer when the stream was lost with its thread).
   */
  abort(): void
}
