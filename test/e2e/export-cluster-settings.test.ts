/**
 * Exports of primaries initialised or configured away from the defaults, started with stock PostgreSQL:
 * - 64 MiB WAL segments (initdb --wal-segsize=64): PostgreSQL refuses to start unless min_wal_size and
 *   max_wal_size are at least two segments, and its defaults (80MB) are not; the export's postgresql.conf
 *   sets them as initdb does (an audit's export failed with "min_wal_size must be at least twice
 *   wal_segment_size").
 * - track_commit_timestamp = on: pg_commit_ts is not kept, so the export must not claim a range of commit
 *   timestamps; with the primary's range, reading one failed ("could not access status of transaction")
 *   instead of giving NULL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster, pgAvailable } from '../support/pg-cluster.js'
import { runCli } from '../support/cli.js'
import { formatLsn } from '../../src/core/pg/lsn.js'

describe.skipIf(!pgAvailable())('export of a primary with 64 MiB WAL segments and commit timestamps on', () => {
  let pg: PgCluster
  let root: string
  const env = () => ({ PAGESERVER_WORKDIR: join(root, '.neon') })

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'seg64', walSegmentSizeMb: 64, settings: { track_commit_timestamp: true } })
    root = mkdtempSync(join(tmpdir(), 'ps-export-settings-'))
    chmodSync(root, 0o755) // the export is started by the postgres user when the tests run as root
    const init = await runCli(['init', '-c', 'no_sync=true'], { env: env() })
    expect(init.code, init.stderr).toBe(0)
  })
  afterAll(async () => {
    await pg?.destroy()
    if (root) rmSync(root, { recursive: true, force: true })
  })

  it('starts, with the rows, WAL sizes in segments, and NULL for commit times before the export', async () => {
    await pg.sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g;")
    const tenant = (await runCli(['tenant', 'create', '--json'], { env: env() })).json<{ tenantId: string }>().tenantId
    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', pg.connString(), '--json'], { env: env(), timeoutMs: 120_000 })
    expect(imp.code, imp.stderr).toBe(0)
    const timeline = imp.json<{ timelineId: string }>().timelineId
    // Transactions after the import, each with a commit timestamp on the primary.
    for (let i = 0; i < 5; i++) await pg.sql(`INSERT INTO t SELECT g, 'late' FROM generate_series(${1000 + i * 10}, ${1009 + i * 10}) g`)
    expect(await pg.sql('SELECT count(*) FROM t WHERE pg_xact_commit_timestamp(xmin) IS NOT NULL')).toBe('550')
    // Move the next xid into the second pg_commit_ts segment (26,208 xids each): the export's start then
    // creates only that segment's page, and the rows' commit times live in a segment it does not have.
    await pg.sql('CREATE TABLE burn (i int); DO $$ BEGIN FOR i IN 1..27000 LOOP BEGIN INSERT INTO burn VALUES (i); EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$;')
    expect(Number(await pg.sql('SELECT txid_current()'))).toBeGreaterThan(26_208)
    await pg.sql('CHECKPOINT')
    const lsn = await pg.insertLsn()
    const sync = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(lsn), '--json'], { env: env(), timeoutMs: 120_000 })
    expect(sync.code, sync.stderr).toBe(0)

    const dir = join(root, 'export')
    const ex = await runCli(['timeline', 'export', '--tenant', tenant, '--timeline', timeline, '--lsn', formatLsn(lsn), '-D', dir, '--json'], { env: env(), timeoutMs: 180_000 })
    expect(ex.code, ex.stderr).toBe(0)
    const conf = readFileSync(join(dir, 'postgresql.conf'), 'utf8')
    expect(conf).toMatch(/^min_wal_size = 320MB$/m)
    expect(conf).toMatch(/^max_wal_size = 4GB$/m)

    const started = await PgCluster.startOnDataDir(dir, { name: 'seg64-export', settings: { fsync: false, track_commit_timestamp: true } })
    try {
      expect(await started.sql('SHOW wal_segment_size')).toBe('64MB')
      expect(await started.sql("SELECT count(*), count(*) FILTER (WHERE v = 'late') FROM t")).toBe('550|50')
      // Commit times of transactions before the export are unknown there: NULL, not an error.
      expect(await started.sql('SELECT count(*) FROM t WHERE pg_xact_commit_timestamp(xmin) IS NULL')).toBe('550')
      // New ones are recorded.
      await started.sql("INSERT INTO t VALUES (9999, 'after')")
      expect(await started.sql('SELECT pg_xact_commit_timestamp(xmin) IS NOT NULL FROM t WHERE id = 9999')).toBe('t')
    } finally {
      await started.destroy()
    }
  }, 300_000)
})
