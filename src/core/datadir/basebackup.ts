/**
 * Backups of a timeline at an LSN as a tar stream, in two flavours:
 *   - `full` (fullbackup, `timeline export`): a complete data directory stock PostgreSQL 15 starts from as a
 *     primary without recovery: every relation fork in 1 GiB segments, SLRUs, relmaps, two-phase files,
 *     PG_VERSION files, minimal configuration, a pg_control and a WAL segment holding a shutdown
 *     checkpoint at the LSN.
 *   - `neon` (basebackup): Neon's compute bootstrap: no relation data except the init forks of unlogged
 *     relations, `neon.signal` / `zenith.signal` with the previous record LSN, Neon's pg_control and a WAL
 *     segment with page headers only.
 *
 * Unlogged relations: their main fork is never WAL-logged, so the repository holds only the init fork.
 * Both flavours write the init fork twice, as `_init` and as the main fork, and nothing else of that
 * relation: the state PostgreSQL's reinit.c leaves after a crash (a clean start does not reset them).
 *
 * Order: directories, small files, SLRUs, databases (relmap, PG_VERSION, relations), two-phase files,
 * signal files, WAL, and pg_control last, so a truncated archive has no pg_control and cannot be started.
 *
 * Memory: relation data streams page by page (at most `PAGE_READS_IN_FLIGHT_MAX` pages read ahead, to keep
 * several redo workers busy); an SLRU segment (256 KiB) is the largest buffer; WAL zeros come from one
 * shared buffer. Everything that can fail early (pg_control, CheckPoint, LSN rules) is read in
 * `prepareBasebackup`, before the first byte is produced.
 */
import { CorruptionError, InterruptedError } from '../lib/errors.js'
import { decodeCheckPoint, decodeControlFile, type ControlFileData } from '../pg/controlfile.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { DEFAULTTABLESPACE_OID, ForkNumber, GLOBALTABLESPACE_OID, type RelTag } from '../pg/reltag.js'
import { SLRU_DIRS, SlruKind, slruSegmentName, type SlruKindFork } from '../pg/slru.js'
import { neonBootstrapWalSegment, segmentChunks, shutdownCheckpointWal, type SyntheticWalSegment } from '../pg/synthetic-wal.js'
import { BLCKSZ } from '../pg/wal-record.js'
import { setPageChecksum } from '../redo/page/checksum.js'
import { checkControlGeometry, fullBackupControlFile, neonControlFile, neonSignalText } from './backup-control.js'
import {
  DATADIR_SUBDIRS,
  databaseDir,
  PG_HBA_TEXT,
  PG_IDENT_TEXT,
  PG_VERSION_TEXT,
  POSTGRESQL_AUTO_CONF_TEXT,
  postgresqlConfText,
  relationSegmentPath,
  twoPhaseFilePath,
} from './backup-layout.js'
import { TarChunker, TAR_CHUNK_BYTES_DEFAULT } from './backup-tar.js'
import { checkpointKey, controlFileKey, decodeU32Set, relBlockKey, relmapFileKey, twoPhaseDirKey, twoPhaseFileKey } from './mapping.js'
import type { DatadirReader } from './read.js'

export type BackupFlavour = 'full' | 'neon'

/** Pages read ahead of the one being written: enough to keep a pool of redo workers busy, bounded memory. */
export const PAGE_READS_IN_FLIGHT_MAX = 16
/** Size of a relmap file (pg_filenode.map) in PostgreSQL 15. */
const RELMAP_FILE_BYTES = 512
/** Two-phase state files are small; a larger stored value is not one. */
const TWOPHASE_FILE_MAX_BYTES = 16 * 1024 * 1024
const ALL_SLRUS: readonly SlruKindFork[] = [SlruKind.Clog, SlruKind.MultixactOffsets, SlruKind.MultixactMembers]

export interface BasebackupRequest {
  /** The backup LSN, 8-byte aligned, already checked against the timeline's LSN rules. */
  readonly lsn: Lsn
  /** Start of the record before `lsn` when known: the checkpoint's xl_prev (full), `neon.signal` (neon). */
  readonly prevLsn: Lsn | null
  readonly flavour: BackupFlavour
  /** `lsn` is the timeline's branch point (neon.signal says "none" rather than "invalid"). */
  readonly atAncestorLsn: boolean
  /** What the backup is of, for the postgresql.conf comment. */
  readonly label?: string
  readonly signal?: AbortSignal
  /** Modification time of the tar entries (default: now). */
  readonly mtimeSec?: number
  readonly chunkBytes?: number
  /** Blocks per relation segment file (default: pg_control's relseg_size); tests use small values. */
  readonly relSegBlocks?: number
}

export interface PreparedBasebackup {
  readonly lsn: Lsn
  readonly flavour: BackupFlavour
  /** full: where pg_control points (the shutdown checkpoint record); neon: null. */
  readonly checkpointLsn: Lsn | null
  /** full: where the started server appends its first record; neon: null. */
  readonly endLsn: Lsn | null
  /** The tar archive, produced as it is consumed. Call once. */
  tar(): AsyncGenerator<Buffer, void, undefined>
}

