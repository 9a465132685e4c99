/**
 * Transaction record parsers over hand-built main data: every optional piece of commit and abort records in
 * its place (unaligned, PG15 dropped-stats items included), the HAS_INFO bit, GIDs (truncated like strlcpy,
 * skipped whole), prepared-transaction state files (MAXALIGNed sections, CRC), and malformed input.
 */
import { describe, expect, it } from 'vitest'
import { CorruptionError } from '../../../src/core/lib/errors.js'
import { crc32c } from '../../../src/core/lib/crc32c.js'
import { decodeRecord } from '../../../src/core/pg/wal-record.js'
import { RM } from '../../../src/core/pg/rmgr.js'
import {
  TWOPHASE_MAGIC,
  XACT_XINFO_HAS_DBINFO,
  XACT_XINFO_HAS_DROPPED_STATS,
  XACT_XINFO_HAS_GID,
  XACT_XINFO_HAS_INVALS,
  XACT_XINFO_HAS_ORIGIN,
  XACT_XINFO_HAS_RELFILENODES,
  XACT_XINFO_HAS_SUBXACTS,
  XACT_XINFO_HAS_TWOPHASE,
  XLOG_XACT_ABORT,
  XLOG_XACT_ABORT_PREPARED,
  XLOG_XACT_COMMIT,
  XLOG_XACT_COMMIT_PREPARED,
  XLOG_XACT_HAS_INFO,
  XLOG_XACT_PREPARE,
  parseAbortRecord,
  parseAssignmentRecord,
  parseCommitRecord,
  parsePrepareRecord,
  twoPhaseFileFromPrepare,
  twoPhaseFileName,
  xactCompletion,
} from '../../../src/core/redo/xact-records.js'
import { buildRecord } from './heap/record-builder.js'

const u32 = (...v: number[]): Buffer => {
  const b = Buffer.alloc(4 * v.length)
  v.forEach((x, i) => b.writeUInt32LE(x >>> 0, 4 * i))
  return b
}
const i64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8)
  b.writeBigInt64LE(v)
  return b
}

const TIME = 777_000_123_456n

/** A commit main data with every piece, in PostgreSQL's order, built field by field. */
function fullCommit(gid = 'gid-1'): Buffer {
  const xinfo =
    XACT_XINFO_HAS_DBINFO |
    XACT_XINFO_HAS_SUBXACTS |
    XACT_XINFO_HAS_RELFILENODES |
    XACT_XINFO_HAS_DROPPED_STATS |
    XACT_XINFO_HAS_INVALS |
    XACT_XINFO_HAS_TWOPHASE |
    XACT_XINFO_HAS_GID |
    XACT_XINFO_HAS_ORIGIN
  const msgs = Buffer.alloc(32)
  for (let i = 0; i < 32; i++) msgs[i] = 0x40 + i
  return Buffer.concat([
    i64(TIME),
    u32(xinfo),
    u32(5, 1663), // dbinfo
    u32(3, 1001, 1002, 40000), // subxacts
    u32(2, 1663, 5, 16384, 1663, 5, 16390), // relfilenodes
    u32(1, 2, 5, 16384), // one dropped stats item: kind 2, db 5, obj 16384
    u32(2), // invalidation messages
    msgs,
    u32(999), // twophase xid
    Buffer.from(gid + '\0', 'utf8'),
    // origin: unaligned after the GID
    Buffer.from([0x10, 0x20, 0x30, 0x40, 0x01, 0, 0, 0]),
    i64(123456789n),
  ])
}

