/**
 * `pageserver local start` in a workdir that already holds timelines of other uses: on a first start it takes
 * only a root timeline without a WAL source that loads, never one that is broken (a damaged layer file shows
 * only as the timeline loads: its metadata reads), offline or through a running `serve`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmodSync, mkdtempSync, readdirSync, rmSync, openSync, writeSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from '../support/cli.js'
import { freePort } from '../support/pg-cluster.js'
import { startServe, type ServeHandle } from '../support/serve-process.js'

describe('local start in a workdir with a broken root timeline', () => {
  let root = ''
  let workdir = ''
  const env: Record<string, string> = {}
  let serve: ServeHandle | null = null
  const overrides = ['-c', 'listen_pg_addr=127.0.0.1:0', '-c', 'listen_http_addr=127.0.0.1:0', '-c', 'no_sync=true']
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ps-local-broken-'))
    chmodSync(root, 0o755)
    workdir = join(root, '.neon')
    env.PAGESERVER_WORKDIR = workdir
  })
  afterAll(async () => {
    if (root === '') return
    await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })
    await serve?.stop()
    rmSync(root, { recursive: true, force: true })
  })

  it('is passed over, offline and through a running server, instead of failing every start on it', async () => {
    expect((await runCli(['init'], { env })).code).toBe(0)
    const tenant = (await runCli(['tenant', 'create', '--json'], { env })).json<{ tenantId: string }>().tenantId
    const created = await runCli(['timeline', 'create', '--tenant', tenant, '--json'], { env, timeoutMs: 120_000 })
    expect(created.code, created.stderr).toBe(0)
    const broken = created.json<{ timelineId: string }>().timelineId
    const dir = join(workdir, 'tenants', tenant, 'timelines', broken)
    const layer = readdirSync(dir).find((n) => n.includes('__'))!
    const fd = openSync(join(dir, layer), 'r+')
    writeSync(fd, Buffer.from('XXXXXXXX'), 0, 8, 100) // inside the header: its checksum no longer matches
    closeSync(fd)

    // Before: it chose that timeline (its metadata reads) and failed with LAYER_CORRUPT, at every start.
    const offline = await runCli(['local', 'start', ...overrides, '--pg-port', String(await freePort()), '--json'], { env, timeoutMs: 180_000 })
    expect(offline.code, offline.stdout + offline.stderr).toBe(0)
    expect(offline.json<{ timelineId: string }>().timelineId).not.toBe(broken)
    expect((await runCli(['local', 'stop'], { env, timeoutMs: 120_000 })).code).toBe(0)

    // A first start again (its state moved away), through a server started separately, which lists it Broken.
    // Before: TIMELINE_BROKEN at the export.
    rmSync(join(workdir, 'local', 'state.json'))
    serve = await startServe(workdir)
    const through = await runCli(['local', 'start', ...overrides, '--pg-port', String(await freePort()), '--json'], { env, timeoutMs: 180_000 })
    expect(through.code, through.stdout + through.stderr).toBe(0)
    expect(through.json<{ timelineId: string; startedServer: boolean }>()).toMatchObject({ startedServer: false })
    expect(through.json<{ timelineId: string }>().timelineId).not.toBe(broken)
  })
})
