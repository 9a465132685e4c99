/**
 * Transaction resource-manager records (access/xact.h), parsed from their main data: COMMIT, ABORT,
 * COMMIT_PREPARED, ABORT_PREPARED (with or without the 0x80 HAS_INFO bit), PREPARE (the two-phase state
 * file) and ASSIGNMENT.
 *
 * Commit and abort records are a fixed 8-byte xact_time followed by optional pieces, present when their
 * xinfo bit is set, in this order and without alignment padding between them (each is a multiple of 4
 * bytes, except the GID, after which nothing is aligned):
 *
 *   xact_time i64 | xinfo u32 (if HAS_INFO) | dbinfo 8 | subxacts 4+4n | relfilenodes 4+12n
 *   | dropped stats 4+12n (PG15) | invalidations 4+16n (commit only) | twophase xid 4 | GID cstring
 *   | origin 16 (origin_lsn, origin_timestamp)
 *
 * Worked example: a COMMIT with HAS_INFO, xinfo = HAS_SUBXACTS (0x02), two subxacts 1001 and 1002 is
 * 8 (time) + 4 (xinfo 02 00 00 00) + 4 (nsubxacts 02 00 00 00) + 8 (e9 03 00 00 ea 03 00 00) = 24 bytes.
 *
 * PREPARE carries the whole two-phase state file except its trailing CRC: a 72-byte header
 * (xl_xact_prepare, C padding kept) followed by MAXALIGNed sections (GID, subxacts, commit rels, abort
 * rels, commit stats, abort stats, invalidations) and then two-phase records up to an end sentinel.
 *
 * Ingest uses these parsers for the effects that are not pages (relation files to drop, stats to drop,
 * pg_twophase files, commit timestamps, origins); CLOG redo uses the xids. Every count read from input is
 * checked against the bytes that remain before anything is allocated.
 */
import { CorruptionError } from '../lib/errors.js'
import { crc32c } from '../lib/crc32c.js'
import type { Lsn } from '../pg/lsn.js'
import type { RelFileNode } from '../pg/reltag.js'
import type { DecodedRecord } from '../pg/wal-record.js'

// --- record types ---------------------------------------------------------------------------------

export const XLOG_XACT_COMMIT = 0x00
export const XLOG_XACT_PREPARE = 0x10
export const XLOG_XACT_ABORT = 0x20
export const XLOG_XACT_COMMIT_PREPARED = 0x30
export const XLOG_XACT_ABORT_PREPARED = 0x40
export const XLOG_XACT_ASSIGNMENT = 0x50
export const XLOG_XACT_INVALIDATIONS = 0x60
/** The record-type bits of a Transaction record's xl_info (the 0x80 HAS_INFO bit is not part of the type). */
export const XLOG_XACT_OPMASK = 0x70
export const XLOG_XACT_HAS_INFO = 0x80

// --- xinfo flags ----------------------------------------------------------------------------------

export const XACT_XINFO_HAS_DBINFO = 1 << 0
export const XACT_XINFO_HAS_SUBXACTS = 1 << 1
export const XACT_XINFO_HAS_RELFILENODES = 1 << 2
export const XACT_XINFO_HAS_INVALS = 1 << 3
export const XACT_XINFO_HAS_TWOPHASE = 1 << 4
export const XACT_XINFO_HAS_ORIGIN = 1 << 5
export const XACT_XINFO_HAS_AE_LOCKS = 1 << 6
export const XACT_XINFO_HAS_GID = 1 << 7
export const XACT_XINFO_HAS_DROPPED_STATS = 1 << 8
export const XACT_COMPLETION_APPLY_FEEDBACK = 1 << 29
export const XACT_COMPLETION_UPDATE_RELCACHE_FILE = 1 << 30
export const XACT_COMPLETION_FORCE_SYNC_COMMIT = 2 ** 31

// --- sizes ----------------------------------------------------------------------------------------

