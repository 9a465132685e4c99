/**
 * SQL workloads that make PostgreSQL 15 write every Heap and Heap2 record type, for the redo tests.
 *
 * Each step says which records it is there for. They run in one psql session per step, autocommit unless
 * a step says BEGIN; two "concurrent" sessions are simulated with prepared transactions (a prepared
 * transaction stays in progress and holds its locks while the next statement runs), which needs
 * max_prepared_transactions > 0.
 */
import type { WorkloadStep } from '../../../support/pg-cluster.js'

/** Record types the main workload must exercise (labels as recordLabel/pg_waldump print them). */
export const HEAP_TYPES_MAIN = [
  'Heap/INSERT',
  'Heap/INSERT+INIT',
  'Heap/DELETE',
  'Heap/UPDATE',
  'Heap/UPDATE+INIT',
  'Heap/HOT_UPDATE',
  'Heap/HEAP_CONFIRM',
  'Heap/LOCK',
  'Heap/INPLACE',
  'Heap2/PRUNE',
  'Heap2/VACUUM',
  'Heap2/FREEZE_PAGE',
  'Heap2/VISIBLE',
  'Heap2/MULTI_INSERT',
  'Heap2/MULTI_INSERT+INIT',
  'Heap2/LOCK_UPDATED',
] as const

export const heapSetup: WorkloadStep[] = [
  {
    name: 'tables',
    sql: `
      CREATE TABLE t (id int PRIMARY KEY, k int, pad text, filler text) WITH (fillfactor = 70);
      -- rows of ~530 bytes with a changed middle column: same-page updates use prefix/suffix compression
      CREATE TABLE wide (id int PRIMARY KEY, a text, b text, c text) WITH (fillfactor = 40);
      CREATE TABLE oc (id int PRIMARY KEY, v int);
      CREATE TABLE lu (id int PRIMARY KEY, v int);
      CREATE TABLE cp (id int, v text);
      CREATE TABLE vmt (id int, v int);
      CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k);
      CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (100);
      CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (100) TO (300);
    `,
  },
]

