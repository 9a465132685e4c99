/**
 * `pageserver serve`'s second signal: it exits at once (130), and takes down with it what it runs in child
 * processes: a bootstrap's initdb is stopped (and removes what it wrote) rather than left running on its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from '../support/cli.js'
import { startServe, type ServeHandle } from '../support/serve-process.js'
import { initdbStartedIn, processesNaming } from '../support/processes.js'

describe('serve: a second signal', () => {
  let root = ''
  let workdir = ''
  let scratch = ''
  let serve: ServeHandle | null = null
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ps-serve-2nd-'))
    workdir = join(root, '.neon')
    scratch = mkdtempSync(join(tmpdir(), 'ps-serve-2nd-tmp-'))
    chmodSync(scratch, 0o1777) // as /tmp: initdb runs as the postgres user when we are root
  })
  afterAll(async () => {
    await serve?.stop()
    rmSync(root, { recursive: true, force: true })
    rmSync(scratch, { recursive: true, force: true })
  })

  it('during a bootstrap: exit 130, and its initdb is stopped, not left to finish alone', async () => {
    const env = { PAGESERVER_WORKDIR: workdir }
    expect((await runCli(['init'], { env })).code).toBe(0)
    const tenant = (await runCli(['tenant', 'create', '--json'], { env })).json<{ tenantId: string }>().tenantId
    serve = await startServe(workdir, [], { TMPDIR: scratch })
    const s = serve
    const pending = fetch(`http://${s.httpAddr}/v1/tenant/${tenant}/timeline`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }).catch((e: unknown) => e)
    expect(await initdbStartedIn(scratch, 30_000)).toBe(true)
    const exited = new Promise<number | null>((resolve) => s.child.once('exit', (code) => resolve(code)))
    s.child.kill('SIGTERM')
    // (Two signals at once are one pending signal: the second is sent once the first is being handled.)
    while (!s.stderr().includes('shutting down')) await new Promise((r) => setTimeout(r, 10))
    s.child.kill('SIGTERM')
    expect(await exited).toBe(130)
    await pending
    // Before: initdb went on to the end (its pgdata complete in the scratch directory) with nobody to use it.
    const deadline = Date.now() + 15_000
    while (processesNaming(scratch).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(processesNaming(scratch)).toEqual([])
    const dirs = readdirSync(scratch)
    expect(dirs.length).toBe(1)
    expect(existsSync(join(scratch, dirs[0]!, 'pgdata', 'PG_VERSION'))).toBe(false)
  })
})