export const MinSizeOfXactCommit = 8
export const MinSizeOfXactAbort = 8
export const SizeOfXactXinfo = 4
export const SizeOfXactDbinfo = 8
export const SizeOfRelFileNode = 12
export const SizeOfXactStatsItem = 12
export const SizeOfSharedInvalidationMessage = 16
export const SizeOfXactOrigin = 16
/** sizeof(xl_xact_prepare), the two-phase file header: 72 bytes, already a MAXALIGN multiple. */
export const SizeOfXactPrepare = 72
export const MinSizeOfXactAssignment = 8
/** GIDSIZE: PostgreSQL keeps at most 199 bytes of a GID (plus its NUL). */
export const GIDSIZE = 200
export const TWOPHASE_MAGIC = 0x57f94534
const MAXIMUM_ALIGNOF = 8

/**
 * Longest array we accept in one record (subxacts, relfilenodes, stats items, messages). The bytes that
 * remain bound it already (a record is at most 1 GiB); this names the bound so a corrupt count is refused
 * before any allocation.
 */
export const XACT_ITEMS_MAX = 256 * 1024 * 1024

// --- parsed forms ---------------------------------------------------------------------------------

/** A transactionally dropped statistics entry (PG15 xl_xact_stats_item). */
export interface XactStatsItem {
  readonly kind: number
  readonly dboid: number
  readonly objoid: number
}

/** What commit and abort records share (xl_xact_parsed_commit / _abort). Absent pieces are 0 or empty. */
export interface ParsedXactFinishBase {
  /** TimestampTz: microseconds since 2000-01-01 00:00 UTC. */
  readonly xact_time: bigint
  readonly xinfo: number
  readonly dbId: number
  readonly tsId: number
  readonly subxacts: readonly number[]
  /** Relations whose files are dropped at this commit or abort. */
  readonly xnodes: readonly RelFileNode[]
  readonly stats: readonly XactStatsItem[]
  /** Only for COMMIT_PREPARED / ABORT_PREPARED (HAS_TWOPHASE); 0 otherwise. */
  readonly twophase_xid: number
  /** HAS_GID; '' otherwise. At most GIDSIZE - 1 bytes, as PostgreSQL's strlcpy keeps. */
  readonly twophase_gid: string
  readonly origin_lsn: Lsn
  readonly origin_timestamp: bigint
}

export interface ParsedXactCommit extends ParsedXactFinishBase {
  /** Raw SharedInvalidationMessages, 16 bytes each (standby-only effect; kept for completeness). */
  readonly nmsgs: number
  readonly msgs: Buffer
}

export type ParsedXactAbort = ParsedXactFinishBase

export interface ParsedXactPrepare {
  readonly magic: number
  /** Length of the state file: the record's main data plus the 4-byte CRC. */
  readonly total_len: number
  readonly xid: number
  readonly database: number
  readonly prepared_at: bigint
  readonly owner: number
  readonly initfileinval: boolean
  readonly gidlen: number
  readonly origin_lsn: Lsn
  readonly origin_timestamp: bigint
  readonly gid: string
  readonly subxacts: readonly number[]
  readonly commitRels: readonly RelFileNode[]
  readonly abortRels: readonly RelFileNode[]
  readonly commitStats: readonly XactStatsItem[]
  readonly abortStats: readonly XactStatsItem[]
  readonly ninvalmsgs: number
}

export interface ParsedXactAssignment {
  readonly xtop: number
  readonly xsub: readonly number[]
}

// --- a small cursor over the main data --------------------------------------------------------------

function bad(what: string, details: Record<string, unknown> = {}): CorruptionError {
  return new CorruptionError('XACT_BAD_RECORD', `malformed Transaction WAL record: ${what}`, {
    hint: 'The WAL is corrupt or was not written by PostgreSQL 15.',
    details,
  })
}

