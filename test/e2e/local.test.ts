/**
 * `pageserver local start|stop`: the newcomer's one command. From an empty directory it must leave a running
 * PostgreSQL whose WAL a background page server stores; `local stop` stops both; a second start resumes the
 * same cluster with its data.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from '../support/cli.js'
import { freePort } from '../support/pg-cluster.js'
import { findPostgres, runPgTool } from '../../src/core/postgres/install.js'

describe('pageserver local start / stop', () => {
  const root = mkdtempSync(join(tmpdir(), 'ps-local-'))
  chmodSync(root, 0o755)
  const workdir = join(root, '.neon')
  const env = { PAGESERVER_WORKDIR: workdir }
  const overrides = ['-c', 'listen_pg_addr=127.0.0.1:0', '-c', 'listen_http_addr=127.0.0.1:0', '-c', 'no_sync=true']
  let pgPort = 0

  afterAll(async () => {
    await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })
    rmSync(root, { recursive: true, force: true })
  })

  const psql = async (sql: string) =>
    (await runPgTool(findPostgres(undefined, process.env), 'psql', ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(pgPort), '-U', 'postgres', '-d', 'postgres', '-c', sql])).stdout.trim()

  it('starts PostgreSQL and a page server storing its WAL, stops both, and resumes', async () => {
    pgPort = await freePort()
    const start = await runCli(['local', 'start', '--pg-port', String(pgPort), ...overrides, '--json'], { env, timeoutMs: 180_000 })
    expect(start.code, start.stderr).toBe(0)
    const s = start.json<{ tenantId: string; timelineId: string; servePid: number; psql: string }>()
    expect(s.psql).toContain(String(pgPort))
    await psql('CREATE TABLE hello AS SELECT g FROM generate_series(1, 500) g')
    const lsn = await psql('SELECT pg_current_wal_insert_lsn()')
    // The server streams it: the timeline reaches the primary's LSN (sync goes through the running server).
    const sync = await runCli(['timeline', 'sync', '--tenant', s.tenantId, '--timeline', s.timelineId, '--until', lsn, '--json'], { env, timeoutMs: 60_000 })
    expect(sync.code, sync.stderr).toBe(0)
    // A second start while it runs changes nothing.
    const twice = await runCli(['local', 'start', ...overrides, '--json'], { env, timeoutMs: 60_000 })
    expect(twice.code).toBe(4)

    const stop = await runCli(['local', 'stop', '--json'], { env, timeoutMs: 120_000 })
    expect(stop.code, stop.stderr).toBe(0)
    expect(stop.json<{ serverStopped: boolean; postgresStopped: boolean }>()).toEqual({ serverStopped: true, postgresStopped: true })
    expect(existsSync(join(workdir, 'pageserver.lock'))).toBe(false)

    const again = await runCli(['local', 'start', ...overrides, '--json'], { env, timeoutMs: 180_000 })
    expect(again.code, again.stderr).toBe(0)
    expect(again.json<{ timelineId: string }>().timelineId).toBe(s.timelineId)
    expect(await psql('SELECT count(*) FROM hello')).toBe('500')
    const state = JSON.parse(readFileSync(join(workdir, 'local', 'state.json'), 'utf8')) as { servePid: number }
    expect(state.servePid).toBeGreaterThan(0)
  })
})
