// ingestWalFiles against a real PostgreSQL 15 primary: a timeline imported from the primary, then the
// primary's own pg_wal ingested from files (several L0 flushes) serves every page as the primary has it;
// a second run ingests nothing; a small memory ceiling cuts L0s of about the ceiling (ingest waits for the
// flush instead of freezing a tiny layer per batch); WAL of another cluster is refused before any write;
// pages redone on top of cached redo results (real workers) equal pages redone from their images.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster } from '../../support/pg-cluster.js'
import { comparePages } from '../../support/page-compare.js'
import { loadConfig } from '../../../src/core/config/index.js'
import { withRepository, type AppContext } from '../../../src/core/app/context.js'
import { createTenant } from '../../../src/core/app/timelines.js'
import { importTimeline } from '../../../src/core/app/import.js'
import { ingestWalFiles } from '../../../src/core/app/ingest-files.js'
import { readerFor } from '../../../src/core/app/pages.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../../../src/core/model/ids.js'
import { formatLsn, parseLsn, type Lsn } from '../../../src/core/pg/lsn.js'
import { PageserverError, UnavailableError } from '../../../src/core/lib/errors.js'
import { WalIngest } from '../../../src/core/datadir/ingest.js'
import { TimelineIngestDriver } from '../../../src/core/app/ingest-driver.js'
import { DatadirReader, type RedoService } from '../../../src/core/datadir/read.js'
import { PageCache } from '../../../src/core/datadir/page-cache.js'
import { relBlockKey } from '../../../src/core/datadir/mapping.js'
import { WalFileReader } from '../../../src/core/pg/wal-files.js'

const MiB = 1024 * 1024

