/**
 * The L0 flush: writes a frozen in-memory layer (FrozenLayerData) as one delta layer file covering the
 * whole key space and the layer's LSN range, durable under its layer name when the promise resolves
 * (temp file, fsync, rename, directory fsync: LayerFileWriter.finish).
 *
 * It reads only the frozen layer's shared memory and its ephemeral file, so it runs in the flush worker
 * thread (flush-worker.ts) while ingest continues on the main thread; the same function runs in-thread when
 * no worker is used. Entries are put in (key, lsn) order by a counting sort: keys sorted once, then one
 * sequential pass over the entry records counts entries per key and a second places entry ids, in id
 * order, which per key is LSN order (puts of a key come with non-decreasing LSNs; a version replaced at
 * the same LSN is marked dead). That replaces a walk of each key's `prev` chain, one dependent cache miss
 * per entry. Values still in slabs are written from shared memory (the writer computes their CRC-32C);
 * spilled slabs are read back from the ephemeral file — whole, into memory the layer lent for it
 * (FrozenLayerData.reloadSlabs), else value by value — and each value is checked against the CRC recorded
 * when it was spilled, which the writer then reuses.
 *
 * On any failure the temp file is removed and the error is thrown; nothing is renamed into place.
 */
import { closeSync, openSync } from 'node:fs'
import { crc32cRange } from '../lib/crc32c.js'
import { MAX_KEY, MIN_KEY } from '../model/key.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import { ioFailed } from '../storage/io-errors.js'
import { DEAD_KEY, E_CRC, E_KEY, E_LENGTH, E_OFFSET, E_SLAB, F64_PER_ENTRY, LENGTH_MASK, U32_PER_ENTRY, WILL_INIT_BIT, type FrozenLayerData } from './inmemory-format.js'
import { readFully, spilledValueCorrupt } from './spill-file.js'
import { LayerFileWriter, type FinishedLayer } from './layer-file-writer.js'

export interface L0FlushJob {
  readonly layer: FrozenLayerData
  /** The timeline directory the L0 file is written to. */
  readonly dir: string
  readonly tenantId: TenantId
  readonly timelineId: TimelineId
  readonly noSync: boolean
}

/**
 * Entry ids of a frozen layer in (key, lsn) order, and per key (in key order) the end of its run in
 * `ids`, with the key order: keys[order[r]] is the r-th key, its entries ids[ends[r - 1] .. ends[r]).
 */
export function sortEntries(d: FrozenLayerData): { order: Int32Array; ends: Int32Array; ids: Int32Array } {
  const u32 = new Uint32Array(d.records)
  const keys = d.keys
  const n = keys.length
  const order = new Int32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  order.sort((a, b) => (keys[a]! < keys[b]! ? -1 : 1))
  const rankOf = new Int32Array(n)
  for (let r = 0; r < n; r++) rankOf[order[r]!] = r
  // ends[r] counts entries of ranks <= r after the prefix sum; pos[r] is the next slot of rank r.
  const ends = new Int32Array(n)
  for (let id = 0; id < d.entryCount; id++) {
    const k = u32[id * U32_PER_ENTRY + E_KEY]!
    if (k !== DEAD_KEY) ends[rankOf[k]!]!++
  }
  const pos = new Int32Array(n)
  let total = 0
  for (let r = 0; r < n; r++) {
    pos[r] = total
    total += ends[r]!
    ends[r] = total
  }
  const ids = new Int32Array(total)
  for (let id = 0; id < d.entryCount; id++) {
    const k = u32[id * U32_PER_ENTRY + E_KEY]!
    if (k !== DEAD_KEY) ids[pos[rankOf[k]!]!++] = id
  }
  return { order, ends, ids }
}

/** Writes the L0 delta layer of a frozen in-memory layer; resolves once it is durable under its name. */
export async function writeL0(job: L0FlushJob): Promise<FinishedLayer> {
  const d = job.layer
  const f64 = new Float64Array(d.records)
  const u32 = new Uint32Array(d.records)
  const views: Array<Buffer | null> = d.slabs.map((s) => (s === null ? null : Buffer.from(s)))
  const fromFile = d.slabs.map((s) => s === null)
  let fd = -1
  if (d.spilledBytes > 0) {
    try {
      fd = openSync(d.path, 'r')
    } catch (err) {
      throw ioFailed('opening', d.path, err)
    }
  }
  try {
    // Spilled slabs with memory lent for it are read back whole first (sequential reads).
    for (let s = 0; s < d.slabs.length; s++) {
      const r = d.reloadSlabs[s]
      if (d.slabs[s] !== null || r === null || r === undefined) continue
      const view = Buffer.from(r, 0, d.slabUsed[s]!)
      readFully(fd, view, d.slabFileOffsets[s]!, d.path)
      views[s] = view
    }
    const { order, ends, ids } = sortEntries(d)
    const writer = await LayerFileWriter.create('delta', MIN_KEY, d.lsnRange, { dir: job.dir, tenantId: job.tenantId, timelineId: job.timelineId, noSync: job.noSync })
    try {
      let j = 0
      for (let r = 0; r < order.length; r++) {
        const key = d.keys[order[r]!]!
        for (const end = ends[r]!; j < end; j++) {
          const id = ids[j]!
          const u = id * U32_PER_ENTRY
          const s = u32[u + E_SLAB]!
          const off = u32[u + E_OFFSET]!
          const lenFlags = u32[u + E_LENGTH]!
          const len = lenFlags & LENGTH_MASK
          const willInit = (lenFlags & WILL_INIT_BIT) !== 0
          const lsn = f64[id * F64_PER_ENTRY]!
          let view = views[s] ?? null
          let at = off
          let crc = -1
          if (fromFile[s]) {
            if (view === null) {
              view = Buffer.allocUnsafe(len)
              readFully(fd, view, d.slabFileOffsets[s]! + off, d.path)
              at = 0
            }
            crc = u32[u + E_CRC]!
            if (crc32cRange(view, at, at + len) !== crc) throw spilledValueCorrupt(d.path, key, BigInt(lsn))
          }
          if (!writer.putRange(key, lsn, view!, at, at + len, willInit, crc)) await writer.drain()
        }
      }
      return await writer.finish(MAX_KEY)
    } catch (e) {
      await writer.abort().catch(() => {})
      throw e
    }
  } finally {
    if (fd >= 0) closeSync(fd)
  }
}
