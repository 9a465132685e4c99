/**
 * Exports at many LSNs of a timeline with a varied history, taken between checkpoints (no CHECKPOINT at the
 * LSNs): multixacts, subtransactions (overflowed), a database created and dropped, truncations (TRUNCATE
 * and VACUUM's tail truncation), sequences, an unlogged table, VACUUM FULL (new relfilenodes), prepared
 * transactions open at the LSN. For each: pg_controldata agrees with the primary's counters and the
 * SLRU files reach the pages of the next xid / multi / offset; PostgreSQL starts without recovery,
 * pg_amcheck (heap and B-tree with heapallindexed) passes, the prepared transactions commit, and the
 * first WAL record it writes follows the synthetic checkpoint (xl_prev = the checkpoint, at its end).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster, pgAvailable } from '../support/pg-cluster.js'
import { runCli } from '../support/cli.js'
import { formatLsn, parseLsn, type Lsn } from '../../src/core/pg/lsn.js'
import { runPgTool } from '../../src/core/postgres/install.js'

interface Point {
  name: string
  lsn: Lsn
  prepared: string[]
  counts: string
}

const COUNTS_SQL = `SELECT (SELECT count(*) FROM mx) || ',' || (SELECT count(*) FROM sub) || ',' || (SELECT count(*) FROM trunc_me)
  || ',' || (SELECT count(*) FROM vf) || ',' || (SELECT last_value FROM seq1)`

function field(cd: string, name: string): string {
  const m = new RegExp(`^${name.replace(/[()]/g, '\\$&')}:\\s+(.*)$`, 'm').exec(cd)
  if (!m) throw new Error(`pg_controldata has no ${name}`)
  return m[1]!
}

describe.skipIf(!pgAvailable())('exports at LSNs of a varied history', () => {
  let pg: PgCluster
  let root: string
  let tenant: string
  let timeline: string
  const env = () => ({ PAGESERVER_WORKDIR: join(root, '.neon') })
  const points: Point[] = []

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'exphist', checksums: true, maxPreparedTransactions: 5 })
    root = mkdtempSync(join(tmpdir(), 'ps-exphist-'))
    chmodSync(root, 0o755)
    const init = await runCli(['init', '-c', 'no_sync=true', '-c', 'checkpoint_distance=2MiB'], { env: env() })
    expect(init.code, init.stderr).toBe(0)
  })
  afterAll(async () => {
    await pg?.destroy()
    if (root) rmSync(root, { recursive: true, force: true })
  })

  async function point(name: string): Promise<void> {
    const prepared = (await pg.sql('SELECT gid FROM pg_prepared_xacts ORDER BY gid')).split('\n').filter((x) => x !== '')
    const counts = await pg.sql(COUNTS_SQL)
    points.push({ name, lsn: await pg.insertLsn(), prepared, counts })
  }

  it('starts PostgreSQL cleanly on an export at each LSN', async () => {
    await pg.sql(`
      CREATE TABLE mx (id int PRIMARY KEY, v text);
      INSERT INTO mx SELECT g, 'v' || g FROM generate_series(1, 300) g;
      CREATE TABLE sub (id int PRIMARY KEY, v text);
      CREATE TABLE trunc_me (id int PRIMARY KEY, pad text);
      INSERT INTO trunc_me SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g;
      CREATE TABLE vf (id int PRIMARY KEY, v text);
      INSERT INTO vf SELECT g, md5(g::text) FROM generate_series(1, 3000) g;
      CREATE SEQUENCE seq1;
      CREATE UNLOGGED TABLE ul (id int PRIMARY KEY, v text);
      INSERT INTO ul SELECT g, 'u' FROM generate_series(1, 1000) g;
    `)
    tenant = (await runCli(['tenant', 'create', '--json'], { env: env() })).json<{ tenantId: string }>().tenantId
    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', pg.connString(), '--json'], { env: env(), timeoutMs: 120_000 })
    expect(imp.code, imp.stderr).toBe(0)
    timeline = imp.json<{ timelineId: string }>().timelineId

    // Multixacts: a key-share lock by the transaction, an update by its subtransaction.
    await pg.sql("BEGIN; SELECT count(*) FROM (SELECT * FROM mx FOR KEY SHARE) s; SAVEPOINT a; UPDATE mx SET v = v || '+'; COMMIT;")
    await pg.sql("SELECT nextval('seq1') FROM generate_series(1, 70)")
    await point('multixacts')
    // Subtransactions, overflowed (more than 64 in one transaction), and a prepared one holding a multixact lock.
    await pg.sql(`DO $$ BEGIN FOR i IN 1..200 LOOP BEGIN INSERT INTO sub VALUES (i, 's'); IF i % 7 = 0 THEN RAISE EXCEPTION 'x'; END IF;
      EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$;`)
    await pg.sql("BEGIN; SELECT count(*) FROM (SELECT * FROM mx WHERE id < 50 FOR SHARE) s; SAVEPOINT b; INSERT INTO sub VALUES (1000, 'p'); PREPARE TRANSACTION 'p1';")
    await point('subxacts, prepared p1')
    // A database created (with data) and then dropped; a second prepared transaction.
    await pg.sql('CREATE DATABASE gone')
    await pg.sql('CREATE TABLE g (id int PRIMARY KEY); INSERT INTO g SELECT generate_series(1, 1000);', { db: 'gone' })
    await point('database created')
    await pg.sql('DROP DATABASE gone')
    await pg.sql("BEGIN; UPDATE vf SET v = 'p2' WHERE id = 1; PREPARE TRANSACTION 'p2';")
    await point('database dropped, p1 p2 prepared')
    // Truncations: TRUNCATE (new relfilenode), and VACUUM cutting the tail.
    await pg.sql('DELETE FROM trunc_me WHERE id > 1000; VACUUM trunc_me;')
    await point('vacuum truncated')
    await pg.sql("BEGIN; TRUNCATE trunc_me; INSERT INTO trunc_me SELECT g, 'y' FROM generate_series(1, 10) g; COMMIT; COMMIT PREPARED 'p1';")
    await point('truncated, p1 committed')
    // VACUUM FULL rewrites into new relfilenodes (also a mapped catalog).
    await pg.sql("ROLLBACK PREPARED 'p2'; DELETE FROM vf WHERE id % 2 = 0 AND id > 1; VACUUM FULL vf; VACUUM FULL pg_class; SELECT nextval('seq1');")
    await pg.sql("INSERT INTO ul SELECT g, 'u' FROM generate_series(1001, 2000) g")
    await point('vacuum full')
    await pg.sql("BEGIN; INSERT INTO sub VALUES (2000, 'p3'); PREPARE TRANSACTION 'p3';")
    await point('p3 prepared')
    const last = await pg.insertLsn()
    const sync = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(last), '--json'], { env: env(), timeoutMs: 120_000 })
    expect(sync.code, sync.stderr).toBe(0)
    const primaryCd = (await runPgTool(pg.inst, 'pg_controldata', ['-D', pg.dataDir])).stdout

    for (const [i, p] of points.entries()) {
      const where = `${p.name} (${formatLsn(p.lsn)})`
      const dir = join(root, `x-${i}`)
      const ex = await runCli(['timeline', 'export', '--tenant', tenant, '--timeline', timeline, '--lsn', formatLsn(p.lsn), '-D', dir, '--json'], { env: env(), timeoutMs: 180_000 })
      expect(ex.code, ex.stderr).toBe(0)
      const res = ex.json<{ checkpointLsn: string }>()
      const cd = (await runPgTool(pg.inst, 'pg_controldata', ['-D', dir])).stdout
      expect(field(cd, 'Latest checkpoint location'), where).toBe(res.checkpointLsn)
      expect(field(cd, "Latest checkpoint's REDO location"), where).toBe(res.checkpointLsn)
      for (const f of ['Database system identifier', 'wal_level setting', 'Data page checksum version', "Latest checkpoint's TimeLineID", 'max_prepared_xacts setting']) {
        expect(field(cd, f), `${f} at ${where}`).toBe(field(primaryCd, f))
      }
      expect(field(cd, 'Minimum recovery ending location')).toBe('0/0')
      // The SLRU files reach the page of the next xid / multixact / member offset.
      const nextXid = Number(field(cd, "Latest checkpoint's NextXID").split(':')[1])
      const nextMulti = Number(field(cd, "Latest checkpoint's NextMultiXactId"))
      const nextOff = Number(field(cd, "Latest checkpoint's NextMultiOffset"))
      const reach = (sub: string, unitsPerPage: number, next: number): void => {
        const page = Math.floor(next / unitsPerPage)
        const file = join(dir, sub, Math.floor(page / 32).toString(16).toUpperCase().padStart(4, '0'))
        if (next % unitsPerPage === 0) return
        expect(statSync(file).size, `${file} at ${where}`).toBeGreaterThanOrEqual(((page % 32) + 1) * 8192)
      }
      reach('pg_xact', 32768, nextXid)
      reach('pg_multixact/offsets', 2048, nextMulti)
      reach('pg_multixact/members', 1636, nextOff)
      expect(readdirSync(join(dir, 'pg_twophase')).length, where).toBe(p.prepared.length)

      const started = await PgCluster.startOnDataDir(dir, { name: `x-${i}`, settings: { fsync: false } })
      try {
        expect(started.logTail(200), where).not.toMatch(/automatic recovery in progress|redo starts at/)
        expect(await started.sql('SELECT gid FROM pg_prepared_xacts ORDER BY gid')).toBe(p.prepared.join('\n'))
        expect(await started.sql(COUNTS_SQL), where).toBe(p.counts.replace(/,\d+$/, ',') + (await started.sql('SELECT last_value FROM seq1')))
        expect(Number(await started.sql('SELECT last_value FROM seq1')) - Number(p.counts.split(',').at(-1))).toBeLessThanOrEqual(32)
        expect(await started.sql('SELECT count(*) FROM ul')).toBe('0')
        expect(await started.sql("SELECT count(*) FROM pg_database WHERE datname = 'gone'")).toBe(p.name === 'database created' ? '1' : '0')
        for (const gid of p.prepared) await started.sql(`COMMIT PREPARED '${gid}'`)
        // New multixacts, xids, writes after the start.
        await started.sql("BEGIN; SELECT count(*) FROM (SELECT * FROM mx FOR KEY SHARE) s; SAVEPOINT a; UPDATE mx SET v = v || '!'; COMMIT; INSERT INTO ul VALUES (1, 'a'); CREATE TABLE after_start AS SELECT generate_series(1, 100) g;")
        const am = await runPgTool(started.inst, 'pg_amcheck', ['-h', started.socketDir, '-p', String(started.port), '-U', 'postgres', '--all', '--install-missing', '--heapallindexed'], {
          timeoutMs: 120_000,
          okCodes: [1, 2],
        })
        expect(am.code, `${where}: ${am.stdout}${am.stderr}`).toBe(0)
        // The first record written after the start follows the synthetic checkpoint.
        const cpLsn = parseLsn(res.checkpointLsn)
        const wd = await runPgTool(pg.inst, 'pg_waldump', ['-p', join(dir, 'pg_wal'), '-s', res.checkpointLsn, '-n', '2'], { okCodes: [1] })
        const recs = wd.stdout.split('\n').filter((l) => l.startsWith('rmgr:'))
        expect(recs.length, wd.stdout + wd.stderr).toBe(2)
        expect(parseLsn(/prev ([0-9A-F/]+)/.exec(recs[1]!)![1]!), where).toBe(cpLsn)
        const gap = parseLsn(/lsn: ([0-9A-F/]+)/.exec(recs[1]!)![1]!) - cpLsn
        expect(gap >= 120n && gap <= 120n + 40n, `${where}: ${gap}`).toBe(true)
        await started.stop('fast')
      } catch (e) {
        throw new Error(`${where}: ${e instanceof Error ? e.message : String(e)}\n${started.logTail(30)}`)
      } finally {
        await started.destroy()
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }, 900_000)

  it('a branch at each LSN: PostgreSQL on its export streams its WAL into the branch, and a second export has it', async () => {
    for (const [i, p] of points.entries()) {
      const where = `${p.name} (${formatLsn(p.lsn)})`
      const br = await runCli(['timeline', 'branch', '--tenant', tenant, '--ancestor', timeline, '--lsn', formatLsn(p.lsn), '--json'], { env: env() })
      expect(br.code, br.stderr).toBe(0)
      const branch = br.json<{ timelineId: string }>().timelineId
      const dir = join(root, `b-${i}`)
      const ex = await runCli(['timeline', 'export', '--tenant', tenant, '--timeline', branch, '-D', dir, '--json'], { env: env(), timeoutMs: 180_000 })
      expect(ex.code, ex.stderr).toBe(0)
      const started = await PgCluster.startOnDataDir(dir, { name: `b-${i}`, settings: { fsync: false } })
      const dir2 = join(root, `b2-${i}`)
      try {
        const src = await runCli(['timeline', 'source', '--tenant', tenant, '--timeline', branch, '--from', started.connString(), '--json'], { env: env(), timeoutMs: 60_000 })
        expect(src.code, `${where}: ${src.stdout}${src.stderr}`).toBe(0)
        for (const gid of p.prepared) await started.sql(`COMMIT PREPARED '${gid}'`)
        await started.sql(`CREATE TABLE on_branch AS SELECT generate_series(1, 777) g; BEGIN; SELECT count(*) FROM (SELECT * FROM mx FOR KEY SHARE) s; SAVEPOINT a; UPDATE mx SET v = 'b'; COMMIT;`)
        const until = await started.insertLsn()
        const sync = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', branch, '--until', formatLsn(until), '--json'], { env: env(), timeoutMs: 120_000 })
        expect(sync.code, `${where}: ${sync.stdout}${sync.stderr}`).toBe(0)
        const ex2 = await runCli(['timeline', 'export', '--tenant', tenant, '--timeline', branch, '-D', dir2, '--json'], { env: env(), timeoutMs: 180_000 })
        expect(ex2.code, ex2.stderr).toBe(0)
      } finally {
        await started.destroy()
      }
      const again = await PgCluster.startOnDataDir(dir2, { name: `b2-${i}`, settings: { fsync: false } })
      try {
        expect(again.logTail(200), where).not.toMatch(/automatic recovery in progress|redo starts at/)
        expect(await again.sql("SELECT count(*) FROM on_branch")).toBe('777')
        expect(await again.sql("SELECT count(*) FROM mx WHERE v = 'b'")).toBe('300')
        expect(await again.sql('SELECT count(*) FROM pg_prepared_xacts')).toBe('0')
        const am = await runPgTool(again.inst, 'pg_amcheck', ['-h', again.socketDir, '-p', String(again.port), '-U', 'postgres', '--all', '--install-missing', '--heapallindexed'], {
          timeoutMs: 120_000,
          okCodes: [1, 2],
        })
        expect(am.code, `${where}: ${am.stdout}${am.stderr}`).toBe(0)
      } catch (e) {
        throw new Error(`${where}: ${e instanceof Error ? e.message : String(e)}\n${again.logTail(30)}`)
      } finally {
        await again.destroy()
      }
      rmSync(dir, { recursive: true, force: true })
      rmSync(dir2, { recursive: true, force: true })
    }
  }, 900_000)
})
