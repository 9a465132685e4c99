/**
 * `pageserver local start|stop`: the newcomer's one command. From an empty directory it must leave a running
 * PostgreSQL whose WAL a background page server stores; `local stop` stops both; a second start resumes the
 * same cluster with its data. A start repairs whatever mix it finds: only the server running (PostgreSQL
 * stopped by hand), only PostgreSQL running (the server killed, its lock left stale), both running (it
 * reports them), a port taken (a clear error, and a later --pg-port takes effect). The steps it prints run.
 *
 * The `it`s share one workdir and run in order: each starts from the state the previous one left.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI_BIN, runCli } from '../support/cli.js'
import { freePort } from '../support/pg-cluster.js'
import { findPostgres, runPgTool } from '../../src/core/postgres/install.js'

interface StartResult {
  tenantId: string
  timelineId: string
  pgDataDir: string
  pgPort: number
  servePid: number
  psql: string
  startedPostgres: boolean
  startedServer: boolean
  cli: string
}

describe('pageserver local start / stop', () => {
  const root = mkdtempSync(join(tmpdir(), 'ps-local-'))
  chmodSync(root, 0o755)
  const workdir = join(root, '.neon')
  const env = { PAGESERVER_WORKDIR: workdir }
  const overrides = ['-c', 'listen_pg_addr=127.0.0.1:0', '-c', 'listen_http_addr=127.0.0.1:0', '-c', 'no_sync=true']
  const inst = findPostgres(undefined, process.env)
  let pgPort = 0
  let ids = { tenantId: '', timelineId: '' }

  afterAll(async () => {
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
    expect(stop.json<{ serverStopped: boolean; postgresStopped: boolean }>()).toEqual({ serverStopped: true, postgresStopped: true })
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
      const r = await start(['--pg-port', String(busyPort), '--json'])
      expect(r.code, r.stdout).toBe(4)
      const e = r.json<{ error: { code: string; message: string; hint: string } }>().error
      expect(e.code).toBe('PG_PORT_IN_USE')
      expect(e.message).toContain(String(busyPort))
      expect(e.hint).toContain('--pg-port')
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
})