class Cursor {
  pos = 0
  constructor(readonly data: Buffer) {}
  need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.data.length) {
      throw bad(`${what} needs ${n} bytes at offset ${this.pos}, only ${this.data.length - this.pos} remain`)
    }
  }
  u32(what: string): number {
    this.need(4, what)
    const v = this.data.readUInt32LE(this.pos)
    this.pos += 4
    return v
  }
  i64(what: string): bigint {
    this.need(8, what)
    const v = this.data.readBigInt64LE(this.pos)
    this.pos += 8
    return v
  }
  /** An int32 count of `itemSize`-byte items that must fit in what remains. */
  count(itemSize: number, what: string): number {
    this.need(4, `${what} count`)
    const n = this.data.readInt32LE(this.pos)
    this.pos += 4
    if (n < 0 || n > XACT_ITEMS_MAX) throw bad(`${what} count ${n} is out of range`)
    this.need(n * itemSize, what)
    return n
  }
  u32Array(n: number): number[] {
    const out = new Array<number>(n)
    for (let i = 0; i < n; i++) out[i] = this.data.readUInt32LE(this.pos + 4 * i)
    this.pos += 4 * n
    return out
  }
  relFileNodes(n: number): RelFileNode[] {
    const out = new Array<RelFileNode>(n)
    for (let i = 0; i < n; i++) {
      const at = this.pos + SizeOfRelFileNode * i
      out[i] = { spcNode: this.data.readUInt32LE(at), dbNode: this.data.readUInt32LE(at + 4), relNode: this.data.readUInt32LE(at + 8) }
    }
    this.pos += SizeOfRelFileNode * n
    return out
  }
  statsItems(n: number): XactStatsItem[] {
    const out = new Array<XactStatsItem>(n)
    for (let i = 0; i < n; i++) {
      const at = this.pos + SizeOfXactStatsItem * i
      out[i] = { kind: this.data.readInt32LE(at), dboid: this.data.readUInt32LE(at + 4), objoid: this.data.readUInt32LE(at + 8) }
    }
    this.pos += SizeOfXactStatsItem * n
    return out
  }
  /** A NUL-terminated string; PostgreSQL keeps at most GIDSIZE - 1 bytes of it but skips all of it. */
  gid(): string {
    const nul = this.data.indexOf(0, this.pos)
    if (nul < 0) throw bad('the GID is not NUL-terminated')
    const kept = Math.min(nul - this.pos, GIDSIZE - 1)
    const s = this.data.toString('utf8', this.pos, this.pos + kept)
    this.pos = nul + 1
    return s
  }
}

function maxalign(n: number): number {
  return (n + MAXIMUM_ALIGNOF - 1) & ~(MAXIMUM_ALIGNOF - 1)
}

// --- commit / abort --------------------------------------------------------------------------------

/** The invalidation messages of a record without any (shared: one commit record in three has none, and a fresh empty Buffer per record showed in ingest's profile). */
const NO_MESSAGES = Buffer.alloc(0)

function parseFinish(info: number, data: Buffer, isCommit: boolean): ParsedXactCommit {
  const c = new Cursor(data)
  const xact_time = c.i64('xact_time')
  let xinfo = 0
  if ((info & XLOG_XACT_HAS_INFO) !== 0) xinfo = c.u32('xinfo')
  let dbId = 0
  let tsId = 0
  if (xinfo & XACT_XINFO_HAS_DBINFO) {
    dbId = c.u32('dbinfo')
    tsId = c.u32('dbinfo')
  }
  let subxacts: number[] = []
  if (xinfo & XACT_XINFO_HAS_SUBXACTS) subxacts = c.u32Array(c.count(4, 'subxacts'))
  let xnodes: RelFileNode[] = []
  if (xinfo & XACT_XINFO_HAS_RELFILENODES) xnodes = c.relFileNodes(c.count(SizeOfRelFileNode, 'relfilenodes'))
  let stats: XactStatsItem[] = []
  if (xinfo & XACT_XINFO_HAS_DROPPED_STATS) stats = c.statsItems(c.count(SizeOfXactStatsItem, 'dropped stats'))
  let nmsgs = 0
  let msgs: Buffer = NO_MESSAGES
  // Abort records never carry invalidations: PostgreSQL's abort parser does not look at the bit.
  if (isCommit && xinfo & XACT_XINFO_HAS_INVALS) {
    nmsgs = c.count(SizeOfSharedInvalidationMessage, 'invalidation messages')
    msgs = data.subarray(c.pos, c.pos + nmsgs * SizeOfSharedInvalidationMessage)
    c.pos += nmsgs * SizeOfSharedInvalidationMessage
  }
  let twophase_xid = 0
  let twophase_gid = ''
  if (xinfo & XACT_XINFO_HAS_TWOPHASE) {
    twophase_xid = c.u32('twophase xid')
    if (xinfo & XACT_XINFO_HAS_GID) twophase_gid = c.gid()
  }
  let origin_lsn = 0n as Lsn
  let origin_timestamp = 0n
  if (xinfo & XACT_XINFO_HAS_ORIGIN) {
    c.need(SizeOfXactOrigin, 'origin')
    origin_lsn = data.readBigUInt64LE(c.pos) as Lsn
    origin_timestamp = data.readBigInt64LE(c.pos + 8)
    c.pos += SizeOfXactOrigin
  }
  return { xact_time, xinfo, dbId, tsId, subxacts, xnodes, stats, nmsgs, msgs, twophase_xid, twophase_gid, origin_lsn, origin_timestamp }
}

