// Management operations of a running server that must not overlap: a branch being built and its ancestor's
// delete, a timeline being created and its tenant's delete. The second of a pair is refused at once (exit 4),
// and when the first ends, it can go ahead. No PostgreSQL needed (test/support/tenant-fixture.ts).
import { describe, expect, it } from 'vitest'
import { PageServer } from '../../../src/core/app/server.js'
import { MutationGuard } from '../../../src/core/app/mutation-guard.js'
import { ConflictError } from '../../../src/core/lib/errors.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { contextFor, tenantWithTimelines } from '../../support/tenant-fixture.js'

const newDir = tempDirs('ps-guard-')
const listen = ['listen_pg_addr="127.0.0.1:0"', 'listen_http_addr="127.0.0.1:0"']

describe('MutationGuard', () => {
  it('refuses the second of each conflicting pair, and lets it go once the first ends', () => {
    const g = new MutationGuard()
    const t = generateTenantId()
    const a = generateTimelineId()
    const endBranch = g.beginCreate(t, a)
    expect(() => g.beginDeleteTimeline(t, a)).toThrow(expect.objectContaining({ code: 'TIMELINE_HAS_CHILDREN' }))
    expect(() => g.beginDeleteTenant(t)).toThrow(expect.objectContaining({ code: 'TENANT_BUSY' }))
    // Other timelines of the tenant, and other tenants, are not held up.
    g.beginDeleteTimeline(t, generateTimelineId())()
    g.beginDeleteTenant(generateTenantId())()
    endBranch()
    endBranch() // ending twice changes nothing
    const endDelete = g.beginDeleteTimeline(t, a)
    expect(() => g.beginCreate(t, a)).toThrow(expect.objectContaining({ code: 'TIMELINE_BEING_DELETED' }))
    expect(() => g.beginDeleteTimeline(t, a)).toThrow(expect.objectContaining({ code: 'TIMELINE_BEING_DELETED' }))
    g.beginCreate(t)() // a bootstrap in the tenant is fine
    endDelete()
    const endTenant = g.beginDeleteTenant(t)
    expect(() => g.beginCreate(t)).toThrow(expect.objectContaining({ code: 'TENANT_BEING_DELETED' }))
    endTenant()
    g.beginCreate(t, a)()
  })
})

describe('a running server', () => {
  it('refuses to delete a timeline while a branch of it is being created, and the reverse', async () => {
    const ctx = await contextFor(newDir(), listen)
    const f = await tenantWithTimelines(ctx)
    const server = await PageServer.start(ctx)
    try {
      // Both requests arrive together: the branch registers before its first await.
      const branch = server.createTimeline(f.tenantId, { ancestorTimelineId: f.branch })
      const del = server.deleteTimeline(f.tenantId, f.branch)
      await expect(del).rejects.toBeInstanceOf(ConflictError)
      await expect(del).rejects.toMatchObject({ code: 'TIMELINE_HAS_CHILDREN', exitCode: 4 })
      const created = (await branch) as { timelineId: string; ancestorTimelineId: string }
      expect(created.ancestorTimelineId).toBe(f.branch)
      expect(server.servedTimelines()).toHaveLength(3)

      const other = generateTimelineId()
      const deleting = server.deleteTimeline(f.tenantId, created.timelineId as never)
      await expect(server.createTimeline(f.tenantId, { ancestorTimelineId: created.timelineId as never, newTimelineId: other })).rejects.toMatchObject({
        code: 'TIMELINE_BEING_DELETED',
      })
      await deleting
      expect(server.servedTimelines().map((s) => s.timeline.timelineId).sort()).toEqual([f.root, f.branch].sort())
    } finally {
      await server.stop()
    }
  })
})
