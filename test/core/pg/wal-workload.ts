/**
 * A mixed PostgreSQL 15 workload for WAL decoder tests, and helpers to capture its WAL.
 *
 * It touches every common record family: pgbench (heap, btree, xact), CREATE INDEX (XLOG/FPI), a TOAST
 * table, UPDATE/DELETE, VACUUM and VACUUM FREEZE (Heap2), sequences, savepoints and ROLLBACK, CREATE
 * DATABASE (Database/CREATE_WAL_LOG + FPIs), two-phase commit, a 100 kB logical message and a commit with
 * many subtransactions (records crossing pages), and a segment switch. Sized to run in a few seconds.
 */
import { cpSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { PgCluster, WorkloadStep } from '../../support/pg-cluster.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'

export const MIXED_WORKLOAD: WorkloadStep[] = [
  { name: 'pgbench-init', pgbench: ['-i', '-s', '1', '-q'] },
  { name: 'pgbench-run', pgbench: ['-c', '1', '-t', '300', '--random-seed=42', '-n'] },
  { name: 'create-index', sql: 'CREATE INDEX accounts_abalance ON pgbench_accounts (abalance);' },
  {
    name: 'toast',
    sql: `CREATE TABLE toasty (id int PRIMARY KEY, body text);
      ALTER TABLE toasty ALTER COLUMN body SET STORAGE EXTERNAL;
      INSERT INTO toasty SELECT g, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 300) i)
        FROM generate_series(1, 20) g;
      UPDATE toasty SET body = body || 'x' WHERE id % 3 = 0;
      DELETE FROM toasty WHERE id % 5 = 0;`,
  },
  {
    name: 'update-delete',
    sql: `UPDATE pgbench_accounts SET filler = 'u' WHERE aid % 50 = 0;
      DELETE FROM pgbench_accounts WHERE aid % 100 = 1;
      DELETE FROM pgbench_history WHERE tid % 2 = 0;`,
  },
  { name: 'vacuum', sql: 'VACUUM pgbench_accounts; VACUUM toasty; VACUUM FREEZE pgbench_history;' },
  {
    name: 'sequences',
    sql: `CREATE SEQUENCE s1; SELECT nextval('s1') FROM generate_series(1, 100);
      CREATE TABLE withserial (id serial PRIMARY KEY, v text); INSERT INTO withserial (v) SELECT 'v' FROM generate_series(1, 200);`,
  },
  {
    name: 'savepoints',
    sql: `BEGIN; INSERT INTO withserial (v) VALUES ('a'); SAVEPOINT sp1; INSERT INTO withserial (v) VALUES ('b');
      ROLLBACK TO sp1; SAVEPOINT sp2; INSERT INTO withserial (v) VALUES ('c'); RELEASE sp2; COMMIT;
      BEGIN; INSERT INTO withserial (v) VALUES ('rolled back'); ROLLBACK;`,
  },
  {
    name: 'many-subxacts',
    sql: `CREATE TABLE subx (i int);
      DO $$ BEGIN FOR i IN 1..3000 LOOP BEGIN INSERT INTO subx VALUES (i); EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$;`,
  },
  { name: 'logical-message', sql: "SELECT pg_logical_emit_message(false, 'big', repeat('m', 100000));" },
  { name: 'create-database', sql: 'CREATE DATABASE db2;' },
  {
    name: 'two-phase',
    sql: `BEGIN; INSERT INTO withserial (v) VALUES ('2pc-1'); PREPARE TRANSACTION 'gx1'; COMMIT PREPARED 'gx1';
      BEGIN; INSERT INTO withserial (v) VALUES ('2pc-2'); PREPARE TRANSACTION 'gx2'; ROLLBACK PREPARED 'gx2';`,
  },
  { name: 'vacuum-analyze', sql: 'VACUUM ANALYZE;' },
  { name: 'switch', sql: 'SELECT pg_switch_wal();' },
  { name: 'after-switch', sql: 'CREATE TABLE after_switch AS SELECT g FROM generate_series(1, 1000) g; CHECKPOINT;' },
]

/** Options every workload cluster needs: 2PC for the prepared transactions. */
export const WORKLOAD_CLUSTER_OPTIONS = { maxPreparedTransactions: 4 } as const

/** Runs the workload; returns the LSN before it started and the insert LSN after it. */
export async function runMixedWorkload(pg: PgCluster): Promise<{ startLsn: Lsn; endLsn: Lsn }> {
  const steps = await pg.runWorkload(MIXED_WORKLOAD)
  return { startLsn: steps[0]!.lsnBefore, endLsn: steps[steps.length - 1]!.lsnAfter }
}

/** Copies pg_wal to a fresh temp dir (so tests read stable files, owned by us). */
export function snapshotWal(pg: PgCluster, prefix = 'ps-wal-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  const dest = join(dir, 'pg_wal')
  cpSync(pg.walDir, dest, { recursive: true })
  return dest
}
