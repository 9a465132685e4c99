/**
 * Import of a PostgreSQL 15 data directory (an initdb result, or the files of a BASE_BACKUP tar) into keys
 * and values at one LSN.
 *
 * The importer is fed files one at a time, in any order, as (relative path, content in chunks); it knows
 * which PostgreSQL files carry data and how they map to keys:
 *   base/<db>/<relfilenode>[_fsm|_vm|_init][.<segment>]   relation pages (1 GiB segments of 131072 pages)
 *   global/<relfilenode>[...]                             shared catalogs (tablespace 1664, database 0)
 *   base/<db>/pg_filenode.map, global/pg_filenode.map     relmap files
 *   pg_xact/XXXX, pg_multixact/{offsets,members}/XXXX     SLRU segments (32 pages each)
 *   pg_twophase/XXXXXXXX                                  prepared transactions (file bytes as they are)
 *   global/pg_control                                     control file (and the CheckPoint it embeds)
 * Everything else (config files, PG_VERSION, logs, pg_wal, temp files) is not stored: basebackup writes
 * its own. User tablespaces (pg_tblspc) are refused, as in Neon.
 *
 * Directories and sizes are accumulated and written by `finish()`. Pages are emitted as they arrive, so
 * memory stays bounded by one page plus the directory sets.
 */
import { UnsupportedError, CorruptionError } from '../lib/errors.js'
import { imageValue, type Value } from '../model/value.js'
import type { Key } from '../model/key.js'
import { DEFAULTTABLESPACE_OID, GLOBALTABLESPACE_OID, type RelTag } from '../pg/reltag.js'
import { SLRU_PAGES_PER_SEGMENT, SlruKind, type SlruKindFork } from '../pg/slru.js'
import { decodeControlFile, encodeCheckPoint, type ControlFileData } from '../pg/controlfile.js'
import {
  checkpointKey,
  controlFileKey,
  dbDirKey,
  encodeBlockCount,
  encodeDbDir,
  encodeRelDir,
  encodeU32Set,
  relBlockKey,
  relDirKey,
  relmapFileKey,
  relSizeKey,
  slruBlockKey,
  slruDirKey,
  slruSegmentSizeKey,
  twoPhaseDirKey,
  twoPhaseFileKey,
} from './mapping.js'

export const BLCKSZ = 8192
/** RELSEG_SIZE: pages per 1 GiB relation segment file. */
export const RELSEG_SIZE = 131072
/** Size of a relmap file (pg_filenode.map). */
export const RELMAP_FILE_SIZE = 512
/** Two-phase state files are small; a larger one is not a state file. */
const TWOPHASE_FILE_MAX_BYTES = 16 * 1024 * 1024

export interface ImportFileSink {
  write(chunk: Buffer): void
  end(): void
}

export interface ImportSink {
  put(key: Key, value: Value): void
}

type FileKind =
  | { kind: 'rel'; rel: RelTag; segment: number }
  | { kind: 'relmap'; spcNode: number; dbNode: number }
  | { kind: 'slru'; slru: SlruKindFork; segno: number }
  | { kind: 'twophase'; xid: number }
  | { kind: 'control' }
  | { kind: 'skip' }

const FORK_SUFFIX: Readonly<Record<string, number>> = { '': 0, _fsm: 1, _vm: 2, _init: 3 }

