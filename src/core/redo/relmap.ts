/**
 * RelMap resource manager: XLOG_RELMAP_UPDATE carries a whole pg_filenode.map (512 bytes), the mapping from
 * catalog oids to file nodes for the mapped catalogs (pg_class, pg_database, ...). No page changes: redo
 * writes the file, so ingest stores the map as the value of the (spc, db) relmap key.
 *
 * Record main data: dbid u32 (0 for the shared map) | tsid u32 (pg_global for the shared map) | nbytes i32
 * (always 512; PostgreSQL PANICs otherwise) | the map.
 * Map file (RelMapFile): magic i32 0x592717 | num_mappings i32 (0..62) | 62 x (mapoid u32, mapfilenode u32)
 * | crc u32 (CRC-32C of bytes 0..503) | pad i32. The record's bytes are exactly the bytes of the file
 * PostgreSQL writes, padding included: the CRC was computed before the record was assembled.
 */
import { CorruptionError } from '../lib/errors.js'
import { crc32c } from '../lib/crc32c.js'
import { DEFAULTTABLESPACE_OID, GLOBALTABLESPACE_OID } from '../pg/reltag.js'

export const XLOG_RELMAP_UPDATE = 0x00
export const MinSizeOfRelmapUpdate = 12
export const RELMAPPER_FILEMAGIC = 0x592717
export const MAX_MAPPINGS = 62
export const RELMAP_FILE_SIZE = 512
/** offsetof(RelMapFile, crc): the CRC covers everything before it. */
export const RELMAP_CRC_OFFSET = 8 + MAX_MAPPINGS * 8
export const RELMAPPER_FILENAME = 'pg_filenode.map'
/** The per-version directory inside a tablespace (TABLESPACE_VERSION_DIRECTORY of PostgreSQL 15). */
export const TABLESPACE_VERSION_DIRECTORY = 'PG_15_202209061'

export interface ParsedRelmapUpdate {
  readonly dbid: number
  readonly tsid: number
  readonly nbytes: number
  /** The 512-byte map file, a view into the record. */
  readonly map: Buffer
}

export interface RelMapping {
  readonly mapoid: number
  readonly mapfilenode: number
}

export interface RelMapFile {
  readonly magic: number
  readonly num_mappings: number
  readonly mappings: readonly RelMapping[]
  readonly crc: number
}

function bad(code: string, what: string): CorruptionError {
  return new CorruptionError(code, what, { hint: 'The WAL or the map file is corrupt, or was not written by PostgreSQL 15.' })
}

/** Parses XLOG_RELMAP_UPDATE's main data; the map must be exactly 512 bytes, as relmap_redo demands. */
export function parseRelmapUpdate(data: Buffer): ParsedRelmapUpdate {
  if (data.length < MinSizeOfRelmapUpdate) throw bad('RELMAP_BAD_RECORD', `RelMap UPDATE has ${data.length} bytes of main data, less than ${MinSizeOfRelmapUpdate}`)
  const nbytes = data.readInt32LE(8)
  if (nbytes !== RELMAP_FILE_SIZE) throw bad('RELMAP_BAD_RECORD', `RelMap UPDATE carries a map of ${nbytes} bytes, expected ${RELMAP_FILE_SIZE}`)
  if (data.length < MinSizeOfRelmapUpdate + nbytes) throw bad('RELMAP_BAD_RECORD', `RelMap UPDATE announces ${nbytes} bytes of map but has ${data.length - MinSizeOfRelmapUpdate}`)
  return { dbid: data.readUInt32LE(0), tsid: data.readUInt32LE(4), nbytes, map: data.subarray(MinSizeOfRelmapUpdate, MinSizeOfRelmapUpdate + nbytes) }
}

/** Decodes and validates a map file as read_relmap_file does: size, magic, mapping count, CRC. */
export function validateRelMapFile(map: Buffer): RelMapFile {
  if (map.length !== RELMAP_FILE_SIZE) throw bad('RELMAP_BAD_FILE', `relation map has ${map.length} bytes, expected ${RELMAP_FILE_SIZE}`)
  const magic = map.readInt32LE(0)
  const num_mappings = map.readInt32LE(4)
  if (magic !== RELMAPPER_FILEMAGIC || num_mappings < 0 || num_mappings > MAX_MAPPINGS) {
    throw bad('RELMAP_BAD_FILE', `relation map has magic 0x${(magic >>> 0).toString(16)} and ${num_mappings} mappings`)
  }
  const crc = map.readUInt32LE(RELMAP_CRC_OFFSET)
  const computed = crc32c(map.subarray(0, RELMAP_CRC_OFFSET))
  if (crc !== computed) throw bad('RELMAP_BAD_CRC', `relation map CRC is 0x${crc.toString(16)}, computed 0x${computed.toString(16)}`)
  const mappings: RelMapping[] = []
  for (let i = 0; i < num_mappings; i++) mappings.push({ mapoid: map.readUInt32LE(8 + 8 * i), mapfilenode: map.readUInt32LE(12 + 8 * i) })
  return { magic, num_mappings, mappings, crc }
}

/** Where PostgreSQL keeps the map of (dbid, tsid), relative to the data directory (GetDatabasePath). */
export function relmapFilePath(dbid: number, tsid: number): string {
  if (tsid === GLOBALTABLESPACE_OID) return `global/${RELMAPPER_FILENAME}`
  if (tsid === DEFAULTTABLESPACE_OID) return `base/${dbid}/${RELMAPPER_FILENAME}`
  return `pg_tblspc/${tsid}/${TABLESPACE_VERSION_DIRECTORY}/${dbid}/${RELMAPPER_FILENAME}`
}
