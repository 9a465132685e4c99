/**
 * The CLI side of WAL source passwords, against PostgreSQL 15 with SCRAM-SHA-256: `timeline import` tells
 * that the password in --from was not stored (a line, and passwordOmitted/notes with --json), and a later
 * `timeline sync` authenticates with PGPASSWORD or fails with a hint saying how to give it; a running `serve`
 * keeps using a password given through it until it stops, and after a restart needs PGPASSWORD.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster } from '../support/pg-cluster.js'
import { runCli } from '../support/cli.js'
import { startServe, type ServeHandle } from '../support/serve-process.js'

const PASSWORD = 'sync s3cret'

describe('timeline import and sync with a password (CLI)', () => {
  let pg: PgCluster
  let workdir: string
  let home: string
  let tenant: string
  /** No PGPASSWORD, and a HOME without a .pgpass, unless `extra` gives them. */
  const env = (extra: Record<string, string> = {}) => ({ PAGESERVER_WORKDIR: workdir, PGPASSWORD: undefined, PGPASSFILE: undefined, HOME: home, ...extra })
  const from = () => `host=${pg.host} port=${pg.port} user=postgres password='${PASSWORD}'`

  beforeAll(async () => {
    pg = await PgCluster.start({ auth: 'scram-sha-256', password: PASSWORD, name: 'cli-source-password' })
    workdir = mkdtempSync(join(tmpdir(), 'ps-cli-srcpw-'))
    home = mkdtempSync(join(tmpdir(), 'ps-cli-home-'))
    expect((await runCli(['init', '-c', 'no_sync=true'], { env: env() })).code).toBe(0)
    tenant = (await runCli(['tenant', 'create', '--json'], { env: env() })).json<{ tenantId: string }>().tenantId
  })
  let serve: ServeHandle | null = null
  afterAll(async () => {
    await serve?.stop()
    await pg?.destroy()
    for (const d of [workdir, home]) if (d) rmSync(d, { recursive: true, force: true })
  })

  it('says the password was not stored, in the human output and in --json', async () => {
    const human = await runCli(['timeline', 'import', '--tenant', tenant, '--from', from()], { env: env() })
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toMatch(/^Note: The password in the connection string was not stored with the timeline\..*PGPASSWORD/m)
    expect(human.stdout).toContain(`127.0.0.1:${pg.port}:replication:postgres:<password>`)
    expect(human.stdout + human.stderr).not.toContain('s3cret')

    const json = await runCli(['timeline', 'import', '--tenant', tenant, '--from', from(), '--json'], { env: env() })
    expect(json.code, json.stderr).toBe(0)
    const r = json.json<{ timelineId: string; passwordOmitted: boolean; notes: string[]; walSource: { connString: string } }>()
    expect(r.passwordOmitted).toBe(true)
    expect(r.notes).toHaveLength(1)
    expect(r.walSource.connString).toBe(`host=${pg.host} port=${pg.port} user=postgres`)

    await pg.sql('CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g')
    const denied = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', r.timelineId], { env: env() })
    expect(denied.code).toBe(2)
    expect(denied.stderr).toMatch(/Hint: No password for postgres@127\.0\.0\.1:\d+: a timeline's WAL source is stored without its password/)
    const synced = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', r.timelineId, '--json'], { env: env({ PGPASSWORD: PASSWORD }) })
    expect(synced.code, synced.stderr).toBe(0)
    expect(synced.json<{ records: number }>().records).toBeGreaterThan(0)
    // The same entity, the same fields: sync names the timeline, and `timeline source` prints the WAL source
    // as import and list do (connection string without the password).
    expect(synced.json()).toMatchObject({ tenantId: tenant, timelineId: r.timelineId })
    const src = await runCli(['timeline', 'source', '--tenant', tenant, '--timeline', r.timelineId, '--from', from(), '--json'], { env: env({ PGPASSWORD: PASSWORD }) })
    expect(src.code, src.stderr).toBe(0)
    expect(src.json<{ walSource: { connString: string } }>().walSource.connString).toBe(r.walSource.connString)
    expect(src.stdout).not.toContain('s3cret')
  })

  it('serve: streams with the password given through it, then after a restart only with PGPASSWORD', async () => {
    serve = await startServe(workdir, [], { HOME: home })
    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', from(), '--json'], { env: env() })
    expect(imp.code, imp.stderr).toBe(0)
    const r = imp.json<{ timelineId: string; passwordOmitted: boolean; notes: string[] }>()
    expect(r.passwordOmitted).toBe(true)
    expect(r.notes[0]).toMatch(/not stored/)
    const sync = (extra: Record<string, string> = {}) => runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', r.timelineId, '--json'], { env: env(extra) })
    await pg.sql('CREATE TABLE s1 AS SELECT g FROM generate_series(1, 100) g')
    const streamed = await sync()
    expect(streamed.code, streamed.stderr).toBe(0)
    expect(streamed.json()).toMatchObject({ tenantId: tenant, timelineId: r.timelineId }) // through the server too

    await serve.stop()
    serve = await startServe(workdir, [], { HOME: home })
    const denied = await sync()
    expect(denied.code).toBe(2)
    const error = denied.json<{ error: { code: string; hint: string } }>().error
    expect(error.code).toBe('PG_PASSWORD_REQUIRED')
    expect(error.hint).toMatch(/Give it to the command that connects \(`pageserver serve`, `pageserver timeline sync`\) in PGPASSWORD/)
    // The server's own WAL loop fails the same way, and logs it (within its first attempt, at startup).
    const logged = /WAL streaming failed.*PG_PASSWORD_REQUIRED/
    for (const until = Date.now() + 10_000; !logged.test(serve.stderr()) && Date.now() < until; ) await new Promise((w) => setTimeout(w, 50))
    expect(serve.stderr()).toMatch(logged)

    await serve.stop()
    serve = await startServe(workdir, [], { HOME: home, PGPASSWORD: PASSWORD })
    await pg.sql('CREATE TABLE s2 AS SELECT g FROM generate_series(1, 100) g')
    const again = await sync()
    expect(again.code, again.stderr).toBe(0)
    expect(serve.stderr()).not.toContain('s3cret')
  })
})
