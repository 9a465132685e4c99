/**
 * Timeline metadata: the durable facts of a timeline, in `<timeline dir>/metadata`.
 *
 * File format: a 16-byte header — magic 'PSTM' (u32 BE), format version (u16 BE), reserved (u16, zero), body
 * length (u32 BE), CRC-32C of header bytes 0..11 then the body (u32 BE) — then the body as UTF-8 JSON
 * (LSNs as "X/X" strings).
 * JSON keeps the file readable with `tail -c +17 metadata` and lets fields be added without a new
 * version; the header makes any flipped byte a CorruptionError naming the file.
 *
 * Invariants (checked on encode and again on decode):
 * - prevRecordLsn < diskConsistentLsn <= lastRecordLsn once anything was ingested (prev may be null);
 * - ancestorTimeline and ancestorLsn are both set or both null; a branch starts at ancestorLsn
 *   (diskConsistentLsn >= ancestorLsn);
 * - initdbLsn <= diskConsistentLsn + 1 (an import writes at initdb_lsn into a timeline that starts just below).
 * The file is replaced atomically (temp file, fsync, rename, fsync dir) after every flush.
 *
 * `layers` names every layer file of the timeline up to disk_consistent_lsn (Neon's index_part keeps the
 * same list for remote storage): a flush makes its file durable first, then writes the metadata that lists
 * it, so a file missing from the directory is detected at load (its pages would otherwise be read from
 * older layers: a wrong page, silently). Metadata written before the list existed has none (no check until
 * the next flush writes it).
 *
 * `wal_source.conn_string` holds no password: a source is recorded without it (app/source-password.ts strips
 * it; the password comes from the environment of the process that connects, like every credential here).
 * Metadata written before that rule may still hold one. It is read and used as before, and every later write
 * of this file (a flush, a GC cutoff) carries the string over unchanged: this module never edits a source,
 * so a setup that streams today keeps streaming after a restart without PGPASSWORD or a password file. The
 * password goes when the source is attached again (`timeline source --from`), which records a stripped string.
 */
import { CorruptionError } from '../lib/errors.js'
import { crc32c } from '../lib/crc32c.js'
import { formatLsn, lsn, parseLsn, type Lsn } from '../pg/lsn.js'
import { parseTimelineId, type TimelineId } from '../model/ids.js'
import { writeFileDurably } from '../storage/durable-file.js'
import { readSmallFile } from '../storage/small-file.js'

const MAGIC = 0x5053544d // 'PSTM'
export const METADATA_FORMAT_VERSION = 1
const HEADER_BYTES = 16
/** Metadata is small (the layer list: ~110 bytes per layer file); a larger file is garbage and is not parsed. */
const METADATA_MAX_BYTES = 16 * 1024 * 1024

/** Where the timeline's WAL comes from (a PostgreSQL 15 primary over physical replication). */
export interface WalSource {
  /** libpq connection string, recorded without a password (older metadata may still have one: see the header). */
  connString: string
  slotName: string | null
  /** pg_control's system identifier of the primary, as a decimal string. */
  systemId: string
  /** PostgreSQL's own timeline id (TimeLineID) of the WAL stream. */
  pgTimeline: number
}

export interface TimelineMetadata {
  diskConsistentLsn: Lsn
  prevRecordLsn: Lsn | null
  lastRecordLsn: Lsn
  ancestorTimeline: TimelineId | null
  ancestorLsn: Lsn | null
  latestGcCutoffLsn: Lsn
  initdbLsn: Lsn
  pgVersion: number
  walSource: WalSource | null
  /** Data checksums on the primary (pages served get a computed checksum). */
  dataChecksums: boolean
  /** Hint-bit changes are WAL-logged on the primary (data checksums or wal_log_hints). */
  hintBitsLogged: boolean
  /** Pages are served only at or after this LSN (end of the base backup for imported timelines). */
  minReadableLsn: Lsn
  /** Seconds since the epoch when the timeline was created. */
  createdAt: number
  /** File names of the timeline's layer files up to disk_consistent_lsn, sorted; absent when not recorded. */
  layers?: readonly string[] | undefined
}

/**
 * The metadata of a new root timeline whose first values (an import or a bootstrap) are stored at `at`: it
 * starts just below `at`, so the import's values are the first thing ingested, and serves pages from `at` on.
 */
export function rootTimelineMetadata(
  at: Lsn,
  o: { pgVersion: number; walSource: WalSource | null; dataChecksums: boolean; hintBitsLogged: boolean },
): TimelineMetadata {
  const below = lsn(at - 1n)
  return {
    diskConsistentLsn: below,
    prevRecordLsn: null,
    lastRecordLsn: below,
    ancestorTimeline: null,
    ancestorLsn: null,
    latestGcCutoffLsn: lsn(0),
    initdbLsn: at,
    pgVersion: o.pgVersion,
    walSource: o.walSource,
    dataChecksums: o.dataChecksums,
    hintBitsLogged: o.hintBitsLogged,
    minReadableLsn: at,
    createdAt: Math.floor(Date.now() / 1000),
  }
}

interface MetadataJson {
  disk_consistent_lsn: string
  prev_record_lsn: string | null
  last_record_lsn: string
  ancestor_timeline: string | null
  ancestor_lsn: string | null
  latest_gc_cutoff_lsn: string
  initdb_lsn: string
  pg_version: number
  wal_source: { conn_string: string; slot_name: string | null; system_id: string; pg_timeline: number } | null
  data_checksums: boolean
  hint_bits_logged: boolean
  min_readable_lsn: string
  created_at: number
  layers?: string[]
}

