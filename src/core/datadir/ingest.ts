/**
 * WAL ingest: each decoded PostgreSQL 15 record becomes values at the record's end LSN.
 *
 * For every page a record changes — its block references plus the pages it changes implicitly (VM bits a
 * heap record clears, the last VM/FSM page of a truncation, CLOG and MultiXact pages; the redo modules
 * answer which, see RmgrRedo.implicitTargets) — the value is either
 *   - an image: a full-page write with BKPIMAGE_APPLY (restored, hole re-inserted, pd_lsn stamped), or the
 *     consistency-checking post-image of a record from an access method without redo here (hash, GIN, GiST,
 *     SP-GiST, BRIN, generic), so those pages never need redo; or
 *   - the raw record, with will-init when the record rebuilds the page from nothing. For an implicit target
 *     the record is stored without its block images (record-without-images.ts: its redo never reads them,
 *     and a heap record's full-page image would otherwise be stored twice).
 * A block past the known end of its relation extends it: the gap gets zero pages, as PostgreSQL's bulk
 * extension leaves them. Metadata records update directories, sizes, SLRU segments, two-phase files, the
 * CheckPoint and pg_control (IngestState).
 *
 * The table in `ingestMetadata` names every record type of every PostgreSQL 15 resource manager, handled or
 * ignored with the reason. CREATE DATABASE with the FILE_COPY strategy copies every page of the template
 * database as of the record, so it needs page reads: that record returns a promise; all others are
 * synchronous (no promise per record on the hot path).
 */
import { UnsupportedError, CorruptionError } from '../lib/errors.js'
import type { Key } from '../model/key.js'
import { encodeValue, imageValue } from '../model/value.js'
import { type Lsn } from '../pg/lsn.js'
import { DEFAULTTABLESPACE_OID, ForkNumber, GLOBALTABLESPACE_OID, type BufferTag, type RelTag } from '../pg/reltag.js'
import { RM } from '../pg/rmgr.js'
import { isSlruFork, SLRU_PAGES_PER_SEGMENT, SlruKind, type SlruKindFork } from '../pg/slru.js'
import { BLCKSZ, restoreBlockImage, type DecodedBlock, type DecodedRecord } from '../pg/wal-record.js'
import { decodeCheckPoint } from '../pg/controlfile.js'
import { pageIsNew, pageSetLsn } from '../redo/page/page.js'
import { implicitTargets, rmgrRedo } from '../redo/rmgr-redo.js'
// Registers every resource manager's redo: ingest asks it which pages a record changes.
import '../redo/all.js'
import { parseSmgrCreate, parseSmgrTruncate, fsmTruncation, SMGR_TRUNCATE_FSM, SMGR_TRUNCATE_HEAP, SMGR_TRUNCATE_VM, XLOG_SMGR_CREATE, XLOG_SMGR_TRUNCATE } from '../redo/smgr.js'
import { vmTruncation } from '../redo/heap/visibilitymap.js'
import { parseRelmapUpdate } from '../redo/relmap.js'
import {
  parsePrepareRecord,
  twoPhaseFileFromPrepare,
  xactCompletion,
  xactRecordType,
  XLOG_XACT_ABORT_PREPARED,
  XLOG_XACT_COMMIT_PREPARED,
  XLOG_XACT_PREPARE,
} from '../redo/xact-records.js'
import { CLOG_TRUNCATE, clogSegmentMayBeDeleted, parseClogTruncate, transactionIdPrecedes } from '../redo/slru/clog.js'
import {
  multiXactIdPrecedes,
  multiXactMembersSegmentsToDelete,
  multiXactOffsetsCutoffPage,
  multiXactOffsetsSegmentMayBeDeleted,
  parseMultiXactCreate,
  parseMultiXactTruncate,
  XLOG_MULTIXACT_CREATE_ID,
  XLOG_MULTIXACT_TRUNCATE_ID,
} from '../redo/slru/multixact.js'
import { IngestState, type LatestImageReader } from './ingest-state.js'
import { RecordWithoutImagesCache } from './record-without-images.js'
import { bufferTagToKey, relBlockKey, relKeyPrefix, relmapFileKey, twoPhaseFileKey } from './mapping.js'

