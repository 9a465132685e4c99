import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isRoot, PgCluster } from '../support/pg-cluster.js'
import { comparePages } from '../support/page-compare.js'
import { loadConfig } from '../../src/core/config/index.js'
import type { AppContext } from '../../src/core/app/context.js'
import { withRepository } from '../../src/core/app/context.js'
import { createTenant, deleteTimeline } from '../../src/core/app/timelines.js'
import { importTimeline } from '../../src/core/app/import.js'
import { defaultSlotName } from '../../src/core/app/slots.js'
import { syncTimeline } from '../../src/core/app/sync.js'
import { lookupOsUser } from '../../src/core/storage/os-user.js'
import { DatadirReader } from '../../src/core/datadir/read.js'
import { generateTimelineId, parseTenantId, parseTimelineId } from '../../src/core/model/ids.js'
import { parseLsn, type Lsn } from '../../src/core/pg/lsn.js'

describe('import a live primary, sync, and read every page at every recorded LSN', () => {
  let pg: PgCluster
  let workdir: string
  let ctx: AppContext
  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'import-sync' })
    workdir = mkdtempSync(join(tmpdir(), 'ps-e2e-'))
    ctx = { config: await loadConfig({ workdir, overrides: ['no_sync=true', 'checkpoint_distance=4MiB'], env: {} }), env: process.env }
  })
  afterAll(async () => {
    await pg?.destroy()
    if (workdir) rmSync(workdir, { recursive: true, force: true })
  })

  it('matches the primary page for page', async () => {
    await pg.sql("CREATE TABLE before_import (id int primary key, v text); INSERT INTO before_import SELECT g, md5(g::text) FROM generate_series(1, 2000) g;")
    const { tenantId } = await createTenant(ctx)
    const tid = parseTenantId(tenantId)
    const info = await importTimeline(ctx, { tenantId: tid, connString: pg.connString() })
    const tlid = parseTimelineId(info.timelineId)
    const db = Number(await pg.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'"))
    // Readable as soon as the import returns: it streamed the WAL up to the end of the backup.
    const importedAt = parseLsn(info.lastRecordLsn)
    expect(importedAt >= parseLsn(info.minReadableLsn)).toBe(true)
    const relNode = Number(await pg.sql("SELECT pg_relation_filenode('before_import')"))
    const first = await withRepository(ctx, async (repo) => {
      const tenant = await repo.tenant(tid)
      const tl = await tenant.timeline(tlid)
      const reader = new DatadirReader(tl, tenant.redoManager(tl.metadata.hintBitsLogged), { dataChecksums: tl.metadata.dataChecksums })
      return reader.getRelPage({ spcNode: 1663, dbNode: db, relNode, forkNum: 0 }, 0, importedAt)
    })
    expect(first.readUInt16LE(12)).toBeGreaterThan(24) // pd_lower: a heap page holding tuples
    const checkpoints: Lsn[] = []
    const slotRestartLsn = async (tl: string) => parseLsn(await pg.sql(`SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${defaultSlotName(parseTimelineId(tl))}'`))
    const quiet = async () => {
      await pg.sql('CHECKPOINT')
      const at = await pg.insertLsn()
      const synced = await syncTimeline(ctx, { tenantId: tid, timelineId: tlid, until: at })
      // The slot was told what the sync made durable before the stream ended (an audit found it left behind).
      expect(await slotRestartLsn(info.timelineId)).toBe(parseLsn(synced.diskConsistentLsn))
      return at
    }
    await pg.pgbench(['-i', '-s', '1', '-q'])
    await pg.sql("UPDATE before_import SET v = 'changed' WHERE id % 3 = 0; DELETE FROM before_import WHERE id > 1900;")
    checkpoints.push(await quiet())
    const cmp1 = await withRepository(ctx, async (repo) => {
      const tenant = await repo.tenant(tid)
      const tl = await tenant.timeline(tlid)
      const reader = new DatadirReader(tl, tenant.redoManager(tl.metadata.hintBitsLogged), { dataChecksums: tl.metadata.dataChecksums })
      expect(tl.lastRecordLsn >= checkpoints[0]!).toBe(true)
      return comparePages(pg, reader, checkpoints[0]!, [{ spc: 1663, db }, { spc: 1664, db: 0 }])
    })
    expect(cmp1.blocks).toBeGreaterThan(200)
    expect(cmp1.sizeMismatches).toEqual([])
    expect(cmp1.mismatches.slice(0, 10)).toEqual([])

    // Deleting an imported timeline drops its replication slot on the primary (it would keep WAL there for
    // ever); with the primary down, the delete still succeeds and names the slot left, with the SQL to drop it.
    const slotOf = async (tl: string) => (await pg.sql(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${defaultSlotName(parseTimelineId(tl))}'`)) === '1'
    expect(await slotOf(info.timelineId)).toBe(true)
    const second = await importTimeline(ctx, { tenantId: tid, connString: pg.connString() })
    expect(await slotOf(second.timelineId)).toBe(true)
    // A slot another timeline streams through is not shared (deleting either would drop it under the other).
    const taken = await importTimeline(ctx, { tenantId: tid, connString: pg.connString(), slotName: defaultSlotName(tlid) }).catch((e: unknown) => e)
    expect(taken).toMatchObject({ code: 'SLOT_IN_USE', exitCode: 4 })
    expect((taken as Error).message).toContain(`timeline ${tlid} of tenant ${tid} streams through it`)
    expect(await slotOf(info.timelineId)).toBe(true)
    const deleted = await deleteTimeline(ctx, tid, tlid)
    expect(deleted.slotsDropped).toEqual([defaultSlotName(tlid)])
    expect(deleted.slotsLeft).toEqual([])
    expect(await slotOf(info.timelineId)).toBe(false)

    // An import that fails after creating its slot drops it again (here: a user tablespace, unsupported).
    const tsDir = mkdtempSync(join(tmpdir(), 'ps-ts-'))
    const owner = isRoot() ? lookupOsUser('postgres') : null
    if (owner) chownSync(tsDir, owner.uid, owner.gid)
    await pg.sql(`CREATE TABLESPACE import_ts LOCATION '${tsDir}'`)
    try {
      const failedId = generateTimelineId()
      const failed = await importTimeline(ctx, { tenantId: tid, timelineId: failedId, connString: pg.connString() }).catch((e: unknown) => e)
      expect(failed).toMatchObject({ code: 'USER_TABLESPACE', exitCode: 8, hint: expect.stringContaining(`The replication slot ${defaultSlotName(failedId)} it created was dropped.`) })
      expect(await slotOf(failedId)).toBe(false)
      // A sync that meets a relation in the tablespace keeps what came before it, durable and readable.
      await pg.sql("CREATE TABLE before_ts (id int); INSERT INTO before_ts SELECT generate_series(1, 100)")
      const beforeTs = parseLsn(await pg.sql('SELECT pg_current_wal_insert_lsn()'))
      await pg.sql('CREATE TABLE in_ts (x int) TABLESPACE import_ts; INSERT INTO in_ts VALUES (1)')
      const secondId = parseTimelineId(second.timelineId)
      const stopped = await syncTimeline(ctx, { tenantId: tid, timelineId: secondId }).catch((e: unknown) => e)
      expect(stopped).toMatchObject({ code: 'USER_TABLESPACE' })
      await withRepository(ctx, async (repo) => {
        const tl = await (await repo.tenant(tid)).timeline(secondId)
        expect(tl.lastRecordLsn).toBeGreaterThanOrEqual(beforeTs)
        expect(tl.diskConsistentLsn).toBe(tl.lastRecordLsn)
      })
    } finally {
      await pg.sql('DROP TABLE IF EXISTS in_ts')
      await pg.sql('DROP TABLESPACE import_ts')
      rmSync(tsDir, { recursive: true, force: true })
    }
    await pg.stop('fast')
    const t0 = Date.now()
    const left = await deleteTimeline(ctx, tid, parseTimelineId(second.timelineId))
    expect(Date.now() - t0).toBeLessThan(30_000)
    expect(left.slotsDropped).toEqual([])
    expect(left.slotsLeft).toEqual([expect.objectContaining({ slotName: defaultSlotName(parseTimelineId(second.timelineId)), dropWith: `SELECT pg_drop_replication_slot('${defaultSlotName(parseTimelineId(second.timelineId))}');` })])
  })
})
