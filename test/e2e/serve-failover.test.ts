/**
 * `pageserver serve` streaming a primary that fails over to its physical standby: the primary stops (fast),
 * the standby is promoted (timeline 2, a .history file), and the timeline is pointed at it with `timeline
 * source` through the running server (the promoted standby has no slot of ours: at the old address it would
 * be refused with WAL_SOURCE_SLOT_MISSING). Serve must stream timeline 1 up to the switch point, then timeline
 * 2, and the pages equal the promoted server's after a CHECKPOINT. A standby that was behind (serve holds WAL
 * the promoted server never had) must be refused with a clear error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster, pgAvailable } from '../support/pg-cluster.js'
import { runCli } from '../support/cli.js'
import { startServe, type ServeHandle } from '../support/serve-process.js'
import { comparePages } from '../support/page-compare.js'
import { runPgTool } from '../../src/core/postgres/install.js'
import { loadConfig } from '../../src/core/config/index.js'
import { withRepository } from '../../src/core/app/context.js'
import { DatadirReader } from '../../src/core/datadir/read.js'
import { parseTenantId, parseTimelineId } from '../../src/core/model/ids.js'
import { formatLsn, parseLsn } from '../../src/core/pg/lsn.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe.skipIf(!pgAvailable())('serve across a failover to a promoted standby', () => {
  // Made in beforeAll, not when the file is collected: a filtered run (-t) would leave it behind.
  let root = ''
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ps-failover-'))
    chmodSync(root, 0o777)
  })
  const clusters: PgCluster[] = []
  const serves: ServeHandle[] = []
  afterAll(async () => {
    for (const s of serves) await s.stop()
    for (const c of clusters) await c.destroy()
    if (root) rmSync(root, { recursive: true, force: true })
  })

  async function setup(name: string) {
    const workdir = join(root, name, '.neon')
    const env = { PAGESERVER_WORKDIR: workdir }
    const cli = async (args: string[], expectOk = true) => {
      const r = await runCli([...args, '--json'], { env, timeoutMs: 120_000 })
      if (expectOk) expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0)
      return r
    }
    const primary = await PgCluster.start({ name: `${name}-primary` })
    clusters.push(primary)
    const standbyDir = join(root, name, 'standby')
    await runPgTool(primary.inst, 'pg_basebackup', ['-h', primary.host, '-p', String(primary.port), '-U', 'postgres', '-D', standbyDir, '-R', '-X', 'stream', '-C', '-S', 'standby_slot', '-c', 'fast'], {
      asPostgresUser: true,
      timeoutMs: 120_000,
    })
    let standby = await PgCluster.startOnDataDir(standbyDir, { name: `${name}-standby` })
    clusters.push(standby)
    expect(await standby.sql('SELECT pg_is_in_recovery()')).toBe('t')
    await cli(['init', '-c', 'no_sync=true'])
    const tenant = (await cli(['tenant', 'create'])).json<{ tenantId: string }>().tenantId
    await primary.sql('CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g')
    const timeline = (await cli(['timeline', 'import', '--tenant', tenant, '--from', primary.connString()])).json<{ timelineId: string }>().timelineId
    const serve = await startServe(workdir)
    serves.push(serve)
    const waitServe = async (lsn: bigint, what: string) => {
      const r = await cli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(lsn as never)])
      expect(parseLsn(r.json<{ lastRecordLsn: string }>().lastRecordLsn) >= lsn, what).toBe(true)
    }
    const restartStandby = async () => {
      standby = await PgCluster.startOnDataDir(standbyDir, { name: `${name}-standby2` })
      clusters.push(standby)
      return standby
    }
    return { workdir, cli, primary, standby: () => standby, restartStandby, tenant, timeline, serve, waitServe }
  }

  it.each([['caught up', false], ['behind the standby', true]] as const)('serve %s: follows timeline 1 to the switch point, then timeline 2; pages equal the promoted server', async (_name, serveBehind) => {
    const s = await setup(serveBehind ? 'lagging' : 'follow')
    const { primary, cli, tenant, timeline } = s
    const standby = s.standby()
    await primary.sql("UPDATE t SET v = v || 'a' WHERE id % 3 = 0; INSERT INTO t SELECT g, 'p' FROM generate_series(2001, 4000) g")
    const before = await primary.insertLsn()
    await s.waitServe(before, 'serve streamed the primary')
    let serve = s.serve
    if (serveBehind) {
      await serve.stop()
      serves.splice(serves.indexOf(serve), 1)
      await primary.sql("UPDATE t SET v = v || 'b' WHERE id % 4 = 0; INSERT INTO t SELECT g, 'q' FROM generate_series(10001, 13000) g")
    }
    for (const t = Date.now(), until = await primary.insertLsn(); parseLsn(await standby.sql('SELECT pg_last_wal_replay_lsn()')) < until; ) {
      if (Date.now() - t > 30_000) throw new Error('the standby did not catch up')
      await sleep(100)
    }
    await primary.stop('fast')
    expect(await standby.sql('SELECT pg_promote()')).toBe('t')
    await standby.sql("UPDATE t SET v = 'after' WHERE id % 5 = 0; INSERT INTO t SELECT g, 's' FROM generate_series(4001, 6000) g")
    expect(await standby.sql('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)')).toBe('00000002')
    if (serveBehind) {
      serve = await startServe(s.workdir)
      serves.push(serve)
    }
    const src = await cli(['timeline', 'source', '--tenant', tenant, '--timeline', timeline, '--from', standby.connString()])
    expect(src.stdout).toMatch(/slot/i)
    await standby.sql("DELETE FROM t WHERE id % 7 = 0; VACUUM t; CHECKPOINT")
    const at = await standby.insertLsn()
    await s.waitServe(at, 'serve followed the promoted standby')
    const log = serve.stderr() + serve.stdout()
    await serve.stop()
    serves.splice(serves.indexOf(serve), 1)
    expect(log).not.toMatch(/WAL streaming failed/)
    if (process.env.PS_DEBUG_FAILOVER) console.log(log.split('\n').filter((l) => /timeline|stream/.test(l)).join('\n'))
    const ctx = { config: await loadConfig({ workdir: s.workdir, overrides: ['no_sync=true'], env: {} }), env: process.env }
    const db = Number(await standby.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'"))
    const report = await withRepository(ctx, async (repo) => {
      const tn = await repo.tenant(parseTenantId(tenant))
      const tl = await tn.timeline(parseTimelineId(timeline))
      const reader = new DatadirReader(tl, tn.redoManager(tl.metadata.hintBitsLogged), { dataChecksums: tl.metadata.dataChecksums })
      return comparePages(standby, reader, at, [{ spc: 1663, db }, { spc: 1664, db: 0 }])
    })
    expect(report.blocks).toBeGreaterThan(50)
    expect(report.sizeMismatches).toEqual([])
    expect(report.mismatches.slice(0, 10)).toEqual([])
  }, 300_000)

  it('a standby that was behind (serve has WAL it never had) is refused with a clear error', async () => {
    const s = await setup('behind')
    const { primary, cli, tenant, timeline } = s
    await sleep(500)
    await s.standby().stop('fast') // it misses what follows
    await primary.sql("UPDATE t SET v = v || 'lost' WHERE id % 2 = 0; INSERT INTO t SELECT g, 'lost' FROM generate_series(2001, 3000) g")
    const lost = await primary.insertLsn()
    await s.waitServe(lost, 'serve streamed the primary')
    await primary.stop('fast')
    const standby = await s.restartStandby() // its primary is gone: it cannot catch up
    expect(await standby.sql('SELECT pg_promote()')).toBe('t')
    // More WAL than serve has, so that the server's WAL reaches past serve's last record.
    for (let i = 0; i < 3; i++) await standby.sql("INSERT INTO t SELECT g, 'other' FROM generate_series(10001 + 3000 * " + i + ", 13000 + 3000 * " + i + ") g")
    expect(parseLsn(await standby.sql('SELECT pg_current_wal_insert_lsn()')) > lost).toBe(true)
    const src = await cli(['timeline', 'source', '--tenant', tenant, '--timeline', timeline, '--from', standby.connString()], false)
    expect(src.code).not.toBe(0)
    expect(src.stdout + src.stderr).toMatch(/WAL_SOURCE_DIVERGED|WAL_SOURCE_BEHIND/)
    const list = (await cli(['timeline', 'list', '--tenant', tenant])).stdout
    expect(list).not.toContain(`port=${standby.port}`)
  }, 300_000)
})

describe.skipIf(!pgAvailable())('a failover attached offline, with checkpoints on the promoted server before streaming', () => {
  // Made in beforeAll, not when the file is collected: a filtered run (-t) would leave it behind.
  let root = ''
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ps-failover-off-'))
    chmodSync(root, 0o777)
  })
  const clusters: PgCluster[] = []
  afterAll(async () => {
    for (const c of clusters) await c.destroy()
    if (root) rmSync(root, { recursive: true, force: true })
  })
  it('a promoted server that already removed the WAL the timeline needs is refused with a hint that fits', async () => {
    const workdir = join(root, '.neon')
    const env = { PAGESERVER_WORKDIR: workdir }
    const cli = async (args: string[], expectOk = true) => {
      const r = await runCli([...args, '--json'], { env, timeoutMs: 120_000 })
      if (expectOk) expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0)
      return r
    }
    const primary = await PgCluster.start({ name: 'off-primary', walSegmentSizeMb: 1 })
    clusters.push(primary)
    const standbyDir = join(root, 'standby')
    await runPgTool(primary.inst, 'pg_basebackup', ['-h', primary.host, '-p', String(primary.port), '-U', 'postgres', '-D', standbyDir, '-R', '-X', 'stream', '-C', '-S', 'standby_slot', '-c', 'fast'], { asPostgresUser: true, timeoutMs: 120_000 })
    const standby = await PgCluster.startOnDataDir(standbyDir, { name: 'off-standby', settings: { wal_keep_size: 0, min_wal_size: '4MB', max_wal_size: '64MB' } })
    clusters.push(standby)
    await cli(['init', '-c', 'no_sync=true'])
    const tenant = (await cli(['tenant', 'create'])).json<{ tenantId: string }>().tenantId
    const timeline = (await cli(['timeline', 'import', '--tenant', tenant, '--from', primary.connString()])).json<{ timelineId: string }>().timelineId
    // The primary goes on writing while nothing streams it; the standby has it all.
    await primary.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS v FROM generate_series(1, 100000) g")
    const until = await primary.insertLsn()
    for (const t = Date.now(); parseLsn(await standby.sql('SELECT pg_last_wal_replay_lsn()')) < until; ) {
      if (Date.now() - t > 30_000) throw new Error('the standby did not catch up')
      await sleep(100)
    }
    await primary.stop('fast')
    expect(await standby.sql('SELECT pg_promote()')).toBe('t')
    await standby.sql('CHECKPOINT')
    // The promotion's checkpoint (and this one) removed the old segments: nothing kept them for the timeline.
    const r = await cli(['timeline', 'source', '--tenant', tenant, '--timeline', timeline, '--from', standby.connString()], false)
    expect(r.code).toBe(3)
    const err = r.json<{ error: { code: string; message: string; hint: string } }>().error
    expect(err.code).toBe('PG_WAL_REMOVED')
    expect(err.message).toContain(timeline)
    expect(err.hint).not.toMatch(/--slot|recent LSN/)
    expect(err.hint).toMatch(/Nothing was changed/)
    const list = (await cli(['timeline', 'list', '--tenant', tenant])).stdout
    expect(list).not.toContain(`port=${standby.port}`)
  }, 300_000)
})
