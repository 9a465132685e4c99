/**
 * Issue 5 acceptance through `pageserver serve`: a workload runs on a primary whose WAL streams into a
 * running server; at five quiet LSNs the primary's pg_dump is recorded. For each LSN: branch there (through
 * the server), export (from the server), start stock PostgreSQL 15 on the export: its pg_dump equals the
 * recorded one. A PostgreSQL started on a branch accepts writes, and the server streams its WAL into the
 * branch timeline: a second export of the branch shows them, while the parent is unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster } from '../support/pg-cluster.js'
import { runCli } from '../support/cli.js'
import { startServe, type ServeHandle } from '../support/serve-process.js'
import { compareSequences, dump, firstDifference } from '../support/pg-dump.js'
import { formatLsn, parseLsn, type Lsn } from '../../src/core/pg/lsn.js'

interface Quiet {
  lsn: Lsn
  dumps: Map<string, string>
}

describe('serve acceptance: branches at quiet LSNs start as stock PostgreSQL with identical dumps; branch WAL streams back', () => {
  let pg: PgCluster
  let root: string
  let workdir: string
  let serve: ServeHandle | null = null
  let tenant: string
  let timeline: string
  const quiet: Quiet[] = []
  const started: PgCluster[] = []
  const env = () => ({ PAGESERVER_WORKDIR: workdir })
  const cli = async (args: string[]) => {
    const r = await runCli([...args, '--json'], { env: env(), timeoutMs: 180_000 })
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0)
    return r
  }

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'serve-accept', maxPreparedTransactions: 2 })
    root = mkdtempSync(join(tmpdir(), 'ps-serve-accept-'))
    chmodSync(root, 0o755)
    workdir = join(root, '.neon')
    await cli(['init', '-c', 'no_sync=true', '-c', 'checkpoint_distance=4MiB'])
    tenant = (await cli(['tenant', 'create'])).json<{ tenantId: string }>().tenantId
    timeline = (await cli(['timeline', 'import', '--tenant', tenant, '--from', pg.connString()])).json<{ timelineId: string }>().timelineId
    serve = await startServe(workdir)
  })
  afterAll(async () => {
    for (const c of started) await c.destroy()
    await serve?.stop()
    await pg?.destroy()
    if (root) rmSync(root, { recursive: true, force: true })
  })

  async function quietMoment(): Promise<void> {
    const lsn = await pg.insertLsn()
    quiet.push({ lsn, dumps: new Map([['postgres', await dump(pg, 'postgres')], ['second', await dump(pg, 'second')]]) })
  }

  async function exportAndStart(tl: string, name: string, lsn?: Lsn): Promise<PgCluster> {
    const dir = join(root, name)
    await cli(['timeline', 'export', '--tenant', tenant, '--timeline', tl, '--pgdata', dir, ...(lsn ? ['--lsn', formatLsn(lsn)] : [])])
    const c = await PgCluster.startOnDataDir(dir, { name })
    started.push(c)
    return c
  }

  it('every quiet LSN, branched and exported from the server, dumps exactly like the primary did', async () => {
    await pg.sql('CREATE DATABASE second')
    await pg.sql('CREATE TABLE s (id serial primary key, v text); INSERT INTO s (v) SELECT md5(g::text) FROM generate_series(1, 300) g;', { db: 'second' })
    await pg.pgbench(['-i', '-s', '1', '-q'])
    await quietMoment()
    await pg.pgbench(['-c', '4', '-t', '150', '-n'])
    await quietMoment()
    await pg.sql(`CREATE TABLE docs (id int primary key, body text); INSERT INTO docs SELECT g, repeat(md5(g::text), 300) FROM generate_series(1, 60) g;
      CREATE INDEX ON pgbench_accounts (abalance); CREATE SEQUENCE seq1; SELECT nextval('seq1') FROM generate_series(1, 77);`)
    await quietMoment()
    await pg.sql(`BEGIN; UPDATE pgbench_branches SET bbalance = bbalance + 1; SAVEPOINT a; DELETE FROM docs; ROLLBACK TO a; COMMIT;
      DELETE FROM pgbench_history WHERE aid % 2 = 0; VACUUM pgbench_history;`)
    await quietMoment()
    await pg.sql('UPDATE docs SET body = body || body WHERE id < 10; DROP TABLE pgbench_history;')
    await pg.sql('INSERT INTO s (v) VALUES (\'late\')', { db: 'second' })
    await quietMoment()
    expect(quiet.length).toBeGreaterThanOrEqual(5)

    for (const [i, q] of quiet.entries()) {
      // The server streams the primary: wait until it has the LSN, then branch there through it.
      await cli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(q.lsn)])
      const branch = (await cli(['timeline', 'branch', '--tenant', tenant, '--ancestor', timeline, '--lsn', formatLsn(q.lsn)])).json<{ timelineId: string }>().timelineId
      const c = await exportAndStart(branch, `branch-${i}`)
      for (const [db, want] of q.dumps) {
        const [w, g] = compareSequences(want, await dump(c, db), `at ${formatLsn(q.lsn)} in ${db}`)
        expect(g === w, `pg_dump of ${db} at ${formatLsn(q.lsn)}: first difference ${firstDifference(w, g)}`).toBe(true)
      }
      await c.destroy()
      started.splice(started.indexOf(c), 1)
    }
  })

  it('a PostgreSQL started on a branch takes writes, the server streams them into the branch, the parent is unchanged', async () => {
    // A balance pgbench cannot reach (600 transactions of at most ±5000): -1 could, and made this flaky.
    const MARK = -7777777
    const at = quiet[2]!.lsn
    const branch = (await cli(['timeline', 'branch', '--tenant', tenant, '--ancestor', timeline, '--lsn', formatLsn(at)])).json<{ timelineId: string }>().timelineId
    const onBranch = await exportAndStart(branch, 'writable')
    await cli(['timeline', 'source', '--tenant', tenant, '--timeline', branch, '--from', onBranch.connString()])
    await onBranch.sql(`CREATE TABLE branch_only (id int); INSERT INTO branch_only SELECT generate_series(1, 1234); UPDATE pgbench_accounts SET abalance = ${MARK} WHERE aid <= 10;`)
    const branchLsn = await onBranch.insertLsn()
    const synced = await cli(['timeline', 'sync', '--tenant', tenant, '--timeline', branch, '--until', formatLsn(branchLsn)])
    expect(parseLsn(synced.json<{ lastRecordLsn: string }>().lastRecordLsn) >= branchLsn).toBe(true)

    // The same cluster, another history: the branch's PostgreSQL cannot continue the parent, whose WAL went on
    // past the branch point. With WAL of its own beyond the parent's last record, it is refused at once.
    const parentInfo = async () =>
      (await cli(['timeline', 'list', '--tenant', tenant])).json<Array<{ timelineId: string; lastRecordLsn: string; walSource: { connString: string } | null }>>().find((t) => t.timelineId === timeline)!
    const parentLast = parseLsn((await parentInfo()).lastRecordLsn)
    while ((await onBranch.insertLsn()) <= parentLast) await onBranch.sql("INSERT INTO branch_only SELECT generate_series(1, 20000)")
    const wrong = await runCli(['timeline', 'source', '--tenant', tenant, '--timeline', timeline, '--from', onBranch.connString(), '--json'], { env: env(), timeoutMs: 60_000 })
    expect(wrong.code, wrong.stderr).toBe(4)
    expect(wrong.json<{ error: { code: string; message: string } }>().error).toMatchObject({ code: 'WAL_SOURCE_DIVERGED', message: expect.stringContaining(formatLsn(parentLast)) })
    expect((await parentInfo()).walSource?.connString).toBe(pg.connString())
    await onBranch.destroy()
    started.splice(started.indexOf(onBranch), 1)

    const again = await exportAndStart(branch, 'writable-again')
    expect(await again.sql('SELECT count(*) FROM branch_only')).toBe('1234')
    expect(await again.sql(`SELECT count(*) FROM pgbench_accounts WHERE abalance = ${MARK}`)).toBe('10')

    const parent = await exportAndStart(timeline, 'parent-latest')
    expect(await parent.sql("SELECT count(*) FROM pg_class WHERE relname = 'branch_only'")).toBe('0')
    expect(await parent.sql(`SELECT count(*) FROM pgbench_accounts WHERE abalance = ${MARK}`)).toBe('0')
  })
})
