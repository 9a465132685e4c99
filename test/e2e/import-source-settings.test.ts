import { afterEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster } from '../support/pg-cluster.js'
import { loadConfig } from '../../src/core/config/index.js'
import type { AppContext } from '../../src/core/app/context.js'
import { createTenant } from '../../src/core/app/timelines.js'
import { importTimeline } from '../../src/core/app/import.js'
import { parseTenantId } from '../../src/core/model/ids.js'
import { parseLsn } from '../../src/core/pg/lsn.js'

/** Imports from primaries configured in ways the other import tests do not cover. */
describe('timeline import from primaries with other settings', () => {
  let pg: PgCluster | undefined
  let workdir: string | undefined
  afterEach(async () => {
    await pg?.destroy()
    if (workdir) rmSync(workdir, { recursive: true, force: true })
  })
  async function context(): Promise<AppContext> {
    workdir = mkdtempSync(join(tmpdir(), 'ps-import-settings-'))
    return { config: await loadConfig({ workdir, overrides: ['no_sync=true'], env: {} }), env: process.env }
  }

  it('does not wait for the archiver: archive_mode on with an archive_command that always fails', async () => {
    // Before WAIT false, BASE_BACKUP waited at its end for the archiver, which never succeeds here: the
    // import hung (the race below gave 'hung').
    pg = await PgCluster.start({ name: 'import-archive', settings: { archive_mode: 'on', archive_command: 'false' } })
    const ctx = await context()
    const tenantId = parseTenantId((await createTenant(ctx)).tenantId)
    const hung = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 30_000).unref())
    const info = await Promise.race([importTimeline(ctx, { tenantId, connString: pg.connString() }), hung])
    expect(info).not.toBe('hung')
    if (info === 'hung') return
    expect(parseLsn(info.lastRecordLsn)).toBeGreaterThanOrEqual(parseLsn(info.minReadableLsn))
  }, 120_000)

  it('imports through a REPLICATION role that is not a superuser, from wal_level logical with data checksums', async () => {
    pg = await PgCluster.start({ name: 'import-role', checksums: true, settings: { wal_level: 'logical' } })
    await pg.sql('CREATE ROLE rep LOGIN REPLICATION')
    const ctx = await context()
    const tenantId = parseTenantId((await createTenant(ctx)).tenantId)
    const info = await importTimeline(ctx, { tenantId, connString: pg.connString({ user: 'rep' }) })
    expect(info.dataChecksums).toBe(true)
    expect(parseLsn(info.lastRecordLsn)).toBeGreaterThanOrEqual(parseLsn(info.minReadableLsn))
  }, 120_000)
})