const XLOG_CHECKPOINT_SHUTDOWN = 0x00
const XLOG_CHECKPOINT_ONLINE = 0x10
const XLOG_NEXTOID = 0x30
const XLOG_PARAMETER_CHANGE = 0x60
const XLOG_END_OF_RECOVERY = 0x90
const XLOG_FPI_FOR_HINT = 0xa0
const XLOG_FPI = 0xb0

const XLOG_DBASE_CREATE_FILE_COPY = 0x00
const XLOG_DBASE_CREATE_WAL_LOG = 0x10
const XLOG_DBASE_DROP = 0x20

const XLOG_RUNNING_XACTS = 0x10

/** nextXid in the CheckPoint is rounded up to this many xids, so it is rewritten rarely (as Neon does). */
const XID_CHECKPOINT_INTERVAL = 1024
const FirstNormalTransactionId = 3

export interface IngestSink {
  /** Stores an encoded value at (key, lsn). */
  put(key: Key, lsn: Lsn, value: Buffer): void
  /** Stores the WAL record `raw` as a record value at (key, lsn), encoded in place (no intermediate buffer). */
  putRecord(key: Key, lsn: Lsn, raw: Buffer, willInit: boolean): void
  /** The payload of an image value of `dataBytes` at `lsn`, for the caller to fill; then `commitValue`. */
  reserveImage(lsn: Lsn, dataBytes: number): Buffer
  /** Stores the image filled since the last `reserveImage` at (key, lsn). */
  commitValue(key: Key, lsn: Lsn): void
  /**
   * `putRecord` and `commitValue` for a key given as its prefix (keyPrefixFromFields' form) and field6:
   * what ingest uses for relation blocks, so that no key string is built per value.
   */
  putRecordAt(prefix: string, field6: number, lsn: Lsn, raw: Buffer, willInit: boolean): void
  commitValueAt(prefix: string, field6: number, lsn: Lsn): void
  /** Latest image of a metadata key. */
  readLatestImage: LatestImageReader
  /** The page at `lsn` (reconstructed with redo); for CREATE DATABASE ... STRATEGY FILE_COPY. */
  readPage(key: Key, lsn: Lsn): Promise<Buffer>
}

export interface IngestEvents {
  /** wal_log_hints changed on the primary (XLOG_PARAMETER_CHANGE). */
  onHintBitsLogged?(value: boolean): void
}

export interface IngestStats {
  records: number
  values: number
  gapBlocksZeroed: number
}

export class WalIngest {
  readonly state: IngestState
  readonly stats: IngestStats = { records: 0, values: 0, gapBlocksZeroed: 0 }
  private lsn: Lsn = 0n as Lsn
  private readonly zeroPage = encodeValue(imageValue(Buffer.alloc(BLCKSZ)))

  constructor(
    private readonly sink: IngestSink,
    private readonly events: IngestEvents = {},
  ) {
    this.state = new IngestState(sink.readLatestImage)
  }

  private put(key: Key, value: Buffer): void {
    this.sink.put(key, this.lsn, value)
    this.stats.values++
  }

  /**
   * True for records whose ingest reads values back at last_record_lsn (the template's relmap and pages of
   * CREATE DATABASE): every earlier record must be visible to reads first. Other records read only through
   * IngestState, which caches what it writes.
   */
  static readsBack(rec: DecodedRecord): boolean {
    return rec.xl_rmid === RM.DBASE
  }

  /**
   * Ingests one record. Returns a promise only for records that must read pages back (CREATE DATABASE with
   * FILE_COPY): then every earlier record must already be visible to reads (the caller commits first).
   */
  ingest(rec: DecodedRecord): void | Promise<void> {
    this.lsn = rec.endLsn
    this.stats.records++
    if (rec.xl_xid !== 0) this.noteXid(rec.xl_xid)
    const pending = this.ingestMetadata(rec)
    if (pending) return pending.then(() => this.finishRecord(rec))
    this.finishRecord(rec)
  }

