/**
 * `pageserver local start` interrupted in its first start (kill -9 or Ctrl-C, at the export and while the page
 * server starts), or run twice at once: it leaves nothing half-made that blocks the next start, and nothing
 * of its own running.
 * Split from local.test.ts (same helpers: a workdir each, the real CLI, a real PostgreSQL 15).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI_BIN, runCli } from '../support/cli.js'
import { freePort } from '../support/pg-cluster.js'
import { processesNaming } from '../support/processes.js'
import { processStartId } from '../../src/core/storage/process-identity.js'

interface StartResult {
  pgDataDir: string
  pgPort: number
  startedPostgres: boolean
  startedServer: boolean
}

describe('an interrupted first start', () => {
  let root = ''
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ps-local-interrupt-'))
    chmodSync(root, 0o755)
  })
  const overrides = ['-c', 'listen_pg_addr=127.0.0.1:0', '-c', 'listen_http_addr=127.0.0.1:0', '-c', 'no_sync=true']
  const workdirs: string[] = []
  afterAll(async () => {
    for (const w of workdirs) await runCli(['local', 'stop'], { env: { PAGESERVER_WORKDIR: w }, timeoutMs: 120_000 })
    rmSync(root, { recursive: true, force: true })
  })

  let lastStderr = ''
  /** The export writes `<dir>.partial` under local/. */
  const exporting = (local: string) => readdirSync(local).some((n) => n.endsWith('.partial'))
  /** Runs `local start` on a new workdir and sends `signal` once `when(local dir)` (default: while its export writes); its exit code (stderr in lastStderr). */
  async function startInterrupted(workdir: string, signal: NodeJS.Signals, pgPort: number, when: (local: string) => boolean = exporting): Promise<number | null> {
    workdirs.push(workdir)
    const child = spawn(process.execPath, [CLI_BIN, 'local', 'start', ...overrides, '--pg-port', String(pgPort)], {
      env: { ...process.env, PAGESERVER_WORKDIR: workdir, NO_COLOR: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    lastStderr = ''
    child.stderr!.on('data', (b: Buffer) => (lastStderr += b.toString()))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    const local = join(workdir, 'local')
    const deadline = Date.now() + 120_000
    let caught = false
    while (child.exitCode === null && Date.now() < deadline) {
      if (existsSync(local) && when(local)) {
        caught = child.kill(signal)
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    if (!caught) child.kill('SIGKILL')
    const code = await exited
    expect(caught, 'the start was not caught at the step').toBe(true)
    return code
  }

  it('killed (kill -9) during its export: the next start exports again and starts', async () => {
    const workdir = join(root, 'killed')
    const pgPort = await freePort()
    await startInterrupted(workdir, 'SIGKILL', pgPort)
    expect(readdirSync(join(workdir, 'local')).filter((n) => n.startsWith('pgdata-') && !n.endsWith('.partial'))).toEqual([])
    // (Nothing was recorded before the export: the port is given again.)
    const r = await runCli(['local', 'start', ...overrides, '--pg-port', String(pgPort), '--json'], { env: { PAGESERVER_WORKDIR: workdir }, timeoutMs: 180_000 })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json<StartResult>()).toMatchObject({ startedPostgres: true, startedServer: true, pgPort })
    expect(readdirSync(join(workdir, 'local')).filter((n) => n.endsWith('.partial'))).toEqual([])
    // A data directory an older version left half-written (no pg_control) is exported again too.
    const stop = await runCli(['local', 'stop'], { env: { PAGESERVER_WORKDIR: workdir }, timeoutMs: 120_000 })
    expect(stop.code, stop.stderr).toBe(0)
    const pgData = r.json<StartResult>().pgDataDir
    rmSync(join(pgData, 'global', 'pg_control'))
    const again = await runCli(['local', 'start', ...overrides, '--json'], { env: { PAGESERVER_WORKDIR: workdir }, timeoutMs: 180_000 })
    expect(again.code, again.stdout + again.stderr).toBe(0)
    expect(existsSync(join(pgData, 'global', 'pg_control'))).toBe(true)
  })

  it('Ctrl-C during its export: exit 130, nothing half-written left, and the next start works', async () => {
    const workdir = join(root, 'ctrl-c')
    const pgPort = await freePort()
    expect(await startInterrupted(workdir, 'SIGINT', pgPort)).toBe(130)
    expect(lastStderr).toContain(`local start -D ${workdir}`) // the hint: run it again, on this workdir
    expect(readdirSync(join(workdir, 'local')).filter((n) => n.startsWith('pgdata-'))).toEqual([])
    const r = await runCli(['local', 'start', ...overrides, '--pg-port', String(pgPort), '--json'], { env: { PAGESERVER_WORKDIR: workdir }, timeoutMs: 180_000 })
    expect(r.code, r.stdout + r.stderr).toBe(0)
  })

  it('Ctrl-C while the page server starts: exit 130, the server and the PostgreSQL this start started are stopped, and the next start works', async () => {
    const workdir = join(root, 'ctrl-c-serve')
    const pgPort = await freePort()
    // The server's log is opened just before it is spawned; it takes the lock and listens a few hundred ms later.
    // (Before: the wait for the killed server's exit kept nothing alive, so the process ended there, exit 13,
    // silently, with PostgreSQL left running.)
    const code = await startInterrupted(workdir, 'SIGINT', pgPort, (local) => existsSync(join(local, 'pageserver.log')))
    expect(code, lastStderr).toBe(130)
    expect(lastStderr).toContain('interrupted')
    expect(processesNaming(workdir)).toEqual([])
    const r = await runCli(['local', 'start', ...overrides, '--pg-port', String(pgPort), '--json'], { env: { PAGESERVER_WORKDIR: workdir }, timeoutMs: 180_000 })
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json<StartResult>()).toMatchObject({ startedPostgres: true, startedServer: true })
  })

  /** The workdir lock names a `serve` (local start spawned it; it has not necessarily loaded anything yet). */
  const serveSpawned = (local: string) => {
    try {
      return (JSON.parse(readFileSync(join(local, '..', 'pageserver.lock'), 'utf8')) as { command: string }).command === 'serve'
    } catch {
      return false
    }
  }

  it('killed (kill -9) once its page server is spawned: the next start knows it started that server, and `local stop` stops it', async () => {
    const workdir = join(root, 'killed-serve')
    const pgPort = await freePort()
    await startInterrupted(workdir, 'SIGKILL', pgPort, serveSpawned)
    const statePath = join(workdir, 'local', 'state.json')
    const spawned = JSON.parse(readFileSync(statePath, 'utf8')) as { servePid: number | null; serveStartedByLocal: boolean }
    // Before: state.json named no server (it was written once the server listened), so the next start adopted
    // it as one started separately, and `local stop` left it running.
    expect(spawned).toMatchObject({ serveStartedByLocal: true })
    const deadline = Date.now() + 60_000
    let r = await runCli(['local', 'start', ...overrides, '--json'], { env: { PAGESERVER_WORKDIR: workdir }, timeoutMs: 180_000 })
    // Run at once, it may find the server still starting (not listening yet): it says so and changes nothing.
    while (r.code === 6 && r.json<{ error: { code: string } }>().error.code === 'LOCAL_SERVER_STARTING' && Date.now() < deadline) {
      expect((JSON.parse(readFileSync(statePath, 'utf8')) as { servePid: number }).servePid).toBe(spawned.servePid)
      await new Promise((resolve) => setTimeout(resolve, 100))
      r = await runCli(['local', 'start', ...overrides, '--json'], { env: { PAGESERVER_WORKDIR: workdir }, timeoutMs: 180_000 })
    }
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.json<StartResult & { servePid: number; serveStartedByLocal: boolean }>()).toMatchObject({ startedServer: false, servePid: spawned.servePid, serveStartedByLocal: true })
    const stop = await runCli(['local', 'stop', '--json'], { env: { PAGESERVER_WORKDIR: workdir }, timeoutMs: 120_000 })
    expect(stop.json()).toMatchObject({ serverStopped: true, serverLeftRunning: null, postgresStopped: true })
    expect(processesNaming(workdir)).toEqual([])
  })

  it('run while the page server it started does not listen yet: LOCAL_SERVER_STARTING, state.json still names that server, and `local stop` stops it', async () => {
    const workdir = join(root, 'serve-starting')
    workdirs.push(workdir)
    const pgPort = await freePort()
    const env = { PAGESERVER_WORKDIR: workdir }
    const first = await runCli(['local', 'start', ...overrides, '--pg-port', String(pgPort), '--json'], { env, timeoutMs: 180_000 })
    expect(first.code, first.stdout + first.stderr).toBe(0)
    expect((await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })).code).toBe(0)
    // A server this setup started, holding the workdir but not listening yet (a `sleep` stands for it).
    const other = spawn('sleep', ['60'], { stdio: 'ignore' })
    try {
      const pid = other.pid!
      const processStart = processStartId(pid)
      const statePath = join(workdir, 'local', 'state.json')
      writeFileSync(statePath, JSON.stringify({ ...(JSON.parse(readFileSync(statePath, 'utf8')) as object), servePid: pid, serveProcessStart: processStart, serveStartedByLocal: true }))
      writeFileSync(join(workdir, 'pageserver.lock'), JSON.stringify({ pid, processStart, command: 'serve', startedAt: new Date().toISOString() }))
      const logBefore = readFileSync(join(workdir, 'local', 'postgresql.log'), 'utf8')
      // Before: it went on offline, wrote state.json without the server, started PostgreSQL, failed on the lock
      // (WORKDIR_LOCKED) and stopped PostgreSQL again.
      const r = await runCli(['local', 'start', ...overrides, '--json'], { env, timeoutMs: 180_000 })
      expect(r.code, r.stdout + r.stderr).toBe(6)
      expect(r.json<{ error: { code: string } }>().error.code).toBe('LOCAL_SERVER_STARTING')
      expect(JSON.parse(readFileSync(statePath, 'utf8'))).toMatchObject({ servePid: pid, serveStartedByLocal: true })
      expect(readFileSync(join(workdir, 'local', 'postgresql.log'), 'utf8')).toBe(logBefore) // PostgreSQL not started
      // `local stop` stops it all the same (before: it looked only for a server that listens, left this one
      // running and erased it from state.json).
      const exited = new Promise((resolve) => other.once('exit', resolve))
      const stop = await runCli(['local', 'stop', '--json', '--timeout', '5s'], { env, timeoutMs: 60_000 })
      expect(stop.json()).toMatchObject({ serverStopped: true })
      await exited
    } finally {
      other.kill('SIGKILL')
      rmSync(join(workdir, 'pageserver.lock'), { force: true })
    }
  })
})