/** ParseCommitRecord: `info` is the record's xl_info (only its HAS_INFO bit matters), `data` its main data. */
export function parseCommitRecord(info: number, data: Buffer): ParsedXactCommit {
  return parseFinish(info, data, true)
}

/** ParseAbortRecord: like the commit form, without invalidation messages. */
export function parseAbortRecord(info: number, data: Buffer): ParsedXactAbort {
  const p = parseFinish(info, data, false)
  const { nmsgs: _n, msgs: _m, ...abort } = p
  return abort
}

/** The final CLOG effect of a commit or abort record: which transaction, its subtransactions, and how it ended. */
export interface XactCompletion {
  readonly committed: boolean
  /** The top-level xid: the record's xl_xid, or the prepared transaction's xid for *_PREPARED. */
  readonly xid: number
  readonly subxacts: readonly number[]
  readonly parsed: ParsedXactFinishBase
}

/** The xact record type of `rec` (xl_info & XLOG_XACT_OPMASK). */
export function xactRecordType(rec: DecodedRecord): number {
  return rec.xl_info & XLOG_XACT_OPMASK
}

/**
 * For COMMIT, ABORT, COMMIT_PREPARED and ABORT_PREPARED records: the transaction tree they end (as
 * xact_redo picks it: XLogRecGetXid, or twophase_xid for the prepared forms). Null for any other record.
 */
export function xactCompletion(rec: DecodedRecord): XactCompletion | null {
  const type = xactRecordType(rec)
  switch (type) {
    case XLOG_XACT_COMMIT:
    case XLOG_XACT_COMMIT_PREPARED: {
      const parsed = parseCommitRecord(rec.xl_info, rec.mainData())
      const xid = type === XLOG_XACT_COMMIT ? rec.xl_xid : parsed.twophase_xid
      return { committed: true, xid, subxacts: parsed.subxacts, parsed }
    }
    case XLOG_XACT_ABORT:
    case XLOG_XACT_ABORT_PREPARED: {
      const parsed = parseAbortRecord(rec.xl_info, rec.mainData())
      const xid = type === XLOG_XACT_ABORT ? rec.xl_xid : parsed.twophase_xid
      return { committed: false, xid, subxacts: parsed.subxacts, parsed }
    }
    default:
      return null
  }
}

// --- prepare (two-phase state file) -----------------------------------------------------------------

/**
 * ParsePrepareRecord over the main data of XLOG_XACT_PREPARE: the header (xl_xact_prepare) and the
 * MAXALIGNed arrays after it. Layout of the header:
 *
 *   0 magic | 4 total_len | 8 xid | 12 database | 16 prepared_at i64 | 24 owner | 28 nsubxacts
 *   | 32 ncommitrels | 36 nabortrels | 40 ncommitstats | 44 nabortstats | 48 ninvalmsgs
 *   | 52 initfileinval u8 | 53 pad | 54 gidlen u16 | 56 origin_lsn u64 | 64 origin_timestamp i64   (72 bytes)
 */
