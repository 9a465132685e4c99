/**
 * `pageserver local start|stop`: the newcomer's one command. From an empty directory it must leave a running
 * PostgreSQL whose WAL a background page server stores; `local stop` stops both; a second start resumes the
 * same cluster with its data. A start repairs whatever mix it finds: only the server running (PostgreSQL
 * stopped by hand), only PostgreSQL running (the server killed, its lock left stale), both running (it
 * reports them), a port taken (a clear error, and a later --pg-port takes effect). The steps it prints run.
 * What it did not start it leaves alone: a `serve` the user ran (stop leaves it running), a pid in a lock or
 * postmaster.pid that now names another process (never signalled), a timeline that follows another primary
 * (never taken over). A failed start says why (this attempt's log lines, the page server's own error) and
 * leaves nothing of its own running; an interrupted first start is simply run again (local-interrupt.test.ts).
 *
 * In the first describe the `it`s share one workdir and run in order: each starts from the state the previous
 * one left. The others have a workdir each.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI_BIN, runCli } from '../support/cli.js'
import { freePort, isRoot, PgCluster } from '../support/pg-cluster.js'
import { startServe } from '../support/serve-process.js'
import { findPostgres, runPgTool } from '../../src/core/postgres/install.js'
import { runningPostmaster } from '../../src/core/app/local-postgres.js'
import { processAlive } from '../../src/core/storage/process-identity.js'

interface StartResult {
  tenantId: string
  timelineId: string
  pgDataDir: string
  pgPort: number
  pgLogFile: string
  pgSocketDir: string
  servePid: number
  psql: string
  startedPostgres: boolean
  startedServer: boolean
  cli: string
}

describe('pageserver local start / stop', () => {
  // Made when the tests run (not when they are collected), so a filtered run leaves no directory behind.
  let root = ''
  let workdir = ''
  const env: Record<string, string> = {}
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ps-local-'))
    chmodSync(root, 0o755)
    workdir = join(root, '.neon')
    env.PAGESERVER_WORKDIR = workdir
  })
  const overrides = ['-c', 'listen_pg_addr=127.0.0.1:0', '-c', 'listen_http_addr=127.0.0.1:0', '-c', 'no_sync=true']
  const inst = findPostgres(undefined, process.env)
  let pgPort = 0
  let ids = { tenantId: '', timelineId: '' }

  afterAll(async () => {
    if (root === '') return
    await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })
    rmSync(root, { recursive: true, force: true })
  })

  const psql = async (sql: string) =>
    (await runPgTool(inst, 'psql', ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(pgPort), '-U', 'postgres', '-d', 'postgres', '-c', sql])).stdout.trim()
  const start = async (args: string[] = [], opts: { env?: Record<string, string | undefined> } = {}) =>
    runCli(['local', 'start', ...overrides, ...args], { env: { ...env, ...opts.env }, timeoutMs: 180_000 })
  const state = () => JSON.parse(readFileSync(join(workdir, 'local', 'state.json'), 'utf8')) as StartResult
  /** Writes on the local PostgreSQL reach the timeline through the running server. */
  const expectStreaming = async (table: string) => {
    await psql(`CREATE TABLE ${table} AS SELECT g FROM generate_series(1, 10) g`)
    const lsn = await psql('SELECT pg_current_wal_insert_lsn()')
    const sync = await runCli(['timeline', 'sync', '--tenant', ids.tenantId, '--timeline', ids.timelineId, '--until', lsn, '--json'], { env, timeoutMs: 60_000 })
    expect(sync.code, sync.stderr + sync.stdout).toBe(0)
  }

  it('starts PostgreSQL and a page server storing its WAL, stops both, and resumes', async () => {
    pgPort = await freePort()
    const first = await start(['--pg-port', String(pgPort), '--json'])
    expect(first.code, first.stderr).toBe(0)
    const s = first.json<StartResult>()
    ids = { tenantId: s.tenantId, timelineId: s.timelineId }
    expect(s.psql).toContain(String(pgPort))
    expect([s.startedPostgres, s.startedServer]).toEqual([true, true])
    await psql('CREATE TABLE hello AS SELECT g FROM generate_series(1, 500) g')
    const lsn = await psql('SELECT pg_current_wal_insert_lsn()')
    // The server streams it: the timeline reaches the primary's LSN (sync goes through the running server).
    const sync = await runCli(['timeline', 'sync', '--tenant', s.tenantId, '--timeline', s.timelineId, '--until', lsn, '--json'], { env, timeoutMs: 60_000 })
    expect(sync.code, sync.stderr).toBe(0)
    // A second start while both run reports them and changes nothing.
    const twice = await start(['--json'])
    expect(twice.code, twice.stderr + twice.stdout).toBe(0)
    expect(twice.json<StartResult>()).toMatchObject({ startedPostgres: false, startedServer: false, servePid: s.servePid, pgPort })

    const stop = await runCli(['local', 'stop', '--json'], { env, timeoutMs: 120_000 })
    expect(stop.code, stop.stderr).toBe(0)
    expect(stop.json<{ serverStopped: boolean; postgresStopped: boolean }>()).toEqual({ serverStopped: true, serverKilled: false, serverLeftRunning: null, postgresStopped: true, branchesRunning: [] })
    // Not silent while it waits: what it stops is said on stderr (not a terminal here), the JSON alone on stdout.
    expect(stop.stderr).toContain('stopping the page server')
    expect(existsSync(join(workdir, 'pageserver.lock'))).toBe(false)

    const again = await start(['--json'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.json<{ timelineId: string }>().timelineId).toBe(s.timelineId)
    expect(await psql('SELECT count(*) FROM hello')).toBe('500')
    expect(state().servePid).toBeGreaterThan(0)
  })

  it('starts PostgreSQL stopped by hand through the running server', async () => {
    const before = state()
    await runPgTool(inst, 'pg_ctl', ['-D', before.pgDataDir, '-m', 'fast', '-w', '-t', '60', 'stop'], { asPostgresUser: true, timeoutMs: 90_000 })
    const r = await start(['--json'])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    expect(r.json<StartResult>()).toMatchObject({ startedPostgres: true, startedServer: false, servePid: before.servePid })
    await expectStreaming('after_pg_restart')
  })

  it('starts a new server after the old one was killed (its stale lock is taken over)', async () => {
    const before = state()
    process.kill(before.servePid, 'SIGKILL')
    expect(existsSync(join(workdir, 'pageserver.lock'))).toBe(true)
    const r = await start(['--json'])
    expect(r.code, r.stderr + r.stdout).toBe(0)
    const s = r.json<StartResult>()
    expect(s).toMatchObject({ startedPostgres: false, startedServer: true })
    expect(s.servePid).not.toBe(before.servePid)
    await expectStreaming('after_server_crash')
  })

  it('refuses a port in use, naming it; a later --pg-port takes effect while PostgreSQL is stopped', async () => {
    expect((await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })).code).toBe(0)
    const busy = createServer()
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
    const busyPort = (busy.address() as { port: number }).port
    try {
      // No `pageserver` on PATH: the hint names the command as this checkout runs it.
      const r = await start(['--pg-port', String(busyPort), '--json'], { env: { PATH: '/usr/bin:/bin' } })
      expect(r.code, r.stdout).toBe(4)
      const e = r.json<{ error: { code: string; message: string; hint: string } }>().error
      expect(e.code).toBe('PG_PORT_IN_USE')
      expect(e.message).toContain(String(busyPort))
      expect(e.hint).toContain('--pg-port')
      // Run on this workdir, not the default one: the hint says where.
      expect(e.hint).toContain(`\`${CLI_BIN} local start -D ${workdir} --pg-port`)
      // The refused port is remembered, so a retry without --pg-port names it again rather than another one.
      const retry = await start(['--json'])
      expect(retry.json<{ error: { message: string } }>().error.message).toContain(String(busyPort))
    } finally {
      await new Promise((resolve) => busy.close(resolve))
    }
    pgPort = await freePort()
    const moved = await start(['--pg-port', String(pgPort), '--json'])
    expect(moved.code, moved.stderr + moved.stdout).toBe(0)
    expect(moved.json<StartResult>()).toMatchObject({ pgPort, startedPostgres: true, startedServer: true })
    expect(await psql('SELECT count(*) FROM hello')).toBe('500')
    const conf = readFileSync(join(state().pgDataDir, 'postgresql.conf'), 'utf8')
    expect(conf.match(/^port = \d+$/gm)).toEqual([`port = ${pgPort}`])
    await expectStreaming('after_port_change')
    // While it runs, another port cannot take effect: refused, not ignored.
    const other = await start(['--pg-port', String(pgPort + 1), '--json'])
    expect(other.code).toBe(4)
    expect(other.json<{ error: { code: string } }>().error.code).toBe('LOCAL_PG_RUNNING_ON_OTHER_PORT')
  })

  it('prints steps that run as printed: `pageserver` only when that name on PATH is this installation', async () => {
    const bins = join(root, 'bins')
    const linked = join(bins, 'linked')
    const other = join(bins, 'other')
    mkdirSync(linked, { recursive: true })
    mkdirSync(other, { recursive: true })
    symlinkSync(CLI_BIN, join(linked, 'pageserver'))
    writeFileSync(join(other, 'pageserver'), '#!/bin/sh\nexit 1\n', { mode: 0o755 })

    const viaLink = await start([], { env: { PATH: `${linked}:/usr/bin:/bin` } })
    expect(viaLink.code, viaLink.stderr).toBe(0)
    expect(viaLink.stdout).toContain('Already running')
    expect(viaLink.stdout).toMatch(/^Stop: +pageserver local stop /m)

    // The suggested branch port is one that is free now: 55440 taken (here by us), another is named.
    const taken = createServer()
    const holding = await new Promise<boolean>((resolve) => {
      taken.once('error', () => resolve(false))
      taken.listen(55440, '127.0.0.1', () => resolve(true))
    })
    try {
      const r = await start([], { env: { PATH: '/usr/bin:/bin' } })
      expect(r.code, r.stderr).toBe(0)
      const port = /-o '-p (\d+)' start/.exec(r.stdout)?.[1]
      // One directory per branch, beside the local data directory.
      expect(r.stdout).toContain(`-D ${join(state().pgSocketDir, 'branch-')}<branch id>`)
      expect(port).toBeDefined()
      if (holding) expect(port).not.toBe('55440')
      expect(port).not.toBe(String(pgPort))
    } finally {
      if (holding) await new Promise((resolve) => taken.close(resolve))
    }

    for (const path of [`${other}:/usr/bin:/bin`, '/usr/bin:/bin']) {
      const r = await start([], { env: { PATH: path } })
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).not.toMatch(/(^|\s)pageserver /)
      expect(r.stdout).toContain(`${CLI_BIN} timeline branch --workdir ${workdir} --tenant ${ids.tenantId} --ancestor ${ids.timelineId}`)
      // The branch's PostgreSQL becomes the branch's WAL source, so its writes stream into the branch.
      expect(r.stdout).toMatch(new RegExp(`${CLI_BIN} timeline source --workdir \\S+ --tenant ${ids.tenantId} --timeline <branch id> --from 'host=127\\.0\\.0\\.1 port=\\d+ user=postgres'`))
    }
    const json = await start(['--json'], { env: { PATH: '/usr/bin:/bin' } })
    expect(json.json<StartResult>().cli).toBe(CLI_BIN)
  })

  it('adopts a `serve` started separately, and `local stop` leaves it running', async () => {
    expect((await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })).code).toBe(0)
    const serve = await startServe(workdir)
    try {
      const r = await start([])
      expect(r.code, r.stderr + r.stdout).toBe(0)
      expect(r.stdout).toContain(`page server (pid ${serve.child.pid}) was started separately`)
      // Its log is wherever its user sent it: local start names only PostgreSQL's.
      expect(r.stdout).not.toContain('pageserver.log')
      const again = await start(['--json'])
      expect(again.json<StartResult & { serveStartedByLocal: boolean }>()).toMatchObject({ startedPostgres: false, startedServer: false, servePid: serve.child.pid, serveStartedByLocal: false })
      await expectStreaming('adopted_server')
      const stop = await runCli(['local', 'stop', '--json'], { env, timeoutMs: 120_000 })
      expect(stop.code, stop.stderr).toBe(0)
      expect(stop.json()).toEqual({ serverStopped: false, serverKilled: false, serverLeftRunning: serve.child.pid, postgresStopped: true, branchesRunning: [] })
      expect(serve.child.exitCode).toBeNull()
      expect(() => process.kill(serve.child.pid!, 0)).not.toThrow()
      const human = await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })
      expect(human.stdout).toContain(`left the page server (pid ${serve.child.pid}) running`)
    } finally {
      await serve.stop()
    }
  })

  it('a postmaster.pid whose pid is now another process is stale: stop does not signal it, start starts PostgreSQL', async () => {
    // Everything is stopped. After a reboot, the pid in postmaster.pid is some other process's (here a root-owned
    // `sleep`; PostgreSQL, run as postgres, gets EPERM for it and takes the file as stale, as we must).
    const pgData = state().pgDataDir
    const other = spawn('sleep', ['60'], { stdio: 'ignore' })
    try {
      const lines = [other.pid, pgData, '1767225600', pgPort, state().pgSocketDir, '127.0.0.1', '  5432001    196608', 'ready   ', '']
      writeFileSync(join(pgData, 'postmaster.pid'), lines.join('\n'))
      const stop = await runCli(['local', 'stop', '--json'], { env, timeoutMs: 120_000 })
      expect(stop.code, stop.stdout + stop.stderr).toBe(0)
      expect(stop.json()).toMatchObject({ serverStopped: false, postgresStopped: false })
      expect(other.exitCode).toBeNull()
      const r = await start(['--json'])
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(r.json<StartResult>()).toMatchObject({ startedPostgres: true, startedServer: true, pgPort })
      expect(other.exitCode).toBeNull()
      await expectStreaming('after_stale_postmaster_pid')
    } finally {
      other.kill('SIGKILL')
    }
  })

  it('page server ports in use: one conflict naming both settings, before PostgreSQL is started', async () => {
    expect((await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })).code).toBe(0)
    const busy = [createServer(), createServer()]
    for (const b of busy) await new Promise<void>((resolve) => b.listen(0, '127.0.0.1', resolve))
    const [pgBusy, httpBusy] = busy.map((b) => (b.address() as { port: number }).port)
    try {
      const r = await start(['-c', `listen_pg_addr=127.0.0.1:${pgBusy}`, '-c', `listen_http_addr=127.0.0.1:${httpBusy}`, '--json'])
      expect(r.code, r.stdout + r.stderr).toBe(4)
      const e = r.json<{ error: { code: string; message: string; hint: string } }>().error
      expect(e.code).toBe('SERVE_PORT_IN_USE')
      expect(e.message).toContain(`listen_pg_addr 127.0.0.1:${pgBusy}`)
      expect(e.message).toContain(`listen_http_addr 127.0.0.1:${httpBusy}`)
      expect(e.hint).toContain('listen_pg_addr = "127.0.0.1:<port>", listen_http_addr = "127.0.0.1:<port>"')
      expect(e.hint).toContain(join(workdir, 'pageserver.toml'))
      expect(runningPostmaster(state().pgDataDir)).toBeNull()
      expect(r.stderr).not.toContain('starting PostgreSQL')
    } finally {
      for (const b of busy) await new Promise((resolve) => b.close(resolve))
    }
  })

  it('`local stop` names a PostgreSQL still running on a branch export beside the local data directory', async () => {
    expect((await start(['--json'])).code).toBe(0)
    const branchDir = join(state().pgSocketDir, 'branch-0123456789ab')
    const port = await freePort()
    await runPgTool(inst, 'initdb', ['-D', branchDir, '-U', 'postgres', '--no-sync'], { asPostgresUser: true, timeoutMs: 120_000 })
    await runPgTool(inst, 'pg_ctl', ['-D', branchDir, '-l', join(branchDir, 'postgresql.log'), '-o', `-p ${port} -c listen_addresses=127.0.0.1 -k ${branchDir}`, '-w', '-t', '60', 'start'], { asPostgresUser: true, timeoutMs: 90_000 })
    try {
      const stop = await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })
      expect(stop.code, stop.stderr).toBe(0)
      expect(stop.stdout).toContain(`still running: a PostgreSQL on a branch export, port ${port} (${branchDir})`)
      expect(stop.stdout).toContain(`-D ${branchDir} stop`)
      expect(runningPostmaster(branchDir)?.port).toBe(port)
    } finally {
      await runPgTool(inst, 'pg_ctl', ['-D', branchDir, '-m', 'immediate', '-w', '-t', '60', 'stop'], { asPostgresUser: true, timeoutMs: 90_000 })
      rmSync(branchDir, { recursive: true, force: true })
    }
    const again = await runCli(['local', 'stop', '--json'], { env, timeoutMs: 120_000 })
    expect(again.json<{ branchesRunning: unknown[] }>().branchesRunning).toEqual([])
  })

  it.skipIf(!isRoot())('PostgreSQL failing to start: the error quotes what this attempt said, not older log lines', async () => {
    // The log cannot be opened by the postgres user: pg_ctl fails before PostgreSQL writes a line, and the
    // log's last lines are an earlier run's.
    const log = state().pgLogFile
    const owner = statSync(log)
    appendFileSync(log, 'OLD LINE FROM AN EARLIER RUN 1\nOLD LINE FROM AN EARLIER RUN 2\nOLD LINE FROM AN EARLIER RUN 3\n')
    chownSync(log, 0, 0)
    chmodSync(log, 0o600)
    try {
      const r = await start(['--json'])
      expect(r.code, r.stdout + r.stderr).toBe(6)
      const e = r.json<{ error: { code: string; message: string } }>().error
      expect(e.code).toBe('PG_START_FAILED')
      expect(e.message).not.toContain('OLD LINE')
      expect(e.message).toContain('Permission denied')
    } finally {
      chownSync(log, owner.uid, owner.gid)
      chmodSync(log, owner.mode & 0o777)
    }
  })

  it('local stop says when it had to kill the page server', async () => {
    const r = await start(['--json'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    const pid = r.json<StartResult>().servePid
    process.kill(pid, 'SIGSTOP') // it cannot act on SIGTERM now
    const stop = await runCli(['local', 'stop', '--timeout', '1s', '--json'], { env, timeoutMs: 120_000 })
    expect(stop.code, stop.stderr).toBe(0)
    expect(stop.json()).toEqual({ serverStopped: true, serverKilled: true, serverLeftRunning: null, postgresStopped: true, branchesRunning: [] })
    expect(processAlive(pid)).toBe(false) // gone, or a zombie until init reaps it
    const human = await start([])
    expect(human.code, human.stderr).toBe(0)
    process.kill(state().servePid, 'SIGSTOP')
    const said = await runCli(['local', 'stop', '--timeout', '1s'], { env, timeoutMs: 120_000 })
    expect(said.stdout).toContain('killed: it did not exit within 1s of SIGTERM')
  })
})

