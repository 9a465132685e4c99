/**
 * A timeline imported from a standby that is promoted while nothing streams from it: the resume point then
 * lies on the old timeline, whose segments the promoted server keeps under the old timeline's names. The
 * receiver asks for the timeline holding its resume point (TIMELINE_HISTORY), as PostgreSQL's walreceiver
 * does, and follows the switch; before, it asked for the new timeline and failed forever with "requested WAL
 * segment ... has already been removed" (found by an audit). Checked by a sync across the promotion and a
 * stock PostgreSQL started on an export with the rows of both timelines.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster, pgAvailable } from '../support/pg-cluster.js'
import { runCli } from '../support/cli.js'
import { runPgTool } from '../../src/core/postgres/install.js'
import { formatLsn, parseLsn } from '../../src/core/pg/lsn.js'

describe.skipIf(!pgAvailable())('a timeline imported from a standby, synced after the standby was promoted', () => {
  const root = mkdtempSync(join(tmpdir(), 'ps-promotion-'))
  chmodSync(root, 0o777)
  const workdir = join(root, '.neon')
  const env = { PAGESERVER_WORKDIR: workdir }
  const clusters: PgCluster[] = []
  afterAll(async () => {
    for (const c of clusters) await c.destroy()
    rmSync(root, { recursive: true, force: true })
  })

  it('follows the timeline switch: sync succeeds, and an export has the rows written before and after it', async () => {
    const primary = await PgCluster.start({ name: 'promotion-primary' })
    clusters.push(primary)
    const standbyDir = join(root, 'standby')
    await runPgTool(primary.inst, 'pg_basebackup', ['-h', primary.host, '-p', String(primary.port), '-U', 'postgres', '-D', standbyDir, '-R', '-X', 'stream', '-c', 'fast'], {
      asPostgresUser: true,
      timeoutMs: 120_000,
    })
    const standby = await PgCluster.startOnDataDir(standbyDir, { name: 'promotion-standby' })
    clusters.push(standby)
    expect(await standby.sql('SELECT pg_is_in_recovery()')).toBe('t')

    expect((await runCli(['init'], { env })).code).toBe(0)
    const tenant = (await runCli(['tenant', 'create', '--json'], { env })).json<{ tenantId: string }>().tenantId
    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', standby.connString(), '--json'], { env })
    expect(imp.code, imp.stderr).toBe(0)
    const timeline = imp.json<{ timelineId: string }>().timelineId

    // WAL on the old timeline, replayed by the standby, then the promotion and WAL on the new one.
    for (let i = 0; i < 3; i++) await primary.sql(`CREATE TABLE IF NOT EXISTS before_promotion (g int); INSERT INTO before_promotion SELECT generate_series(1, 1000); SELECT pg_switch_wal();`)
    const sent = await primary.insertLsn()
    for (let t = Date.now(); parseLsn(await standby.sql('SELECT pg_last_wal_replay_lsn()')) < sent; ) {
      if (Date.now() - t > 30_000) throw new Error('the standby did not catch up')
      await new Promise((r) => setTimeout(r, 100))
    }
    await primary.stop('fast')
    expect(await standby.sql('SELECT pg_promote()')).toBe('t')
    await standby.sql('CREATE TABLE after_promotion AS SELECT generate_series(1, 500) AS g; CHECKPOINT')
    expect(await standby.sql('SELECT timeline_id FROM pg_control_checkpoint()')).toBe('2')
    const target = await standby.insertLsn()

    const sync = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(target), '--json'], { env, timeoutMs: 120_000 })
    expect(sync.code, sync.stdout + sync.stderr).toBe(0)
    expect(parseLsn(sync.json<{ lastRecordLsn: string }>().lastRecordLsn) >= target).toBe(true)

    const dir = join(root, 'export')
    const ex = await runCli(['timeline', 'export', '--tenant', tenant, '--timeline', timeline, '-D', dir, '--json'], { env, timeoutMs: 180_000 })
    expect(ex.code, ex.stderr).toBe(0)
    const started = await PgCluster.startOnDataDir(dir, { name: 'promotion-export', settings: { fsync: false } })
    clusters.push(started)
    expect(await started.sql('SELECT count(*) FROM before_promotion')).toBe('3000')
    expect(await started.sql('SELECT count(*), sum(g) FROM after_promotion')).toBe('500|125250')
  })
})