describe('commit and abort records', () => {
  it('parses a minimal commit (no HAS_INFO): only xact_time', () => {
    const p = parseCommitRecord(XLOG_XACT_COMMIT, i64(TIME))
    expect(p.xact_time).toBe(TIME)
    expect(p.xinfo).toBe(0)
    expect(p.subxacts).toEqual([])
    expect(p.xnodes).toEqual([])
    expect(p.nmsgs).toBe(0)
  })

  it('ignores xinfo bytes when HAS_INFO is clear, as PostgreSQL does', () => {
    const p = parseCommitRecord(XLOG_XACT_COMMIT, Buffer.concat([i64(TIME), u32(XACT_XINFO_HAS_SUBXACTS), u32(1, 5)]))
    expect(p.xinfo).toBe(0)
    expect(p.subxacts).toEqual([])
  })

  it('parses every piece of a full commit at its unaligned place', () => {
    const p = parseCommitRecord(XLOG_XACT_COMMIT_PREPARED | XLOG_XACT_HAS_INFO, fullCommit())
    expect(p.xact_time).toBe(TIME)
    expect(p.dbId).toBe(5)
    expect(p.tsId).toBe(1663)
    expect(p.subxacts).toEqual([1001, 1002, 40000])
    expect(p.xnodes).toEqual([
      { spcNode: 1663, dbNode: 5, relNode: 16384 },
      { spcNode: 1663, dbNode: 5, relNode: 16390 },
    ])
    expect(p.stats).toEqual([{ kind: 2, dboid: 5, objoid: 16384 }])
    expect(p.nmsgs).toBe(2)
    expect(p.msgs.length).toBe(32)
    expect(p.msgs[0]).toBe(0x40)
    expect(p.twophase_xid).toBe(999)
    expect(p.twophase_gid).toBe('gid-1')
    expect(p.origin_lsn).toBe(0x1_4030_2010n)
    expect(p.origin_timestamp).toBe(123456789n)
  })

  it('keeps 199 bytes of a long GID but skips all of it', () => {
    const long = 'g'.repeat(250)
    const p = parseCommitRecord(XLOG_XACT_COMMIT | XLOG_XACT_HAS_INFO, fullCommit(long))
    expect(p.twophase_gid).toBe('g'.repeat(199))
    expect(p.origin_timestamp).toBe(123456789n)
  })

  it('parses an abort: the same pieces without invalidations', () => {
    const xinfo = XACT_XINFO_HAS_SUBXACTS | XACT_XINFO_HAS_RELFILENODES | XACT_XINFO_HAS_DROPPED_STATS | XACT_XINFO_HAS_TWOPHASE
    const data = Buffer.concat([i64(-5n), u32(xinfo), u32(1, 70000), u32(1, 1663, 5, 16400), u32(1, 1, 5, 16400), u32(1234)])
    const p = parseAbortRecord(XLOG_XACT_ABORT | XLOG_XACT_HAS_INFO, data)
    expect(p.xact_time).toBe(-5n)
    expect(p.subxacts).toEqual([70000])
    expect(p.xnodes).toEqual([{ spcNode: 1663, dbNode: 5, relNode: 16400 }])
    expect(p.stats).toEqual([{ kind: 1, dboid: 5, objoid: 16400 }])
    expect(p.twophase_xid).toBe(1234)
    expect('msgs' in p).toBe(false)
  })

  it('refuses truncated data, bad counts and unterminated GIDs', () => {
    const full = fullCommit()
    for (const cut of [4, 10, 14, 20, 30, 60, 100, full.length - 1]) {
      expect(() => parseCommitRecord(XLOG_XACT_COMMIT | XLOG_XACT_HAS_INFO, full.subarray(0, cut)), `cut at ${cut}`).toThrow(CorruptionError)
    }
    const negative = Buffer.concat([i64(TIME), u32(XACT_XINFO_HAS_SUBXACTS), u32(0xffff_ffff)])
    expect(() => parseCommitRecord(XLOG_XACT_COMMIT | XLOG_XACT_HAS_INFO, negative)).toThrow(/out of range/)
    const huge = Buffer.concat([i64(TIME), u32(XACT_XINFO_HAS_SUBXACTS), u32(1000), u32(1)])
    expect(() => parseCommitRecord(XLOG_XACT_COMMIT | XLOG_XACT_HAS_INFO, huge)).toThrow(/needs 4000 bytes/)
    const noNul = Buffer.concat([i64(TIME), u32(XACT_XINFO_HAS_TWOPHASE | XACT_XINFO_HAS_GID), u32(7), Buffer.from('abc')])
    expect(() => parseCommitRecord(XLOG_XACT_COMMIT | XLOG_XACT_HAS_INFO, noNul)).toThrow(/NUL/)
    try {
      parseCommitRecord(XLOG_XACT_COMMIT | XLOG_XACT_HAS_INFO, negative)
    } catch (e) {
      expect((e as CorruptionError).code).toBe('XACT_BAD_RECORD')
    }
  })
})

describe('xactCompletion', () => {
  const rec = (info: number, xid: number, main: Buffer) => decodeRecord(buildRecord({ rmid: RM.XACT, info, xid, main }))

  it('takes the xid from xl_xid for COMMIT / ABORT', () => {
    const c = xactCompletion(rec(XLOG_XACT_COMMIT | XLOG_XACT_HAS_INFO, 4242, Buffer.concat([i64(TIME), u32(XACT_XINFO_HAS_SUBXACTS), u32(2, 4243, 4244)])))
    expect(c).toMatchObject({ committed: true, xid: 4242, subxacts: [4243, 4244] })
    const a = xactCompletion(rec(XLOG_XACT_ABORT, 4250, i64(TIME)))
    expect(a).toMatchObject({ committed: false, xid: 4250, subxacts: [] })
  })

  it('takes the prepared xid for COMMIT_PREPARED / ABORT_PREPARED', () => {
    const c = xactCompletion(rec(XLOG_XACT_COMMIT_PREPARED | XLOG_XACT_HAS_INFO, 9000, fullCommit()))
    expect(c).toMatchObject({ committed: true, xid: 999, subxacts: [1001, 1002, 40000] })
    const abortData = Buffer.concat([i64(TIME), u32(XACT_XINFO_HAS_TWOPHASE), u32(555)])
    const a = xactCompletion(rec(XLOG_XACT_ABORT_PREPARED | XLOG_XACT_HAS_INFO, 9001, abortData))
    expect(a).toMatchObject({ committed: false, xid: 555 })
  })

  it('is null for other Transaction records', () => {
    expect(xactCompletion(rec(XLOG_XACT_PREPARE, 1, Buffer.alloc(8)))).toBeNull()
    expect(xactCompletion(rec(0x50, 1, u32(10, 1, 11)))).toBeNull()
  })
})

