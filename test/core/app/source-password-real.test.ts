/**
 * A WAL source's password against a real PostgreSQL 15 that asks for SCRAM-SHA-256: recorded without it (no
 * file of the workdir holds it), then found again by later connections in PGPASSWORD or a password file given
 * through the context's environment, and a clear error without either. Metadata written with a password (before
 * passwords were left out) keeps working and keeps it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster } from '../../support/pg-cluster.js'
import { loadConfig } from '../../../src/core/config/index.js'
import { withRepository, type AppContext } from '../../../src/core/app/context.js'
import { createTenant, deleteTimeline } from '../../../src/core/app/timelines.js'
import { importTimeline } from '../../../src/core/app/import.js'
import { syncTimeline } from '../../../src/core/app/sync.js'
import { setTimelineWalSource } from '../../../src/core/app/timelines-source.js'
import { defaultSlotName } from '../../../src/core/app/slots.js'
import { readMetadata } from '../../../src/core/repository/metadata.js'
import { PageserverError } from '../../../src/core/lib/errors.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../../../src/core/model/ids.js'

const PASSWORD = "c0rrect h'rse"

/** Every file under `dir` whose bytes contain `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...filesContaining(p, needle))
    else if (readFileSync(p).includes(needle)) out.push(p)
  }
  return out
}

describe('WAL source passwords against PostgreSQL 15 with SCRAM-SHA-256', () => {
  let pg: PgCluster
  let workdir: string
  let scratch: string
  let tenantId: TenantId
  let timelineId: TimelineId
  /** A fresh context (no password given to it) with `env`; HOME without a .pgpass unless env says otherwise. */
  const contextWith = async (env: NodeJS.ProcessEnv): Promise<AppContext> => ({
    config: await loadConfig({ workdir, overrides: ['no_sync=true'], env: {} }),
    env: { HOME: scratch, ...env },
  })
  const metadataPath = (): string => join(workdir, 'tenants', tenantId, 'timelines', timelineId, 'metadata')
  const keyword = (): string => `host=${pg.host} port=${pg.port} user=postgres dbname=postgres`

  beforeAll(async () => {
    pg = await PgCluster.start({ auth: 'scram-sha-256', password: PASSWORD, name: 'source-password' })
    workdir = mkdtempSync(join(tmpdir(), 'ps-srcpw-work-'))
    scratch = mkdtempSync(join(tmpdir(), 'ps-srcpw-home-'))
    tenantId = parseTenantId((await createTenant(await contextWith({}))).tenantId)
  })
  afterAll(async () => {
    await pg?.destroy()
    for (const d of [workdir, scratch]) if (d) rmSync(d, { recursive: true, force: true })
  })

  it('imports with the password given, and writes it to no file of the workdir', async () => {
    const given = `${keyword()} password='${PASSWORD.replace("'", "\\'")}'`
    // The import streams WAL up to the end of the backup after recording the source: with the password given.
    const info = await importTimeline(await contextWith({}), { tenantId, connString: given })
    timelineId = parseTimelineId(info.timelineId)
    expect(info.passwordOmitted).toBe(true)
    expect(info.notes.join(' ')).toMatch(/not stored.*PGPASSWORD.*password file/)
    expect(info.notes.join(' ')).toContain(`127.0.0.1:${pg.port}:replication:postgres:<password>`)
    expect(readMetadata(metadataPath()).walSource?.connString).toBe(keyword())
    expect(filesContaining(workdir, 'c0rrect')).toEqual([])
  })

  it('streams later with PGPASSWORD from the context environment', async () => {
    await pg.sql('CREATE TABLE t1 AS SELECT g FROM generate_series(1, 1000) g')
    const r = await syncTimeline(await contextWith({ PGPASSWORD: PASSWORD }), { tenantId, timelineId })
    expect(r.records).toBeGreaterThan(0)
  })

  it('streams later with a password file (PGPASSFILE, database "replication")', async () => {
    await pg.sql('CREATE TABLE t2 AS SELECT g FROM generate_series(1, 1000) g')
    const file = join(scratch, 'pgpass')
    writeFileSync(file, `# for the page server\n127.0.0.1:${pg.port}:postgres:postgres:wrong\n127.0.0.1:${pg.port}:replication:postgres:${PASSWORD}\n`, { mode: 0o600 })
    const r = await syncTimeline(await contextWith({ PGPASSFILE: file }), { tenantId, timelineId })
    expect(r.records).toBeGreaterThan(0)
  })

  it('fails without either, with a hint that says how to give the password', async () => {
    await pg.sql('CREATE TABLE t3 (a int)')
    const err = await syncTimeline(await contextWith({}), { tenantId, timelineId }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PageserverError)
    const e = err as PageserverError
    expect(e.code).toBe('PG_PASSWORD_REQUIRED')
    expect(e.exitCode).toBe(2)
    expect(e.hint).toMatch(/stored without its password/)
    expect(e.hint).toMatch(/PGPASSWORD/)
    expect(e.hint).toContain(`127.0.0.1:${pg.port}:replication:postgres:<password>`)
  })

  it('timeline source records a URL without its password too', async () => {
    const url = `postgresql://postgres:${encodeURIComponent(PASSWORD)}@${pg.host}:${pg.port}/postgres?application_name=ps`
    const r = await setTimelineWalSource(await contextWith({}), { tenantId, timelineId, connString: url, slotName: defaultSlotName(timelineId) })
    expect(r.passwordOmitted).toBe(true)
    expect(r.notes).toHaveLength(1)
    expect(readMetadata(metadataPath()).walSource?.connString).toBe(`postgresql://postgres@${pg.host}:${pg.port}/postgres?application_name=ps`)
    expect(filesContaining(workdir, 'c0rrect')).toEqual([])
  })

  it('keeps metadata that holds a password working, and carries it over when it writes the file again', async () => {
    const withPassword = `${keyword()} password='${PASSWORD.replace("'", "\\'")}'`
    await withRepository(
      await contextWith({}),
      async (repo) => {
        const tl = await (await repo.tenant(tenantId)).timeline(timelineId)
        await tl.updateMetadata({ walSource: { ...tl.metadata.walSource!, connString: withPassword } })
      },
      { lockFor: 'test' },
    )
    await pg.sql('CREATE TABLE t4 AS SELECT g FROM generate_series(1, 1000) g')
    const r = await syncTimeline(await contextWith({}), { tenantId, timelineId })
    expect(r.records).toBeGreaterThan(0)
    expect(readMetadata(metadataPath()).walSource?.connString).toBe(withPassword)
    // Attaching the source again records it without the password.
    await setTimelineWalSource(await contextWith({ PGPASSWORD: PASSWORD }), { tenantId, timelineId, connString: keyword(), slotName: defaultSlotName(timelineId) })
    expect(filesContaining(workdir, 'c0rrect')).toEqual([])
  })

  it('drops the slot at delete with the password from the environment', async () => {
    const r = await deleteTimeline(await contextWith({ PGPASSWORD: PASSWORD }), tenantId, timelineId)
    expect(r.slotsDropped).toEqual([defaultSlotName(timelineId)])
    expect(r.slotsLeft).toEqual([])
  })
})
