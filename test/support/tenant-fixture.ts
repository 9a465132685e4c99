/**
 * Tenants with timelines built by hand, for tests below the CLI that need no PostgreSQL: a root timeline
 * holding one flushed layer file (an 8 KiB image of block 0 of relation 1663/5/16384, every byte 7, at
 * 0/108: a key, not a relation the datadir knows of) and a branch of it at its last record.
 */
import { expect } from 'vitest'
import { loadConfig } from '../../src/core/config/index.js'
import { tenantOptions, withRepository, type AppContext } from '../../src/core/app/context.js'
import { branchTimelineIn, createTenant } from '../../src/core/app/timelines.js'
import { Timeline } from '../../src/core/repository/timeline.js'
import { generateTimelineId, parseTenantId, type TenantId, type TimelineId } from '../../src/core/model/ids.js'
import { relBlockKey } from '../../src/core/datadir/mapping.js'
import { encodeValue, imageValue } from '../../src/core/model/value.js'
import { lsn } from '../../src/core/pg/lsn.js'
import { testTimelineMetadata } from './timeline-fixture.js'

/** The relation the root timeline holds a page of. */
export const FIXTURE_REL = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0 } as const
/** The LSN of that page, and the root's (and the branch's) last record. */
export const FIXTURE_LSN = lsn(0x108)

/** The context of a workdir with fsync off, plus `overrides` (e.g. listen addresses). */
export async function contextFor(workdir: string, overrides: string[] = []): Promise<AppContext> {
  return { config: await loadConfig({ workdir, overrides: ['no_sync=true', ...overrides], env: {} }), env: {} }
}

export interface TenantFixture {
  tenantId: TenantId
  root: TimelineId
  branch: TimelineId
}

/**
 * A new tenant with a root timeline (one flushed layer file) and a branch of it; `walSource` on the root
 * makes a running server start a WAL receiver for it.
 */
export async function tenantWithTimelines(ctx: AppContext, walSource: string | null = null): Promise<TenantFixture> {
  const tenantId = parseTenantId((await createTenant(ctx)).tenantId)
  const root = generateTimelineId()
  const branch = generateTimelineId()
  await withRepository(
    ctx,
    async (repo) => {
      const tenant = await repo.tenant(tenantId)
      const meta = testTimelineMetadata(walSource === null ? {} : { walSource: { connString: walSource, slotName: null, systemId: '7000000000000000001', pgTimeline: 1 } })
      const tl = await tenant.createTimeline(root, async (tmp) => {
        const created = await Timeline.create(tmp, tenantId, root, meta, null, tenantOptions(ctx))
        created.put(relBlockKey(FIXTURE_REL, 0), FIXTURE_LSN, encodeValue(imageValue(Buffer.alloc(8192, 7))))
        created.finishRecords(FIXTURE_LSN, lsn(0x100))
        await created.checkpoint()
        await created.close()
      })
      expect(tl.layerFiles().length).toBe(1)
      await branchTimelineIn(repo, ctx, { tenantId, ancestorTimelineId: root, timelineId: branch })
    },
    { lockFor: 'test' },
  )
  return { tenantId, root, branch }
}
