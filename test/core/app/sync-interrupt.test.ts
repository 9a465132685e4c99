/**
 * An offline `timeline sync` stopped by its signal (Ctrl-C, SIGTERM) before it reached its target: the WAL
 * ingested so far is made durable, and the sync fails with SYNC_INTERRUPTED naming where it got to, instead
 * of answering as a sync that reached its target (exit 0, the same JSON), which a script would take for done.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PgCluster } from '../../support/pg-cluster.js'
import { loadConfig } from '../../../src/core/config/index.js'
import { withRepository, type AppContext } from '../../../src/core/app/context.js'
import { createTenant } from '../../../src/core/app/timelines.js'
import { importTimeline } from '../../../src/core/app/import.js'
import { syncTimeline } from '../../../src/core/app/sync.js'
import { PageserverError } from '../../../src/core/lib/errors.js'
import { parseTenantId, parseTimelineId } from '../../../src/core/model/ids.js'
import { lsn, parseLsn } from '../../../src/core/pg/lsn.js'

describe('timeline sync interrupted before its target', () => {
  let pg: PgCluster
  let workdir: string
  let ctx: AppContext
  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'sync-interrupt' })
    workdir = mkdtempSync(join(tmpdir(), 'ps-sync-int-'))
    ctx = { config: await loadConfig({ workdir, overrides: ['no_sync=true'], env: {} }), env: process.env }
  })
  afterAll(async () => {
    await pg?.destroy()
    if (workdir) rmSync(workdir, { recursive: true, force: true })
  })

  it('fails with SYNC_INTERRUPTED and keeps what it ingested durable', async () => {
    const tid = parseTenantId((await createTenant(ctx)).tenantId)
    const tlid = parseTimelineId((await importTimeline(ctx, { tenantId: tid, connString: pg.connString() })).timelineId)
    await pg.sql('CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000)')
    const written = await pg.insertLsn()
    // A target the primary does not reach while the sync runs: it streams what there is, then waits.
    const until = lsn(written + 64n * 1024n * 1024n)
    const abort = new AbortController()
    const progress: bigint[] = []
    const sync = syncTimeline(ctx, {
      tenantId: tid,
      timelineId: tlid,
      until,
      signal: abort.signal,
      onProgress: (p) => {
        progress.push(p.lastRecordLsn)
        if (p.lastRecordLsn >= written) abort.abort()
      },
    })
    const err = await sync.then(
      () => null,
      (e: unknown) => e,
    )
    expect(progress.length).toBeGreaterThan(0)
    expect(err).toBeInstanceOf(PageserverError)
    expect((err as PageserverError).code).toBe('SYNC_INTERRUPTED')
    expect((err as PageserverError).kind).toBe('interrupted')
    const reached = parseLsn(String((err as PageserverError).details?.diskConsistentLsn))
    expect(reached >= written).toBe(true)
    // What it ingested is durable: the next open of the timeline starts there.
    const dcl = await withRepository(ctx, async (repo) => (await (await repo.tenant(tid)).timeline(tlid)).diskConsistentLsn)
    expect(dcl).toBe(reached)
  })
})