  private finishRecord(rec: DecodedRecord): void {
    this.lsn = rec.endLsn
    for (const b of rec.blocks) this.ingestBlock(rec, b)
    for (const t of implicitTargets(rec)) this.ingestImplicit(rec, t.tag, t.willInit)
    if (this.afterImplicit.length > 0) for (const f of this.afterImplicit.splice(0)) f()
    this.state.flush(this.putValue)
  }

  /** `put` as a function value, made once (not a closure per record). */
  private readonly putValue = (key: Key, value: Buffer): void => this.put(key, value)

  // --- pages ---

  private ingestBlock(rec: DecodedRecord, b: DecodedBlock): void {
    const rel: RelTag = { spcNode: b.rel.spcNode, dbNode: b.rel.dbNode, relNode: b.rel.relNode, forkNum: b.forkNum }
    checkTablespace(rel)
    this.extendRel(rel, b.blkno)
    const prefix = relKeyPrefix(rel)
    const redo = rmgrRedo(rec.xl_rmid)
    const noRedo = redo?.redoBlock === undefined
    if (b.hasImage && (b.applyImage || noRedo)) {
      // A full-page write, or the post-image of a record we cannot redo: the page itself, restored
      // straight into the in-memory layer (no allocation or copy per image).
      const page = restoreBlockImage(rec, b, this.sink.reserveImage(this.lsn, BLCKSZ))
      if (!pageIsNew(page)) pageSetLsn(page, rec.endLsn)
      this.sink.commitValueAt(prefix, b.blkno, this.lsn)
      this.stats.values++
      return
    }
    // Anything else: the record itself (a record of an rmgr without redo fails, naming it, when read).
    this.sink.putRecordAt(prefix, b.blkno, this.lsn, rec.raw, b.willInit)
    this.stats.values++
  }

  private ingestImplicit(rec: DecodedRecord, tag: BufferTag, willInit: boolean): void {
    if (isSlruFork(tag.forkNum)) {
      const segno = Math.floor(tag.blkno / SLRU_PAGES_PER_SEGMENT)
      this.extendSlru(tag.forkNum, segno, tag.blkno % SLRU_PAGES_PER_SEGMENT)
      this.sink.putRecord(bufferTagToKey(tag), this.lsn, this.implicitRecord.of(rec), willInit)
      this.stats.values++
      return
    }
    const rel: RelTag = { spcNode: tag.spcNode, dbNode: tag.dbNode, relNode: tag.relNode, forkNum: tag.forkNum }
    if (rec.xl_rmid === RM.SMGR) {
      // A truncation edits its last VM/FSM page only if that page exists (PostgreSQL does not extend).
      if (tag.blkno >= this.state.relSize(rel)) return
    } else {
      // Heap records clearing VM bits extend the VM like vm_readbuf(extend = true) in recovery.
      this.extendRel(rel, tag.blkno)
    }
    this.sink.putRecordAt(relKeyPrefix(rel), tag.blkno, this.lsn, this.implicitRecord.of(rec), willInit)
    this.stats.values++
  }

  /** The record as stored for implicit targets: without block images, made once per record. */
  private readonly implicitRecord = new RecordWithoutImagesCache()

  /** Extends a relation fork so that `blkno` exists; the blocks in between become zero pages. */
  private extendRel(rel: RelTag, blkno: number): void {
    if (!this.state.relExists(rel)) this.state.createRel(rel)
    const size = this.state.relSize(rel)
    if (blkno < size) return
    for (let g = size; g < blkno; g++) {
      this.put(relBlockKey(rel, g), this.zeroPage)
      this.stats.gapBlocksZeroed++
    }
    this.state.setRelSize(rel, blkno + 1)
  }

  private extendSlru(kind: SlruKindFork, segno: number, pageInSeg: number): void {
    const size = this.state.slruSegmentSize(kind, segno)
    if (pageInSeg < size && this.state.slruSegmentExists(kind, segno)) return
    for (let p = size; p < pageInSeg; p++) this.put(bufferTagToKey({ spcNode: 0, dbNode: 0, relNode: 0, forkNum: kind, blkno: segno * SLRU_PAGES_PER_SEGMENT + p }), this.zeroPage)
    this.state.setSlruSegmentSize(kind, segno, Math.max(size, pageInSeg + 1))
  }

