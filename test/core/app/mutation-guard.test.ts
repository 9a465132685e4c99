// Management operations of a running server that must not overlap: a branch being built and its ancestor's
// delete, a timeline being created and its tenant's delete. The second of a pair is refused at once (exit 4),
// and when the first ends, it can go ahead. No PostgreSQL needed (test/support/tenant-fixture.ts).
import { describe, expect, it } from 'vitest'
import { PageServer } from '../../../src/core/app/server.js'
import { MutationGuard } from '../../../src/core/app/mutation-guard.js'
import { ConflictError } from '../../../src/core/lib/errors.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
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

  it('refuses a second creation of one timeline id, and deletes during a change of a served timeline (and the reverse)', () => {
    const g = new MutationGuard()
    const t = generateTenantId()
    const id = generateTimelineId()
    const first = g.beginCreate(t, undefined, id)
    expect(() => g.beginCreate(t, undefined, id)).toThrow(expect.objectContaining({ code: 'TIMELINE_BEING_CREATED', exitCode: 4 }))
    g.beginCreate(t, undefined, generateTimelineId())() // another id is fine
    first()
    g.beginCreate(t, undefined, id)() // free again

    const tl = generateTimelineId()
    const change = g.beginChange(t, tl)
    expect(() => g.beginDeleteTimeline(t, tl)).toThrow(expect.objectContaining({ code: 'TIMELINE_BUSY' }))
    expect(() => g.beginDeleteTenant(t)).toThrow(expect.objectContaining({ code: 'TENANT_BUSY' }))
    g.beginDeleteTimeline(t, generateTimelineId())() // other timelines of the tenant are not held up
    change()
    const del = g.beginDeleteTimeline(t, tl)
    expect(() => g.beginChange(t, tl)).toThrow(expect.objectContaining({ code: 'TIMELINE_BEING_DELETED' }))
    del()
    const delTenant = g.beginDeleteTenant(t)
    expect(() => g.beginChange(t, tl)).toThrow(expect.objectContaining({ code: 'TENANT_BEING_DELETED' }))
    delTenant()
    g.beginChange(t, tl)()
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

      // Two creations of one id: the second is refused before it does anything (an import's cleanup
      // dropped the slot the first was streaming through).
      const id = generateTimelineId()
      const one = server.createTimeline(f.tenantId, { ancestorTimelineId: f.root, newTimelineId: id })
      await expect(server.createTimeline(f.tenantId, { ancestorTimelineId: f.root, newTimelineId: id })).rejects.toMatchObject({ code: 'TIMELINE_BEING_CREATED', exitCode: 4 })
      expect(((await one) as { timelineId: string }).timelineId).toBe(id)

      // A branch LSN past all WAL near 2^64 is refused naming it (rounding it up to 8 overflowed the message).
      const far = server.createTimeline(f.tenantId, { ancestorTimelineId: f.root, ancestorStartLsn: 0xffff_ffff_ffff_ffffn as Lsn })
      await expect(far).rejects.toMatchObject({ kind: 'usage' })
      await expect(far).rejects.toThrow('FFFFFFFF/FFFFFFFF')
    } finally {
      await server.stop()
    }
  })
})
