// Rarer PostgreSQL 15 records through WAL ingest, against a real primary: every visibility-map clear a heap
// record implies (UPDATE old and new page, FOR UPDATE / FOR KEY SHARE locks, DELETE, INSERT), a truncation
// followed by writes past the new end, unlogged tables and sequences (init forks), TRUNCATE / CLUSTER /
// VACUUM FULL of mapped catalogs (per-database and shared relmap updates), a template database of 40
// relations copied with both strategies, DROP DATABASE, a database dropped and created again with the same
// OID (same relfilenodes), subtransactions and two-phase commit. After a CHECKPOINT, every page and size read
// from the repository equals the primary's files, every relation file of the primary is known, and the
// pg_xact / pg_multixact segments are byte for byte the primary's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster } from '../../support/pg-cluster.js'
import { comparePages } from '../../support/page-compare.js'
import { loadConfig } from '../../../src/core/config/index.js'
import { withRepository, type AppContext } from '../../../src/core/app/context.js'
import { createTenant } from '../../../src/core/app/timelines.js'
import { importTimeline } from '../../../src/core/app/import.js'
import { ingestWalFiles } from '../../../src/core/app/ingest-files.js'
import { readerFor } from '../../../src/core/app/pages.js'
import { parseTenantId, parseTimelineId } from '../../../src/core/model/ids.js'
import { SlruKind } from '../../../src/core/pg/slru.js'