  // --- metadata, per resource manager ---

  private ingestMetadata(rec: DecodedRecord): Promise<void> | undefined {
    const info = rec.rmgrInfo
    switch (rec.xl_rmid) {
      case RM.XLOG:
        return void this.ingestXlog(rec, info)
      case RM.XACT:
        return void this.ingestXact(rec)
      case RM.SMGR:
        return void this.ingestSmgr(rec, info)
      case RM.CLOG:
        // ZEROPAGE: the page is an implicit will-init target (segments grow there). TRUNCATE: drop segments.
        if (info === CLOG_TRUNCATE) this.ingestClogTruncate(rec)
        return
      case RM.DBASE:
        return this.ingestDbase(rec, info)
      case RM.TBLSPC:
        // CREATE/DROP TABLESPACE only make directories; relations in user tablespaces are refused when
        // their blocks arrive (checkTablespace), as in Neon.
        return
      case RM.MULTIXACT:
        return void this.ingestMultixact(rec, info)
      case RM.RELMAP: {
        const u = parseRelmapUpdate(rec.mainData())
        this.state.ensureDatabase(u.tsid, u.dbid, true)
        this.put(relmapFileKey(u.tsid, u.dbid), encodeValue(imageValue(Buffer.from(u.map))))
        return
      }
      case RM.STANDBY:
        // RUNNING_XACTS tells the oldest running xid (kept in the CheckPoint for basebackups); LOCK and
        // INVALIDATIONS only matter to a hot standby's backends.
        if (info === XLOG_RUNNING_XACTS) {
          const data = rec.mainData()
          if (data.length >= 24) this.state.updateCheckpoint({ oldestActiveXid: data.readUInt32LE(16) })
        }
        return
      case RM.HEAP2:
      case RM.HEAP:
      case RM.BTREE:
      case RM.HASH:
      case RM.GIN:
      case RM.GIST:
      case RM.SEQ:
      case RM.SPGIST:
      case RM.BRIN:
      case RM.GENERIC:
        // Page records: only their block references and implicit targets (handled by the caller).
        return
      case RM.COMMIT_TS:
        // pg_commit_ts is not kept (track_commit_timestamp data); a PostgreSQL started from a backup treats
        // commit timestamps of older transactions as unknown.
        return
      case RM.REPLORIGIN:
        // Replication origins are not kept (logical replication state of the primary).
        return
      case RM.LOGICALMSG:
        // Logical decoding messages change no page and no file.
        return
      default:
        // Custom resource managers (128..255): their block references are stored as records; reading such
        // a page fails with an error naming the record.
        return
    }
  }