/** Reads what the backup needs up front (failing before any byte is produced) and returns its producer. */
export function prepareBasebackup(reader: DatadirReader, req: BasebackupRequest): PreparedBasebackup {
  const tl = reader.timeline
  const controlBytes = tl.getImage(controlFileKey(), req.lsn)
  const cpBytes = tl.getImage(checkpointKey(), req.lsn)
  if (controlBytes === null || cpBytes === null) {
    throw new CorruptionError('BACKUP_NO_CONTROL_FILE', `timeline ${tl.timelineId} has no pg_control or CheckPoint at ${formatLsn(req.lsn)}`, {
      hint: 'The timeline was not imported from a PostgreSQL data directory, or its metadata keys are damaged.',
    })
  }
  const control = decodeControlFile(controlBytes, 'stored pg_control')
  checkControlGeometry(control)
  // pg_commit_ts is not kept (datadir/ingest.ts), so the backup claims no commit timestamps: with the
  // stored range, a server started with track_commit_timestamp = on looks for segments that are not there
  // ("could not access status of transaction") instead of answering NULL for older transactions.
  const checkpoint = { ...decodeCheckPoint(cpBytes), oldestCommitTsXid: 0, newestCommitTsXid: 0 }
  if (req.flavour === 'full') {
    const wal = shutdownCheckpointWal({
      lsn: req.lsn,
      systemId: control.system_identifier,
      checkpoint,
      prevLsn: req.prevLsn ?? (0n as Lsn),
      segSizeBytes: control.xlog_seg_size,
    })
    const controlFile = fullBackupControlFile(control, wal)
    return {
      lsn: req.lsn,
      flavour: req.flavour,
      checkpointLsn: wal.checkpointLsn,
      endLsn: wal.endLsn,
      tar: () => produce(reader, req, control, controlFile, wal.segments),
    }
  }
  const neon = neonControlFile(control, checkpoint, req.lsn)
  const segment = neonBootstrapWalSegment({ lsn: req.lsn, systemId: control.system_identifier, pgTimeline: checkpoint.ThisTimeLineID, segSizeBytes: control.xlog_seg_size })
  return { lsn: req.lsn, flavour: req.flavour, checkpointLsn: null, endLsn: null, tar: () => produce(reader, req, control, neon.bytes, [segment]) }
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError('BACKUP_ABORTED', 'the backup was cancelled', { hint: 'The client went away or the server is stopping.' })
}