/** A PREPARE main data: 72-byte header, GID, subxacts, 1 commit rel, 0 abort rels, 1 abort stat, 1 inval, end record. */
function prepareData(): Buffer {
  const gid = Buffer.from('tx-77\0')
  const sections = Buffer.concat([
    Buffer.concat([gid, Buffer.alloc(8 - gid.length)]), // MAXALIGN(6) = 8
    Buffer.concat([u32(3001, 3002, 3003), Buffer.alloc(4)]), // MAXALIGN(12) = 16
    Buffer.concat([u32(1663, 5, 17000), Buffer.alloc(4)]), // MAXALIGN(12) = 16
    Buffer.concat([u32(3, 5, 17000), Buffer.alloc(4)]), // abort stats
    Buffer.alloc(16, 0xab), // one invalidation message
    Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), // TwoPhaseRecordOnDisk end sentinel (len 0, rmid 0, info 0)
  ])
  const hdr = Buffer.alloc(72)
  hdr.writeUInt32LE(TWOPHASE_MAGIC, 0)
  hdr.writeUInt32LE(72 + sections.length + 4, 4)
  hdr.writeUInt32LE(3000, 8)
  hdr.writeUInt32LE(5, 12)
  hdr.writeBigInt64LE(TIME, 16)
  hdr.writeUInt32LE(10, 24)
  hdr.writeInt32LE(3, 28) // nsubxacts
  hdr.writeInt32LE(1, 32) // ncommitrels
  hdr.writeInt32LE(0, 36) // nabortrels
  hdr.writeInt32LE(0, 40) // ncommitstats
  hdr.writeInt32LE(1, 44) // nabortstats
  hdr.writeInt32LE(1, 48) // ninvalmsgs
  hdr[52] = 1
  hdr.writeUInt16LE(6, 54)
  hdr.writeBigUInt64LE(0x2_0000_0010n, 56)
  hdr.writeBigInt64LE(42n, 64)
  return Buffer.concat([hdr, sections])
}

describe('prepare records (two-phase state)', () => {
  it('parses the header and the MAXALIGNed sections', () => {
    const p = parsePrepareRecord(prepareData())
    expect(p).toMatchObject({
      xid: 3000,
      database: 5,
      prepared_at: TIME,
      owner: 10,
      initfileinval: true,
      gidlen: 6,
      gid: 'tx-77',
      subxacts: [3001, 3002, 3003],
      commitRels: [{ spcNode: 1663, dbNode: 5, relNode: 17000 }],
      abortRels: [],
      commitStats: [],
      abortStats: [{ kind: 3, dboid: 5, objoid: 17000 }],
      ninvalmsgs: 1,
      origin_lsn: 0x2_0000_0010n,
      origin_timestamp: 42n,
    })
  })

  it('builds the pg_twophase file: the data then its CRC-32C', () => {
    const data = prepareData()
    const file = twoPhaseFileFromPrepare(data)
    expect(file.length).toBe(data.length + 4)
    expect(file.subarray(0, data.length)).toEqual(data)
    expect(file.readUInt32LE(data.length)).toBe(crc32c(data))
    expect(twoPhaseFileName(0xbeef)).toBe('0000BEEF')
  })

  it('refuses a bad magic, a wrong total_len and sections past the end', () => {
    const badMagic = prepareData()
    badMagic.writeUInt32LE(1, 0)
    expect(() => parsePrepareRecord(badMagic)).toThrow(/magic/)
    const badLen = prepareData()
    badLen.writeUInt32LE(10, 4)
    expect(() => parsePrepareRecord(badLen)).toThrow(/total_len/)
    const tooMany = prepareData()
    tooMany.writeInt32LE(100, 28)
    expect(() => parsePrepareRecord(tooMany)).toThrow(CorruptionError)
    expect(() => parsePrepareRecord(Buffer.alloc(40))).toThrow(/header/)
  })
})

describe('assignment records', () => {
  it('parses xtop and the subxact list', () => {
    expect(parseAssignmentRecord(u32(100, 3, 101, 102, 103))).toEqual({ xtop: 100, xsub: [101, 102, 103] })
    expect(() => parseAssignmentRecord(u32(100, 3, 101))).toThrow(CorruptionError)
  })
})
