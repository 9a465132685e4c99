/**
 * CLOG redo against a real primary's pg_xact files.
 *
 * The primary checkpoints, we copy pg_xact (the base), then it runs commits and aborts of ~100k xids
 * (crossing CLOG pages 0 -> 1 -> 2 -> 3, so ZEROPAGE records appear), transactions with hundreds of
 * subtransactions straddling a page boundary (commit, abort, and commit of a prepared transaction), savepoints
 * rolled back (subtransaction abort records), two-phase commit and rollback, and one transaction left
 * prepared. After a second checkpoint, every pg_xact page a record targets must equal base page + those
 * records through our engine, byte for byte, and no other page may have changed. The open prepared
 * transaction's pg_twophase file must equal twoPhaseFileFromPrepare(PREPARE record).
 *
 * Plus unit tests of the bit layout, targets, truncation helpers and malformed records.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PgCluster } from '../../../support/pg-cluster.js'
import { readWalRecords } from '../../../support/wal-verify.js'
import { decodeRecord, type DecodedRecord } from '../../../../src/core/pg/wal-record.js'
import { RM } from '../../../../src/core/pg/rmgr.js'
import { SlruKind, TRANSACTION_STATUS_ABORTED, TRANSACTION_STATUS_COMMITTED, TRANSACTION_STATUS_SUB_COMMITTED } from '../../../../src/core/pg/slru.js'
import { lsn } from '../../../../src/core/pg/lsn.js'
import { redoBlock } from '../../../../src/core/redo/engine.js'
import { implicitTargets } from '../../../../src/core/redo/rmgr-redo.js'
import { recordLabel } from '../../../../src/core/redo/rmgr-redo.js'
import {
  CLOG_PAGENO_MAX,
  clogByteOf,
  clogGetStatus,
  clogPagePrecedes,
  clogSegmentMayBeDeleted,
  clogSetStatus,
  clogShiftOf,
  parseClogTruncate,
  transactionIdPrecedes,
} from '../../../../src/core/redo/slru/clog.js'
import { parsePrepareRecord, twoPhaseFileFromPrepare, twoPhaseFileName, xactCompletion } from '../../../../src/core/redo/xact-records.js'
import { buildRecord } from '../heap/record-builder.js'
import { compareSlru, readSlruPages } from './slru-files.js'

/** Commits and aborts (every 5th xid aborts) in a loop until txid_current() reaches `upTo`. */
function consumeXids(upTo: number): string {
  return `SET synchronous_commit = off;
    DO $$ DECLARE x bigint; BEGIN
      LOOP
        x := txid_current();
        IF x % 5 = 0 THEN ROLLBACK; ELSE COMMIT; END IF;
        EXIT WHEN x >= ${upTo};
      END LOOP;
    END $$;`
}

/** `n` subtransactions that each insert a row (so each gets an xid), inside the current transaction. */
function subxacts(n: number, tag: number): string {
  return `DO $$ BEGIN FOR i IN 1..${n} LOOP
      BEGIN INSERT INTO t VALUES (${tag}, i); EXCEPTION WHEN others THEN NULL; END;
    END LOOP; END $$;`
}

