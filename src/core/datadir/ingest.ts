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
 * ignored with the reason; XLOG records, and the CheckPoint counters that xids and CLOG and MultiXact
 * records move, are handled in ingest-checkpoint.ts. CREATE DATABASE with the FILE_COPY strategy copies
 * every page of the template database as of the record, so it needs page reads: that record returns a
 * promise; all others are synchronous (no promise per record on the hot path).
 */
import { UnsupportedError } from '../lib/errors.js'
import type { Key } from '../model/key.js'
import { encodeValue, imageValue } from '../model/value.js'
import { type Lsn } from '../pg/lsn.js'
import { DEFAULTTABLESPACE_OID, ForkNumber, GLOBALTABLESPACE_OID, type BufferTag, type RelTag } from '../pg/reltag.js'
import { RM } from '../pg/rmgr.js'
import { isSlruFork, SLRU_PAGES_PER_SEGMENT, type SlruKindFork } from '../pg/slru.js'
import { BLCKSZ, restoreBlockImage, type DecodedBlock, type DecodedRecord } from '../pg/wal-record.js'
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
import { CLOG_TRUNCATE } from '../redo/slru/clog.js'
import { CheckpointIngest, type IngestEvents } from './ingest-checkpoint.js'
import { IngestState, type LatestImageReader } from './ingest-state.js'
import { RecordWithoutImagesCache } from './record-without-images.js'
import { bufferTagToKey, relBlockKey, relKeyPrefix, relmapFileKey, twoPhaseFileKey } from './mapping.js'

export type { IngestEvents }

const XLOG_DBASE_CREATE_FILE_COPY = 0x00
const XLOG_DBASE_CREATE_WAL_LOG = 0x10
const XLOG_DBASE_DROP = 0x20

const XLOG_RUNNING_XACTS = 0x10

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
  /** XLOG records, xids, CLOG and MultiXact records: what moves the CheckPoint and pg_control. */
  private readonly checkpointIngest: CheckpointIngest

  constructor(
    private readonly sink: IngestSink,
    events: IngestEvents = {},
  ) {
    this.state = new IngestState(sink.readLatestImage)
    this.checkpointIngest = new CheckpointIngest(this.state, events)
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
    if (rec.xl_xid !== 0) this.checkpointIngest.noteXid(rec.xl_xid)
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
        return void this.checkpointIngest.ingestXlog(rec, info)
      case RM.XACT:
        return void this.ingestXact(rec)
      case RM.SMGR:
        return void this.ingestSmgr(rec, info)
      case RM.CLOG:
        // ZEROPAGE: the page is an implicit will-init target (segments grow there). TRUNCATE: drop segments.
        if (info === CLOG_TRUNCATE) this.checkpointIngest.ingestClogTruncate(rec)
        return
      case RM.DBASE:
        return this.ingestDbase(rec, info)
      case RM.TBLSPC:
        // CREATE/DROP TABLESPACE only make directories; relations in user tablespaces are refused when
        // their blocks arrive (checkTablespace), as in Neon.
        return
      case RM.MULTIXACT:
        return void this.checkpointIngest.ingestMultixact(rec, info)
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

  private ingestXact(rec: DecodedRecord): void {
    const type = xactRecordType(rec)
    if (type === XLOG_XACT_PREPARE) {
      // The prepared transaction's state file: the record's main data plus its CRC.
      const p = parsePrepareRecord(rec.mainData())
      this.state.addTwophase(p.xid)
      this.put(twoPhaseFileKey(p.xid), encodeValue(imageValue(twoPhaseFileFromPrepare(rec.mainData()))))
      for (const x of p.subxacts) this.checkpointIngest.noteXid(x)
      return
    }
    const done = xactCompletion(rec)
    if (done === null) return // ASSIGNMENT, INVALIDATIONS: no file or page changes (CLOG comes with the commit)
    for (const x of done.subxacts) this.checkpointIngest.noteXid(x)
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

  /**
   * CREATE DATABASE ... STRATEGY FILE_COPY: an image of every page of the template, as of this record. Each
   * page is stored as soon as it is read: a template can be larger than memory (the in-memory layer spills,
   * a list of every page would not). The copies go to the new database's keys, which the reads of the
   * template at the record's start LSN never see.
   */
  private async copyDatabase(rec: DecodedRecord, srcSpc: number, srcDb: number, spc: number, db: number): Promise<void> {
    checkTablespace({ spcNode: spc, dbNode: db, relNode: 0, forkNum: 0 }, `database ${db}`)
    const readAt = rec.lsn
    const srcHasRelmap = this.state.databases().some((e) => e.spcNode === srcSpc && e.dbNode === srcDb && e.hasRelmap)
    this.state.ensureDatabase(spc, db, srcHasRelmap)
    // Every copy is put at the record's end LSN; it holds across the reads awaited below (the driver ingests
    // one record at a time).
    this.lsn = rec.endLsn
    if (srcHasRelmap) {
      const map = this.sink.readLatestImage(relmapFileKey(srcSpc, srcDb))
      if (map) this.put(relmapFileKey(spc, db), encodeValue(imageValue(map)))
    }
    for (const src of this.state.relationsOf(srcSpc, srcDb)) {
      const dst: RelTag = { spcNode: spc, dbNode: db, relNode: src.relNode, forkNum: src.forkNum }
      const n = this.state.relSize(src)
      this.state.createRel(dst)
      this.state.setRelSize(dst, n)
      for (let blk = 0; blk < n; blk++) {
        const page = await this.sink.readPage(relBlockKey(src, blk), readAt)
        this.put(relBlockKey(dst, blk), encodeValue(imageValue(page)))
      }
    }
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