describe('local start never takes over a timeline that follows another primary', () => {
  // Made when the tests run (not when they are collected), so a filtered run leaves no directory behind.
  let root = ''
  let workdir = ''
  let env: Record<string, string> = {}
  const overrides = ['-c', 'listen_pg_addr=127.0.0.1:0', '-c', 'listen_http_addr=127.0.0.1:0', '-c', 'no_sync=true']
  let primary: PgCluster | null = null

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ps-local-other-'))
    chmodSync(root, 0o755)
    workdir = join(root, '.neon')
    env = { PAGESERVER_WORKDIR: workdir }
  })
  afterAll(async () => {
    await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })
    await primary?.destroy()
    rmSync(root, { recursive: true, force: true })
  })

  it('init, tenant create, timeline import, local start: a timeline of its own; the imported one keeps its primary', async () => {
    primary = await PgCluster.start({ name: 'local-other' })
    expect((await runCli(['init'], { env })).code).toBe(0)
    const tenant = (await runCli(['tenant', 'create', '--json'], { env })).json<{ tenantId: string }>().tenantId
    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', primary.connString(), '--json'], { env, timeoutMs: 120_000 })
    expect(imp.code, imp.stderr + imp.stdout).toBe(0)
    const imported = imp.json<{ timelineId: string; walSource: { connString: string; slotName: string } }>()
    const sourceBefore = imported.walSource

    const pgPort = await freePort()
    const r = await runCli(['local', 'start', ...overrides, '--pg-port', String(pgPort), '--json'], { env, timeoutMs: 180_000 })
    expect(r.code, r.stderr + r.stdout).toBe(0)
    const s = r.json<StartResult & { otherSourceTimelines: number }>()
    expect(s.timelineId).not.toBe(imported.timelineId)
    // The only tenant has a timeline of someone else's: start makes a tenant of its own.
    expect(s.tenantId).not.toBe(tenant)
    expect(s.otherSourceTimelines).toBe(1)
    const human = await runCli(['local', 'start', ...overrides], { env, timeoutMs: 180_000 })
    expect(human.stdout).toContain('1 other timeline(s) of this workdir stream WAL from their own primaries')
    const listed = (await runCli(['timeline', 'list', '--tenant', tenant, '--json'], { env })).json<Array<{ timelineId: string; walSource: unknown }>>()
    expect(listed.find((t) => t.timelineId === imported.timelineId)?.walSource).toMatchObject(sourceBefore)
    // The running server streams from the primary: its slot is in use.
    const deadline = Date.now() + 30_000
    let active = ''
    while (active !== 't' && Date.now() < deadline) {
      active = await primary.sql(`SELECT active FROM pg_replication_slots WHERE slot_name = '${sourceBefore.slotName}'`)
      if (active !== 't') await new Promise((resolve) => setTimeout(resolve, 200))
    }
    expect(active).toBe('t')
  })

  it('a state.json naming a timeline that follows another primary is refused, and the timeline left as it was', async () => {
    expect((await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })).code).toBe(0)
    const tenants = (await runCli(['tenant', 'list', '--json'], { env })).json<Array<{ tenantId: string }>>()
    const statePath = join(workdir, 'local', 'state.json')
    const own = JSON.parse(readFileSync(statePath, 'utf8')) as StartResult
    const other = tenants.find((t) => t.tenantId !== own.tenantId)!.tenantId
    const tl = (await runCli(['timeline', 'list', '--tenant', other, '--json'], { env })).json<Array<{ timelineId: string; walSource: unknown }>>()[0]!
    // As a version that took the imported timeline over would have left it.
    writeFileSync(statePath, JSON.stringify({ ...own, tenantId: other, timelineId: tl.timelineId, pgDataDir: join(workdir, 'local', 'pgdata-taken') }))
    try {
      const r = await runCli(['local', 'start', ...overrides, '--json'], { env, timeoutMs: 180_000 })
      expect(r.code, r.stdout + r.stderr).toBe(4)
      expect(r.json<{ error: { code: string } }>().error.code).toBe('LOCAL_TIMELINE_HAS_OTHER_SOURCE')
      expect(existsSync(join(workdir, 'local', 'pgdata-taken'))).toBe(false)
      const after = (await runCli(['timeline', 'list', '--tenant', other, '--json'], { env })).json<Array<{ timelineId: string; walSource: unknown }>>()[0]!
      expect(after.walSource).toEqual(tl.walSource)
    } finally {
      writeFileSync(statePath, JSON.stringify(own))
    }
  })

  it('a state.json naming a timeline or tenant since deleted: LOCAL_TIMELINE_GONE before PostgreSQL starts, and a start without it sets up anew', async () => {
    expect((await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })).code).toBe(0)
    const statePath = join(workdir, 'local', 'state.json')
    const own = JSON.parse(readFileSync(statePath, 'utf8')) as StartResult
    const del = await runCli(['timeline', 'delete', '--tenant', own.tenantId, '--timeline', own.timelineId], { env, timeoutMs: 60_000 })
    expect(del.code, del.stderr).toBe(0)
    // Before: PostgreSQL was started, then the WAL source could not be recorded ("does not exist"), PostgreSQL
    // stopped again, with a hint to list timelines; every later start the same.
    for (const step of ['timeline', 'tenant'] as const) {
      if (step === 'tenant') expect((await runCli(['tenant', 'delete', '--tenant', own.tenantId], { env, timeoutMs: 60_000 })).code).toBe(0)
      const r = await runCli(['local', 'start', ...overrides, '--json'], { env, timeoutMs: 180_000 })
      expect(r.code, r.stdout + r.stderr).toBe(3)
      const e = r.json<{ error: { code: string; message: string; hint: string } }>().error
      expect(e.code).toBe('LOCAL_TIMELINE_GONE')
      expect(e.hint).toContain(`move ${statePath} aside`)
      expect(e.message).not.toContain('stopped again')
      expect(runningPostmaster(own.pgDataDir)).toBeNull()
    }
    rmSync(statePath)
    const again = await runCli(['local', 'start', ...overrides, '--json'], { env, timeoutMs: 180_000 })
    expect(again.code, again.stdout + again.stderr).toBe(0)
    expect(again.json<StartResult>().timelineId).not.toBe(own.timelineId)
  })
})