  private ingestXlog(rec: DecodedRecord, info: number): void {
    switch (info) {
      case XLOG_CHECKPOINT_SHUTDOWN:
      case XLOG_CHECKPOINT_ONLINE: {
        const cp = decodeCheckPoint(rec.mainData())
        const cur = this.state.checkpoint
        // As PostgreSQL's xlog_redo: a shutdown checkpoint's counters are exact. An online one's were read at
        // the checkpoint's start and may be stale by the time its record is written (multixacts and OIDs
        // handed out meanwhile): its multixact counters, oldestXid and oldestMulti only ever move forward,
        // and its nextOid is ignored (XLOG_NEXTOID records track OIDs). Taken as they are, an export in that
        // window started with NextMultiXactId below multixacts already on its pages ("MultiXactId 12 has not
        // been created yet").
        const online = info === XLOG_CHECKPOINT_ONLINE
        const advance = (now: number, to: number): number => (online && !multiXactIdPrecedes(now, to) ? now : to)
        const xidAdvances = !online || transactionIdPrecedes(cur.oldestXid, cp.oldestXid)
        const multiAdvances = !online || multiXactIdPrecedes(cur.oldestMulti, cp.oldestMulti)
        this.state.updateCheckpoint({
          nextOid: online ? cur.nextOid : cp.nextOid,
          nextMulti: advance(cur.nextMulti, cp.nextMulti),
          nextMultiOffset: advance(cur.nextMultiOffset, cp.nextMultiOffset),
          oldestXid: xidAdvances ? cp.oldestXid : cur.oldestXid,
          oldestXidDB: xidAdvances ? cp.oldestXidDB : cur.oldestXidDB,
          oldestMulti: multiAdvances ? cp.oldestMulti : cur.oldestMulti,
          oldestMultiDB: multiAdvances ? cp.oldestMultiDB : cur.oldestMultiDB,
          oldestCommitTsXid: cp.oldestCommitTsXid,
          newestCommitTsXid: cp.newestCommitTsXid,
          oldestActiveXid: cp.oldestActiveXid,
          ThisTimeLineID: cp.ThisTimeLineID,
          PrevTimeLineID: cp.PrevTimeLineID,
          fullPageWrites: cp.fullPageWrites,
          time: cp.time,
          nextXid: cp.nextXid > cur.nextXid ? cp.nextXid : cur.nextXid,
        })
        return
      }
      case XLOG_NEXTOID:
        this.state.updateCheckpoint({ nextOid: rec.mainData().readUInt32LE(0) })
        return
      case XLOG_PARAMETER_CHANGE: {
        const d = rec.mainData()
        if (d.length < 26) throw new CorruptionError('INGEST_BAD_RECORD', 'PARAMETER_CHANGE record is too short')
        const walLogHints = d[24] !== 0
        this.state.updateControlFile({
          MaxConnections: d.readInt32LE(0),
          max_worker_processes: d.readInt32LE(4),
          max_wal_senders: d.readInt32LE(8),
          max_prepared_xacts: d.readInt32LE(12),
          max_locks_per_xact: d.readInt32LE(16),
          wal_level: d.readInt32LE(20),
          wal_log_hints: walLogHints,
          track_commit_timestamp: d[25] !== 0,
        })
        this.events.onHintBitsLogged?.(walLogHints || this.state.controlFile.data_checksum_version !== 0)
        return
      }
      case XLOG_END_OF_RECOVERY:
        // xl_end_of_recovery: end_time i64 | ThisTimeLineID u32 | PrevTimeLineID u32
        if (rec.mainDataLength >= 16) {
          const d = rec.mainData()
          this.state.updateCheckpoint({ ThisTimeLineID: d.readUInt32LE(8), PrevTimeLineID: d.readUInt32LE(12) })
        }
        return
      case XLOG_FPI:
      case XLOG_FPI_FOR_HINT:
        // Block references (images) only.
        return
      default:
        // NOOP, SWITCH, BACKUP_END, RESTORE_POINT, FPW_CHANGE, OVERWRITE_CONTRECORD: no page or file
        // changes; the decoder already handled SWITCH and overwrite-contrecord.
        return
    }
  }

  private ingestXact(rec: DecodedRecord): void {
    const type = xactRecordType(rec)
    if (type === XLOG_XACT_PREPARE) {
      // The prepared transaction's state file: the record's main data plus its CRC.
      const p = parsePrepareRecord(rec.mainData())
      this.state.addTwophase(p.xid)
      this.put(twoPhaseFileKey(p.xid), encodeValue(imageValue(twoPhaseFileFromPrepare(rec.mainData()))))
      for (const x of p.subxacts) this.noteXid(x)
      return
    }
    const done = xactCompletion(rec)
    if (done === null) return // ASSIGNMENT, INVALIDATIONS: no file or page changes (CLOG comes with the commit)
    for (const x of done.subxacts) this.noteXid(x)
    if (type === XLOG_XACT_COMMIT_PREPARED || type === XLOG_XACT_ABORT_PREPARED) this.state.removeTwophase(done.xid)
    // Dropped relations (CREATE ... rolled back, DROP TABLE committed): every fork goes.
    for (const node of done.parsed.xnodes) {
      for (let fork: number = ForkNumber.Main; fork <= ForkNumber.Init; fork++) this.state.dropRel({ ...node, forkNum: fork })
    }
  }

