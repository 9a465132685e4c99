/**
 * `pageserver serve` end to end: one server per workdir; the CLI goes through a running server (new tenants
 * and timelines are served at once); pagestream answers equal the offline reads and the primary
 * (GetPage for every block, Nblocks, Exists, DbSize); graceful SIGTERM and restart; JWT auth.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, exportSPKI, SignJWT } from 'jose'
import { PgCluster } from '../support/pg-cluster.js'
import { runCli } from '../support/cli.js'
import { pidNamespaceTag } from '../support/processes.js'
import { startServe, type ServeHandle } from '../support/serve-process.js'
import { PageServiceClient } from '../../src/core/page-service/client.js'
import { loadConfig } from '../../src/core/config/index.js'
import { withRepository, type AppContext } from '../../src/core/app/context.js'
import { readerFor } from '../../src/core/app/pages.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../../src/core/model/ids.js'
import { formatLsn, parseLsn, type Lsn } from '../../src/core/pg/lsn.js'
import { parseServerAddress } from '../../src/cli/getpage-server.js'

describe('pageserver serve', () => {
  let pg: PgCluster
  let root: string
  let workdir: string
  let ctx: AppContext
  let serve: ServeHandle | null = null
  let tenant: string
  let timeline: string
  const env = () => ({ PAGESERVER_WORKDIR: workdir })

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'serve' })
    root = mkdtempSync(join(tmpdir(), 'ps-serve-'))
    workdir = join(root, '.neon')
    ctx = { config: await loadConfig({ workdir, overrides: ['no_sync=true'], env: {} }), env: process.env }
    expect((await runCli(['init'], { env: env() })).code).toBe(0)
    tenant = (await runCli(['tenant', 'create', '--json'], { env: env() })).json<{ tenantId: string }>().tenantId
    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', pg.connString(), '--json'], { env: env() })
    expect(imp.code, imp.stderr).toBe(0)
    timeline = imp.json<{ timelineId: string }>().timelineId
  })
  afterAll(async () => {
    await serve?.stop()
    await pg?.destroy()
    if (root) rmSync(root, { recursive: true, force: true })
  })

  it('holds the workdir: a second serve fails naming the first', async () => {
    serve = await startServe(workdir)
    expect(serve.stdout()).toMatch(/page service 127\.0\.0\.1:\d+/)
    const second = await runCli(['serve', '-c', 'listen_pg_addr=127.0.0.1:0', '-c', 'listen_http_addr=127.0.0.1:0', '--workdir', workdir], { timeoutMs: 20_000 })
    expect(second.code).toBe(4)
    expect(second.stderr).toContain(`pid ${serve.child.pid}`)
  })

  it('streams WAL and answers pagestream requests exactly as the primary and the offline read path', async () => {
    await pg.pgbench(['-i', '-s', '1', '-q'])
    await pg.sql('CHECKPOINT')
    const at = await pg.insertLsn()
    const sync = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(at), '--json'], { env: env() })
    expect(sync.code, sync.stderr).toBe(0)
    expect(parseLsn(sync.json<{ diskConsistentLsn: string }>().diskConsistentLsn) >= at).toBe(true)

    const db = Number(await pg.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'"))
    const relNode = Number(await pg.sql("SELECT pg_relation_filenode('pgbench_accounts')"))
    const rel = { spcNode: 1663, dbNode: db, relNode, forkNum: 0 }
    const primaryBlocks = Number(await pg.sql("SELECT pg_relation_size('pgbench_accounts') / 8192"))
    const client = await PageServiceClient.connect(parseServerAddress(serve!.pgAddr))
    try {
      const ps = await client.pagestream(parseTenantId(tenant), parseTimelineId(timeline), { version: 3 })
      const lsns = { requestLsn: at, notModifiedSince: at }
      expect(await ps.nblocks(rel, lsns)).toBe(primaryBlocks)
      expect(await ps.exists(rel, lsns)).toBe(true)
      expect(await ps.exists({ ...rel, relNode: 999_999 }, lsns)).toBe(false)
      expect(await ps.nblocks({ ...rel, forkNum: 1 }, lsns)).toBeGreaterThanOrEqual(0)
      // DbSize: the relation fork files of the database as PostgreSQL has them on disk, free-space maps aside
      // (PostgreSQL creates and fills them without WAL, so no WAL consumer — a standby, or us — knows their
      // size). The FSM forks we do know (from the import) are counted on our side, so add those back.
      let bytes = 0
      for (const f of readdirSync(join(pg.dataDir, 'base', String(db)))) {
        if (/^\d+(_vm|_init)?(\.\d+)?$/.test(f)) bytes += statSync(join(pg.dataDir, 'base', String(db), f)).size
      }
      const knownFsm = await withRepository(ctx, async (repo) => {
        const t = await repo.tenant(parseTenantId(tenant))
        const reader = readerFor(t, await t.timeline(parseTimelineId(timeline)))
        return reader.relations(1663, db, at).filter((r) => r.forkNum === 1).reduce((n, r) => n + reader.relSize(r, at) * 8192, 0)
      })
      expect(Number(await ps.dbSize(db, lsns))).toBe(bytes + knownFsm)
      // Every block, pipelined, equals the offline read of the same LSN.
      const pages = await Promise.all(Array.from({ length: primaryBlocks }, (_, b) => ps.getPage(rel, b, lsns)))
      await withRepository(ctx, async (repo) => {
        const t = await repo.tenant(parseTenantId(tenant))
        const tl = await t.timeline(parseTimelineId(timeline))
        const reader = readerFor(t, tl)
        for (let b = 0; b < primaryBlocks; b++) expect((await reader.getRelPage(rel, b, at)).equals(pages[b]!), `block ${b}`).toBe(true)
      })
      // Past the end: zeros.
      expect((await ps.getPage(rel, primaryBlocks + 10, lsns)).every((x) => x === 0)).toBe(true)
    } finally {
      await client.close()
    }
  })

  it('serves tenants and timelines created through the CLI while it runs', async () => {
    const t2 = (await runCli(['tenant', 'create', '--json'], { env: env() })).json<{ tenantId: string }>().tenantId
    const created = await runCli(['timeline', 'create', '--tenant', t2, '--json'], { env: env(), timeoutMs: 120_000 })
    expect(created.code, created.stderr).toBe(0)
    const tl2 = created.json<{ timelineId: string; lastRecordLsn: string }>()
    const client = await PageServiceClient.connect(parseServerAddress(serve!.pgAddr))
    try {
      const ps = await client.pagestream(parseTenantId(t2), parseTimelineId(tl2.timelineId), { version: 2 })
      // pg_class of the bootstrap cluster: relfilenode 1259 in the template database 1.
      expect(await ps.nblocks({ spcNode: 1663, dbNode: 1, relNode: 1259, forkNum: 0 }, {})).toBeGreaterThan(0)
    } finally {
      await client.close()
    }
    // -c overrides are checked but cannot apply through the server: said on stderr, stdout stays the result.
    const list = await runCli(['timeline', 'list', '--tenant', t2, '--json', '-c', 'checkpoint_distance=1MiB'], { env: env() })
    expect(list.json<Array<{ timelineId: string }>>().map((t) => t.timelineId)).toEqual([tl2.timelineId])
    expect(list.stderr).toContain('-c "checkpoint_distance=1MiB" not applied')
    // A branch made through the server at its in-memory last record.
    const br = await runCli(['timeline', 'branch', '--tenant', tenant, '--ancestor', timeline, '--json'], { env: env() })
    expect(br.code, br.stderr).toBe(0)
    // An import through the server answers once its pages are readable, as the offline import does: its
    // lastRecordLsn is a place to branch at (it was the backup's start, below minReadableLsn: refused).
    const imp = await runCli(['timeline', 'import', '--tenant', t2, '--from', pg.connString(), '--json'], { env: env(), timeoutMs: 120_000 })
    expect(imp.code, imp.stderr).toBe(0)
    const imported = imp.json<{ timelineId: string; lastRecordLsn: string; minReadableLsn: string; prevRecordLsn: string | null }>()
    expect(parseLsn(imported.lastRecordLsn) >= parseLsn(imported.minReadableLsn), JSON.stringify(imported)).toBe(true)
    expect(imported.prevRecordLsn).not.toBeNull()
    const atImport = await runCli(['timeline', 'branch', '--tenant', t2, '--ancestor', imported.timelineId, '--lsn', imported.lastRecordLsn, '--json'], { env: env() })
    expect(atImport.code, atImport.stderr).toBe(0)
    // A new source that cannot be reached is refused, and the timeline goes on streaming from its own.
    const bad = await runCli(['timeline', 'source', '--tenant', tenant, '--timeline', timeline, '--from', 'host=127.0.0.1 port=1 user=postgres', '--json'], { env: env() })
    expect(bad.code).not.toBe(0)
    await pg.sql('CREATE TABLE after_refused_source (a int)')
    const at = await pg.insertLsn()
    const synced = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(at), '--json'], { env: env(), timeoutMs: 30_000 })
    expect(synced.code, synced.stderr).toBe(0)

    // Through the server, `records` counts what its receiver ingested while the request waited: here for
    // 8 MiB of WAL written after the request went out (at a pace that leaves the CLI seconds to send it).
    await pg.sql('CREATE TABLE during_sync (a int, pad text)')
    const ahead = (await pg.insertLsn()) + 8n * 1024n * 1024n
    const waiting = runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(ahead as Lsn), '--json'], { env: env(), timeoutMs: 60_000 })
    let done = false
    void waiting.then(() => (done = true))
    while (!done) {
      await pg.sql("INSERT INTO during_sync SELECT g, repeat('x', 200) FROM generate_series(1, 1000) g")
      await new Promise((r) => setTimeout(r, 100))
    }
    const w = await waiting
    expect(w.code, w.stderr).toBe(0)
    expect(parseLsn(w.json<{ lastRecordLsn: string }>().lastRecordLsn) >= ahead).toBe(true)
    expect(w.json<{ records: number }>().records).toBeGreaterThan(1000)
  })

  it('lets its primary shut down at once: the primary waits for the WAL it sent to be flushed, which it asks for', async () => {
    await pg.sql('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 100')
    const at = await pg.insertLsn()
    const s = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(at)], { env: env() })
    expect(s.code, s.stderr).toBe(0)
    await pg.sql('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 100') // in memory only
    // A stock walsender at shutdown waits until the standby reports everything it sent as flushed; before,
    // that waited for checkpoint_timeout (10 min) and pg_ctl gave up after 60 s.
    const t0 = Date.now()
    await pg.restart('fast')
    expect(Date.now() - t0).toBeLessThan(20_000)
    expect(await pg.sql('SELECT 1')).toBe('1')
  }, 120_000)

  it('shuts down gracefully on SIGTERM and resumes after a restart', async () => {
    await pg.sql("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 500")
    const at = await pg.insertLsn()
    const s = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(at)], { env: env() })
    expect(s.code, s.stderr).toBe(0)
    expect(await serve!.stop()).toBe(0)
    expect(serve!.stderr()).toContain('page server stopped')
    expect(readdirSync(workdir)).not.toContain('pageserver.lock')
    // Offline, the flushed data is there.
    const list = await runCli(['timeline', 'list', '--tenant', tenant, '--json'], { env: env() })
    const info = list.json<Array<{ timelineId: string; diskConsistentLsn: string }>>().find((t) => t.timelineId === timeline)!
    expect(parseLsn(info.diskConsistentLsn) >= at).toBe(true)
    // Restarted for scripts: --json gives the addresses as the first stdout line, and JSON logs.
    serve = await startServe(workdir, ['--json', '--shutdown-timeout', '20s'])
    const started = JSON.parse(serve.stdout().split('\n')[0]!) as { listening: { pgAddr: string; httpAddr: string; workdir: string; pid: number } }
    expect(started.listening).toEqual({ pgAddr: serve.pgAddr, httpAddr: serve.httpAddr, workdir, pid: serve.child.pid })
    await pg.sql("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 500")
    const at2 = await pg.insertLsn()
    const s2 = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(at2)], { env: env() })
    expect(s2.code, s2.stderr).toBe(0)
    const restarted = serve
    expect(await restarted.stop()).toBe(0)
    // JSON lines: the startup line, then the result as one line.
    const outLines = restarted.stdout().trim().split('\n')
    expect(outLines).toHaveLength(2)
    expect(JSON.parse(outLines[1]!)).toEqual({ stopped: true, signal: 'SIGTERM' })
    const logLines = restarted.stderr().trim().split('\n')
    expect(logLines.length).toBeGreaterThan(0)
    for (const l of logLines) expect(JSON.parse(l)).toHaveProperty('level')
    expect(logLines.some((l) => (JSON.parse(l) as { deadlineMs?: number }).deadlineMs === 20_000)).toBe(true)
    serve = await startServe(workdir)
  })

  it('SIGTERM with a management request still running: it is answered 503, the server exits anyway (its lock held to the end), and the workdir is usable after', async () => {
    // Before, the server logged "stopped" and released the workdir lock but lived on under the request: a
    // wal_source change restarted streaming into the workdir with no lock held (a concurrency audit).
    await serve!.stop()
    const s = await startServe(workdir, ['--json', '--shutdown-timeout', '3s'])
    serve = s
    // A WAL source that accepts connections and never answers: the request's handler outlives the shutdown.
    const sockets: Socket[] = []
    const blackhole = createServer((c) => sockets.push(c))
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r))
    const port = (blackhole.address() as AddressInfo).port
    try {
      const pending = fetch(`http://${s.httpAddr}/v1/tenant/${tenant}/timeline/${timeline}/wal_source`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ conn_string: `host=127.0.0.1 port=${port} user=postgres` }),
      })
      while (sockets.length === 0) await new Promise((r) => setTimeout(r, 20))
      const t0 = Date.now()
      expect(await s.stop(20_000)).toBe(0) // SIGKILL (code null) after 20 s if it lingers
      expect(Date.now() - t0).toBeLessThan(10_000)
      const answer = await pending
      expect(answer.status).toBe(503)
      expect(((await answer.json()) as { code: string }).code).toBe('SERVER_SHUTTING_DOWN')
      expect(s.stderr()).toContain('management requests still running')
      expect(JSON.parse(s.stdout().trim().split('\n').at(-1)!)).toEqual({ stopped: true, signal: 'SIGTERM' })
    } finally {
      for (const c of sockets) c.destroy()
      blackhole.close()
    }
    // Offline commands and a new server take the workdir; the timeline still streams from the primary it had.
    const list = await runCli(['timeline', 'list', '--tenant', tenant, '--json'], { env: env() })
    expect(list.code, list.stderr).toBe(0)
    const tl = list.json<Array<{ timelineId: string; walSource: { connString: string } | null }>>().find((t) => t.timelineId === timeline)!
    expect(tl.walSource?.connString).toBeDefined()
    expect(tl.walSource!.connString).not.toContain(`port=${port}`)
    serve = await startServe(workdir)
  })

  it('SIGTERM during a sync waiting for WAL: the sync is answered 503 at once with the position reached, and the server stops cleanly', async () => {
    // Before, the sync kept waiting (up to wait_lsn_timeout) through the shutdown's grace for management
    // requests, was then answered 503 by the HTTP server, and the process exited under it, lock held.
    await serve!.stop()
    const s = await startServe(workdir, ['--json', '--shutdown-timeout', '30s'])
    serve = s
    const base = `http://${s.httpAddr}/v1/tenant/${tenant}/timeline/${timeline}`
    const info = (await (await fetch(base)).json()) as { lastRecordLsn: string }
    const until = formatLsn((parseLsn(info.lastRecordLsn) + 0x4000_0000n) as Lsn) // 1 GiB ahead of a quiet primary
    const pending = fetch(`${base}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ until }) })
    // The handler logs just before it starts waiting (in the same turn).
    for (const t = Date.now(); !s.stderr().includes('sync waiting for WAL'); ) {
      if (Date.now() - t > 15_000) throw new Error(`the sync did not start waiting: ${s.stderr()}`)
      await new Promise((r) => setTimeout(r, 20))
    }
    const t0 = Date.now()
    const code = await s.stop(20_000)
    const answer = await pending
    expect(code).toBe(0)
    expect(Date.now() - t0).toBeLessThan(8000) // the grace for management requests is 10 s here
    expect(answer.status).toBe(503)
    const body = (await answer.json()) as { code: string; msg: string }
    expect(body.code).toBe('SERVER_SHUTTING_DOWN')
    expect(body.msg).toMatch(new RegExp(`synced to [0-9A-F]+/[0-9A-F]+ of ${until}`))
    expect(s.stderr()).not.toContain('management requests still running')
    serve = await startServe(workdir) // the lock was released: a new server takes the workdir
  })

  it('removes at start the initdb scratch directories of processes that are gone (a serve killed mid-bootstrap)', async () => {
    await serve!.stop()
    const tmp = mkdtempSync(join(tmpdir(), 'ps-serve-tmp-'))
    try {
      const dead = spawnSync(process.execPath, ['-e', '0']).pid! // a pid that existed and is gone
      const ns = pidNamespaceTag()
      mkdirSync(join(tmp, `pageserver-initdb-${dead}-${ns}-abc123`, 'pgdata', 'global'), { recursive: true })
      mkdirSync(join(tmp, `pageserver-initdb-${process.pid}-${ns}-live`)) // a live process's: kept
      serve = await startServe(workdir, [], { TMPDIR: tmp })
      expect(readdirSync(tmp).sort()).toEqual([`pageserver-initdb-${process.pid}-${ns}-live`])
      expect(serve.stderr()).toContain('removed initdb scratch directories')
    } finally {
      rmSync(tmp, { recursive: true, force: true })
    }
  })

  it('with NeonJWT auth: refuses missing, foreign-tenant and wrong-scope tokens; accepts tenant and pageserverapi tokens', async () => {
    await serve!.stop()
    const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const keyPath = join(root, 'auth_public_key.pem')
    writeFileSync(keyPath, await exportSPKI(publicKey))
    const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA' }).sign(privateKey)
    serve = await startServe(workdir, ['-c', 'auth_type=NeonJWT', '-c', `auth_validation_public_key_path='${keyPath}'`])
    const tid = parseTenantId(tenant) as TenantId
    const tlid = parseTimelineId(timeline) as TimelineId
    const rel = { spcNode: 1663, dbNode: 1, relNode: 1259, forkNum: 0 }
    const tryPagestream = async (token: string | undefined) => {
      const c = await PageServiceClient.connect({ ...parseServerAddress(serve!.pgAddr), ...(token ? { token } : {}) })
      try {
        const ps = await c.pagestream(tid, tlid, { version: 2 })
        return await ps.nblocks(rel, {})
      } finally {
        await c.close()
      }
    }
    await expect(tryPagestream(undefined)).rejects.toThrow()
    await expect(tryPagestream(await sign({ scope: 'tenant', tenant_id: '0'.repeat(31) + '1' }))).rejects.toThrow(/[Pp]ermission denied|mismatch/)
    await expect(tryPagestream(await sign({ scope: 'safekeeperdata' }))).rejects.toThrow(/ineligible/)
    await expect(tryPagestream(await sign({ scope: 'tenant', tenant_id: tenant }))).resolves.toBeGreaterThan(0)
    await expect(tryPagestream(await sign({ scope: 'pageserverapi' }))).resolves.toBeGreaterThan(0)
    // The management API and the CLI through it.
    const noToken = await runCli(['tenant', 'create', '--json'], { env: env() })
    expect(noToken.code).toBe(2)
    const tenantToken = await runCli(['tenant', 'create', '--json'], { env: { ...env(), NEON_AUTH_TOKEN: await sign({ scope: 'tenant', tenant_id: tenant }) } })
    expect(tenantToken.code).toBe(2)
    expect(tenantToken.json<{ error: { message: string } }>().error.message).toMatch(/tenant scope/)
    const admin = await runCli(['tenant', 'create', '--json'], { env: { ...env(), NEON_AUTH_TOKEN: await sign({ scope: 'pageserverapi' }) } })
    expect(admin.code, admin.stderr).toBe(0)
    const ownList = await runCli(['timeline', 'list', '--tenant', tenant, '--json'], { env: { ...env(), NEON_AUTH_TOKEN: await sign({ scope: 'tenant', tenant_id: tenant }) } })
    expect(ownList.code, ownList.stderr).toBe(0)
  })
})
