/**
 * An import killed with SIGKILL after it created its replication slot must not leave that slot keeping the
 * primary's WAL for good: the slot was recorded first (app/import-slot-records.ts), `slot list` names the
 * import that did not finish, and the next import from that primary, or the next `serve`, drops it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster, pgAvailable } from '../support/pg-cluster.js'
import { CLI_BIN, runCli } from '../support/cli.js'
import { startServe, type ServeHandle } from '../support/serve-process.js'
import { IMPORT_SLOTS_DIR } from '../../src/core/app/import-slot-records.js'

describe.skipIf(!pgAvailable())('an import killed after creating its slot', () => {
  let pg: PgCluster
  let root: string
  let workdir: string
  let tenant: string
  let serve: ServeHandle | null = null
  const env = () => ({ PAGESERVER_WORKDIR: workdir })
  const slots = async (): Promise<string[]> =>
    (await pg.sql("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pageserver_%' ORDER BY 1")).split('\n').filter((l) => l !== '')
  const records = (): string[] => (existsSync(join(workdir, IMPORT_SLOTS_DIR)) ? readdirSync(join(workdir, IMPORT_SLOTS_DIR)).sort() : [])

  /** Starts an import and kills it with SIGKILL once its slot exists on the primary; returns the slot's name. */
  async function killedImport(): Promise<string> {
    const before = new Set(await slots())
    const child = spawn(process.execPath, [CLI_BIN, 'timeline', 'import', '--tenant', tenant, '--from', pg.connString()], {
      env: { ...process.env, ...env(), NO_COLOR: '1' },
      stdio: 'ignore',
    })
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
    try {
      const deadline = Date.now() + 30_000
      for (;;) {
        const created = (await slots()).filter((s) => !before.has(s))
        if (created.length === 1) {
          child.kill('SIGKILL')
          await exited
          return created[0]!
        }
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the import ended (${child.exitCode}) before it was killed`)
        await new Promise((r) => setTimeout(r, 5))
      }
    } finally {
      child.kill('SIGKILL')
    }
  }

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'killed-import' })
    // Enough data that the base backup takes a while after the slot is made.
    await pg.sql("CREATE TABLE bulk AS SELECT g, repeat(md5(g::text), 16) AS pad FROM generate_series(1, 150000) g")
    root = mkdtempSync(join(tmpdir(), 'ps-killed-import-'))
    workdir = join(root, '.neon')
    expect((await runCli(['init', '-c', 'no_sync=true'], { env: env() })).code).toBe(0)
    tenant = (await runCli(['tenant', 'create', '--json'], { env: env() })).json<{ tenantId: string }>().tenantId
  }, 120_000)
  afterAll(async () => {
    await serve?.stop()
    await pg?.destroy()
    if (root) rmSync(root, { recursive: true, force: true })
  })

  it('is named by slot list, and the next import from that primary drops its slot', async () => {
    const left = await killedImport()
    expect(await slots()).toContain(left)
    expect(records()).toEqual([`${left}.json`])

    const list = await runCli(['slot', 'list', '--from', pg.connString(), '--json'], { env: env() })
    expect(list.code, list.stderr).toBe(0)
    const entry = list.json<{ slots: Array<{ slotName: string; state: string; reason: string }> }>().slots.find((s) => s.slotName === left)
    expect(entry).toMatchObject({ state: 'orphan', reason: expect.stringContaining('did not finish') })

    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', pg.connString(), '--json'], { env: env(), timeoutMs: 120_000 })
    expect(imp.code, imp.stderr).toBe(0)
    const result = imp.json<{ timelineId: string; notes: string[] }>()
    expect(result.notes).toContainEqual(expect.stringContaining(`Dropped replication slot ${left} on `))
    const own = result.timelineId
    expect(await slots()).toEqual([`pageserver_${own.slice(0, 24)}`])
    expect(records()).toEqual([])
  }, 180_000)

  it('a slot that existed before the import (a standby\'s, named with --slot) is never recorded, so never dropped', async () => {
    await pg.sql("SELECT pg_create_physical_replication_slot('pageserver_standby_like', true)")
    // Killed the moment a record of that slot appears (there was one, between writing it and learning that
    // the slot existed); else it runs on: either way the slot must survive the next import.
    const child = spawn(process.execPath, [CLI_BIN, 'timeline', 'import', '--tenant', tenant, '--from', pg.connString(), '--slot', 'pageserver_standby_like'], {
      env: { ...process.env, ...env(), NO_COLOR: '1' },
      stdio: 'ignore',
    })
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
    try {
      while (child.exitCode === null) {
        if (records().includes('pageserver_standby_like.json')) {
          child.kill('SIGKILL')
          break
        }
        await new Promise((r) => setTimeout(r, 1))
      }
      await exited
    } finally {
      child.kill('SIGKILL')
    }
    expect(records()).not.toContain('pageserver_standby_like.json')
    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', pg.connString(), '--json'], { env: env(), timeoutMs: 120_000 })
    expect(imp.code, imp.stderr).toBe(0)
    expect(await slots()).toContain('pageserver_standby_like')
    await pg.sql("SELECT pg_drop_replication_slot('pageserver_standby_like')") // not to be warned about as an orphan below
  }, 180_000)

  it('serve drops the slot of an import killed before it started', async () => {
    const left = await killedImport()
    expect(records()).toEqual([`${left}.json`])
    serve = await startServe(workdir)
    const deadline = Date.now() + 30_000
    while (!serve.stderr().includes('dropped the replication slot of an import') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    const line = serve.stderr().split('\n').find((l) => l.includes('dropped the replication slot of an import'))
    expect(line, serve.stderr()).toBeDefined()
    expect(JSON.parse(line!)).toMatchObject({ level: 'info', slotName: left })
    expect(await slots()).not.toContain(left)
    expect(records()).toEqual([])
    // Nothing else warned about: the timeline imported before streams through its own slot.
    expect(serve.stderr()).not.toContain('orphan replication slot')
  }, 180_000)
})
