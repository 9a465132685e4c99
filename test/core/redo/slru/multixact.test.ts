/**
 * MultiXact redo against a real primary's pg_multixact files.
 *
 * The primary checkpoints, we copy pg_multixact/offsets and members (the base); then one session creates
 * ~2,300 multixacts (a row locked FOR SHARE by the transaction, then updated in a subtransaction: members
 * {locker, updater}), crossing offsets page 0 -> 1 and members pages 0 -> 1 -> 2, and pgbench clients lock
 * rows FOR SHARE / FOR KEY SHARE concurrently (multixacts with more members, expanded ones). After a second
 * checkpoint every touched offsets and members page must equal base + its records through our engine, byte for
 * byte (this includes the 15.16+ write of the next multixid's offset), and no other page may have changed.
 *
 * Plus unit tests of the geometry (worked example, wraparound of multixids and member offsets), the
 * ZERO_OFF_PAGE rule after a pre-initialising CREATE_ID (WAL of older minors), truncation helpers and
 * malformed records.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { PgCluster } from '../../../support/pg-cluster.js'
import { readWalRecords } from '../../../support/wal-verify.js'
import { decodeRecord, type DecodedRecord } from '../../../../src/core/pg/wal-record.js'
import { lsn } from '../../../../src/core/pg/lsn.js'
import { RM } from '../../../../src/core/pg/rmgr.js'
import { SlruKind } from '../../../../src/core/pg/slru.js'
import { redoBlock } from '../../../../src/core/redo/engine.js'
import { implicitTargets, recordLabel } from '../../../../src/core/redo/rmgr-redo.js'
import {
  MULTIXACT_MEMBERS_PAGENO_MAX,
  MULTIXACT_OFFSETS_PAGENO_MAX,
  createIdMemberPages,
  memberFlagsOffsetOf,
  memberXidOffsetOf,
  membersPageOf,
  multiXactMembersSegmentsToDelete,
  multiXactOffsetsCutoffPage,
  multiXactOffsetsSegmentMayBeDeleted,
  nextMultiXactId,
  offsetsPageIsPreInitialized,
  parseMultiXactCreate,
  parseMultiXactTruncate,
} from '../../../../src/core/redo/slru/multixact.js'
import { buildRecord } from '../heap/record-builder.js'
import { compareSlru, readSlruPages } from './slru-files.js'

const pgbenchScript = `\\set id random(1, 4)
BEGIN;
SELECT v FROM mx WHERE id = :id FOR SHARE;
SELECT pg_sleep(0.002);
SELECT v FROM mx WHERE id = :id + 1 FOR KEY SHARE;
COMMIT;
`

describe('MultiXact redo against the primary pg_multixact files', () => {
  let pg: PgCluster
  let records: DecodedRecord[] = []
  const base = { off: new Map<number, Buffer>(), mem: new Map<number, Buffer>() }
  const final = { off: new Map<number, Buffer>(), mem: new Map<number, Buffer>() }

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'multixact' })
    await pg.sql('CREATE TABLE mx (id int PRIMARY KEY, v int); INSERT INTO mx SELECT g, 0 FROM generate_series(1, 10) g;')
    await pg.checkpoint()
    const start = await pg.insertLsn()
    base.off = readSlruPages(join(pg.dataDir, 'pg_multixact/offsets'))
    base.mem = readSlruPages(join(pg.dataDir, 'pg_multixact/members'))
    await pg.sql(`SET synchronous_commit = off;
      DO $$ BEGIN
        FOR i IN 1..2300 LOOP
          PERFORM v FROM mx WHERE id = 1 + i % 3 FOR SHARE;
          BEGIN
            UPDATE mx SET v = v + 1 WHERE id = 1 + i % 3;
          EXCEPTION WHEN others THEN NULL;
          END;
          COMMIT;
        END LOOP;
      END $$;`)
    const { writeFileSync } = await import('node:fs')
    const script = join(pg.dir, 'mx.sql')
    writeFileSync(script, pgbenchScript)
    await pg.pgbench(['-n', '-c', '4', '-t', '40', '-f', script])
    await pg.checkpoint()
    const end = await pg.insertLsn()
    final.off = readSlruPages(join(pg.dataDir, 'pg_multixact/offsets'))
    final.mem = readSlruPages(join(pg.dataDir, 'pg_multixact/members'))
    await pg.sql('SELECT pg_switch_wal()')
    records = readWalRecords(pg.walDir, pg.walSegments(), start, end)
  })

  afterAll(async () => {
    await pg?.destroy()
  })

  it('creates enough multixacts to cross pages, some with more than two members', () => {
    const creates = records.filter((r) => recordLabel(r) === 'MultiXact/CREATE_ID').map((r) => parseMultiXactCreate(r.mainData()))
    expect(creates.length).toBeGreaterThan(2100)
    expect(Math.max(...creates.map((c) => c.mid))).toBeGreaterThan(2048)
    expect(creates.some((c) => c.members.length > 2)).toBe(true)
    expect(records.filter((r) => recordLabel(r) === 'MultiXact/ZERO_OFF_PAGE').length).toBeGreaterThanOrEqual(1)
    expect(records.filter((r) => recordLabel(r) === 'MultiXact/ZERO_MEM_PAGE').length).toBeGreaterThanOrEqual(2)
    // The multixid whose successor opens offsets page 1 writes that page too (15.16+).
    const last0 = records.find((r) => recordLabel(r) === 'MultiXact/CREATE_ID' && parseMultiXactCreate(r.mainData()).mid === 2047)!
    expect(implicitTargets(last0).filter((t) => t.tag.forkNum === SlruKind.MultixactOffsets).map((t) => t.tag.blkno)).toEqual([0, 1])
  })

  it('rebuilds every touched offsets page byte for byte', () => {
    const cmp = compareSlru(SlruKind.MultixactOffsets, base.off, final.off, records)
    expect(cmp.mismatches).toEqual([])
    expect(cmp.changedWithoutRecord).toEqual([])
    expect(cmp.pagesChecked).toBeGreaterThanOrEqual(2)
  })

  it('rebuilds every touched members page byte for byte', () => {
    const cmp = compareSlru(SlruKind.MultixactMembers, base.mem, final.mem, records)
    expect(cmp.mismatches).toEqual([])
    expect(cmp.changedWithoutRecord).toEqual([])
    expect(cmp.pagesChecked).toBeGreaterThanOrEqual(3)
  })

  it('checks the 15.16+ entry of the next multixid, and notices a missing record (negative control)', () => {
    const creates = records.filter((r) => recordLabel(r) === 'MultiXact/CREATE_ID').map((r) => parseMultiXactCreate(r.mainData()))
    const last = creates.reduce((a, c) => (c.mid > a.mid ? c : a))
    // Only the last CREATE_ID writes the entry after it, and the primary's file has it.
    const next = last.mid + 1
    expect(final.off.get(Math.floor(next / 2048))!.readUInt32LE((next % 2048) * 4)).toBe(last.moff + last.members.length)
    // Without CREATE_ID 2047, its members are missing. (Its offsets entry is not: CREATE_ID 2046 wrote it as
    // the next multixid's entry, and CREATE_ID 2048 writes the one after.)
    const i = records.findIndex((r) => recordLabel(r) === 'MultiXact/CREATE_ID' && parseMultiXactCreate(r.mainData()).mid === 2047)
    const without = [...records.slice(0, i), ...records.slice(i + 1)]
    expect(compareSlru(SlruKind.MultixactMembers, base.mem, final.mem, without).mismatches.length).toBeGreaterThan(0)
    expect(compareSlru(SlruKind.MultixactOffsets, base.off, final.off, without).mismatches).toEqual([])
  })
})

// --- hand-built records ---------------------------------------------------------------------------------------

const tag = (kind: number, p: number) => ({ spcNode: 0, dbNode: 0, relNode: 0, forkNum: kind, blkno: p })

function createRec(mid: number, moff: number, members: Array<[number, number]>): Buffer {
  const main = Buffer.alloc(12 + 8 * members.length)
  main.writeUInt32LE(mid, 0)
  main.writeUInt32LE(moff, 4)
  main.writeInt32LE(members.length, 8)
  members.forEach(([xid, status], i) => {
    main.writeUInt32LE(xid, 12 + 8 * i)
    main.writeInt32LE(status, 16 + 8 * i)
  })
  return buildRecord({ rmid: RM.MULTIXACT, info: 0x20, xid: 0, main })
}

function zeroRec(info: number, pageno: number): Buffer {
  const main = Buffer.alloc(4)
  main.writeInt32LE(pageno, 0)
  return buildRecord({ rmid: RM.MULTIXACT, info, xid: 0, main })
}

const redo = (t: ReturnType<typeof tag>, base: Buffer | null, raws: Buffer[]) =>
  redoBlock(
    t,
    base,
    raws.map((raw, i) => ({ endLsn: lsn(1000 + i), raw })),
    { hintBitsLogged: false },
  )

describe('MultiXact pages (hand-built)', () => {
  it('follows the worked example: mid 2047, moff 4090, two members', () => {
    const raw = createRec(2047, 4090, [
      [700, 1],
      [701, 5],
    ])
    const targets = implicitTargets(decodeRecord(raw)).map((t) => [t.tag.forkNum, t.tag.blkno, t.willInit])
    expect(targets).toEqual([
      [SlruKind.MultixactOffsets, 0, false],
      [SlruKind.MultixactOffsets, 1, false],
      [SlruKind.MultixactMembers, 2, false],
    ])
    const off0 = redo(tag(SlruKind.MultixactOffsets, 0), null, [raw])
    expect(off0.readUInt32LE(8188)).toBe(4090)
    const off1 = redo(tag(SlruKind.MultixactOffsets, 1), null, [raw])
    expect(off1.readUInt32LE(0)).toBe(4092)
    expect(off1.subarray(4).every((b) => b === 0)).toBe(true)
    const mem = redo(tag(SlruKind.MultixactMembers, 2), null, [raw])
    expect(memberFlagsOffsetOf(4090)).toBe(4080)
    expect(memberXidOffsetOf(4090)).toBe(4080 + 4 + 8)
    expect(mem[4082]).toBe(1)
    expect(mem[4083]).toBe(5)
    expect(mem.readUInt32LE(4092)).toBe(700)
    expect(mem.readUInt32LE(4096)).toBe(701)
    expect(mem.filter((b) => b !== 0).length).toBe(2 + 2 + 2) // two flag bytes; 700 and 701 have two nonzero bytes each
  })

  it('keeps other members of a group and overwrites a stale flag byte', () => {
    const base = Buffer.alloc(8192)
    base.writeUInt32LE(0x0b0a0908, 4080) // flag bytes of members 4088..4091
    const raw = createRec(9, 4089, [[42, 3]])
    const mem = redo(tag(SlruKind.MultixactMembers, 2), base, [raw])
    expect([...mem.subarray(4080, 4084)]).toEqual([0x08, 0x03, 0x0a, 0x0b])
    expect(mem.readUInt32LE(4080 + 4 + 4)).toBe(42)
  })

  it('wraps member offsets from 0xFFFFFFFF to 0 and multixids past 0xFFFFFFFF to 1', () => {
    expect(MULTIXACT_OFFSETS_PAGENO_MAX).toBe(2097151)
    expect(MULTIXACT_MEMBERS_PAGENO_MAX).toBe(2625285)
    expect(nextMultiXactId(0xffff_ffff)).toBe(1)
    const raw = createRec(0xffff_ffff, 0xffff_fffe, [
      [10, 0],
      [11, 1],
      [12, 2],
    ])
    const c = parseMultiXactCreate(decodeRecord(raw).mainData())
    expect(createIdMemberPages(c)).toEqual([MULTIXACT_MEMBERS_PAGENO_MAX, 0])
    const targets = implicitTargets(decodeRecord(raw)).map((t) => [t.tag.forkNum, t.tag.blkno])
    expect(targets).toEqual([
      [SlruKind.MultixactOffsets, MULTIXACT_OFFSETS_PAGENO_MAX],
      [SlruKind.MultixactOffsets, 0],
      [SlruKind.MultixactMembers, MULTIXACT_MEMBERS_PAGENO_MAX],
      [SlruKind.MultixactMembers, 0],
    ])
    // next multixid is 1 (entry 1 of page 0); next offset 0xFFFFFFFE + 3 wraps to 1
    const off0 = redo(tag(SlruKind.MultixactOffsets, 0), null, [raw])
    expect(off0.readUInt32LE(4)).toBe(1)
    expect(off0.readUInt32LE(0)).toBe(0)
    const last = redo(tag(SlruKind.MultixactOffsets, MULTIXACT_OFFSETS_PAGENO_MAX), null, [raw])
    expect(last.readUInt32LE(8188)).toBe(0xffff_fffe)
    // 0xFFFFFFFE, 0xFFFFFFFF on the last members page; 0 on page 0
    const mlast = redo(tag(SlruKind.MultixactMembers, MULTIXACT_MEMBERS_PAGENO_MAX), null, [raw])
    expect(mlast.readUInt32LE(memberXidOffsetOf(0xffff_fffe))).toBe(10)
    expect(mlast.readUInt32LE(memberXidOffsetOf(0xffff_ffff))).toBe(11)
    const m0 = redo(tag(SlruKind.MultixactMembers, 0), null, [raw])
    expect(m0.readUInt32LE(memberXidOffsetOf(0))).toBe(12)
    expect(m0[memberFlagsOffsetOf(0)]).toBe(2)
    expect(membersPageOf(0xffff_ffff)).toBe(MULTIXACT_MEMBERS_PAGENO_MAX)
  })

  it('skips the next offset of 0 to 1', () => {
    const raw = createRec(100, 0xffff_fffd, [
      [1, 0],
      [2, 0],
      [3, 0],
    ])
    const off = redo(tag(SlruKind.MultixactOffsets, 0), null, [raw])
    expect(off.readUInt32LE(400)).toBe(0xffff_fffd)
    expect(off.readUInt32LE(404)).toBe(1)
  })

  it('ZERO_MEM_PAGE re-initialises; ZERO_OFF_PAGE zeroes unless a CREATE_ID pre-initialised the page', () => {
    const zm = zeroRec(0x10, 7)
    expect(implicitTargets(decodeRecord(zm))).toEqual([{ tag: tag(SlruKind.MultixactMembers, 7), willInit: true }])
    expect(redo(tag(SlruKind.MultixactMembers, 7), Buffer.alloc(8192, 9), [zm]).every((b) => b === 0)).toBe(true)

    const zo = zeroRec(0x00, 1)
    expect(implicitTargets(decodeRecord(zo))).toEqual([{ tag: tag(SlruKind.MultixactOffsets, 1), willInit: false }])
    expect(redo(tag(SlruKind.MultixactOffsets, 1), Buffer.alloc(8192, 9), [zo]).every((b) => b === 0)).toBe(true)

    // WAL of an older minor: CREATE_ID 2047 comes before ZERO_OFF_PAGE 1, then CREATE_ID 2048.
    const c2047 = createRec(2047, 4090, [
      [700, 1],
      [701, 1],
    ])
    const c2048 = createRec(2048, 4092, [
      [702, 1],
      [703, 1],
    ])
    const page1 = redo(tag(SlruKind.MultixactOffsets, 1), null, [c2047, zo])
    expect(offsetsPageIsPreInitialized(page1, 1)).toBe(true)
    expect(page1.readUInt32LE(0)).toBe(4092) // PostgreSQL skips this ZERO_OFF_PAGE: the entry stays
    const after = redo(tag(SlruKind.MultixactOffsets, 1), null, [c2047, zo, c2048])
    expect([after.readUInt32LE(0), after.readUInt32LE(4)]).toEqual([4092, 4094])
    // WAL of 15.16+: ZERO_OFF_PAGE first, then the CREATE_IDs; same final page.
    expect(redo(tag(SlruKind.MultixactOffsets, 1), null, [zo, c2047, c2048])).toEqual(after)
    // A page with more than that one entry is zeroed.
    expect(redo(tag(SlruKind.MultixactOffsets, 1), after, [zo]).every((b) => b === 0)).toBe(true)
    // Page 0: the pre-initialised entry is entry 1 (multixid 1, after wraparound).
    const p0 = Buffer.alloc(8192)
    p0.writeUInt32LE(77, 4)
    expect(offsetsPageIsPreInitialized(p0, 0)).toBe(true)
    expect(offsetsPageIsPreInitialized(p0, 5)).toBe(false)
  })

  it('refuses a target the record does not write and malformed records', () => {
    const raw = createRec(10, 20, [[1, 0]])
    expect(() => redo(tag(SlruKind.MultixactOffsets, 3), null, [raw])).toThrow(/writes nothing on this page/)
    expect(() => redo(tag(SlruKind.Clog, 0), null, [raw])).toThrow(/REDO|cannot redo|pg_multixact/)
    const bad = Buffer.alloc(12)
    bad.writeInt32LE(5, 8)
    expect(() => parseMultiXactCreate(bad)).toThrow(/announces 5 members/)
    const badStatus = Buffer.alloc(20)
    badStatus.writeInt32LE(1, 8)
    badStatus.writeInt32LE(6, 16)
    expect(() => parseMultiXactCreate(badStatus)).toThrow(/status 6/)
    expect(() => parseMultiXactCreate(Buffer.alloc(8))).toThrow(/less than 12/)
    const trunc = buildRecord({ rmid: RM.MULTIXACT, info: 0x30, xid: 0, main: Buffer.alloc(20) })
    expect(implicitTargets(decodeRecord(trunc))).toEqual([])
  })

  it('computes truncation like PerformOffsetsTruncation / PerformMembersTruncation', () => {
    const data = Buffer.alloc(20)
    data.writeUInt32LE(5, 0)
    data.writeUInt32LE(1, 4) // startTruncOff
    data.writeUInt32LE(2048 * 70 + 1, 8) // endTruncOff: first entry of page 70 is multixid 143360 (+1)
    data.writeUInt32LE(1, 12)
    data.writeUInt32LE(1636 * 32 * 3 + 5, 16) // into members segment 3
    const t = parseMultiXactTruncate(data)
    expect(t).toEqual({ oldestMultiDB: 5, startTruncOff: 1, endTruncOff: 143361, startTruncMemb: 1, endTruncMemb: 157061 })
    expect(multiXactOffsetsCutoffPage(t)).toBe(70)
    expect([0, 1, 2, 3].map((s) => multiXactOffsetsSegmentMayBeDeleted(s, 70))).toEqual([true, true, false, false])
    expect(multiXactMembersSegmentsToDelete(t)).toEqual([0, 1, 2])
    // wrapping: from the last segment to segment 1
    const w = { ...t, startTruncMemb: 0xffff_fff0, endTruncMemb: 1636 * 32 + 3 }
    expect(multiXactMembersSegmentsToDelete(w)).toEqual([82040, 0])
    expect(multiXactOffsetsCutoffPage({ ...t, endTruncOff: 1 })).toBe(MULTIXACT_OFFSETS_PAGENO_MAX)
  })
})