  private ingestSmgr(rec: DecodedRecord, info: number): void {
    if (info === XLOG_SMGR_CREATE) {
      const c = parseSmgrCreate(rec.mainData())
      const rel = { ...c.rnode, forkNum: c.forkNum }
      checkTablespace(rel)
      // smgr_redo creates with isRedo: an existing relation fork is fine and keeps its size.
      this.state.createRel(rel)
      return
    }
    if (info === XLOG_SMGR_TRUNCATE) {
      const t = parseSmgrTruncate(rec.mainData())
      const shrink = (forkNum: number, n: number) => {
        const rel = { ...t.rnode, forkNum }
        if (this.state.relExists(rel) && this.state.relSize(rel) > n) this.state.setRelSize(rel, n)
      }
      if (t.flags & SMGR_TRUNCATE_HEAP) shrink(ForkNumber.Main, t.blkno)
      // The partially kept last FSM/VM pages are implicit targets, checked against the sizes before this
      // record: record them first, then cut.
      const fsm = fsmTruncation(t.blkno)
      const vm = vmTruncation(t.blkno)
      this.afterImplicit.push(() => {
        if (t.flags & SMGR_TRUNCATE_FSM) shrink(ForkNumber.Fsm, fsm.newFsmBlocks)
        if (t.flags & SMGR_TRUNCATE_VM) shrink(ForkNumber.VisibilityMap, vm.newVmBlocks)
      })
    }
  }

  private afterImplicit: Array<() => void> = []

  private ingestClogTruncate(rec: DecodedRecord): void {
    const t = parseClogTruncate(rec.mainData())
    for (const segno of this.state.slruSegments(SlruKind.Clog)) {
      if (clogSegmentMayBeDeleted(segno, t.pageno)) this.state.dropSlruSegment(SlruKind.Clog, segno)
    }
    this.state.updateCheckpoint({ oldestXid: t.oldestXact, oldestXidDB: t.oldestXactDb })
  }

  private ingestMultixact(rec: DecodedRecord, info: number): void {
    if (info === XLOG_MULTIXACT_CREATE_ID) {
      const c = parseMultiXactCreate(rec.mainData())
      let nextMulti = (c.mid + 1) >>> 0
      if (nextMulti === 0) nextMulti = 1
      const nextOffset = (c.moff + c.members.length) >>> 0
      const cp = this.state.checkpoint
      // Advance (never move back, modulo wraparound) the counters a new primary starts from.
      if (multiXactIdPrecedes(cp.nextMulti, nextMulti)) this.state.updateCheckpoint({ nextMulti })
      if (multiXactIdPrecedes(cp.nextMultiOffset, nextOffset)) this.state.updateCheckpoint({ nextMultiOffset: nextOffset })
      for (const m of c.members) this.noteXid(m.xid)
      return
    }
    if (info === XLOG_MULTIXACT_TRUNCATE_ID) {
      const t = parseMultiXactTruncate(rec.mainData())
      const cutoff = multiXactOffsetsCutoffPage(t)
      for (const segno of this.state.slruSegments(SlruKind.MultixactOffsets)) {
        if (multiXactOffsetsSegmentMayBeDeleted(segno, cutoff)) this.state.dropSlruSegment(SlruKind.MultixactOffsets, segno)
      }
      for (const segno of multiXactMembersSegmentsToDelete(t)) this.state.dropSlruSegment(SlruKind.MultixactMembers, segno)
      this.state.updateCheckpoint({ oldestMulti: t.endTruncOff, oldestMultiDB: t.oldestMultiDB })
    }
    // ZERO_OFF_PAGE / ZERO_MEM_PAGE: implicit targets (the segment grows there).
  }