async function* produce(
  reader: DatadirReader,
  req: BasebackupRequest,
  control: ControlFileData,
  controlFile: Buffer,
  walSegments: readonly SyntheticWalSegment[],
): AsyncGenerator<Buffer, void, undefined> {
  const tl = reader.timeline
  const lsn = req.lsn
  const full = req.flavour === 'full'
  const out = new TarChunker(req.mtimeSec ?? Math.floor(Date.now() / 1000), req.chunkBytes ?? TAR_CHUNK_BYTES_DEFAULT)
  const relSegBlocks = req.relSegBlocks ?? control.relseg_size
  const checksums = control.data_checksum_version !== 0

  for (const d of DATADIR_SUBDIRS) out.dir(d)
  out.file('PG_VERSION', PG_VERSION_TEXT)
  out.file('pg_hba.conf', PG_HBA_TEXT)
  out.file('pg_ident.conf', full ? PG_IDENT_TEXT : '')
  out.file('postgresql.auto.conf', full ? POSTGRESQL_AUTO_CONF_TEXT : '')
  if (full) {
    const conf = postgresqlConfText({
      label: req.label ?? `a timeline at ${formatLsn(lsn)}`,
      maxPreparedXacts: control.max_prepared_xacts,
      maxConnections: control.MaxConnections,
      maxWorkerProcesses: control.max_worker_processes,
      maxWalSenders: control.max_wal_senders,
      maxLocksPerXact: control.max_locks_per_xact,
      walSegmentSizeBytes: control.xlog_seg_size,
    })
    out.file('postgresql.conf', conf)
  }
  yield* out.take()

  for (const kind of ALL_SLRUS) {
    for (const segno of reader.slruSegments(kind, lsn)) {
      checkAborted(req.signal)
      out.file(`${SLRU_DIRS[kind]}/${slruSegmentName(segno)}`, await reader.slruSegment(kind, segno, lsn))
      yield* out.take()
    }
  }

  for (const db of reader.databases(lsn)) {
    const rels = reader.relations(db.spcNode, db.dbNode, lsn)
    // An empty directory of a dropped tablespace or database leaves nothing to write (as Neon does).
    if (!db.hasRelmap && rels.length === 0) continue
    const dir = databaseDir(db.spcNode, db.dbNode)
    if (db.spcNode === DEFAULTTABLESPACE_OID) out.dir(dir)
    if (db.hasRelmap) {
      const map = tl.getImage(relmapFileKey(db.spcNode, db.dbNode), lsn)
      if (map === null || map.length !== RELMAP_FILE_BYTES) {
        throw new CorruptionError('BACKUP_BAD_RELMAP', `the relmap of ${dir} at ${formatLsn(lsn)} is ${map === null ? 'missing' : `${map.length} bytes`}`, {
          hint: `A pg_filenode.map has ${RELMAP_FILE_BYTES} bytes; the timeline's metadata keys are damaged.`,
        })
      }
      if (db.spcNode !== GLOBALTABLESPACE_OID) out.file(`${dir}/PG_VERSION`, PG_VERSION_TEXT)
      out.file(`${dir}/pg_filenode.map`, map)
    }
    const unlogged = new Set(rels.filter((r) => r.forkNum === ForkNumber.Init).map((r) => r.relNode))
    for (const rel of rels) {
      if (unlogged.has(rel.relNode)) {
        // Init fork as itself and as the main fork; the other forks of an unlogged relation are dropped.
        if (rel.forkNum !== ForkNumber.Init) continue
        yield* relationFiles(reader, out, rel, rel, lsn, relSegBlocks, checksums, req.signal)
        yield* relationFiles(reader, out, rel, { ...rel, forkNum: ForkNumber.Main }, lsn, relSegBlocks, checksums, req.signal)
      } else if (full) {
        yield* relationFiles(reader, out, rel, rel, lsn, relSegBlocks, checksums, req.signal)
      }
    }
    yield* out.take()
  }

  const twoPhase = tl.getImage(twoPhaseDirKey(), lsn)
  for (const xid of twoPhase === null ? [] : decodeU32Set(twoPhase, 'two-phase directory')) {
    const state = tl.getImage(twoPhaseFileKey(xid), lsn)
    if (state === null || state.length > TWOPHASE_FILE_MAX_BYTES) {
      throw new CorruptionError('BACKUP_BAD_TWOPHASE', `the state file of prepared transaction ${xid} at ${formatLsn(lsn)} is ${state === null ? 'missing' : 'too large'}`, {
        hint: "The timeline's metadata keys are damaged.",
      })
    }
    out.file(twoPhaseFilePath(xid), state)
  }

  if (!full) {
    const signal = neonSignalText(req.prevLsn, req.atAncestorLsn)
    out.file('neon.signal', signal)
    out.file('zenith.signal', signal)
  }
  for (const seg of walSegments) {
    checkAborted(req.signal)
    out.beginFile(`pg_wal/${seg.fileName}`, seg.sizeBytes)
    for (const chunk of segmentChunks(seg)) {
      out.data(chunk)
      yield* out.take()
    }
    out.endFile()
  }
  out.file('global/pg_control', controlFile)
  out.finish()
  yield* out.take()
}

/**
 * The files of relation fork `src`, named as `dst`, at `lsn`: one per segment of `relSegBlocks` blocks, an
 * empty segment-0 file for an empty fork (PostgreSQL needs the file to exist).
 */
async function* relationFiles(
  reader: DatadirReader,
  out: TarChunker,
  src: RelTag,
  dst: RelTag,
  lsn: Lsn,
  relSegBlocks: number,
  checksums: boolean,
  signal: AbortSignal | undefined,
): AsyncGenerator<Buffer, void, undefined> {
  checkAborted(signal)
  const nblocks = reader.relSize(src, lsn)
  if (nblocks === 0) {
    out.file(relationSegmentPath(dst, 0), Buffer.alloc(0))
    return
  }
  const readPage = async (blkno: number): Promise<Buffer> => {
    const page = await reader.getPage(relBlockKey(src, blkno), lsn)
    if (page.length !== BLCKSZ) throw new CorruptionError('BACKUP_BAD_PAGE', `page ${blkno} of relation ${src.relNode} has ${page.length} bytes`)
    // Stored images and redo results carry stale checksums; PostgreSQL verifies them on every read.
    if (checksums) setPageChecksum(page, blkno)
    return page
  }
  const inFlight: Array<Promise<Buffer>> = []
  let next = 0
  const fill = (limit: number) => {
    while (next < limit && inFlight.length < PAGE_READS_IN_FLIGHT_MAX) {
      const p = readPage(next++)
      // Awaited in order below; a read that fails while earlier ones are awaited must not be "unhandled".
      p.catch(() => undefined)
      inFlight.push(p)
    }
  }
  for (let segStart = 0, seg = 0; segStart < nblocks; segStart += relSegBlocks, seg++) {
    const segEnd = Math.min(nblocks, segStart + relSegBlocks)
    out.beginFile(relationSegmentPath(dst, seg), (segEnd - segStart) * BLCKSZ)
    for (let blk = segStart; blk < segEnd; blk++) {
      fill(nblocks)
      out.data(await inFlight.shift()!)
      if ((blk & 63) === 63) checkAborted(signal)
      yield* out.take()
    }
    out.endFile()
  }
}

