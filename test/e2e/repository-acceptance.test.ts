/**
 * Issue 4 acceptance, end to end through the CLI against a live PostgreSQL 15 primary:
 * import it, run a workload with `timeline sync` in between (some syncs killed with SIGKILL at random
 * moments and restarted), record LSNs at quiet moments together with a copy of the primary's data files
 * taken right after a CHECKPOINT, then check every block of every relation fork (free-space maps aside) at
 * every recorded LSN: our page equals the primary's after masking. The same on a branch created at an
 * earlier LSN. Then flipped bytes in layer and metadata files: corruption errors naming the file, never a
 * wrong page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { PgCluster } from '../support/pg-cluster.js'
import { runCli, CLI_BIN } from '../support/cli.js'
import { comparePages } from '../support/page-compare.js'
import { loadConfig } from '../../src/core/config/index.js'
import { withRepository, type AppContext } from '../../src/core/app/context.js'
import { readerFor } from '../../src/core/app/pages.js'
import { parseTenantId, parseTimelineId } from '../../src/core/model/ids.js'
import { formatLsn, parseLsn, type Lsn } from '../../src/core/pg/lsn.js'
import { PageserverError } from '../../src/core/lib/errors.js'
import { decodeHeader, HEADER_BYTES } from '../../src/core/layer/layer-format.js'

interface Quiet {
  lsn: Lsn
  snapshot: string
}

describe('repository acceptance: import, sync under SIGKILL, every page at every LSN, branches, corruption', () => {
  let pg: PgCluster
  let root: string
  let workdir: string
  let ctx: AppContext
  let tenant: string
  let timeline: string
  let dbs: Array<{ spc: number; db: number }>
  const quiet: Quiet[] = []
  const env = () => ({ PAGESERVER_WORKDIR: workdir })

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'acceptance', checksums: true, maxPreparedTransactions: 4 })
    root = mkdtempSync(join(tmpdir(), 'ps-accept-'))
    workdir = join(root, '.neon')
    const overrides = ['no_sync=true', 'checkpoint_distance=2MiB']
    ctx = { config: await loadConfig({ workdir, overrides, env: {} }), env: process.env }
    expect((await runCli(['init', ...overrides.flatMap((o) => ['-c', o])], { env: env() })).code).toBe(0)
  })
  afterAll(async () => {
    await pg?.destroy()
    if (root) rmSync(root, { recursive: true, force: true })
  })

  async function sync(until: Lsn): Promise<void> {
    const r = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(until), '--json'], { env: env(), timeoutMs: 120_000 })
    expect(r.code, r.stderr).toBe(0)
    expect(parseLsn(r.json<{ lastRecordLsn: string }>().lastRecordLsn) >= until).toBe(true)
  }

  /** Runs `timeline sync` and kills it with SIGKILL after a random delay; returns whether it was killed. */
  async function syncAndKill(until: Lsn, delayMs: number): Promise<boolean> {
    const child = spawn(process.execPath, [CLI_BIN, 'timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(until)], {
      env: { PATH: process.env.PATH, PAGESERVER_WORKDIR: workdir },
      stdio: 'ignore',
    })
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const timer = setTimeout(() => child.kill('SIGKILL'), delayMs)
    const code = await exited
    clearTimeout(timer)
    return code === null
  }

  async function quietMoment(): Promise<void> {
    await pg.sql('CHECKPOINT')
    const lsn = await pg.insertLsn()
    const snapshot = join(root, `snap-${quiet.length}`)
    mkdirSync(snapshot)
    cpSync(join(pg.dataDir, 'base'), join(snapshot, 'base'), { recursive: true })
    cpSync(join(pg.dataDir, 'global'), join(snapshot, 'global'), { recursive: true })
    quiet.push({ lsn, snapshot })
  }

  it('serves exactly the primary pages at every quiet LSN, also after SIGKILLs and on a branch', async () => {
    await pg.sql('CREATE TABLE early (id int primary key, v text); INSERT INTO early SELECT g, md5(g::text) FROM generate_series(1, 3000) g;')
    tenant = (await runCli(['tenant', 'create', '--json'], { env: env() })).json<{ tenantId: string }>().tenantId
    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', pg.connString(), '--json'], { env: env() })
    expect(imp.code, imp.stderr).toBe(0)
    timeline = imp.json<{ timelineId: string }>().timelineId

    // 1: pgbench tables with foreign keys.
    await pg.pgbench(['-i', '-s', '1', '-q', '--foreign-keys'])
    await quietMoment()
    await sync(quiet[0]!.lsn)

    // 2: concurrent OLTP, while syncs get killed at random moments.
    const bench = pg.pgbench(['-c', '4', '-j', '2', '-t', '300', '-n'])
    let killed = 0
    for (let i = 0; i < 6; i++) {
      const target = await pg.insertLsn()
      if (await syncAndKill(target, 150 + Math.floor(Math.random() * 600))) killed++
    }
    await bench
    await quietMoment()
    await sync(quiet[1]!.lsn)
    expect(killed).toBeGreaterThan(0)

    // 3: indexes, updates, deletes, vacuum with truncation, TOAST, sequences.
    await pg.sql(`
      CREATE INDEX ON early (v);
      UPDATE early SET v = v || '-u' WHERE id % 4 = 0;
      DELETE FROM early WHERE id > 2000;
      VACUUM early;
      CREATE TABLE toasty (id int, doc text);
      INSERT INTO toasty SELECT g, repeat(md5(g::text), 400) FROM generate_series(1, 50) g;
      CREATE SEQUENCE s;
      SELECT nextval('s') FROM generate_series(1, 100);
    `)
    await quietMoment()
    for (let i = 0; i < 3; i++) await syncAndKill(quiet[2]!.lsn, 100 + Math.floor(Math.random() * 400))
    await sync(quiet[2]!.lsn)

    // 4: two more databases (both CREATE DATABASE strategies), savepoints and rollbacks, two-phase commit,
    // VACUUM FREEZE.
    await pg.sql('CREATE DATABASE second STRATEGY file_copy')
    await pg.sql('CREATE DATABASE third STRATEGY wal_log')
    await pg.sql('CREATE TABLE other (id serial primary key, v text); INSERT INTO other (v) SELECT md5(g::text) FROM generate_series(1, 500) g;', { db: 'second' })
    await pg.sql('CREATE TABLE other (id serial primary key, v text); INSERT INTO other (v) SELECT md5(g::text) FROM generate_series(1, 500) g; VACUUM other;', { db: 'third' })
    await pg.sql(`
      BEGIN; INSERT INTO early VALUES (5001, 'a'); SAVEPOINT x; INSERT INTO early VALUES (5002, 'b'); ROLLBACK TO x; INSERT INTO early VALUES (5003, 'c'); COMMIT;
      BEGIN; INSERT INTO early VALUES (6001, 'rolled back'); ROLLBACK;
      BEGIN; INSERT INTO early VALUES (7001, 'prepared'); PREPARE TRANSACTION 'p1';
      COMMIT PREPARED 'p1';
      VACUUM FREEZE pgbench_accounts;
    `)
    await quietMoment()
    await sync(quiet[3]!.lsn)

    // 5: drop and truncate.
    await pg.sql('DROP TABLE toasty; TRUNCATE pgbench_history; DELETE FROM pgbench_accounts WHERE aid > 90000; VACUUM pgbench_accounts;')
    await quietMoment()
    await sync(quiet[4]!.lsn)
    expect(quiet.length).toBeGreaterThanOrEqual(5)

    const dbRows = (await pg.sql("SELECT oid FROM pg_database WHERE datname IN ('postgres', 'second', 'third') ORDER BY oid")).split('\n').map(Number)
    dbs = [{ spc: 1664, db: 0 }, ...dbRows.map((db) => ({ spc: 1663, db }))]
    const walLogDb = new Set([Number(await pg.sql("SELECT oid FROM pg_database WHERE datname = 'third'"))])

    await withRepository(ctx, async (repo) => {
      const t = await repo.tenant(parseTenantId(tenant))
      const tl = await t.timeline(parseTimelineId(timeline))
      const reader = readerFor(t, tl)
      for (const q of quiet) {
        // Databases created later do not exist yet at earlier LSNs: compare those that do.
        const present = dbs.filter((d) => d.spc === 1664 || reader.databases(q.lsn).some((e) => e.dbNode === d.db))
        const report = await comparePages(q.snapshot, reader, q.lsn, present, { skipVmOfDbs: walLogDb })
        expect(report.blocks, `blocks at ${formatLsn(q.lsn)}`).toBeGreaterThan(100)
        expect(report.sizeMismatches, `sizes at ${formatLsn(q.lsn)}`).toEqual([])
        expect(report.mismatches.slice(0, 5), `pages at ${formatLsn(q.lsn)}`).toEqual([])
      }
    })

    // A branch at the second quiet LSN sees exactly the pages of then.
    const br = await runCli(['timeline', 'branch', '--tenant', tenant, '--ancestor', timeline, '--lsn', formatLsn(quiet[1]!.lsn), '--json'], { env: env() })
    expect(br.code, br.stderr).toBe(0)
    const branch = br.json<{ timelineId: string }>().timelineId
    await withRepository(ctx, async (repo) => {
      const t = await repo.tenant(parseTenantId(tenant))
      const tl = await t.timeline(parseTimelineId(branch))
      const report = await comparePages(quiet[1]!.snapshot, readerFor(t, tl), quiet[1]!.lsn, dbs.slice(0, 2))
      expect(report.blocks).toBeGreaterThan(100)
      expect(report.sizeMismatches).toEqual([])
      expect(report.mismatches.slice(0, 5)).toEqual([])
    })

    // getpage through the CLI returns the same bytes the comparison read.
    const rel = await pg.sql("SELECT '1663/' || (SELECT oid FROM pg_database WHERE datname = 'postgres') || '/' || pg_relation_filenode('pgbench_accounts')")
    const out = join(root, 'page.bin')
    const gp = await runCli(['getpage', '--tenant', tenant, '--timeline', timeline, '--rel', rel, '--blk', '5', '--lsn', formatLsn(quiet[2]!.lsn), '--out', out], { env: env() })
    expect(gp.code, gp.stderr).toBe(0)
    expect(statSync(out).size).toBe(8192)
  })

  it('reports corruption in layer and metadata files, naming the file, and never serves a wrong page', async () => {
    const tlDir = join(workdir, 'tenants', tenant, 'timelines', timeline)
    const layers = readdirSync(tlDir).filter((f) => f.includes('__'))
    const biggest = layers.map((f) => ({ f, size: statSync(join(tlDir, f)).size })).sort((a, b) => b.size - a.size)[0]!
    const rel = await pg.sql("SELECT '1663/' || (SELECT oid FROM pg_database WHERE datname = 'postgres') || '/' || pg_relation_filenode('pgbench_accounts')")
    const at = formatLsn(quiet[0]!.lsn)
    const getpage = () => runCli(['getpage', '--tenant', tenant, '--timeline', timeline, '--rel', rel, '--blk', '1', '--lsn', at, '--json'], { env: env() })

    // Metadata: any flipped byte.
    const metaPath = join(tlDir, 'metadata')
    const meta = readFileSync(metaPath)
    const flippedMeta = Buffer.from(meta)
    flippedMeta[Math.floor(meta.length / 2)]! ^= 0x04
    writeFileSync(metaPath, flippedMeta)
    let r = await getpage()
    expect(r.code).toBe(5)
    expect(r.json<{ error: { message: string } }>().error.message).toContain(metaPath)
    writeFileSync(metaPath, meta)

    // Layer header.
    const layerPath = join(tlDir, biggest.f)
    const layer = readFileSync(layerPath)
    const flipped = Buffer.from(layer)
    flipped[40]! ^= 0x01
    writeFileSync(layerPath, flipped)
    r = await getpage()
    expect(r.code).toBe(5)
    expect(r.json<{ error: { message: string } }>().error.message).toContain(biggest.f)
    writeFileSync(layerPath, layer)

    // Layer values and indexes: every page read is either right or a corruption error naming the file.
    const expected = new Map<number, Buffer>()
    await withRepository(ctx, async (repo) => {
      const t = await repo.tenant(parseTenantId(tenant))
      const tl = await t.timeline(parseTimelineId(timeline))
      const reader = readerFor(t, tl)
      const relTag = { spcNode: 1663, dbNode: Number(rel.split('/')[1]), relNode: Number(rel.split('/')[2]), forkNum: 0 }
      const n = reader.relSize(relTag, quiet[4]!.lsn)
      for (let b = 0; b < n; b++) expected.set(b, await reader.getRelPage(relTag, b, quiet[4]!.lsn))
    })
    // Damage every layer file of the timeline: bytes spread over its values and index blocks, past its header
    // block and before its top-level index (both checked when the file opens, as the header case above shows;
    // a flipped byte there would stop the timeline from loading, before any page is read).
    const originals = new Map<string, Buffer>()
    for (const f of layers) {
      const p = join(tlDir, f)
      const orig = readFileSync(p)
      originals.set(p, orig)
      const d = Buffer.from(orig)
      const top = decodeHeader(orig.subarray(0, HEADER_BYTES), orig.length, p).topOffset
      for (let off = 8192; off < top; off += Math.max(1, Math.floor(top / 64))) d[off]! ^= 0x80
      writeFileSync(p, d)
    }
    let errors = 0
    await withRepository(ctx, async (repo) => {
      const t = await repo.tenant(parseTenantId(tenant))
      const tl = await t.timeline(parseTimelineId(timeline))
      const reader = readerFor(t, tl)
      const relTag = { spcNode: 1663, dbNode: Number(rel.split('/')[1]), relNode: Number(rel.split('/')[2]), forkNum: 0 }
      for (const [b, want] of expected) {
        try {
          const got = await reader.getRelPage(relTag, b, quiet[4]!.lsn)
          expect(got.equals(want), `block ${b} served wrong bytes`).toBe(true)
        } catch (e) {
          expect(e).toBeInstanceOf(PageserverError)
          expect((e as PageserverError).kind).toBe('corruption')
          expect(layers.some((f) => (e as Error).message.includes(f)), (e as Error).message).toBe(true)
          errors++
        }
      }
    })
    for (const [p, orig] of originals) writeFileSync(p, orig)
    expect(errors).toBeGreaterThan(0)
  })
})
