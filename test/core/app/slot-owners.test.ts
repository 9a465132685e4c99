// Which timeline of a workdir owns a replication slot: owned (same slot name, same cluster), orphan
// (nothing here names it, or only on another cluster), unknown (a timeline that cannot be read, or one being
// created while the workdir is locked, would use that name). No PostgreSQL: workdirs are built by hand.
import { describe, expect, it } from 'vitest'
import { createTenant } from '../../../src/core/app/timelines.js'
import { claimSlot, readSlotClaims, slotOwnership, type SlotClaims } from '../../../src/core/app/slot-owners.js'
import { defaultSlotName } from '../../../src/core/app/slots.js'
import { forgetImportSlot, recordImportSlot } from '../../../src/core/app/import-slot-records.js'
import { generateTenantId, generateTimelineId, parseTenantId } from '../../../src/core/model/ids.js'
import { WorkdirLock } from '../../../src/core/storage/workdir-lock.js'
import { contextFor } from '../../support/tenant-fixture.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { damagedTimeline, timelineBeingCreated, timelineTombstone, timelineWithSlot } from '../../support/slot-fixture.js'

const newDir = tempDirs('ps-slot-owners-')
const SYSTEM = 7300000000000000001n
const OTHER_SYSTEM = '7300000000000000002'

describe('slotOwnership', () => {
  const tenantId = generateTenantId()
  const a = generateTimelineId()
  const b = generateTimelineId()
  const claims: SlotClaims = {
    sources: [
      { tenantId, timelineId: a, slotName: 'pageserver_a', systemId: String(SYSTEM) },
      { tenantId, timelineId: b, slotName: 'pageserver_b', systemId: OTHER_SYSTEM },
    ],
    uncertain: [{ tenantId, timelineId: b, slotName: 'pageserver_a', reason: 'b cannot be read' }, { tenantId, timelineId: b, slotName: 'pageserver_c', reason: 'b cannot be read' }],
    unfinishedImports: [{ tenantId, timelineId: b, slotName: 'pageserver_e', systemId: String(SYSTEM), startedAt: '2026-11-24T10:00:00.000Z' }],
  }

  it('a slot a timeline names on the same cluster is owned by it, even when an unreadable timeline could use the name too', () => {
    expect(slotOwnership('pageserver_a', SYSTEM, claims)).toEqual({ state: 'owned', owner: { tenantId, timelineId: a }, reason: expect.stringContaining(a) })
  })

  it('the same slot name on another cluster is not owned: the slot is an orphan, and the reason says where the name is used', () => {
    const own = slotOwnership('pageserver_b', SYSTEM, claims)
    expect(own).toMatchObject({ state: 'orphan', owner: null })
    expect(own.reason).toContain(OTHER_SYSTEM)
    // On its own cluster it is owned.
    expect(slotOwnership('pageserver_b', BigInt(OTHER_SYSTEM), claims).state).toBe('owned')
  })

  it('a slot that only an uncertain timeline may use is unknown, naming that timeline; anything else is an orphan', () => {
    expect(slotOwnership('pageserver_c', SYSTEM, claims)).toEqual({ state: 'unknown', owner: { tenantId, timelineId: b }, reason: 'b cannot be read' })
    expect(slotOwnership('pageserver_d', SYSTEM, claims)).toEqual({ state: 'orphan', owner: null, reason: 'no timeline of this workdir streams through it' })
  })

  it('the slot of an import that did not finish is an orphan whose reason names the import; on another cluster it is a plain orphan', () => {
    const own = slotOwnership('pageserver_e', SYSTEM, claims)
    expect(own).toMatchObject({ state: 'orphan', owner: null })
    expect(own.reason).toContain(`an import of timeline ${b} of tenant ${tenantId}, started 2026-11-24T10:00:00.000Z`)
    expect(slotOwnership('pageserver_e', BigInt(OTHER_SYSTEM), claims).reason).toBe('no timeline of this workdir streams through it')
  })
})