/** What a data-directory path is, for import purposes. Paths use '/' and no leading './'. */
export function classifyPath(path: string): FileKind {
  const p = path.replace(/^\.\//, '')
  let m = /^base\/(\d+)\/(\d+)(_fsm|_vm|_init)?(?:\.(\d+))?$/.exec(p)
  if (m) {
    return {
      kind: 'rel',
      rel: { spcNode: DEFAULTTABLESPACE_OID, dbNode: Number(m[1]), relNode: Number(m[2]), forkNum: FORK_SUFFIX[m[3] ?? '']! },
      segment: m[4] ? Number(m[4]) : 0,
    }
  }
  m = /^global\/(\d+)(_fsm|_vm|_init)?(?:\.(\d+))?$/.exec(p)
  if (m) {
    return {
      kind: 'rel',
      rel: { spcNode: GLOBALTABLESPACE_OID, dbNode: 0, relNode: Number(m[1]), forkNum: FORK_SUFFIX[m[2] ?? '']! },
      segment: m[3] ? Number(m[3]) : 0,
    }
  }
  m = /^base\/(\d+)\/pg_filenode\.map$/.exec(p)
  if (m) return { kind: 'relmap', spcNode: DEFAULTTABLESPACE_OID, dbNode: Number(m[1]) }
  if (p === 'global/pg_filenode.map') return { kind: 'relmap', spcNode: GLOBALTABLESPACE_OID, dbNode: 0 }
  if (p === 'global/pg_control') return { kind: 'control' }
  m = /^pg_xact\/([0-9A-F]{4,6})$/.exec(p)
  if (m) return { kind: 'slru', slru: SlruKind.Clog, segno: parseInt(m[1]!, 16) }
  m = /^pg_multixact\/offsets\/([0-9A-F]{4,6})$/.exec(p)
  if (m) return { kind: 'slru', slru: SlruKind.MultixactOffsets, segno: parseInt(m[1]!, 16) }
  m = /^pg_multixact\/members\/([0-9A-F]{4,6})$/.exec(p)
  if (m) return { kind: 'slru', slru: SlruKind.MultixactMembers, segno: parseInt(m[1]!, 16) }
  m = /^pg_twophase\/([0-9A-F]{8})$/.exec(p)
  if (m) return { kind: 'twophase', xid: parseInt(m[1]!, 16) }
  if (/^pg_tblspc\/\d+\//.test(p)) {
    throw new UnsupportedError('USER_TABLESPACE', `data directory uses a user tablespace (${p})`, {
      hint: 'Only the default and global tablespaces are supported; move the objects to pg_default first.',
    })
  }
  return { kind: 'skip' }
}

function relKey(r: RelTag): string {
  return `${r.spcNode}/${r.dbNode}/${r.relNode}/${r.forkNum}`
}

export interface ImportStats {
  files: number
  relationPages: number
  slruPages: number
  bytes: number
  /** Relation files that ended in a partial page, left out (see pagedSink). */
  partialPagesDropped: number
}

export class DatadirImporter {
  private readonly relSizes = new Map<string, { rel: RelTag; nblocks: number }>()
  private readonly dbs = new Map<string, { spcNode: number; dbNode: number; hasRelmap: boolean }>()
  private readonly slruSegs = new Map<SlruKindFork, Map<number, number>>()
  private readonly twophase = new Set<number>()
  private control: ControlFileData | null = null
  readonly stats: ImportStats = { files: 0, relationPages: 0, slruPages: 0, bytes: 0, partialPagesDropped: 0 }

  constructor(private readonly sink: ImportSink) {
    // The global "database" always exists, as in a real cluster.
    this.dbs.set(`${GLOBALTABLESPACE_OID}/0`, { spcNode: GLOBALTABLESPACE_OID, dbNode: 0, hasRelmap: false })
  }

  /** True if the file at `path` carries data the importer stores (callers may skip reading the others). */
  wants(path: string): boolean {
    return classifyPath(path).kind !== 'skip'
  }

  /**
   * Imports one file. `chunks` yields its content in order (any chunk sizes). Relation and SLRU files must
   * be whole pages; a torn last page (possible in a fuzzy base backup only for files being extended) is an
   * error here rather than a silently short relation.
   */
  async addFile(path: string, chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<void> {
    const sink = this.openFile(path)
    if (sink === null) return
    for await (const c of chunks) sink.write(c)
    sink.end()
  }

  /** Starts importing one file, fed by `write` then `end` (push form, for tar streams); null if not stored. */
  openFile(path: string): ImportFileSink | null {
    const k = classifyPath(path)
    if (k.kind === 'skip') return null
    this.stats.files++
    switch (k.kind) {
      case 'rel': {
        let pages = 0
        return this.pagedSink(
          path,
          (pageNo, page) => {
            const blkno = k.segment * RELSEG_SIZE + pageNo
            this.sink.put(relBlockKey(k.rel, blkno), imageValue(page))
            this.stats.relationPages++
            pages++
            this.noteRelBlock(k.rel, blkno)
          },
          () => {
            // An empty file names the relation and adds no block, whatever its segment: mdtruncate leaves the
            // segments past the new end in place with length 0 (a relation truncated from 1.5 GiB to 3
            // blocks has 3 pages in its first file and an empty ".1"), and mdnblocks counts 3.
            if (pages === 0) this.noteRelBlock(k.rel, -1)
          },
          'drop',
        )
      }
      case 'slru': {
        let pages = 0
        return this.pagedSink(
          path,
          (pageNo, page) => {
            if (pageNo >= SLRU_PAGES_PER_SEGMENT) throw new CorruptionError('IMPORT_BAD_SLRU', `SLRU segment ${path} has more than 32 pages`)
            this.sink.put(slruBlockKey(k.slru, k.segno, pageNo), imageValue(page))
            this.stats.slruPages++
            pages++
          },
          () => {
            let segs = this.slruSegs.get(k.slru)
            if (!segs) this.slruSegs.set(k.slru, (segs = new Map()))
            segs.set(k.segno, pages)
          },
        )
      }
      case 'relmap':
        return this.wholeSink(path, RELMAP_FILE_SIZE + 1, (data) => {
          if (data.length !== RELMAP_FILE_SIZE) {
            throw new CorruptionError('IMPORT_BAD_RELMAP', `${path} has ${data.length} bytes, expected ${RELMAP_FILE_SIZE}`)
          }
          this.sink.put(relmapFileKey(k.spcNode, k.dbNode), imageValue(data))
          this.dbs.set(`${k.spcNode}/${k.dbNode}`, { spcNode: k.spcNode, dbNode: k.dbNode, hasRelmap: true })
        })
      case 'twophase':
        return this.wholeSink(path, TWOPHASE_FILE_MAX_BYTES, (data) => {
          this.sink.put(twoPhaseFileKey(k.xid), imageValue(data))
          this.twophase.add(k.xid)
        })
      case 'control':
        return this.wholeSink(path, 8192, (data) => {
          this.control = decodeControlFile(data, path)
        })
    }
  }

  /** The decoded pg_control, once imported. */
  get controlFile(): ControlFileData | null {
    return this.control
  }

  private noteRelBlock(rel: RelTag, blkno: number): void {
    const key = relKey(rel)
    const cur = this.relSizes.get(key)
    const nblocks = blkno + 1
    if (!cur) this.relSizes.set(key, { rel, nblocks: Math.max(0, nblocks) })
    else if (nblocks > cur.nblocks) cur.nblocks = nblocks
    const dbKey = `${rel.spcNode}/${rel.dbNode}`
    if (!this.dbs.has(dbKey)) this.dbs.set(dbKey, { spcNode: rel.spcNode, dbNode: rel.dbNode, hasRelmap: false })
  }

  /**
   * A sink that cuts the content into whole pages for `onPage`. A partial last page is an error, or with
   * `partialLast` 'drop' (relation files) left out, as PostgreSQL's mdnblocks leaves it out: an online backup
   * copies a file that may be growing, and may catch a page half-written by its extension; the WAL from the
   * backup's start (full_page_writes is forced during a backup) initialises or restores that page.
   */
  private pagedSink(path: string, onPage: (pageNo: number, page: Buffer) => void, onEnd: () => void, partialLast: 'error' | 'drop' = 'error'): ImportFileSink {
    let pageNo = 0
    let partial: Buffer | null = null
    let partialLen = 0
    return {
      write: (chunk) => {
        this.stats.bytes += chunk.length
        let off = 0
        if (partial !== null) {
          const n = Math.min(BLCKSZ - partialLen, chunk.length)
          chunk.copy(partial, partialLen, 0, n)
          partialLen += n
          off = n
          if (partialLen === BLCKSZ) {
            onPage(pageNo++, partial)
            partial = null
            partialLen = 0
          }
        }
        while (chunk.length - off >= BLCKSZ) {
          // Copy: the chunk's buffer may be reused by the reader.
          onPage(pageNo++, Buffer.from(chunk.subarray(off, off + BLCKSZ)))
          off += BLCKSZ
        }
        if (off < chunk.length) {
          partial = Buffer.allocUnsafe(BLCKSZ)
          partialLen = chunk.length - off
          chunk.copy(partial, 0, off)
        }
      },
      end: () => {
        if (partial !== null && partialLast === 'drop') this.stats.partialPagesDropped++
        else if (partial !== null) {
          throw new CorruptionError('IMPORT_TORN_FILE', `${path} ends with a partial page (${partialLen} bytes)`, {
            hint: 'SLRU files are whole 8 KiB pages; the file was truncated or is still being written.',
          })
        }
        onEnd()
      },
    }
  }

  /** A sink that collects the whole (small) file for `onEnd`. */
  private wholeSink(path: string, max: number, onEnd: (data: Buffer) => void): ImportFileSink {
    const parts: Buffer[] = []
    let n = 0
    return {
      write: (chunk) => {
        n += chunk.length
        if (n > max) throw new CorruptionError('IMPORT_FILE_TOO_LARGE', `${path} is larger than ${max} bytes`)
        parts.push(Buffer.from(chunk))
      },
      end: () => onEnd(Buffer.concat(parts)),
    }
  }

  /**
   * Writes directories, sizes, pg_control and the CheckPoint. Returns the control file (required: a data
   * directory without global/pg_control is not a data directory).
   */
  finish(): ControlFileData {
    if (!this.control) {
      throw new CorruptionError('IMPORT_NO_CONTROL_FILE', 'the data directory has no global/pg_control', {
        hint: 'Point the import at a PostgreSQL 15 data directory or a complete base backup.',
      })
    }
    const relDirs = new Map<string, Array<{ relNode: number; forkNum: number }>>()
    for (const { rel, nblocks } of this.relSizes.values()) {
      this.sink.put(relSizeKey(rel), imageValue(encodeBlockCount(nblocks)))
      const dbKey = `${rel.spcNode}/${rel.dbNode}`
      let list = relDirs.get(dbKey)
      if (!list) relDirs.set(dbKey, (list = []))
      list.push({ relNode: rel.relNode, forkNum: rel.forkNum })
    }
    for (const db of this.dbs.values()) {
      this.sink.put(relDirKey(db.spcNode, db.dbNode), imageValue(encodeRelDir(relDirs.get(`${db.spcNode}/${db.dbNode}`) ?? [])))
    }
    this.sink.put(dbDirKey(), imageValue(encodeDbDir(this.dbs.values())))
    for (const kind of [SlruKind.Clog, SlruKind.MultixactOffsets, SlruKind.MultixactMembers] as const) {
      const segs = this.slruSegs.get(kind) ?? new Map<number, number>()
      for (const [segno, pages] of segs) this.sink.put(slruSegmentSizeKey(kind, segno), imageValue(encodeBlockCount(pages)))
      this.sink.put(slruDirKey(kind), imageValue(encodeU32Set(segs.keys())))
    }
    this.sink.put(twoPhaseDirKey(), imageValue(encodeU32Set(this.twophase)))
    this.sink.put(controlFileKey(), imageValue(this.control.raw.subarray(0, 8192)))
    this.sink.put(checkpointKey(), imageValue(encodeCheckPoint(this.control.checkPointCopy)))
    return this.control
  }
}
