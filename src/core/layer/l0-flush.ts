/**
 * The L0 flush: writes a frozen in-memory layer (FrozenLayerData) as one delta layer file covering the
 * whole key space and the layer's LSN range, durable under its layer name when the promise resolves
 * (temp file, fsync, rename, directory fsync: LayerFileWriter.finish).
 *
 * The values are the layer's slabs, stored as they are, in slab order (l0-stream.ts; format version 2):
 * the slabs written while the layer filled (its L0Stream) are not touched again, the others are written
 * here. Then the index: entries in (key, lsn) order by a counting sort — keys sorted once, then one
 * sequential pass over the entry records counts entries per key and a second places entry ids, in id
 * order, which per key is LSN order (puts of a key come with non-decreasing LSNs; a version replaced at
 * the same LSN is marked dead, and its bytes stay in the file unreferenced). That replaces a walk of each
 * key's `prev` chain, one dependent cache miss per entry.
 *
 * It reads only the frozen layer's shared memory and its ephemeral files, so it runs in the flush worker
 * thread (flush-worker.ts) while ingest continues on the main thread; the same function runs in-thread when
 * no worker is used. On any failure the temp file is removed and the error is thrown; nothing is renamed
 * into place.
 */
import { closeSync, openSync } from 'node:fs'
import { MAX_KEY } from '../model/key.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import { ioFailed } from '../storage/io-errors.js'
import { DEAD_KEY, E_CRC, E_KEY, E_LENGTH, E_OFFSET, E_SLAB, F64_PER_ENTRY, LENGTH_MASK, U32_PER_ENTRY, WILL_INIT_BIT, type FrozenLayerData } from './inmemory-format.js'
import { readFully, spilledValueCorrupt } from './spill-file.js'
import type { FinishedLayer } from './layer-file-writer.js'
import { L0Stream } from './l0-stream.js'

export interface L0FlushJob {
  readonly layer: FrozenLayerData
  /** The timeline directory the L0 file is written to. */
  readonly dir: string
  readonly tenantId: TenantId
  readonly timelineId: TimelineId
  readonly noSync: boolean
  /**
   * The L0 file's temp path when the job has no stream (l0StreamTempPath), chosen by whoever must remove the
   * file if the thread writing it dies (FlushWorker.run); default: a fresh one.
   */
  readonly tempPath?: string
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

/**
 * Writes the L0 delta layer of a frozen in-memory layer; resolves once it is durable under its name.
 * `stream`: the layer's L0Stream with the slabs written while it filled (its file is finished here), or
 * null to write every slab now.
 */
export async function writeL0(job: L0FlushJob, stream: L0Stream | null = null): Promise<FinishedLayer> {
  const d = job.layer
  const f64 = new Float64Array(d.records)
  const u32 = new Uint32Array(d.records)
  let st: L0Stream | null = stream
  let fd = -1
  try {
    st ??= await L0Stream.open({
      dir: job.dir,
      tenantId: job.tenantId,
      timelineId: job.timelineId,
      lsnStart: d.lsnRange.start,
      noSync: job.noSync,
      ...(job.tempPath !== undefined ? { tempPath: job.tempPath } : {}),
    })
    // The slabs not written yet, in order: from memory, or read back (whole, into memory the layer lent
    // for it, else into one buffer reused slab after slab, whose bytes the writer copies under its
    // backpressure) from the spill file, or from a lost stream's file for slabs released after it wrote
    // them (through the layer's descriptor), every value checked against the CRC recorded then.
    let readBack: Buffer | null = null
    let from = d.path
    const check = {
      expectCrc: (id: number) => u32[id * U32_PER_ENTRY + E_CRC]!,
      onMismatch: (id: number) => spilledValueCorrupt(from, d.keys[u32[id * U32_PER_ENTRY + E_KEY]!] ?? '?', BigInt(f64[id * F64_PER_ENTRY]!)),
    }
    for (let s = st.slabsWritten; s < d.slabs.length; s++) {
      const first = d.slabFirstEntries[s]!
      const end = s + 1 < d.slabs.length ? d.slabFirstEntries[s + 1]! : d.entryCount
      const used = d.slabUsed[s]!
      const slab = d.slabs[s]
      if (slab !== null && slab !== undefined) {
        st.addSlab(s, Buffer.from(slab, 0, used), d.records, first, end, null)
        continue
      }
      const lent = d.reloadSlabs[s] ?? null
      if (lent === null && (readBack === null || readBack.length < used)) readBack = Buffer.allocUnsafe(used)
      const view = lent !== null ? Buffer.from(lent, 0, used) : readBack!.subarray(0, used)
      if (d.slabStreamOffsets[s]! >= 0) {
        from = d.streamPath
        readFully(d.streamFd, view, d.slabStreamOffsets[s]!, from)
      } else {
        if (fd < 0) fd = openSpill(d.path)
        from = d.path
        readFully(fd, view, d.slabFileOffsets[s]!, from)
      }
      if (lent !== null) st.addSlab(s, view, d.records, first, end, null, check)
      else await st.addSpilledSlab(s, view, d.records, first, end, check)
    }
    const writer = st.writer
    writer.setLsnEnd(d.lsnRange.end)
    const { order, ends, ids } = sortEntries(d)
    let j = 0
    for (let r = 0; r < order.length; r++) {
      const key = d.keys[order[r]!]!
      for (const end = ends[r]!; j < end; j++) {
        const id = ids[j]!
        const u = id * U32_PER_ENTRY
        const lenFlags = u32[u + E_LENGTH]!
        writer.putPlaced(key, f64[id * F64_PER_ENTRY]!, st.slabOffsets[u32[u + E_SLAB]!]! + u32[u + E_OFFSET]!, lenFlags & LENGTH_MASK, (lenFlags & WILL_INIT_BIT) !== 0, st.crcOf(id))
      }
    }
    return await writer.finish(MAX_KEY)
  } catch (e) {
    await st?.abort().catch(() => {})
    throw e
  } finally {
    if (fd >= 0) closeSync(fd)
  }
}

function openSpill(path: string): number {
  try {
    return openSync(path, 'r')
  } catch (err) {
    throw ioFailed('opening', path, err)
  }
}