describe('CLOG redo against the primary pg_xact files', () => {
  let pg: PgCluster
  let records: DecodedRecord[] = []
  let base = new Map<number, Buffer>()
  let final = new Map<number, Buffer>()
  let openPrepareXid = 0
  let twophaseFile: Buffer | null = null

  beforeAll(async () => {
    pg = await PgCluster.start({ maxPreparedTransactions: 5, name: 'clog' })
    await pg.sql('CREATE TABLE t (k int, v int)')
    await pg.checkpoint()
    const start = await pg.insertLsn()
    base = readSlruPages(join(pg.dataDir, 'pg_xact'))
    await pg.sql(consumeXids(32768 - 150))
    // A committed transaction whose 300 subxacts cross from page 0 to page 1.
    await pg.sql(`BEGIN; INSERT INTO t VALUES (1, 0); ${subxacts(300, 1)} COMMIT;`)
    // Savepoints: one rolled back (its own abort record), one released.
    await pg.sql(`BEGIN; INSERT INTO t VALUES (2, 0); SAVEPOINT a; INSERT INTO t VALUES (2, 1); ROLLBACK TO a;
      SAVEPOINT b; INSERT INTO t VALUES (2, 2); RELEASE b; COMMIT;`)
    await pg.sql(consumeXids(2 * 32768 - 150))
    // An aborted transaction whose subxacts cross from page 1 to page 2.
    await pg.sql(`BEGIN; INSERT INTO t VALUES (3, 0); ${subxacts(300, 3)} ROLLBACK;`)
    // Two-phase: commit and rollback of prepared transactions with subxacts.
    await pg.sql(`BEGIN; INSERT INTO t VALUES (4, 0); SAVEPOINT s; INSERT INTO t VALUES (4, 1); RELEASE s; PREPARE TRANSACTION 'p1';`)
    await pg.sql(`COMMIT PREPARED 'p1';`)
    await pg.sql(`BEGIN; INSERT INTO t VALUES (5, 0); SAVEPOINT s; INSERT INTO t VALUES (5, 1); RELEASE s; PREPARE TRANSACTION 'p2';`)
    await pg.sql(`ROLLBACK PREPARED 'p2';`)
    await pg.sql(consumeXids(3 * 32768 - 150))
    // A prepared transaction whose subxacts cross from page 2 to page 3, committed.
    await pg.sql(`BEGIN; INSERT INTO t VALUES (6, 0); ${subxacts(300, 6)} PREPARE TRANSACTION 'p3';`)
    await pg.sql(`COMMIT PREPARED 'p3';`)
    // Left prepared over the checkpoint: its pg_twophase file is written then.
    await pg.sql(`BEGIN; INSERT INTO t VALUES (7, 0); SAVEPOINT s; INSERT INTO t VALUES (7, 1); RELEASE s; PREPARE TRANSACTION 'open';`)
    openPrepareXid = Number(await pg.sql(`SELECT transaction::text FROM pg_prepared_xacts WHERE gid = 'open'`))
    await pg.checkpoint()
    const end = await pg.insertLsn()
    final = readSlruPages(join(pg.dataDir, 'pg_xact'))
    twophaseFile = readFileSync(join(pg.dataDir, 'pg_twophase', twoPhaseFileName(openPrepareXid)))
    await pg.sql('SELECT pg_switch_wal()')
    records = readWalRecords(pg.walDir, pg.walSegments(), start, end)
  })

  afterAll(async () => {
    await pg?.destroy()
  })

  it('covers every record type and pages crossed by subtransactions', () => {
    const counts: Record<string, number> = {}
    for (const r of records) {
      const label = recordLabel(r)
      counts[label] = (counts[label] ?? 0) + 1
    }
    const msg = JSON.stringify(counts)
    for (const t of ['Transaction/COMMIT', 'Transaction/ABORT', 'Transaction/COMMIT_PREPARED', 'Transaction/ABORT_PREPARED', 'Transaction/PREPARE', 'CLOG/ZEROPAGE']) {
      expect(counts[t] ?? 0, `${t} in ${msg}`).toBeGreaterThan(0)
    }
    expect(counts['CLOG/ZEROPAGE']).toBeGreaterThanOrEqual(3)
    // Records ending trees that span two CLOG pages, with more than 64 subxacts: commit, abort, commit prepared.
    const spanning = records.filter((r) => r.xl_rmid === RM.XACT && implicitTargets(r).length === 2)
    const kinds = new Set(spanning.map((r) => recordLabel(r)))
    expect([...kinds].sort()).toEqual(['Transaction/ABORT', 'Transaction/COMMIT', 'Transaction/COMMIT_PREPARED'])
    for (const r of spanning) expect(xactCompletion(r)!.subxacts.length).toBeGreaterThan(64)
    // The savepoint transaction: top xid T, subxact T+1 rolled back (its own ABORT record), then the savepoint
    // restarted (T+2) with b nested in it (T+3): COMMIT of T lists T+2 and T+3.
    const commits = records.filter((r) => recordLabel(r) === 'Transaction/COMMIT').map((r) => xactCompletion(r)!)
    const savepointTx = commits.find((c) => c.subxacts.length === 2 && c.subxacts[0] === c.xid + 2 && c.subxacts[1] === c.xid + 3)
    expect(savepointTx).toBeDefined()
    expect(records.some((r) => recordLabel(r) === 'Transaction/ABORT' && r.xl_xid === savepointTx!.xid + 1)).toBe(true)
  })

  it('rebuilds every touched pg_xact page byte for byte', () => {
    const cmp = compareSlru(SlruKind.Clog, base, final, records)
    expect(cmp.mismatches).toEqual([])
    expect(cmp.changedWithoutRecord).toEqual([])
    expect(cmp.pagesChecked).toBeGreaterThanOrEqual(4)
  })

  it('fails the comparison when a commit is left out (negative control)', () => {
    const i = records.findIndex((r) => r.xl_rmid === RM.XACT && implicitTargets(r).length === 2)
    const cmp = compareSlru(SlruKind.Clog, base, final, [...records.slice(0, i), ...records.slice(i + 1)])
    expect(cmp.mismatches.length).toBeGreaterThan(0)
  })

  it('leaves the open prepared transaction in progress and rebuilds its pg_twophase file', () => {
    const prep = records.filter((r) => r.xl_rmid === RM.XACT && (r.xl_info & 0x70) === 0x10).map((r) => r.mainData())
    const open = prep.find((d) => parsePrepareRecord(d).xid === openPrepareXid)!
    expect(parsePrepareRecord(open)).toMatchObject({ gid: 'open', xid: openPrepareXid })
    expect(parsePrepareRecord(open).subxacts.length).toBe(1)
    expect(twoPhaseFileFromPrepare(open)).toEqual(twophaseFile)
    expect(clogGetStatus(final.get(Math.floor(openPrepareXid / 32768))!, openPrepareXid)).toBe(0)
  })
})