  private ingestDbase(rec: DecodedRecord, info: number): Promise<void> | undefined {
    const d = rec.mainData()
    if (info === XLOG_DBASE_CREATE_WAL_LOG) {
      // The database directory; its relations and relmap arrive as ordinary WAL afterwards.
      this.state.ensureDatabase(d.readUInt32LE(4), d.readUInt32LE(0))
      return
    }
    if (info === XLOG_DBASE_DROP) {
      const dbId = d.readUInt32LE(0)
      const n = d.readInt32LE(4)
      for (let i = 0; i < n; i++) this.state.dropDatabase(d.readUInt32LE(8 + i * 4), dbId)
      return
    }
    if (info === XLOG_DBASE_CREATE_FILE_COPY) {
      const dbId = d.readUInt32LE(0)
      const spc = d.readUInt32LE(4)
      const srcDb = d.readUInt32LE(8)
      const srcSpc = d.readUInt32LE(12)
      return this.copyDatabase(rec, srcSpc, srcDb, spc, dbId)
    }
    return
  }

  /** CREATE DATABASE ... STRATEGY FILE_COPY: an image of every page of the template, as of this record. */
  private async copyDatabase(rec: DecodedRecord, srcSpc: number, srcDb: number, spc: number, db: number): Promise<void> {
    checkTablespace({ spcNode: spc, dbNode: db, relNode: 0, forkNum: 0 }, `database ${db}`)
    const readAt = rec.lsn
    const srcHasRelmap = this.state.databases().some((e) => e.spcNode === srcSpc && e.dbNode === srcDb && e.hasRelmap)
    this.state.ensureDatabase(spc, db, srcHasRelmap)
    const copies: Array<{ key: Key; value: Buffer }> = []
    if (srcHasRelmap) {
      const map = this.sink.readLatestImage(relmapFileKey(srcSpc, srcDb))
      if (map) copies.push({ key: relmapFileKey(spc, db), value: encodeValue(imageValue(map)) })
    }
    for (const src of this.state.relationsOf(srcSpc, srcDb)) {
      const dst: RelTag = { spcNode: spc, dbNode: db, relNode: src.relNode, forkNum: src.forkNum }
      const n = this.state.relSize(src)
      this.state.createRel(dst)
      this.state.setRelSize(dst, n)
      for (let blk = 0; blk < n; blk++) {
        const page = await this.sink.readPage(relBlockKey(src, blk), readAt)
        copies.push({ key: relBlockKey(dst, blk), value: encodeValue(imageValue(page)) })
      }
    }
    this.lsn = rec.endLsn
    for (const c of copies) this.put(c.key, c.value)
  }

  /** Keeps the CheckPoint's nextXid ahead of every xid seen (rounded up, so it is rewritten rarely). */
  private noteXid(xid: number): void {
    const cp = this.state.checkpoint
    const next32 = Number(cp.nextXid & 0xffff_ffffn)
    // xid is within 2^31 of nextXid: its full value is nextXid plus the signed 32-bit difference.
    const diff = (xid - next32) | 0
    if (diff < 0) return
    let full = cp.nextXid + BigInt(diff) + 1n
    if ((full & 0xffff_ffffn) < BigInt(FirstNormalTransactionId)) full = (full & ~0xffff_ffffn) | BigInt(FirstNormalTransactionId)
    const rounded = ((full + BigInt(XID_CHECKPOINT_INTERVAL) - 1n) / BigInt(XID_CHECKPOINT_INTERVAL)) * BigInt(XID_CHECKPOINT_INTERVAL)
    if (rounded > cp.nextXid) this.state.updateCheckpoint({ nextXid: rounded })
  }
}

/** `what` names the object for the message: a relation by default, `database <oid>` for a database copied or moved. */
function checkTablespace(rel: RelTag, what = `relation ${rel.spcNode}/${rel.dbNode}/${rel.relNode}`): void {
  if (rel.spcNode !== DEFAULTTABLESPACE_OID && rel.spcNode !== GLOBALTABLESPACE_OID) {
    throw new UnsupportedError('USER_TABLESPACE', `${what} is in user tablespace ${rel.spcNode}`, {
      hint: "Only pg_default and pg_global are supported. This WAL cannot be ingested: the timeline stays readable up to the record before it and cannot move past it. Import the primary again as a new timeline once it has no objects in user tablespaces, and delete this one (which drops its replication slot, so the primary stops keeping WAL for it).",
    })
  }
}
