/**
 * What `serve` tells about the primaries it streams from:
 * - a served timeline whose WAL cannot be ingested (a relation in a user tablespace): its receiver stops for
 *   good. Reads past its last record then fail at once, naming why, instead of waiting wait_lsn_timeout for
 *   WAL that will never come (an audit's export waited 300 s); reads below it are served; `timeline list`
 *   through the server shows the receiver's state and warns;
 * - a pageserver_* slot on that primary that no timeline owns is logged as a warning after the start: it
 *   keeps WAL there until dropped;
 * - a timeline's slot missing on the server at its source's address: that server may be another one (a
 *   branch's PostgreSQL started on the same port, whose WAL continues the same LSNs with another history: an
 *   audit's parent timeline took in its child's writes), so nothing is streamed from it and no slot is made.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isRoot, PgCluster, pgAvailable } from '../support/pg-cluster.js'
import { runCli } from '../support/cli.js'
import { startServe, type ServeHandle } from '../support/serve-process.js'
import { PageServiceClient } from '../../src/core/page-service/client.js'
import { lookupOsUser } from '../../src/core/storage/os-user.js'
import { parseTenantId, parseTimelineId } from '../../src/core/model/ids.js'
import { formatLsn, parseLsn, type Lsn } from '../../src/core/pg/lsn.js'
import { parseServerAddress } from '../../src/cli/getpage-server.js'

describe.skipIf(!pgAvailable())('serve and the state of its WAL sources', () => {
  let pg: PgCluster
  let root: string
  let workdir: string
  let tsDir: string
  let serve: ServeHandle | null = null
  const env = () => ({ PAGESERVER_WORKDIR: workdir })

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'ingest-stopped' })
    root = mkdtempSync(join(tmpdir(), 'ps-stopped-'))
    workdir = join(root, '.neon')
    tsDir = mkdtempSync(join(tmpdir(), 'ps-stopped-ts-'))
    const owner = isRoot() ? lookupOsUser('postgres') : null
    if (owner) chownSync(tsDir, owner.uid, owner.gid)
  })
  afterAll(async () => {
    await serve?.stop()
    await pg?.destroy()
    if (root) rmSync(root, { recursive: true, force: true })
    if (tsDir) rmSync(tsDir, { recursive: true, force: true })
  })

  it('warns of orphan slots; a timeline whose ingest stopped fails reads past its last record at once, serves those below, and says so in timeline list', async () => {
    expect((await runCli(['init'], { env: env() })).code).toBe(0)
    const tenant = (await runCli(['tenant', 'create', '--json'], { env: env() })).json<{ tenantId: string }>().tenantId
    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', pg.connString(), '--json'], { env: env() })
    expect(imp.code, imp.stderr).toBe(0)
    const timeline = imp.json<{ timelineId: string }>().timelineId
    await pg.sql("SELECT pg_create_physical_replication_slot('pageserver_left_by_a_killed_import', true)")
    serve = await startServe(workdir, ['-c', 'wait_lsn_timeout=120s'])
    const warnedBy = Date.now() + 20_000
    while (!serve.stderr().includes('orphan replication slot') && Date.now() < warnedBy) await new Promise((r) => setTimeout(r, 100))
    const warning = serve.stderr().split('\n').find((l) => l.includes('orphan replication slot'))
    expect(warning, serve.stderr()).toBeDefined()
    expect(JSON.parse(warning!)).toMatchObject({ level: 'warn', slot: 'pageserver_left_by_a_killed_import', hint: expect.stringContaining('pageserver slot drop') })
    expect(serve.stderr()).not.toMatch(/orphan replication slot.*pageserver_[0-9a-f]{32}/) // the timeline's own slot is not one
    // The hint's command runs as written and drops that slot.
    const hinted = /`pageserver (slot drop [^`]+)`/.exec(JSON.parse(warning!).hint as string)
    expect(hinted, warning).not.toBeNull()
    const drop = await runCli([...shellWords(hinted![1]!), '--json'], { env: env() })
    expect(drop.code, drop.stderr).toBe(0)
    expect(await pg.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pageserver_left_by_a_killed_import'")).toBe('0')

    await pg.sql(`CREATE TABLESPACE stopped_ts LOCATION '${tsDir}'; CREATE TABLE in_ts (id int) TABLESPACE stopped_ts; INSERT INTO in_ts VALUES (1);`)
    const ahead = parseLsn(await pg.sql('SELECT pg_current_wal_insert_lsn()'))
    let listed: Array<{ timelineId: string; lastRecordLsn: string; walReceiverStatus?: string }> = []
    const deadline = Date.now() + 30_000
    for (;;) {
      const l = await runCli(['timeline', 'list', '--tenant', tenant, '--json'], { env: env() })
      listed = l.json<typeof listed>()
      if (listed[0]?.walReceiverStatus?.startsWith('stopped:') === true || Date.now() > deadline) break
      await new Promise((r) => setTimeout(r, 200))
    }
    expect(listed[0]!.walReceiverStatus).toMatch(/^stopped: .*user tablespace/)
    const text = await runCli(['timeline', 'list', '--tenant', tenant], { env: env() })
    expect(text.stderr).toContain(`timeline ${timeline} no longer receives WAL`)
    const last = parseLsn(listed[0]!.lastRecordLsn)
    expect(last < ahead).toBe(true)

    const client = await PageServiceClient.connect(parseServerAddress(serve.pgAddr))
    try {
      const ps = await client.pagestream(parseTenantId(tenant), parseTimelineId(timeline), { version: 3 })
      const rel = { spcNode: 1664, dbNode: 0, relNode: 1262, forkNum: 0 } // pg_database
      expect(await ps.nblocks(rel, { requestLsn: last as Lsn, notModifiedSince: last as Lsn })).toBeGreaterThan(0)
      const t0 = Date.now()
      const err = await ps.nblocks(rel, { requestLsn: ahead as Lsn, notModifiedSince: ahead as Lsn }).catch((e: unknown) => e)
      expect(Date.now() - t0).toBeLessThan(5_000)
      expect((err as Error).message).toMatch(new RegExp(`WAL up to ${formatLsn(ahead)} will not arrive: .*user tablespace`))
    } finally {
      await client.close()
    }
    const ex = await runCli(['timeline', 'export', '--tenant', tenant, '--timeline', timeline, '--lsn', formatLsn(ahead), '-D', join(root, 'never'), '--json'], { env: env(), timeoutMs: 30_000 })
    expect(ex.code).not.toBe(0)
    expect(ex.stdout + ex.stderr).toMatch(/will not arrive/)
  })
  it('a timeline whose slot is missing takes no WAL from that server (it may be another one); one whose WAL the primary removed stops for good; reads past either fail at once', async () => {
    await serve!.stop()
    await pg.sql('DROP TABLE in_ts; DROP TABLESPACE stopped_ts') // the first test's: an import refuses user tablespaces
    const tenant = (await runCli(['tenant', 'create', '--json'], { env: env() })).json<{ tenantId: string }>().tenantId
    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', pg.connString(), '--json'], { env: env() })
    expect(imp.code, imp.stderr).toBe(0)
    const timeline = imp.json<{ timelineId: string; walSource: { slotName: string } }>().timelineId
    const slot = imp.json<{ walSource: { slotName: string } }>().walSource.slotName
    const last = imp.json<{ lastRecordLsn: string }>().lastRecordLsn
    // Every slot goes (the first test's timeline's and orphan too: they would keep the WAL).
    await pg.sql('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots')
    expect(slot).toMatch(/^pageserver_/)
    // Without the slot (and the harness's wal_keep_size), checkpoints recycle the segments the timeline would resume from.
    await pg.sql("ALTER SYSTEM SET wal_keep_size = 0; SELECT pg_reload_conf()")
    for (let i = 0; i < 6; i++) await pg.sql(`CREATE TABLE IF NOT EXISTS churn (v text); INSERT INTO churn SELECT repeat('x', 1000) FROM generate_series(1, 2000); SELECT pg_switch_wal();`)
    await pg.sql('CHECKPOINT')
    await pg.sql('SELECT pg_switch_wal(); CHECKPOINT')
    const ahead = parseLsn(await pg.sql('SELECT pg_current_wal_insert_lsn()'))

    const statusOf = async (want: string): Promise<{ status: string; lastRecordLsn: string }> => {
      let entry = { status: '', lastRecordLsn: '' }
      const deadline = Date.now() + 30_000
      while (!entry.status.startsWith(want) && Date.now() < deadline) {
        const l = await runCli(['timeline', 'list', '--tenant', tenant, '--json'], { env: env() })
        const e = l.json<Array<{ walReceiverStatus?: string; lastRecordLsn: string }>>()[0]
        entry = { status: e?.walReceiverStatus ?? '', lastRecordLsn: e?.lastRecordLsn ?? '' }
        if (!entry.status.startsWith(want)) await new Promise((r) => setTimeout(r, 200))
      }
      return entry
    }
    const readPastFailsAtOnce = async (why: RegExp): Promise<void> => {
      const client = await PageServiceClient.connect(parseServerAddress(serve!.pgAddr))
      try {
        const ps = await client.pagestream(parseTenantId(tenant), parseTimelineId(timeline), { version: 3 })
        const rel = { spcNode: 1664, dbNode: 0, relNode: 1262, forkNum: 0 }
        const t0 = Date.now()
        const err = await ps.nblocks(rel, { requestLsn: ahead as Lsn, notModifiedSince: ahead as Lsn }).catch((e: unknown) => e)
        expect(Date.now() - t0).toBeLessThan(5_000)
        expect((err as Error).message).toMatch(why)
      } finally {
        await client.close()
      }
    }

    // The slot is what identifies the source: a server without it is not streamed from, and no slot is made there.
    serve = await startServe(workdir, ['-c', 'wait_lsn_timeout=120s'])
    const missing = await statusOf('stopped:')
    expect(missing.status).toMatch(new RegExp(`^stopped: replication slot ${slot} does not exist on `))
    expect(missing.lastRecordLsn).toBe(last)
    expect(await pg.sql(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${slot}'`)).toBe('0')
    await readPastFailsAtOnce(/will not arrive: .*replication slot .* does not exist/)
    await serve.stop()

    // Made again by hand, reserving WAL from now: the slot stands ahead of the timeline (as for a workdir restored
    // from an older backup), and streaming resumes where the primary no longer has the WAL: said so.
    await pg.sql(`SELECT pg_create_physical_replication_slot('${slot}', true)`)
    serve = await startServe(workdir, ['-c', 'wait_lsn_timeout=120s'])
    const behind = await statusOf('stopped:')
    expect(behind.status).toMatch(/^stopped: .*has already been removed/)
    expect(behind.status).toMatch(new RegExp(`the replication slot ${slot} is at [0-9A-F]+/[0-9A-F]+, ahead of this stream's ${last}`))
    expect(serve.stderr()).toContain('its files are older than that')
    await readPastFailsAtOnce(/will not arrive: .*has already been removed/)
  })
})

/** A command line split as a POSIX shell would split this hint's words (bare words and '...' quoting). */
function shellWords(line: string): string[] {
  const words: string[] = []
  for (const m of line.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)) words.push(m[1] !== undefined ? m[1].replaceAll("'\\''", "'") : m[2]!)
  return words
}
