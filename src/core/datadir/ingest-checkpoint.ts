/**
 * How WAL ingest keeps the CheckPoint and pg_control (held in IngestState) in step with the primary: the
 * counters a new primary started from a basebackup begins with, and the settings pg_control records.
 *
 *   - XLOG: CHECKPOINT_SHUTDOWN/ONLINE (as PostgreSQL's xlog_redo), NEXTOID, PARAMETER_CHANGE (pg_control's
 *     copy of the primary's settings; wal_log_hints is also reported, see IngestEvents), END_OF_RECOVERY
 *     (timeline IDs). The switch names every XLOG record type, handled or ignored with the reason.
 *   - every xid a record carries moves nextXid forward (`noteXid`, rounded up so it is rewritten rarely);
 *   - CLOG and MultiXact truncation drop SLRU segments and move oldestXid / oldestMulti; MultiXact creation
 *     moves nextMulti and nextMultiOffset.
 *
 * A part of WalIngest of its own (WalIngest owns one, ingest.ts; its metadata table calls in here): these
 * records change no page, only these counters and SLRU directories, and every method here is synchronous.
 * `noteXid` is on the hot path: WalIngest calls it for every record that carries an xid.
 */
import { CorruptionError } from '../lib/errors.js'
import { decodeCheckPoint } from '../pg/controlfile.js'
import { SlruKind } from '../pg/slru.js'
import type { DecodedRecord } from '../pg/wal-record.js'
import {
  PARAMETER_CHANGE_WAL_LOG_HINTS_OFFSET,
  XLOG_CHECKPOINT_ONLINE,
  XLOG_CHECKPOINT_SHUTDOWN,
  XLOG_END_OF_RECOVERY,
  XLOG_FPI,
  XLOG_FPI_FOR_HINT,
  XLOG_NEXTOID,
  XLOG_PARAMETER_CHANGE,
} from '../pg/xlog-info.js'
import { clogSegmentMayBeDeleted, parseClogTruncate, transactionIdPrecedes } from '../redo/slru/clog.js'
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
import type { IngestState } from './ingest-state.js'

/** nextXid in the CheckPoint is rounded up to this many xids, so it is rewritten rarely (as Neon does). */
const XID_CHECKPOINT_INTERVAL = 1024
const FirstNormalTransactionId = 3

export interface IngestEvents {
  /** wal_log_hints changed on the primary (XLOG_PARAMETER_CHANGE). */
  onHintBitsLogged?(value: boolean): void
}

export class CheckpointIngest {
  constructor(
    private readonly state: IngestState,
    private readonly events: IngestEvents,
  ) {}

  ingestXlog(rec: DecodedRecord, info: number): void {
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
        const walLogHints = d[PARAMETER_CHANGE_WAL_LOG_HINTS_OFFSET] !== 0
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

  ingestClogTruncate(rec: DecodedRecord): void {
    const t = parseClogTruncate(rec.mainData())
    for (const segno of this.state.slruSegments(SlruKind.Clog)) {
      if (clogSegmentMayBeDeleted(segno, t.pageno)) this.state.dropSlruSegment(SlruKind.Clog, segno)
    }
    this.state.updateCheckpoint({ oldestXid: t.oldestXact, oldestXidDB: t.oldestXactDb })
  }

  ingestMultixact(rec: DecodedRecord, info: number): void {
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

  /** Keeps the CheckPoint's nextXid ahead of every xid seen (rounded up, so it is rewritten rarely). */
  noteXid(xid: number): void {
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
