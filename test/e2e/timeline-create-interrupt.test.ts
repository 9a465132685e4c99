/**
 * `pageserver timeline create` interrupted while initdb runs (SIGTERM, as a supervisor or Ctrl-C sends):
 * the command stops initdb, removes its scratch directory and exits 130 with TIMELINE_CREATE_INTERRUPTED.
 * Before, the command died at once and left initdb writing ~40 MB into a directory that only the next
 * bootstrap removed. Through the built CLI, with TMPDIR pointing at a directory of the test's own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI_BIN, runCli } from '../support/cli.js'
import { pgAvailable } from '../support/pg-cluster.js'
import { initdbStartedIn, processesNaming } from '../support/processes.js'

describe.skipIf(!pgAvailable())('pageserver timeline create, interrupted', () => {
  let root: string
  let workdir: string
  let scratch: string
  let tenantId: string

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'ps-create-interrupt-'))
    chmodSync(root, 0o755) // initdb runs as postgres when we are root: it must reach the scratch directory
    workdir = join(root, 'wd')
    scratch = join(root, 'tmp')
    mkdirSync(scratch, { mode: 0o755 })
    chmodSync(scratch, 0o755)
    expect((await runCli(['init', '-D', workdir, '-c', 'no_sync=true'])).code).toBe(0)
    const t = await runCli(['tenant', 'create', '-D', workdir, '--json'])
    expect(t.code, t.stderr).toBe(0)
    tenantId = t.json<{ tenantId: string }>().tenantId
  })

  afterAll(() => {
    rmSync(root, { recursive: true, force: true })
  })

  it('SIGTERM during initdb: exit 130, initdb stopped, its files removed, no timeline', async () => {
    const child = spawn(process.execPath, [CLI_BIN, 'timeline', 'create', '--tenant', tenantId, '-D', workdir, '--json'], {
      env: { ...process.env, TMPDIR: scratch, NO_COLOR: '1', PAGESERVER_WORKDIR: undefined },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
    child.stderr.on('data', () => undefined)
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))

    // Signal once initdb has begun writing its data directory.
    expect(await initdbStartedIn(scratch, 90_000)).toBe(true)
    child.kill('SIGTERM')
    const code = await exited

    expect(code, stdout).toBe(130)
    expect(JSON.parse(stdout).error.code).toBe('TIMELINE_CREATE_INTERRUPTED')
    expect(readdirSync(scratch)).toEqual([])
    expect(processesNaming(scratch)).toEqual([])
    const list = await runCli(['timeline', 'list', '--tenant', tenantId, '-D', workdir, '--json'])
    expect(list.code, list.stderr).toBe(0)
    expect(list.json<unknown[]>()).toEqual([])
    // The workdir is usable at once: the next create succeeds.
    const again = await runCli(['timeline', 'create', '--tenant', tenantId, '-D', workdir, '--json'], { env: { TMPDIR: scratch }, timeoutMs: 120_000 })
    expect(again.code, again.stderr).toBe(0)
  }, 240_000)
})
