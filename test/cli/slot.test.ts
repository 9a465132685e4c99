// End to end: `pageserver slot list` and `slot drop` through the built CLI (npm run build first) against
// PostgreSQL 15 with password authentication; the workdir is made with the CLI, its timelines by hand.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from '../support/cli.js'
import { PgCluster } from '../support/pg-cluster.js'
import { timelineWithSlot } from '../support/slot-fixture.js'
import { parseTenantId, type TimelineId } from '../../src/core/model/ids.js'

const PASSWORD = 'slot-secret-pw'

describe('pageserver slot', () => {
  let pg: PgCluster
  // One workdir for the whole file (tempDirs would remove it after the first test).
  const dir = mkdtempSync(join(tmpdir(), 'ps-cli-slot-'))
  const wd = join(dir, 'wd')
  let tenantId: string
  let owner: TimelineId
  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'cli-slot', auth: 'scram-sha-256', password: PASSWORD })
    expect((await runCli(['init', '-D', wd, '-c', 'no_sync=true'])).code).toBe(0)
    tenantId = (await runCli(['tenant', 'create', '-D', wd, '--json'])).json<{ tenantId: string }>().tenantId
    owner = await timelineWithSlot(wd, parseTenantId(tenantId), { slotName: 'pageserver_owned', systemId: await pg.systemId() })
    await pg.sql(['pageserver_owned', 'pageserver_orphan_1', 'pageserver_orphan_2'].map((n) => `SELECT pg_create_physical_replication_slot('${n}', true);`).join('\n'))
  })
  afterAll(async () => {
    await pg?.destroy()
    rmSync(dir, { recursive: true, force: true })
  })

  const slotNames = async () => (await pg.sql("SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots")).split(',')

  it('slot list --json: the contract fields; the password is not printed', async () => {
    const r = await runCli(['slot', 'list', '--from', pg.connUrl(), '-D', wd, '--json'])
    expect(r.code).toBe(0)
    expect(r.stdout).not.toContain(PASSWORD)
    const j = r.json()
    expect(j.server).toBe(`postgres@127.0.0.1:${pg.port}`)
    expect(j.systemId).toBe(await pg.systemId())
    expect(j.slots.map((s: { slotName: string }) => s.slotName)).toEqual(['pageserver_orphan_1', 'pageserver_orphan_2', 'pageserver_owned'])
    expect(j.slots[2]).toEqual({
      slotName: 'pageserver_owned',
      active: false,
      activePid: null,
      restartLsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/),
      retainedBytes: expect.any(Number),
      owner: { tenantId, timelineId: owner },
      state: 'owned',
      reason: expect.any(String),
    })
    expect(j.slots[0]).toMatchObject({ state: 'orphan', owner: null })
    expect(j.slots[0].retainedBytes).toBeGreaterThanOrEqual(0)
  })

  it('slot list: a table and a closing line that says how to drop the orphans, with the password redacted; PGPASSWORD fills in', async () => {
    const r = await runCli(['slot', 'list', '--from', `host=127.0.0.1 port=${pg.port} user=postgres`, '-D', wd], { env: { PGPASSWORD: PASSWORD } })
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/pageserver_owned .*owned .*\//)
    expect(r.stdout).toMatch(/2 orphan slots retain [\d.]+ (B|KiB|MiB|GiB) of WAL: drop them with `pageserver slot drop --from 'host=127\.0\.0\.1 port=\d+ user=postgres' --orphans`/)
    const url = await runCli(['slot', 'list', '--from', pg.connUrl(), '-D', wd])
    expect(url.stdout).not.toContain(PASSWORD)
    expect(url.stdout).toContain("--from 'postgresql://postgres:<redacted>@127.0.0.1")
  })

  it('slot list takes a missing password from the password file (the dbname field, as a connection that runs SQL)', async () => {
    const from = `host=127.0.0.1 port=${pg.port} user=postgres dbname=postgres`
    const passFile = join(dir, 'pgpass')
    // Matched with the real database name: a `replication` line is for physical walsenders and does not match.
    writeFileSync(passFile, `127.0.0.1:${pg.port}:replication:postgres:wrong\n`, { mode: 0o600 })
    const noMatch = await runCli(['slot', 'list', '--from', from, '-D', wd, '--json'], { env: { PGPASSFILE: passFile, PGPASSWORD: undefined } })
    expect(noMatch.code).not.toBe(0)
    writeFileSync(passFile, `127.0.0.1:${pg.port}:postgres:postgres:${PASSWORD}\n`, { mode: 0o600 })
    const ok = await runCli(['slot', 'list', '--from', from, '-D', wd, '--json'], { env: { PGPASSFILE: passFile, PGPASSWORD: undefined } })
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.json().slots).toHaveLength(3)
    // A file others may read is ignored, with libpq's warning.
    chmodSync(passFile, 0o644)
    const open = await runCli(['slot', 'list', '--from', from, '-D', wd, '--json'], { env: { PGPASSFILE: passFile, PGPASSWORD: undefined } })
    expect(open.code).not.toBe(0)
    expect(open.stderr).toContain(`password file ${passFile} has group or world access`)
  })

  it('slot drop --orphans --dry-run lists the orphans and drops nothing; dropping an owned slot is refused with exit 4', async () => {
    const dry = await runCli(['slot', 'drop', '--from', pg.connUrl(), '-D', wd, '--orphans', '--dry-run', '--json'])
    expect(dry.code).toBe(0)
    const j = dry.json()
    expect(j).toMatchObject({ dryRun: true, refused: [], skipped: [] })
    expect(j.dropped.map((s: { slotName: string }) => s.slotName)).toEqual(['pageserver_orphan_1', 'pageserver_orphan_2'])
    expect(await slotNames()).toEqual(['pageserver_orphan_1', 'pageserver_orphan_2', 'pageserver_owned'])

    const text = await runCli(['slot', 'drop', '--from', pg.connUrl(), '-D', wd, '--orphans', '--dry-run'])
    expect(text.stdout).toMatch(/^would drop slot pageserver_orphan_1 on postgres@127\.0\.0\.1:\d+ \(retains .* of WAL\)$/m)

    const owned = await runCli(['slot', 'drop', '--from', pg.connUrl(), '-D', wd, '--slot', 'pageserver_owned', '--json'])
    expect(owned.code).toBe(4)
    expect(owned.json()).toMatchObject({ dropped: [], refused: [{ slotName: 'pageserver_owned', error: { code: 'SLOT_OWNED', hint: expect.stringContaining('timeline delete') } }] })
    const human = await runCli(['slot', 'drop', '--from', pg.connUrl(), '-D', wd, '--slot', 'pageserver_owned'])
    expect(human.code).toBe(4)
    expect(human.stderr).toContain(`slot pageserver_owned not dropped: slot pageserver_owned belongs to timeline ${owner} of tenant ${tenantId}`)
    expect(await slotNames()).toContain('pageserver_owned')
  })

  it('slot drop needs exactly one of --slot and --orphans (exit 2), and a valid slot name', async () => {
    for (const args of [[], ['--orphans', '--slot', 'pageserver_x'], ['--slot', 'Bad-Name']]) {
      const r = await runCli(['slot', 'drop', '--from', pg.connUrl(), '-D', wd, ...args])
      expect(r.code).toBe(2)
    }
  })
})
