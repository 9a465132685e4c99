/**
 * The L0 flush: writes a frozen in-memory layer (FrozenLayerData) as one delta layer file covering the
 * whole key space and the layer's LSN range, durable under its layer name when the promise resolves
 * (temp file, fsync, rename, directory fsync: LayerFileWriter.finish).
 *
 * It reads only the frozen layer's shared memory and its ephemeral file, so it runs in the flush worker
 * thread (flush-worker.ts) while ingest continues on the main thread; the same function runs in-thread when
 * no worker is used. Keys are sorted here (off the ingest thread); each key's chain of entries (newest
 * first through `prev`) is walked and written oldest first. Values still in slabs are written from shared
 * memory (the writer computes their CRC-32C); spilled values are read back from the ephemeral file and
 * checked against the CRC recorded when they were spilled, which the writer then reuses.
 *
 * On any failure the temp file is removed and the error is thrown; nothing is renamed into place.
 */
import { closeSync, openSync } from 'node:fs'
import { crc32c } from '../lib/crc32c.js'
import { MAX_KEY, MIN_KEY } from '../model/key.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import type { Lsn } from '../pg/lsn.js'
import { ioFailed } from '../storage/io-errors.js'
import { DeltaLayerWriter } from './delta-layer.js'
import { E_CRC, E_LENGTH, E_OFFSET, E_PREV, E_SLAB, F64_PER_ENTRY, LENGTH_MASK, U32_PER_ENTRY, type FrozenLayerData } from './inmemory-format.js'
import { readFully, spilledValueCorrupt } from './inmemory-layer.js'
import type { FinishedLayer } from './layer-file-writer.js'

export interface L0FlushJob {
  readonly layer: FrozenLayerData
  /** The timeline directory the L0 file is written to. */
  readonly dir: string
  readonly tenantId: TenantId
  readonly timelineId: TimelineId
  readonly noSync: boolean
}

/** Writes the L0 delta layer of a frozen in-memory layer; resolves once it is durable under its name. */
export async function writeL0(job: L0FlushJob): Promise<FinishedLayer> {
  const d = job.layer
  const f64 = new Float64Array(d.records)
  const u32 = new Uint32Array(d.records)
  const i32 = new Int32Array(d.records)
  const views = d.slabs.map((s) => (s === null ? null : Buffer.from(s)))
  const keys = d.keys
  const order = new Int32Array(keys.length)
  for (let i = 0; i < order.length; i++) order[i] = i
  order.sort((a, b) => (keys[a]! < keys[b]! ? -1 : 1))
  let fd = -1
  if (d.spilledBytes > 0) {
    try {
      fd = openSync(d.path, 'r')
    } catch (err) {
      throw ioFailed('opening', d.path, err)
    }
  }
  try {
    const writer = await DeltaLayerWriter.create({
      dir: job.dir,
      tenantId: job.tenantId,
      timelineId: job.timelineId,
      keyStart: MIN_KEY,
      lsnRange: d.lsnRange,
      noSync: job.noSync,
    })
    try {
      let chain = new Int32Array(64)
      for (let i = 0; i < order.length; i++) {
        const k = order[i]!
        const key = keys[k]!
        let n = 0
        for (let id = d.heads[k]!; id >= 0; id = i32[id * U32_PER_ENTRY + E_PREV]!) {
          if (n === chain.length) {
            const bigger = new Int32Array(chain.length * 2)
            bigger.set(chain)
            chain = bigger
          }
          chain[n++] = id
        }
        for (let j = n - 1; j >= 0; j--) {
          const id = chain[j]!
          const u = id * U32_PER_ENTRY
          const s = u32[u + E_SLAB]!
          const off = u32[u + E_OFFSET]!
          const len = u32[u + E_LENGTH]! & LENGTH_MASK
          const lsn = BigInt(f64[id * F64_PER_ENTRY]!) as Lsn
          const view = views[s]
          let ok: boolean
          if (view !== null && view !== undefined) {
            ok = writer.put(key, lsn, view.subarray(off, off + len))
          } else {
            const value = Buffer.allocUnsafe(len)
            readFully(fd, value, d.slabFileOffsets[s]! + off, d.path)
            const crc = u32[u + E_CRC]!
            if (crc32c(value) !== crc) throw spilledValueCorrupt(d.path, key, lsn)
            ok = writer.put(key, lsn, value, crc)
          }
          if (!ok) await writer.drain()
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