function checkInvariants(m: TimelineMetadata, where: string): void {
  const bad = (why: string) => new CorruptionError('METADATA_INVALID', `timeline metadata ${where} is inconsistent: ${why}`)
  if (m.prevRecordLsn !== null && m.prevRecordLsn >= m.diskConsistentLsn) throw bad('prev_record_lsn >= disk_consistent_lsn')
  if (m.diskConsistentLsn > m.lastRecordLsn) throw bad('disk_consistent_lsn > last_record_lsn')
  if ((m.ancestorTimeline === null) !== (m.ancestorLsn === null)) throw bad('ancestor timeline and LSN must be set together')
  if (m.ancestorLsn !== null && m.diskConsistentLsn < m.ancestorLsn) throw bad('disk_consistent_lsn below the branch point')
  if (m.initdbLsn > m.diskConsistentLsn + 1n) throw bad('initdb_lsn above disk_consistent_lsn')
}

export function encodeMetadata(m: TimelineMetadata): Buffer {
  checkInvariants(m, '(about to be written)')
  const json: MetadataJson = {
    disk_consistent_lsn: formatLsn(m.diskConsistentLsn),
    prev_record_lsn: m.prevRecordLsn === null ? null : formatLsn(m.prevRecordLsn),
    last_record_lsn: formatLsn(m.lastRecordLsn),
    ancestor_timeline: m.ancestorTimeline,
    ancestor_lsn: m.ancestorLsn === null ? null : formatLsn(m.ancestorLsn),
    latest_gc_cutoff_lsn: formatLsn(m.latestGcCutoffLsn),
    initdb_lsn: formatLsn(m.initdbLsn),
    pg_version: m.pgVersion,
    wal_source:
      m.walSource === null
        ? null
        : { conn_string: m.walSource.connString, slot_name: m.walSource.slotName, system_id: m.walSource.systemId, pg_timeline: m.walSource.pgTimeline },
    data_checksums: m.dataChecksums,
    hint_bits_logged: m.hintBitsLogged,
    min_readable_lsn: formatLsn(m.minReadableLsn),
    created_at: m.createdAt,
    ...(m.layers === undefined ? {} : { layers: [...m.layers] }),
  }
  const body = Buffer.from(JSON.stringify(json, null, 1) + '\n', 'utf8')
  const out = Buffer.alloc(HEADER_BYTES + body.length)
  out.writeUInt32BE(MAGIC, 0)
  out.writeUInt16BE(METADATA_FORMAT_VERSION, 4)
  out.writeUInt32BE(body.length, 8)
  body.copy(out, HEADER_BYTES)
  out.writeUInt32BE(crc32c(body, crc32c(out.subarray(0, 12))), 12)
  return out
}

export function decodeMetadata(buf: Buffer, path: string): TimelineMetadata {
  const corrupt = (why: string) =>
    new CorruptionError('METADATA_CORRUPT', `timeline metadata ${path} is corrupt: ${why}`, {
      hint:
        'The file was damaged, the layer files beside it are not: restore it from a backup of the workdir (a copy older than the layer files ' +
        'makes the newer ones move aside into future-layers/, from where they can be put back). Deleting the timeline and importing it again loses its history and its branches.',
      details: { path },
    })
  if (buf.length < HEADER_BYTES) throw corrupt('file is too short')
  if (buf.readUInt32BE(0) !== MAGIC) throw corrupt('bad magic')
  const version = buf.readUInt16BE(4)
  if (version !== METADATA_FORMAT_VERSION) throw corrupt(`unknown format version ${version}`)
  const len = buf.readUInt32BE(8)
  if (len !== buf.length - HEADER_BYTES) throw corrupt(`body length ${len} does not match the file`)
  const body = buf.subarray(HEADER_BYTES)
  if (crc32c(body, crc32c(buf.subarray(0, 12))) !== buf.readUInt32BE(12)) throw corrupt('checksum mismatch')
  let j: MetadataJson
  try {
    j = JSON.parse(body.toString('utf8')) as MetadataJson
    const m: TimelineMetadata = {
      diskConsistentLsn: parseLsn(j.disk_consistent_lsn),
      prevRecordLsn: j.prev_record_lsn === null ? null : parseLsn(j.prev_record_lsn),
      lastRecordLsn: parseLsn(j.last_record_lsn),
      ancestorTimeline: j.ancestor_timeline === null ? null : parseTimelineId(j.ancestor_timeline),
      ancestorLsn: j.ancestor_lsn === null ? null : parseLsn(j.ancestor_lsn),
      latestGcCutoffLsn: parseLsn(j.latest_gc_cutoff_lsn),
      initdbLsn: parseLsn(j.initdb_lsn),
      pgVersion: j.pg_version,
      walSource:
        j.wal_source === null
          ? null
          : { connString: j.wal_source.conn_string, slotName: j.wal_source.slot_name, systemId: j.wal_source.system_id, pgTimeline: j.wal_source.pg_timeline },
      dataChecksums: j.data_checksums,
      hintBitsLogged: j.hint_bits_logged,
      minReadableLsn: parseLsn(j.min_readable_lsn),
      createdAt: j.created_at,
      ...(j.layers === undefined ? {} : { layers: parseLayerList(j.layers) }),
    }
    checkInvariants(m, path)
    return m
  } catch (e) {
    if (e instanceof CorruptionError) throw e
    throw corrupt(e instanceof Error ? e.message : String(e))
  }
}

function parseLayerList(v: unknown): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error('layers is not a list of file names')
  return v as string[]
}

export function readMetadata(path: string): TimelineMetadata {
  return decodeMetadata(readSmallFile(path, METADATA_MAX_BYTES, 'timeline metadata'), path)
}

export async function writeMetadata(path: string, m: TimelineMetadata, opts: { noSync: boolean }): Promise<void> {
  await writeFileDurably(path, encodeMetadata(m), { noSync: opts.noSync })
}