describe('two local starts at once', () => {
  let root = ''
  let workdir = ''
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ps-local-twice-'))
    chmodSync(root, 0o755)
    workdir = join(root, '.neon')
  })
  afterAll(async () => {
    await runCli(['local', 'stop'], { env: { PAGESERVER_WORKDIR: workdir }, timeoutMs: 120_000 })
    rmSync(root, { recursive: true, force: true })
  })
  const overrides = ['-c', 'listen_pg_addr=127.0.0.1:0', '-c', 'listen_http_addr=127.0.0.1:0', '-c', 'no_sync=true']

  it('the second, started while the first exports, is refused with LOCAL_START_RUNNING, and the first completes', async () => {
    const pgPort = await freePort()
    const args = [CLI_BIN, 'local', 'start', ...overrides, '--pg-port', String(pgPort), '--json']
    const first = spawn(process.execPath, args, { env: { ...process.env, PAGESERVER_WORKDIR: workdir }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    first.stdout!.on('data', (b: Buffer) => (out += b.toString()))
    const exited = new Promise<number | null>((resolve) => first.once('exit', (code) => resolve(code)))
    const local = join(workdir, 'local')
    const deadline = Date.now() + 120_000
    while (first.exitCode === null && Date.now() < deadline && !(existsSync(local) && readdirSync(local).some((n) => n.endsWith('.partial')))) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    // Before: the second chose the same timeline and removed the first's half-written export to write its own;
    // both failed (ENOTEMPTY, FILE_NOT_FOUND, PG_START_FAILED), leaving a data directory with pg_control but no
    // PG_VERSION that every later start failed to start.
    const second = await runCli(['local', 'start', ...overrides, '--pg-port', String(pgPort), '--json'], { env: { PAGESERVER_WORKDIR: workdir }, timeoutMs: 180_000 })
    expect(second.code, second.stdout + second.stderr).toBe(4)
    expect(second.json<{ error: { code: string } }>().error.code).toBe('LOCAL_START_RUNNING')
    expect(await exited, out).toBe(0)
    const started = JSON.parse(out) as StartResult
    expect(started).toMatchObject({ startedPostgres: true, startedServer: true })
    expect(readFileSync(join(started.pgDataDir, 'PG_VERSION'), 'utf8').trim()).toBe('15')
    // Once the first has ended, a start finds everything running.
    const third = await runCli(['local', 'start', ...overrides, '--json'], { env: { PAGESERVER_WORKDIR: workdir }, timeoutMs: 180_000 })
    expect(third.code, third.stdout + third.stderr).toBe(0)
    expect(third.json<StartResult>()).toMatchObject({ startedPostgres: false, startedServer: false })
  })
})
