// ALTER DATABASE ... SET TABLESPACE to a user tablespace (a FILE_COPY record into it) stops ingest with
// USER_TABLESPACE naming the database, and everything before the record stays ingested and durable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdirSync, mkdtempSync, rmSync, chmodSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { PgCluster } from '../../support/pg-cluster.js'
import { loadConfig } from '../../../src/core/config/index.js'
import { withRepository, type AppContext } from '../../../src/core/app/context.js'
import { createTenant } from '../../../src/core/app/timelines.js'
import { importTimeline } from '../../../src/core/app/import.js'
import { ingestWalFiles } from '../../../src/core/app/ingest-files.js'
import { parseTenantId, parseTimelineId } from '../../../src/core/model/ids.js'
import { formatLsn } from '../../../src/core/pg/lsn.js'

describe('WAL ingest and user tablespaces', () => {
  let pg: PgCluster
  let workdir: string
  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'ingest-tblspc' })
    workdir = mkdtempSync(join(tmpdir(), 'ps-ingest-tblspc-'))
  })
  afterAll(async () => {
    await pg?.destroy()
    if (workdir) rmSync(workdir, { recursive: true, force: true })
  })

  it('ALTER DATABASE SET TABLESPACE is refused clearly', async () => {
    const ctx: AppContext = { config: await loadConfig({ workdir, overrides: ['no_sync=true'], env: {} }), env: process.env }
    const ts = join(dirname(pg.dataDir), 'ts1')
    mkdirSync(ts)
    chmodSync(ts, 0o777)
    if (process.getuid?.() === 0) execFileSync('chown', ['postgres', ts])
    await pg.sql('CREATE DATABASE mv')
    await pg.sql('CREATE TABLE a (id int); INSERT INTO a VALUES (1);', { db: 'mv' })
    const tenantId = parseTenantId((await createTenant(ctx)).tenantId)
    const info = await importTimeline(ctx, { tenantId, connString: pg.connString() })
    const timelineId = parseTimelineId(info.timelineId)
    await pg.sql(`CREATE TABLESPACE ts1 LOCATION '${ts}'`)
    const before = await pg.insertLsn()
    await pg.sql('ALTER DATABASE mv SET TABLESPACE ts1')
    await pg.sql('CHECKPOINT')
    const err = await ingestWalFiles(ctx, { tenantId, timelineId, walPaths: [pg.walDir], endLsn: await pg.insertLsn() }).catch((e) => e)
    expect(err.code).toBe('USER_TABLESPACE')
    expect(err.message).toMatch(/database \d+ is in user tablespace \d+/)
    await withRepository(ctx, async (repo) => {
      const tl = await (await repo.tenant(tenantId)).timeline(timelineId)
      expect(tl.lastRecordLsn >= before, `${formatLsn(tl.lastRecordLsn)} below ${formatLsn(before)}`).toBe(true)
      expect(tl.diskConsistentLsn).toBe(tl.lastRecordLsn)
    })
  }, 120_000)
})
