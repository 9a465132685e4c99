/**
 * What `pageserver layer dump` shows of a layer file: its summary, then each entry with its value
 * described (image length, or WAL record length with its resource manager and record type). Opens either
 * kind of layer file by its magic. The only layer module that knows values are PostgreSQL data: it is a
 * debugging view.
 */
import { decodeValue } from '../model/value.js'
import type { Key } from '../model/key.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { messageOf } from '../lib/errors.js'
import { layerCorrupt } from './layer-format.js'
import { recordTypeName } from '../pg/rmgr-identify.js'
import { rmgrName } from '../pg/rmgr.js'
import { decodeRecord } from '../pg/wal-record.js'
import { LayerFileReader, type LayerEntry } from './layer-file-reader.js'
import { inputPathFailed, statRegularFileSync } from '../storage/input-file.js'
import { basename, resolve, sep } from 'node:path'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../model/ids.js'
import { parseLayerName } from './layer-name.js'

export interface DumpedEntry {
  readonly key: Key
  readonly lsn: Lsn
  /** 'image' or 'record' (from the value's kind byte). */
  readonly kind: 'image' | 'record'
  /** Image bytes, or the WAL record's length (xl_tot_len). */
  readonly lengthBytes: number
  readonly willInit: boolean
  /** For a WAL record: "Heap", "Btree", ...; null for images and undecodable records. */
  readonly rmgr: string | null
  /** For a WAL record: "INSERT", "HOT_UPDATE", ... as pg_waldump names it. */
  readonly type: string | null
  /** The value payload (image or record bytes). */
  readonly payload: Buffer
  /** Bytes the value takes in the file (compressed size when compressed). */
  readonly storedBytes: number
}

/**
 * Opens a delta or image layer file for dumping (header and top-level index are validated). The path is
 * the user's: it is checked to be a regular file first, since opening a FIFO would block forever.
 */
export function openLayerFile(path: string): LayerFileReader {
  try {
    statRegularFileSync(path, 'layer file')
  } catch (err) {
    throw inputPathFailed('opening', path, err)
  }
  return LayerFileReader.open(path, { indexBlockCacheMax: 4 })
}

/** Describes one entry of the file at `path`; a value that is not a valid encoding is corruption of that file. */
export function describeEntry(e: LayerEntry, path: string): DumpedEntry {
  let v
  try {
    v = decodeValue(e.value)
  } catch (err) {
    throw layerCorrupt(path, `value of ${e.key} at ${formatLsn(e.lsn)}: ${messageOf(err)}`)
  }
  if (v.kind === 'image') {
    return { key: e.key, lsn: e.lsn, kind: 'image', lengthBytes: v.data.length, willInit: true, rmgr: null, type: null, payload: v.data, storedBytes: e.storedBytes }
  }
  let rmgr: string | null = null
  let type: string | null = null
  try {
    const rec = decodeRecord(v.raw)
    rmgr = rmgrName(rec.xl_rmid)
    type = recordTypeName(rec.xl_rmid, rec.xl_info)
  } catch {
    // not a decodable PostgreSQL record (e.g. a test value): show kind and length only
  }
  return { key: e.key, lsn: e.lsn, kind: 'record', lengthBytes: v.raw.length, willInit: v.willInit, rmgr, type, payload: v.raw, storedBytes: e.storedBytes }
}

/**
 * What the page server would expect of a file at `path`: the layer its name describes (when it is a layer
 * file name) and, under `.../tenants/<tenant>/timelines/<timeline>/`, that tenant and timeline. A file
 * dumped from elsewhere (a copy under another name) is expected to be nothing in particular.
 */
export function expectedPlacementOf(path: string): { expectedName?: string; expectedTenantId?: TenantId; expectedTimelineId?: TimelineId } {
  const out: { expectedName?: string; expectedTenantId?: TenantId; expectedTimelineId?: TimelineId } = {}
  const desc = parseLayerName(basename(path))
  if (desc !== null) out.expectedName = desc.name
  const parts = resolve(path).split(sep)
  const n = parts.length
  if (n >= 5 && parts[n - 5] === 'tenants' && parts[n - 3] === 'timelines') {
    try {
      const tenantId = parseTenantId(parts[n - 4]!)
      const timelineId = parseTimelineId(parts[n - 2]!)
      out.expectedTenantId = tenantId
      out.expectedTimelineId = timelineId
    } catch {
      // not a tenant's timeline directory
    }
  }
  return out
}

