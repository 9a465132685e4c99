/**
 * The B-tree redo workload shared by the verification tests (one file per cluster variant), and a census
 * of the record kinds and sub-cases it produced, read straight from the decoded WAL.
 *
 * One workload produces all 15 record kinds:
 * - CREATE INDEX on filled tables (XLOG/FPI pages from log_newpage), then inserts with ascending and random
 *   keys (INSERT_LEAF, SPLIT_L, SPLIT_R, INSERT_UPPER, NEWROOT at level 0 on an empty index and above);
 * - a low-cardinality index (DEDUP; INSERT_POST and splits with a posting-list split once VACUUM has freed
 *   early heap pages so new TIDs land inside existing posting lists);
 * - DELETE of a fraction of duplicates then VACUUM (VACUUM with posting-list updates);
 * - DELETE of whole key ranges then VACUUM (MARK_PAGE_HALFDEAD, UNLINK_PAGE, META_CLEANUP), on a 3-level
 *   index with wide keys (unlink of internal pages, which rewrites the half-dead leaf: block 3) and on a
 *   2-level index emptied down to its rightmost leaf (UNLINK_PAGE_META; refilling it splits the lone fast
 *   root: INSERT_META);
 * - a txid, a second VACUUM (deleted pages go to the FSM) and inserts (REUSE_PAGE);
 * - index scans that set LP_DEAD, then inserts into the same leaves (DELETE, simple deletion) and repeated
 *   non-HOT updates that leave another index logically unchanged (DELETE, bottom-up deletion).
 */
import type { WorkloadStep } from '../../../support/pg-cluster.js'
import type { DecodedRecord } from '../../../../src/core/pg/wal-record.js'
import { RM } from '../../../../src/core/pg/rmgr.js'

/** A ~1 KiB incompressible text key (32 md5s): 7 fit a page, so a few hundred rows make a 3-level index. */
const wideKey = (g: string): string =>
  `lpad(${g}::text, 8, '0') || (SELECT string_agg(md5(${g}::text || j::text), '') FROM generate_series(1, 32) j)`

export const btreeSetup: WorkloadStep[] = [
  {
    name: 'tables and index builds',
    sql: `
      CREATE TABLE e (id int);
      CREATE INDEX e_id ON e (id);
      CREATE TABLE p (id int, k int);
      INSERT INTO p SELECT g, g % 4 FROM generate_series(1, 10000) g;
      CREATE INDEX p_k ON p (k);
      CREATE TABLE t (id int);
      INSERT INTO t SELECT g FROM generate_series(1, 6000) g;
      CREATE INDEX t_id ON t (id) WITH (fillfactor = 10);
      CREATE TABLE w (id int, s text);
      INSERT INTO w SELECT g, ${wideKey('g')} FROM generate_series(1, 600) g;
      CREATE INDEX w_s ON w (s);
      CREATE TABLE m (id int);
      INSERT INTO m SELECT g FROM generate_series(1, 1000) g;
      CREATE INDEX m_id ON m (id);
      CREATE TABLE s (id int);
      INSERT INTO s SELECT g FROM generate_series(1, 4000) g;
      CREATE INDEX s_id ON s (id);
      CREATE TABLE b (id int PRIMARY KEY, a int, c int);
      INSERT INTO b SELECT g, g, g % 50 FROM generate_series(1, 1000) g;
      CREATE INDEX b_a ON b (a);
      CREATE INDEX b_c ON b (c);
    `,
  },
]

export const btreeSteps: WorkloadStep[] = [
  {
    name: 'inserts and splits',
    sql: `
      INSERT INTO e SELECT g FROM generate_series(1, 2000) g;
      INSERT INTO e SELECT (random() * 100000)::int FROM generate_series(1, 1500) g;
    `,
  },
  {
    name: 'posting lists: vacuum with updates, then posting-list splits',
    sql: `
      DELETE FROM p WHERE k = 0 OR (k = 1 AND id % 3 = 0);
      VACUUM p;
      INSERT INTO p SELECT g, g % 4 FROM generate_series(10001, 16000) g;
    `,
  },
  {
    name: 'page deletion',
    sql: `
      DELETE FROM t WHERE id BETWEEN 1000 AND 5000;
      DELETE FROM w WHERE id BETWEEN 100 AND 500;
      DELETE FROM m WHERE id < 990;
      VACUUM t; VACUUM w; VACUUM m;
    `,
  },
  {
    name: 'page reuse and a split fast root',
    sql: `
      SELECT txid_current();
      VACUUM t;
      INSERT INTO t SELECT 1000 + g % 4000 FROM generate_series(1, 3000) g;
      INSERT INTO m SELECT g FROM generate_series(1001, 2000) g;
    `,
  },
  {
    name: 'simple deletion of LP_DEAD items',
    sql: `
      DELETE FROM s WHERE id BETWEEN 1000 AND 3000 AND id % 2 = 0;
      SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off;
      SELECT sum(id) FROM s WHERE id BETWEEN 1000 AND 3000;
      INSERT INTO s SELECT 1000 + g % 2000 FROM generate_series(1, 1200) g;
    `,
  },
  {
    name: 'bottom-up deletion',
    sql: `
      UPDATE b SET a = a + 1;
      UPDATE b SET a = a + 1;
      UPDATE b SET a = a + 1;
    `,
  },
]

export const BTREE_TYPES = [
  'INSERT_LEAF',
  'INSERT_UPPER',
  'INSERT_META',
  'SPLIT_L',
  'SPLIT_R',
  'INSERT_POST',
  'DEDUP',
  'DELETE',
  'UNLINK_PAGE',
  'UNLINK_PAGE_META',
  'NEWROOT',
  'MARK_PAGE_HALFDEAD',
  'VACUUM',
  'REUSE_PAGE',
  'META_CLEANUP',
] as const

/** Sub-cases that change which code path redo takes, counted from the records themselves. */
export interface BtreeCensus {
  records: Record<string, number>
  splitWithPostingSplit: number
  vacuumWithUpdates: number
  deleteWithUpdates: number
  deleteWithDeletions: number
  unlinkOfInternalPage: number
  newrootLevel0: number
  newrootAbove: number
}

export function btreeCensus(records: DecodedRecord[]): BtreeCensus {
  const c: BtreeCensus = {
    records: {},
    splitWithPostingSplit: 0,
    vacuumWithUpdates: 0,
    deleteWithUpdates: 0,
    deleteWithDeletions: 0,
    unlinkOfInternalPage: 0,
    newrootLevel0: 0,
    newrootAbove: 0,
  }
  for (const r of records) {
    if (r.xl_rmid !== RM.BTREE) continue
    const info = r.rmgrInfo
    const name = BTREE_TYPES[info >> 4] ?? `0x${info.toString(16)}`
    c.records[name] = (c.records[name] ?? 0) + 1
    const main = r.mainData()
    if ((info === 0x30 || info === 0x40) && main.readUInt16LE(8) !== 0) c.splitWithPostingSplit++
    if (info === 0xc0 && main.readUInt16LE(2) > 0) c.vacuumWithUpdates++
    if (info === 0x70 && main.readUInt16LE(6) > 0) c.deleteWithUpdates++
    if (info === 0x70 && main.readUInt16LE(4) > 0) c.deleteWithDeletions++
    if ((info === 0x80 || info === 0x90) && r.block(3) !== undefined) c.unlinkOfInternalPage++
    if (info === 0xa0) {
      if (main.readUInt32LE(4) === 0) c.newrootLevel0++
      else c.newrootAbove++
    }
  }
  return c
}