export function parsePrepareRecord(data: Buffer): ParsedXactPrepare {
  if (data.length < SizeOfXactPrepare) throw bad(`PREPARE main data has ${data.length} bytes, less than its ${SizeOfXactPrepare}-byte header`)
  const magic = data.readUInt32LE(0)
  if (magic !== TWOPHASE_MAGIC) throw bad(`two-phase state magic is 0x${magic.toString(16)}, expected 0x${TWOPHASE_MAGIC.toString(16)}`)
  const total_len = data.readUInt32LE(4)
  if (total_len !== data.length + 4) throw bad(`two-phase state total_len ${total_len} does not match ${data.length} bytes of data plus the CRC`)
  const counts = [28, 32, 36, 40, 44, 48].map((at) => data.readInt32LE(at))
  for (const n of counts) if (n < 0 || n > XACT_ITEMS_MAX) throw bad(`two-phase state count ${n} is out of range`)
  const [nsubxacts, ncommitrels, nabortrels, ncommitstats, nabortstats, ninvalmsgs] = counts as [number, number, number, number, number, number]
  const gidlen = data.readUInt16LE(54)
  const c = new Cursor(data)
  c.pos = SizeOfXactPrepare
  c.need(maxalign(gidlen), 'GID')
  const gidBytes = data.subarray(c.pos, c.pos + gidlen)
  const nul = gidBytes.indexOf(0)
  const gid = gidBytes.toString('utf8', 0, nul < 0 ? gidlen : nul)
  c.pos += maxalign(gidlen)
  const section = <T>(n: number, size: number, what: string, read: (n: number) => T): T => {
    c.need(maxalign(n * size), what)
    const start = c.pos
    const v = read(n)
    c.pos = start + maxalign(n * size)
    return v
  }
  const subxacts = section(nsubxacts, 4, 'subxacts', (n) => c.u32Array(n))
  const commitRels = section(ncommitrels, SizeOfRelFileNode, 'commit rels', (n) => c.relFileNodes(n))
  const abortRels = section(nabortrels, SizeOfRelFileNode, 'abort rels', (n) => c.relFileNodes(n))
  const commitStats = section(ncommitstats, SizeOfXactStatsItem, 'commit stats', (n) => c.statsItems(n))
  const abortStats = section(nabortstats, SizeOfXactStatsItem, 'abort stats', (n) => c.statsItems(n))
  c.need(maxalign(ninvalmsgs * SizeOfSharedInvalidationMessage), 'invalidation messages')
  return {
    magic,
    total_len,
    xid: data.readUInt32LE(8),
    database: data.readUInt32LE(12),
    prepared_at: data.readBigInt64LE(16),
    owner: data.readUInt32LE(24),
    initfileinval: data[52] !== 0,
    gidlen,
    origin_lsn: data.readBigUInt64LE(56) as Lsn,
    origin_timestamp: data.readBigInt64LE(64),
    gid,
    subxacts,
    commitRels,
    abortRels,
    commitStats,
    abortStats,
    ninvalmsgs,
  }
}

/**
 * The pg_twophase/<XID> file PostgreSQL writes for a prepared transaction still open at a checkpoint:
 * the PREPARE record's main data followed by its CRC-32C (little-endian).
 */
export function twoPhaseFileFromPrepare(data: Buffer): Buffer {
  parsePrepareRecord(data)
  const out = Buffer.allocUnsafe(data.length + 4)
  data.copy(out, 0)
  out.writeUInt32LE(crc32c(data), data.length)
  return out
}

/** "0000ABCD": the name of a two-phase state file (%08X of the xid). */
export function twoPhaseFileName(xid: number): string {
  return xid.toString(16).toUpperCase().padStart(8, '0')
}

// --- assignment ---------------------------------------------------------------------------------------

/** xl_xact_assignment: xtop u32 | nsubxacts i32 | xsub u32[]. */
export function parseAssignmentRecord(data: Buffer): ParsedXactAssignment {
  const c = new Cursor(data)
  const xtop = c.u32('xtop')
  const xsub = c.u32Array(c.count(4, 'subxacts'))
  return { xtop, xsub }
}