describe('CLOG pages and records (hand-built)', () => {
  const tag = (p: number) => ({ spcNode: 0, dbNode: 0, relNode: 0, forkNum: SlruKind.Clog, blkno: p })
  const i64 = Buffer.alloc(8)
  const commit = (xid: number, subs: number[], info = 0x80) => {
    const main = Buffer.alloc(8 + 4 + 4 + 4 * subs.length)
    main.writeUInt32LE(subs.length > 0 ? 0x02 : 0, 8)
    main.writeUInt32LE(subs.length, 12)
    subs.forEach((s, k) => main.writeUInt32LE(s, 16 + 4 * k))
    return buildRecord({ rmid: RM.XACT, info, xid, main: info & 0x80 ? main : i64 })
  }

  it('places 2 bits per xid, lowest first (worked example xid 100000)', () => {
    expect(clogByteOf(100000)).toBe(424)
    expect(clogShiftOf(100000)).toBe(0)
    expect(clogShiftOf(100003)).toBe(6)
    const p = Buffer.alloc(8192)
    clogSetStatus(p, 100003, TRANSACTION_STATUS_SUB_COMMITTED)
    clogSetStatus(p, 100001, TRANSACTION_STATUS_ABORTED)
    expect(p[424]).toBe(0b11_00_10_00)
    clogSetStatus(p, 100003, TRANSACTION_STATUS_COMMITTED)
    expect(p[424]).toBe(0b01_00_10_00)
    expect(clogGetStatus(p, 100001)).toBe(TRANSACTION_STATUS_ABORTED)
  })

  it('targets every page of the tree and sets the final status on each', () => {
    const raw = commit(32767, [32766, 32768, 65536 + 5])
    const rec = decodeRecord(raw)
    expect(implicitTargets(rec).map((t) => t.tag.blkno)).toEqual([0, 1, 2])
    expect(implicitTargets(rec).every((t) => t.tag.forkNum === SlruKind.Clog && !t.willInit)).toBe(true)
    const base = Buffer.alloc(8192, 0)
    clogSetStatus(base, 32766, TRANSACTION_STATUS_SUB_COMMITTED) // left over from a crash: becomes committed
    const p0 = redoBlock(tag(0), base, [{ endLsn: lsn(100), raw }], { hintBitsLogged: false })
    expect(clogGetStatus(p0, 32767)).toBe(TRANSACTION_STATUS_COMMITTED)
    expect(clogGetStatus(p0, 32766)).toBe(TRANSACTION_STATUS_COMMITTED)
    expect(clogGetStatus(p0, 32765)).toBe(0)
    expect(base[8191]).toBe(0b11 << 4) // the caller's base is not modified
    const p2 = redoBlock(tag(2), null, [{ endLsn: lsn(100), raw }], { hintBitsLogged: false })
    expect(clogGetStatus(p2, 65541)).toBe(TRANSACTION_STATUS_COMMITTED)
    expect(p2.filter((b) => b !== 0).length).toBe(1)
    expect(() => redoBlock(tag(3), null, [{ endLsn: lsn(100), raw }], { hintBitsLogged: false })).toThrow(/no xid of this record/)
  })

  it('aborts: xid and subxacts ABORTED; a plain commit without HAS_INFO has only its xid', () => {
    const main = Buffer.alloc(20)
    main.writeUInt32LE(0x02, 8)
    main.writeUInt32LE(2, 12)
    main.writeUInt32LE(11, 16)
    const raw = buildRecord({ rmid: RM.XACT, info: 0xa0, xid: 10, main: Buffer.concat([main, Buffer.from([12, 0, 0, 0])]) })
    const p = redoBlock(tag(0), null, [{ endLsn: lsn(1), raw }], { hintBitsLogged: false })
    expect([10, 11, 12].map((x) => clogGetStatus(p, x))).toEqual([2, 2, 2])
    const plain = decodeRecord(commit(40000, [], 0x00))
    expect(implicitTargets(plain).map((t) => t.tag.blkno)).toEqual([1])
  })

  it('ZEROPAGE zeroes its page (will-init); TRUNCATE changes no page', () => {
    const zero = buildRecord({ rmid: RM.CLOG, info: 0x00, xid: 0, main: Buffer.from([3, 0, 0, 0]) })
    expect(implicitTargets(decodeRecord(zero))).toEqual([{ tag: tag(3), willInit: true }])
    const p = redoBlock(tag(3), Buffer.alloc(8192, 0x55), [{ endLsn: lsn(1), raw: zero }], { hintBitsLogged: false })
    expect(p.every((b) => b === 0)).toBe(true)
    expect(() => redoBlock(tag(4), null, [{ endLsn: lsn(1), raw: zero }], { hintBitsLogged: false })).toThrow(/zeroes pg_xact page 3/)
    const truncMain = Buffer.alloc(12)
    truncMain.writeInt32LE(64, 0)
    truncMain.writeUInt32LE(2_100_000, 4)
    truncMain.writeUInt32LE(5, 8)
    const trunc = buildRecord({ rmid: RM.CLOG, info: 0x10, xid: 0, main: truncMain })
    expect(implicitTargets(decodeRecord(trunc))).toEqual([])
    expect(parseClogTruncate(truncMain)).toEqual({ pageno: 64, oldestXact: 2_100_000, oldestXactDb: 5 })
    const badZero = buildRecord({ rmid: RM.CLOG, info: 0x00, xid: 0, main: Buffer.from([0xff, 0xff, 0xff, 0xff]) })
    expect(() => implicitTargets(decodeRecord(badZero))).toThrow(/page -1/)
  })

  it('compares pages and segments modulo 2^32 like SimpleLruTruncate', () => {
    expect(CLOG_PAGENO_MAX).toBe(131071)
    expect(transactionIdPrecedes(3, 4)).toBe(true)
    expect(transactionIdPrecedes(0xffff_fff0, 5)).toBe(true) // wrapped: 5 is newer
    expect(transactionIdPrecedes(1, 0xffff_fff0)).toBe(true) // permanent xids compare plainly
    expect(clogPagePrecedes(0, 1)).toBe(true)
    expect(clogPagePrecedes(1, 1)).toBe(false)
    expect(clogPagePrecedes(131071, 2)).toBe(true) // the last page precedes page 2 after wraparound
    // cutoff page 64 (segment 2 starts there): segments 0 and 1 go, 2 stays
    expect([0, 1, 2, 3].map((s) => clogSegmentMayBeDeleted(s, 64))).toEqual([true, true, false, false])
    expect(clogSegmentMayBeDeleted(2, 70)).toBe(false)
  })
})
