/**
 * Sequence LOG redo against PostgreSQL's own images (wal_consistency_checking=all): CREATE SEQUENCE,
 * nextval past the 32 pre-logged values (a new LOG every 32 calls), setval (both forms), ALTER SEQUENCE
 * (RESTART, INCREMENT, AS integer), an identity column, a rolled-back nextval, with checksums off and on and
 * with lz4-compressed images. Plus a hand-built record that checks the page layout byte by byte.
 */
import { describe, expect, it } from 'vitest'
import { summarize, verifyWorkload } from '../../support/wal-verify.js'
import type { WorkloadStep } from '../../support/pg-cluster.js'
import { redoBlock } from '../../../src/core/redo/engine.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import { RM } from '../../../src/core/pg/rmgr.js'
import { SEQ_MAGIC } from '../../../src/core/redo/seq.js'
import { buildRecord } from './heap/record-builder.js'
import { pageGetLsn } from '../../../src/core/redo/page/page.js'

const steps: WorkloadStep[] = [
  {
    name: 'sequences',
    sql: `
      CREATE SEQUENCE s1;
      SELECT count(nextval('s1')) FROM generate_series(1, 100);
      SELECT setval('s1', 5000);
      SELECT nextval('s1');
      SELECT setval('s1', 42, false);
      SELECT count(nextval('s1')) FROM generate_series(1, 40);
      ALTER SEQUENCE s1 INCREMENT BY 7;
      SELECT count(nextval('s1')) FROM generate_series(1, 70);
      ALTER SEQUENCE s1 RESTART WITH 1000;
      SELECT nextval('s1');
      ALTER SEQUENCE s1 AS integer MAXVALUE 100000 CYCLE;
      SELECT count(nextval('s1')) FROM generate_series(1, 35);
      CREATE SEQUENCE s2 START 10 INCREMENT -3 MINVALUE -1000000 MAXVALUE 10 CACHE 5;
      SELECT count(nextval('s2')) FROM generate_series(1, 50);
      CREATE TABLE ident (id bigint GENERATED ALWAYS AS IDENTITY, v int);
      INSERT INTO ident (v) SELECT g FROM generate_series(1, 80) g;
      BEGIN; SELECT nextval('s1'); ROLLBACK;
      SELECT nextval('s1');
    `,
  },
]

function expectSeqClean(report: Awaited<ReturnType<typeof verifyWorkload>>['report']): void {
  expect(report.mismatches, summarize(report)).toBe(0)
  expect(report.errors, summarize(report)).toEqual([])
  expect(report.byRecordType['Sequence/LOG']?.checked ?? 0, summarize(report)).toBeGreaterThan(10)
  expect(report.unsupportedByType['Sequence/LOG'] ?? 0).toBe(0)
}

describe('Sequence LOG redo against wal_consistency_checking images', () => {
  it('matches with checksums off', async () => {
    const { report } = await verifyWorkload(steps)
    expectSeqClean(report)
  })

  it('matches with checksums on and lz4 images', async () => {
    const { report, records } = await verifyWorkload(steps, { checksums: true, walCompression: 'lz4' })
    expectSeqClean(report)
    expect(records.some((r) => r.xl_rmid === RM.SEQ && r.blocks.some((b) => b.hasImage && b.compression === 'lz4'))).toBe(true)
  })
})

describe('Sequence LOG redo, hand-built record', () => {
  it('rebuilds the one-tuple page exactly', () => {
    const rel = { spcNode: 1663, dbNode: 5, relNode: 16400 }
    const tuple = Buffer.alloc(41)
    for (let i = 0; i < tuple.length; i++) tuple[i] = (i * 7 + 3) & 0xff
    const main = Buffer.concat([Buffer.from([0x7f, 6, 0, 0, 5, 0, 0, 0, 0x10, 0x40, 0, 0]), tuple])
    const raw = buildRecord({ rmid: RM.SEQ, info: 0x00, xid: 0, blocks: [{ id: 0, rel, fork: 0, blkno: 0, willInit: true }], main })
    const stale = Buffer.alloc(8192, 0xee)
    const page = redoBlock({ ...rel, forkNum: 0, blkno: 0 }, stale, [{ endLsn: lsn(0x1_0000_2000n), raw }], { hintBitsLogged: false })
    expect(pageGetLsn(page)).toBe(0x1_0000_2000n)
    expect(page.readUInt16LE(12)).toBe(28) // pd_lower
    expect(page.readUInt16LE(14)).toBe(8136) // pd_upper = 8184 - MAXALIGN(41)
    expect(page.readUInt16LE(16)).toBe(8184) // pd_special
    expect(page.readUInt16LE(18)).toBe(0x2004)
    expect(page.readUInt32LE(24)).toBe(8136 | (1 << 15) | (41 << 17))
    expect(page.subarray(8136, 8136 + 41)).toEqual(tuple)
    expect(page.subarray(8136 + 41, 8184).every((b) => b === 0)).toBe(true)
    expect(page.readUInt32LE(8184)).toBe(SEQ_MAGIC)
    expect(page.subarray(28, 8136).every((b) => b === 0)).toBe(true)
  })

  it('refuses a block that is not WILL_INIT', () => {
    const rel = { spcNode: 1663, dbNode: 5, relNode: 16400 }
    const main = Buffer.concat([Buffer.alloc(12), Buffer.alloc(41, 1)])
    const raw = buildRecord({ rmid: RM.SEQ, info: 0x00, xid: 0, blocks: [{ id: 0, rel, fork: 0, blkno: 0, willInit: false }], main })
    const base = Buffer.alloc(8192)
    base.writeUInt16LE(24, 12)
    base.writeUInt16LE(8192, 14)
    expect(() => redoBlock({ ...rel, forkNum: 0, blkno: 0 }, base, [{ endLsn: lsn(0x5000n), raw }], { hintBitsLogged: false })).toThrow(/WILL_INIT/)
  })
})