describe('readSlotClaims', () => {
  it('reads every tenant: WAL sources, unreadable timelines by their default slot name; timelines without a slot and tombstones claim nothing', async () => {
    const ctx = await contextFor(newDir())
    const wd = ctx.config.workdir
    const t1 = parseTenantId((await createTenant(ctx)).tenantId)
    const t2 = parseTenantId((await createTenant(ctx)).tenantId)
    const streaming = await timelineWithSlot(wd, t1, { slotName: 'pageserver_custom', systemId: String(SYSTEM) })
    await timelineWithSlot(wd, t1, null)
    await timelineWithSlot(wd, t1, { slotName: null, systemId: String(SYSTEM) })
    const broken = damagedTimeline(wd, t2)
    await timelineTombstone(wd, t2, 'pageserver_deleted', String(SYSTEM))

    const claims = await readSlotClaims(ctx)
    expect(claims.sources).toEqual([{ tenantId: t1, timelineId: streaming, slotName: 'pageserver_custom', systemId: String(SYSTEM) }])
    expect(claims.uncertain).toEqual([{ tenantId: t2, timelineId: broken, slotName: defaultSlotName(broken), reason: expect.stringMatching(/cannot be read \(METADATA_\w+: .*\) and this is its default slot name/) }])
    expect(slotOwnership('pageserver_custom', SYSTEM, claims).state).toBe('owned')
    expect(slotOwnership(defaultSlotName(broken), SYSTEM, claims)).toMatchObject({ state: 'unknown', owner: { tenantId: t2, timelineId: broken } })
    expect(slotOwnership('pageserver_deleted', SYSTEM, claims).state).toBe('orphan')
  })

  it('a timeline being created makes its slot names unknown while a live process holds the workdir lock, and nothing once none does (abandoned); tombstones never', async () => {
    const ctx = await contextFor(newDir())
    const wd = ctx.config.workdir
    const t = parseTenantId((await createTenant(ctx)).tenantId)
    const importing = await timelineBeingCreated(wd, t, null)
    const sourced = await timelineBeingCreated(wd, t, 'pageserver_mine')
    // A deletion's tombstone is not a creation, lock or not.
    await timelineTombstone(wd, t, 'pageserver_deleted', String(SYSTEM))

    const abandoned = await readSlotClaims(ctx)
    expect(abandoned.uncertain).toEqual([])
    expect(slotOwnership(defaultSlotName(importing), SYSTEM, abandoned).state).toBe('orphan')

    const lock = WorkdirLock.acquire(wd, 'timeline import')
    try {
      const claims = await readSlotClaims(ctx)
      const names = claims.uncertain.map((u) => u.slotName).sort()
      expect(names).toEqual([defaultSlotName(importing), defaultSlotName(sourced), 'pageserver_mine'].sort())
      const own = slotOwnership(defaultSlotName(importing), SYSTEM, claims)
      expect(own).toMatchObject({ state: 'unknown', owner: { tenantId: t, timelineId: importing } })
      expect(own.reason).toContain(`is being created (by pid ${process.pid}, timeline import)`)
      expect(slotOwnership('pageserver_mine', SYSTEM, claims)).toMatchObject({ state: 'unknown', owner: { tenantId: t, timelineId: sourced } })
    } finally {
      lock.release()
    }
  })

  it('a recorded import slot is unknown while a live process holds the workdir lock (it may be that import), else an unfinished import', async () => {
    const ctx = await contextFor(newDir())
    const wd = ctx.config.workdir
    const t = parseTenantId((await createTenant(ctx)).tenantId)
    const id = generateTimelineId()
    const slotName = defaultSlotName(id)
    await recordImportSlot(ctx, { slotName, connString: 'host=127.0.0.1 port=1 user=x', systemId: String(SYSTEM), tenantId: t, timelineId: id, startedAt: '2026-11-24T10:00:00.000Z' })
    try {
      const dead = await readSlotClaims(ctx)
      expect(dead.unfinishedImports).toEqual([{ tenantId: t, timelineId: id, slotName, systemId: String(SYSTEM), startedAt: '2026-11-24T10:00:00.000Z' }])
      expect(slotOwnership(slotName, SYSTEM, dead).state).toBe('orphan')
      const lock = WorkdirLock.acquire(wd, 'timeline import')
      try {
        const live = await readSlotClaims(ctx)
        expect(live.unfinishedImports).toEqual([])
        const own = slotOwnership(slotName, SYSTEM, live)
        expect(own).toMatchObject({ state: 'unknown', owner: { tenantId: t, timelineId: id } })
        expect(own.reason).toContain(`pid ${process.pid} (timeline import) holds the workdir lock`)
      } finally {
        lock.release()
      }
    } finally {
      await forgetImportSlot(ctx, slotName)
    }
    expect((await readSlotClaims(ctx)).unfinishedImports).toEqual([])
  })

  it('an empty workdir claims nothing; a missing one is refused (every slot would look like an orphan)', async () => {
    const ctx = await contextFor(newDir())
    expect(await readSlotClaims(ctx)).toEqual({ sources: [], uncertain: [], unfinishedImports: [] })
    const gone = await contextFor(`${newDir()}/missing`)
    await expect(readSlotClaims(gone)).rejects.toMatchObject({ code: 'WORKDIR_NOT_FOUND' })
  })
})

describe('claimSlot: slots being taken by imports and source changes of this process', () => {
  it('refuses a slot another timeline is taking on that cluster, until it is released', () => {
    const a = { tenantId: generateTenantId(), timelineId: generateTimelineId() }
    const b = { tenantId: a.tenantId, timelineId: generateTimelineId() }
    const release = claimSlot('claimed_slot', SYSTEM, a)
    expect(() => claimSlot('claimed_slot', SYSTEM, b)).toThrow(expect.objectContaining({ code: 'SLOT_IN_USE', exitCode: 4 }))
    // Another slot, or the same name on another cluster, is another slot.
    claimSlot('other_slot', SYSTEM, b)()
    claimSlot('claimed_slot', BigInt(OTHER_SYSTEM), b)()
    // The same timeline again (nothing to refuse); its release leaves the first claim in place.
    claimSlot('claimed_slot', SYSTEM, a)()
    expect(() => claimSlot('claimed_slot', SYSTEM, b)).toThrow(/is being taken by timeline/)
    release()
    claimSlot('claimed_slot', SYSTEM, b)()
  })
})