describe('pids recorded before a reboot', () => {
  let root = ''
  let workdir = ''
  let env: Record<string, string> = {}
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ps-local-pids-'))
    workdir = join(root, '.neon')
    env = { PAGESERVER_WORKDIR: workdir }
  })
  afterAll(() => rmSync(root, { recursive: true, force: true }))

  it('a workdir lock naming a live process that did not write it is stale: local stop does not signal it, writers take it over', async () => {
    expect((await runCli(['init'], { env })).code).toBe(0)
    const other = spawn('sleep', ['60'], { stdio: 'ignore' })
    try {
      const pid = other.pid!
      // What a `serve` started by local start left before a reboot, its pid now the `sleep`'s.
      const processStart = 'a-boot-before-the-reboot/4242'
      mkdirSync(join(workdir, 'local'))
      writeFileSync(
        join(workdir, 'local', 'state.json'),
        JSON.stringify({ tenantId: '0'.repeat(32), timelineId: '0'.repeat(32), pgDataDir: join(workdir, 'local', 'pgdata-none'), pgPort: 55432, pgLogFile: join(workdir, 'local', 'postgresql.log'), pgSocketDir: join(workdir, 'local'), servePid: pid, serveProcessStart: processStart, serveStartedByLocal: true, serveLogFile: join(workdir, 'local', 'pageserver.log'), pgAddr: '127.0.0.1:64000', httpAddr: '127.0.0.1:9898' }),
      )
      writeFileSync(join(workdir, 'pageserver.lock'), JSON.stringify({ pid, processStart, command: 'serve', startedAt: '2026-01-01T00:00:00.000Z', pgAddr: '127.0.0.1:64000', httpAddr: '127.0.0.1:9898' }))
      const stop = await runCli(['local', 'stop', '--json'], { env, timeoutMs: 60_000 })
      expect(stop.code, stop.stdout + stop.stderr).toBe(0)
      expect(stop.json()).toEqual({ serverStopped: false, serverKilled: false, serverLeftRunning: null, postgresStopped: false, branchesRunning: [] })
      expect(other.exitCode).toBeNull()
      expect(other.signalCode).toBeNull()
      // An offline writer takes the stale lock over instead of "in use by pid ...".
      const created = await runCli(['tenant', 'create', '--json'], { env })
      expect(created.code, created.stdout + created.stderr).toBe(0)
      expect(other.exitCode).toBeNull()
    } finally {
      other.kill('SIGKILL')
    }
  })
})