export const heapSteps: WorkloadStep[] = [
  {
    // INSERT, INSERT+INIT
    name: 'insert',
    sql: `
      INSERT INTO t SELECT g, g % 10, repeat('x', 40), md5(g::text) FROM generate_series(1, 3000) g;
      INSERT INTO wide SELECT g, repeat('a', 200), repeat('b', 100), repeat('c', 200) FROM generate_series(1, 120) g;
      INSERT INTO lu SELECT g, 0 FROM generate_series(1, 20) g;
      INSERT INTO pt SELECT g, g % 200 FROM generate_series(1, 400) g;
    `,
  },
  {
    // HOT_UPDATE (non-indexed column, room on the page), UPDATE (indexed column), UPDATE+INIT (grown rows
    // move to new pages), prefix/suffix compression on wide
    name: 'update',
    sql: `
      UPDATE t SET k = k + 1 WHERE id % 7 = 0;
      UPDATE t SET id = id + 100000 WHERE id % 50 = 0;
      UPDATE t SET filler = repeat('y', 700) WHERE id % 13 = 0;
      UPDATE wide SET b = repeat('z', 100) WHERE id % 2 = 0;
      UPDATE wide SET c = repeat('q', 200) WHERE id % 3 = 0;
      UPDATE wide SET a = repeat('r', 200) WHERE id % 5 = 0;
      UPDATE wide SET b = repeat('s', 150) WHERE id % 7 = 0;
    `,
  },
  {
    // DELETE, DELETE with IS_PARTITION_MOVE
    name: 'delete',
    sql: `
      DELETE FROM t WHERE id % 11 = 0;
      UPDATE pt SET k = k + 100 WHERE k < 20;
    `,
  },
  {
    // LOCK: every row-lock strength, and a multixact (two share lockers)
    name: 'locks',
    sql: `
      BEGIN;
      SELECT count(*) FROM (SELECT * FROM t WHERE id BETWEEN 1 AND 30 FOR UPDATE) s;
      SELECT count(*) FROM (SELECT * FROM t WHERE id BETWEEN 31 AND 60 FOR NO KEY UPDATE) s;
      SELECT count(*) FROM (SELECT * FROM t WHERE id BETWEEN 61 AND 90 FOR SHARE) s;
      SELECT count(*) FROM (SELECT * FROM t WHERE id BETWEEN 91 AND 120 FOR KEY SHARE) s;
      COMMIT;
      BEGIN;
      SELECT count(*) FROM (SELECT * FROM t WHERE id BETWEEN 200 AND 220 FOR SHARE) s;
      PREPARE TRANSACTION 'share1';
      BEGIN;
      SELECT count(*) FROM (SELECT * FROM t WHERE id BETWEEN 200 AND 220 FOR SHARE) s;
      PREPARE TRANSACTION 'share2';
      COMMIT PREPARED 'share1';
      COMMIT PREPARED 'share2';
      UPDATE t SET k = -1 WHERE id BETWEEN 200 AND 220;
    `,
  },
  {
    // LOCK_UPDATED: a key-share lock on a row whose update (in a still-open transaction) it must follow
    name: 'lock-updated',
    sql: `
      BEGIN;
      UPDATE lu SET v = v + 1 WHERE id <= 10;
      PREPARE TRANSACTION 'upd1';
      SELECT count(*) FROM (SELECT * FROM lu WHERE id <= 10 FOR KEY SHARE) s;
      COMMIT PREPARED 'upd1';
      UPDATE lu SET v = v + 1 WHERE id <= 10;
    `,
  },
  {
    // speculative INSERT + HEAP_CONFIRM
    name: 'on-conflict',
    sql: `
      INSERT INTO oc SELECT g, 0 FROM generate_series(1, 200) g ON CONFLICT DO NOTHING;
      INSERT INTO oc SELECT g, 1 FROM generate_series(150, 300) g ON CONFLICT (id) DO UPDATE SET v = excluded.v;
      INSERT INTO oc VALUES (1, 5) ON CONFLICT DO NOTHING;
    `,
  },
  {
    // MULTI_INSERT+INIT into a fresh table, then MULTI_INSERT onto a partly filled page
    name: 'copy',
    sql: `
      COPY cp FROM PROGRAM 'seq 1 3000 | sed "s/.*/&\tpadding-&-padding/"';
      COPY cp FROM PROGRAM 'seq 1 1000 | sed "s/.*/&\tmore-&/"';
    `,
  },
  {
    // PRUNE, VACUUM, FREEZE_PAGE, VISIBLE; INPLACE (pg_class statistics); ANALYZE (INPLACE too)
    name: 'vacuum',
    sql: `
      VACUUM t;
      VACUUM wide;
      VACUUM (FREEZE) cp;
      ANALYZE t;
      VACUUM FREEZE t;
      VACUUM pt;
    `,
  },
  {
    // VM bits cleared implicitly, then VISIBLE images of the same VM page: INSERT / UPDATE / DELETE on
    // all-visible pages (ALL_VISIBLE_CLEARED), a row lock on an all-frozen page (ALL_FROZEN_CLEARED),
    // COPY onto an all-visible page (MULTI_INSERT with ALL_VISIBLE_CLEARED), then VACUUM sets bits again
    name: 'vm-clears',
    sql: `
      INSERT INTO vmt SELECT g, 0 FROM generate_series(1, 5000) g;
      VACUUM (FREEZE) vmt;
      UPDATE vmt SET v = 1 WHERE id = 1;
      DELETE FROM vmt WHERE id = 2000;
      INSERT INTO t VALUES (900001, 1, 'new', 'row');
      UPDATE t SET k = 5 WHERE id = 400;
      SELECT count(*) FROM (SELECT * FROM vmt WHERE id = 3000 FOR UPDATE) s;
      COPY vmt (id) FROM PROGRAM 'seq 1 20';
      VACUUM vmt;
      VACUUM t;
      UPDATE vmt SET v = 2 WHERE id = 4000;
      VACUUM vmt;
    `,
  },
]

/** TRUNCATE (Heap/TRUNCATE needs wal_level=logical) and catalog changes that log NEW_CID under logical. */
export const logicalSteps: WorkloadStep[] = [
  {
    name: 'logical',
    sql: `
      SELECT 1 FROM pg_create_logical_replication_slot('heap_redo_slot', 'pgoutput');
      CREATE TABLE tr (id int PRIMARY KEY, v text);
      INSERT INTO tr SELECT g, 'v' || g FROM generate_series(1, 500) g;
      UPDATE tr SET v = v || '!' WHERE id % 3 = 0;
      DELETE FROM tr WHERE id % 5 = 0;
      TRUNCATE tr;
      VACUUM FULL pg_class;
      SELECT pg_drop_replication_slot('heap_redo_slot');
    `,
  },
]