describe('ingestWalFiles', () => {
  let pg: PgCluster
  let workdir: string
  const ctxWith = async (overrides: string[]): Promise<AppContext> => ({ config: await loadConfig({ workdir, overrides: ['no_sync=true', ...overrides], env: {} }), env: process.env })
  const importNew = async (ctx: AppContext): Promise<{ tenantId: TenantId; timelineId: TimelineId }> => {
    const tenantId = parseTenantId((await createTenant(ctx)).tenantId)
    const info = await importTimeline(ctx, { tenantId, connString: pg.connString() })
    return { tenantId, timelineId: parseTimelineId(info.timelineId) }
  }

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'ingest-files', checksums: true })
    workdir = mkdtempSync(join(tmpdir(), 'ps-ingest-files-'))
  })
  afterAll(async () => {
    await pg?.destroy()
    if (workdir) rmSync(workdir, { recursive: true, force: true })
  })

  it('ingests the primary pg_wal into durable L0 layers that serve the primary pages', async () => {
    const ctx = await ctxWith(['checkpoint_distance=2MiB'])
    await pg.sql('CREATE TABLE before_import (id int primary key, v text); INSERT INTO before_import SELECT g, md5(g::text) FROM generate_series(1, 3000) g;')
    const { tenantId, timelineId } = await importNew(ctx)
    await pg.pgbench(['-i', '-s', '1', '-q'])
    await pg.pgbench(['-c', '2', '-t', '300', '-n'])
    await pg.sql("UPDATE before_import SET v = 'x' WHERE id % 4 = 0; DELETE FROM before_import WHERE id > 2900; CHECKPOINT;")
    const at = await pg.insertLsn()

    const r = await ingestWalFiles(ctx, { tenantId, timelineId, walPaths: [pg.walDir], endLsn: at })
    expect(r.records).toBeGreaterThan(10_000)
    // The insert LSN is the end of the last record: reading stops there (the end LSN or, at the same
    // place, the end of the WAL written so far).
    expect(['end-lsn', 'end-of-wal']).toContain(r.end)
    expect(r.lastRecordLsn).toBe(formatLsn(at))
    expect(r.diskConsistentLsn).toBe(r.lastRecordLsn)
    expect(r.walBytes).toBeGreaterThan(4 * MiB)
    expect(r.layers).toBeGreaterThan(2) // the import's layer plus several 2 MiB-distance L0s

    const db = Number(await pg.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'"))
    const cmp = await withRepository(ctx, async (repo) => {
      const tenant = await repo.tenant(tenantId)
      const tl = await tenant.timeline(timelineId)
      expect(tl.diskConsistentLsn).toBe(parseLsn(r.lastRecordLsn))
      return comparePages(pg, readerFor(tenant, tl), tl.lastRecordLsn, [{ spc: 1663, db }, { spc: 1664, db: 0 }])
    })
    expect(cmp.blocks).toBeGreaterThan(300)
    expect(cmp.sizeMismatches).toEqual([])
    expect(cmp.mismatches.slice(0, 10)).toEqual([])

    // Everything up to the end LSN is in: a second run reads the files and ingests nothing.
    const again = await ingestWalFiles(ctx, { tenantId, timelineId, walPaths: [pg.walDir], endLsn: at })
    expect(again.records).toBe(0)
    expect(again.lastRecordLsn).toBe(r.lastRecordLsn)
    expect(again.layers).toBe(r.layers)
  })

  it('pages rebuilt on top of a cached redo result equal pages rebuilt from the image (real redo workers)', async () => {
    const ctx = await ctxWith([])
    await pg.sql('CREATE TABLE hot (id int primary key, n int, pad text) WITH (fillfactor = 30); INSERT INTO hot SELECT g, 0, repeat(\'p\', 200) FROM generate_series(1, 400) g; CHECKPOINT;')
    const { tenantId, timelineId } = await importNew(ctx)
    // Rounds of updates, an LSN recorded after each: every page gets an image, then records per round.
    const lsns: Lsn[] = []
    for (let round = 0; round < 5; round++) {
      await pg.sql(`UPDATE hot SET n = n + 1 WHERE id % ${round + 2} = 0`)
      lsns.push(await pg.insertLsn())
    }
    await ingestWalFiles(ctx, { tenantId, timelineId, walPaths: [pg.walDir], endLsn: lsns[lsns.length - 1]! })
    await withRepository(ctx, async (repo) => {
      const tenant = await repo.tenant(tenantId)
      const tl = await tenant.timeline(timelineId)
      const redo = tenant.redoManager(tl.metadata.hintBitsLogged)
      let recordsSent = 0
      const counting: RedoService = { redo: (req) => ((recordsSent += req.records.length), redo.redo(req)) }
      const cached = new DatadirReader(tl, counting, { dataChecksums: tl.metadata.dataChecksums, pageCache: new PageCache() })
      const plain = new DatadirReader(tl, redo, { dataChecksums: tl.metadata.dataChecksums, pageCache: null })
      const relNode = Number(await pg.sql("SELECT relfilenode FROM pg_class WHERE relname = 'hot'"))
      const db = Number(await pg.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'"))
      const rel = { spcNode: 1663, dbNode: db, relNode, forkNum: 0 }
      const blocks = plain.relSize(rel, lsns[lsns.length - 1]!)
      expect(blocks).toBeGreaterThan(10)
      let redone = 0
      for (const l of lsns) {
        for (let blk = 0; blk < blocks; blk++) {
          const want = await plain.getRelPage(rel, blk, l)
          // Read twice: the second read is admitted to the cache, the next LSN's redo starts from it.
          for (let i = 0; i < 2; i++) expect((await cached.getRelPage(rel, blk, l)).equals(want)).toBe(true)
          redone += tl.getKeyHistory(relBlockKey(rel, blk), l).records.length
        }
      }
      // Fewer records were sent than a redo from each page's image needs: the cached pages were bases.
      expect(recordsSent).toBeGreaterThan(0)
      expect(recordsSent).toBeLessThan(redone)
    })
  })

  it('under a small memory ceiling cuts L0 layers of about the ceiling, never a stream of tiny ones', async () => {
    const ceiling = 4 * MiB
    const ctx = await ctxWith([`max_in_memory_layers_bytes=${ceiling}`, 'checkpoint_distance=1GiB'])
    const { tenantId, timelineId } = await importNew(ctx)
    const first = await withRepository(ctx, async (repo) => (await (await repo.tenant(tenantId)).timeline(timelineId)).layerFiles().length)
    await pg.pgbench(['-i', '-s', '1', '-q'])
    await pg.pgbench(['-c', '2', '-t', '1000', '-n'])
    await pg.sql('CHECKPOINT')
    const r = await ingestWalFiles(ctx, { tenantId, timelineId, walPaths: [pg.walDir], endLsn: await pg.insertLsn() })
    expect(r.walBytes).toBeGreaterThan(3 * ceiling)
    const sizes = await withRepository(ctx, async (repo) => {
      const tl = await (await repo.tenant(tenantId)).timeline(timelineId)
      return tl
        .layerFiles()
        .slice(first)
        .map((l) => ({ start: l.desc.lsnRange.start, size: l.sizeBytes }))
        .sort((a, b) => (a.start < b.start ? -1 : 1))
        .map((l) => l.size)
    })
    expect(sizes.length).toBeGreaterThan(2)
    // Every L0 but the final checkpoint's holds about a ceiling's worth (its index estimate aside).
    for (const s of sizes.slice(0, -1)) expect(s).toBeGreaterThan(ceiling / 2)
  })

  it('after a record fails midway through a batch, the same timeline resumes after the records already in and serves the primary pages', async () => {
    const ctx = await ctxWith(['checkpoint_distance=1GiB'])
    const { tenantId, timelineId } = await importNew(ctx)
    await pg.sql('CREATE TABLE midway (id int primary key, v text); INSERT INTO midway SELECT g, md5(g::text) FROM generate_series(1, 5000) g;')
    await pg.sql("UPDATE midway SET v = 'y' WHERE id % 3 = 0; CHECKPOINT;")
    const at = await pg.insertLsn()
    const db = Number(await pg.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'"))
    const cmp = await withRepository(
      ctx,
      async (repo) => {
        const tenant = await repo.tenant(tenantId)
        const tl = await tenant.timeline(timelineId)
        const policy = { checkpointDistanceBytes: 1 << 30, checkpointTimeoutMs: 3_600_000, maxInMemoryLayersBytes: 256 * MiB }
        const ingestFrom = async (driver: TimelineIngestDriver): Promise<void> => {
          const wal = await WalFileReader.open([pg.walDir], { startLsn: tl.lastRecordLsn, endLsn: at })
          for await (const batch of wal.recordBatches()) await driver.ingestRecords(batch)
        }
        // The 2,000th record throws after the records before it in its batch went in, as a spill on a full
        // disk would; that batch writes many pages more than once. The server then retries on the same
        // timeline from its last_record_lsn (a new receiver and driver).
        const real = WalIngest.prototype.ingest
        let calls = 0
        const spy = vi.spyOn(WalIngest.prototype, 'ingest').mockImplementation(function (this: WalIngest, rec) {
          if (++calls === 2000) throw new UnavailableError('TEST_DISK_FULL', 'no space left on device (test)')
          return real.call(this, rec)
        })
        let failed: unknown
        try {
          failed = await ingestFrom(new TimelineIngestDriver(tl, readerFor(tenant, tl), policy)).catch((e: unknown) => e)
        } finally {
          spy.mockRestore()
        }
        expect((failed as PageserverError).code).toBe('TEST_DISK_FULL')
        expect(tl.lastRecordLsn).toBeGreaterThan(0n)
        tl.freeze() // a timer tick before the retry: must not trip over the failed record's values
        await ingestFrom(new TimelineIngestDriver(tl, readerFor(tenant, tl), policy))
        expect(tl.lastRecordLsn).toBe(at)
        await tl.checkpoint()
        return comparePages(pg, readerFor(tenant, tl), tl.lastRecordLsn, [{ spc: 1663, db }])
      },
      { lockFor: 'test' },
    )
    expect(cmp.blocks).toBeGreaterThan(50)
    expect(cmp.sizeMismatches).toEqual([])
    expect(cmp.mismatches.slice(0, 10)).toEqual([])
  })

  it('refuses WAL files of another cluster before writing anything', async () => {
    const other = await PgCluster.start({ name: 'ingest-files-other' })
    try {
      const ctx = await ctxWith([])
      const { tenantId, timelineId } = await importNew(ctx)
      await other.sql('CREATE TABLE t AS SELECT generate_series(1, 100) g')
      await other.stop()
      const err = await ingestWalFiles(ctx, { tenantId, timelineId, walPaths: [other.walDir] }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(PageserverError)
      // The fresh cluster's first segment starts below this timeline's LSN, so the files open; their
      // system identifier differs.
      expect((err as PageserverError).code).toBe('WAL_OTHER_CLUSTER')
    } finally {
      await other.destroy()
    }
  })
})