describe('WAL ingest of rarer records', () => {
  let pg: PgCluster
  let workdir: string
  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'ingest-rare', checksums: true, maxPreparedTransactions: 5 })
    workdir = mkdtempSync(join(tmpdir(), 'ps-ingest-rare-'))
  })
  afterAll(async () => {
    await pg?.destroy()
    if (workdir) rmSync(workdir, { recursive: true, force: true })
  })

  it('serves the pages, sizes, relations and SLRU segments of the primary', async () => {
    const ctx: AppContext = { config: await loadConfig({ workdir, overrides: ['no_sync=true'], env: {} }), env: process.env }
    await pg.sql(`CREATE TABLE v (id int primary key, pad text) WITH (autovacuum_enabled = off);
      INSERT INTO v SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g; VACUUM (FREEZE) v; CHECKPOINT;`)
    const tenantId = parseTenantId((await createTenant(ctx)).tenantId)
    const info = await importTimeline(ctx, { tenantId, connString: pg.connString() })
    const timelineId = parseTimelineId(info.timelineId)
    // VM clears of every kind
    await pg.sql(`UPDATE v SET pad = 'y' WHERE id % 500 = 0;
      BEGIN; SELECT * FROM v WHERE id % 700 = 1 FOR UPDATE; COMMIT;
      BEGIN; SELECT * FROM v WHERE id % 900 = 2 FOR KEY SHARE; COMMIT;
      DELETE FROM v WHERE id % 1000 = 3;
      INSERT INTO v SELECT g, 'z' FROM generate_series(30000, 30010) g;`)
    await pg.sql(`VACUUM (FREEZE) v; UPDATE v SET pad = repeat('q', 300) WHERE id = 15000;`)
    // truncate then write
    await pg.sql(`DELETE FROM v WHERE id > 12000; VACUUM v; INSERT INTO v SELECT g, repeat('w', 200) FROM generate_series(40000, 41000) g; VACUUM v;`)
    // unlogged, sequences, truncate, cluster, relmap
    await pg.sql(`CREATE UNLOGGED TABLE u (id int primary key, v text); INSERT INTO u SELECT g, 'u' FROM generate_series(1, 100) g;
      CREATE SEQUENCE s; SELECT nextval('s') FROM generate_series(1, 100);
      CREATE UNLOGGED SEQUENCE us; SELECT nextval('us');
      CREATE TABLE tt (id int); INSERT INTO tt SELECT generate_series(1, 1000); TRUNCATE tt; INSERT INTO tt SELECT generate_series(1, 10);
      VACUUM FULL pg_class; VACUUM FULL pg_database; CLUSTER v USING v_pkey;`)
    // template with many relations, both strategies, drop
    await pg.sql('CREATE DATABASE tmpl STRATEGY wal_log')
    const many = Array.from({ length: 40 }, (_, i) => `CREATE TABLE m${i} (id int primary key, v text); INSERT INTO m${i} SELECT g, md5(g::text) FROM generate_series(1, ${(i + 1) * 50}) g;`).join('\n')
    await pg.sql(`${many} VACUUM; CREATE UNLOGGED TABLE um (id int primary key);`, { db: 'tmpl' })
    await pg.sql('CREATE DATABASE c1 TEMPLATE tmpl STRATEGY file_copy')
    await pg.sql('CREATE DATABASE c2 TEMPLATE tmpl STRATEGY wal_log')
    await pg.sql('CREATE DATABASE c3 TEMPLATE tmpl STRATEGY file_copy')
    await pg.sql('DROP DATABASE c3')
    await pg.sql('INSERT INTO m1 SELECT g, md5(g::text) FROM generate_series(1000, 3000) g; VACUUM FULL pg_class;', { db: 'c1' })
    const c1oid = await pg.sql("SELECT oid FROM pg_database WHERE datname = 'c1'")
    await pg.sql('DROP DATABASE c1')
    await pg.sql(`CREATE DATABASE c1 OID ${c1oid} TEMPLATE tmpl STRATEGY wal_log`)
    await pg.sql('CREATE TABLE extra (id int); INSERT INTO extra SELECT generate_series(1, 5000);', { db: 'c1' })
    await pg.sql('DROP DATABASE c1')
    await pg.sql(`CREATE DATABASE c1 OID ${c1oid} TEMPLATE tmpl STRATEGY file_copy`)
    await pg.sql('INSERT INTO m2 SELECT g, md5(g::text) FROM generate_series(1000, 1100) g;', { db: 'c1' })
    // two-phase, subxacts
    const subs = Array.from({ length: 100 }, (_, i) => `SAVEPOINT s${i}; INSERT INTO tt VALUES (${i});`).join(' ')
    await pg.sql(`BEGIN; ${subs} COMMIT;
      BEGIN; INSERT INTO tt VALUES (-1); PREPARE TRANSACTION 'a';
      BEGIN; INSERT INTO tt VALUES (-2); ${subs} PREPARE TRANSACTION 'b';
      BEGIN; CREATE TABLE dropme (id int); INSERT INTO dropme VALUES (1); PREPARE TRANSACTION 'c';
      COMMIT PREPARED 'a'; ROLLBACK PREPARED 'c';
      BEGIN; INSERT INTO tt VALUES (-3); PREPARE TRANSACTION 'open';`)
    await pg.sql('COMMIT PREPARED \'b\'')
    await pg.sql('CHECKPOINT')
    const at = await pg.insertLsn()
    await ingestWalFiles(ctx, { tenantId, timelineId, walPaths: [pg.walDir], endLsn: at })

    const names = (await pg.sql("SELECT oid FROM pg_database WHERE datname IN ('postgres','tmpl','c1','c2') ORDER BY oid")).split('\n').map(Number)
    const dbs = [{ spc: 1664, db: 0 }, ...names.map((db) => ({ spc: 1663, db }))]
    // Databases made with STRATEGY wal_log carry no VM bits in the WAL (page-compare.ts); c1 is a file copy of
    // such a template, so it has the template's zero bits, as on any standby.
    const walLogDbs = new Set((await pg.sql("SELECT oid FROM pg_database WHERE datname IN ('tmpl','c1','c2')")).split('\n').map(Number))
    await withRepository(ctx, async (repo) => {
      const tenant = await repo.tenant(tenantId)
      const tl = await tenant.timeline(timelineId)
      const reader = readerFor(tenant, tl)
      const lsn = tl.lastRecordLsn
      const cmp = await comparePages(pg, reader, lsn, dbs, { skipVmOfDbs: walLogDbs })
      expect(cmp.blocks).toBeGreaterThan(3000)
      expect(cmp.sizeMismatches).toEqual([])
      expect(cmp.mismatches.slice(0, 10)).toEqual([])
      // Every relation file of the primary is known (FSM aside; unlogged main forks aside)
      const missing: string[] = []
      for (const { spc, db } of dbs) {
        const dir = spc === 1664 ? join(pg.dataDir, 'global') : join(pg.dataDir, 'base', String(db))
        const ours = new Set(reader.relations(spc, db, lsn).map((r) => `${r.relNode}${['', '_fsm', '_vm', '_init'][r.forkNum]}`))
        for (const f of readdirSync(dir)) {
          if (!/^\d+(_vm|_init|_fsm)?$/.test(f) || f.endsWith('_fsm')) continue
          if (!ours.has(f) && !readdirSync(dir).includes(`${f}_init`) && statSync(join(dir, f)).size > 0) missing.push(`${db}/${f}`)
        }
      }
      expect(missing).toEqual([])
      expect(reader.databases(lsn).map((d) => d.dbNode).sort()).toEqual([0, 1, 4, 5, ...names].filter((v, i, a) => a.indexOf(v) === i).sort())
      // SLRU
      for (const [kind, sub] of [[SlruKind.Clog, 'pg_xact'], [SlruKind.MultixactOffsets, 'pg_multixact/offsets'], [SlruKind.MultixactMembers, 'pg_multixact/members']] as const) {
        const segs = reader.slruSegments(kind, lsn)
        const theirs = readdirSync(join(pg.dataDir, sub)).map((n) => parseInt(n, 16)).sort((a, b) => a - b)
        expect(segs).toEqual(theirs)
        for (const s of segs) {
          const data = await reader.slruSegment(kind, s, lsn)
          const file = join(pg.dataDir, sub, s.toString(16).toUpperCase().padStart(4, '0'))
          const their = readFileSync(file)
          expect(data.length, `${sub} ${s} length`).toBe(their.length)
          expect(data.equals(their), `${sub} ${s}`).toBe(true)
        }
      }
    })
  }, 300_000)
})
