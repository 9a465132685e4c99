// `timeline source --slot` with the slot another timeline of the workdir streams through: refused with
// SLOT_IN_USE, as `timeline import` refuses it. Before, it was accepted, and the two timelines' receivers
// fought over the slot ("replication slot ... is active for PID"): whichever streamed advanced the slot past
// WAL the other had not made durable yet, which the primary could then remove.
import { afterAll, describe, expect, it } from 'vitest'
import { branchTimeline, createTenant } from '../../../src/core/app/timelines.js'
import { importTimeline } from '../../../src/core/app/import.js'
import { setTimelineWalSource } from '../../../src/core/app/timelines-source.js'
import { defaultSlotName } from '../../../src/core/app/slots.js'
import { parseTenantId, parseTimelineId } from '../../../src/core/model/ids.js'
import { PgCluster, pgAvailable } from '../../support/pg-cluster.js'
import { contextFor } from '../../support/tenant-fixture.js'
import { tempDirs } from '../../support/timeline-fixture.js'

const newDir = tempDirs('ps-wal-source-slot-')

describe.skipIf(!pgAvailable())('timeline source and the slots of other timelines', () => {
  let pg: PgCluster | null = null
  afterAll(async () => {
    await pg?.destroy()
  })

  it("refuses another timeline's slot (SLOT_IN_USE), and takes the timeline's own or a fresh one", async () => {
    pg = await PgCluster.start({ name: 'wal-source-slot' })
    const ctx = await contextFor(newDir())
    const tenantId = parseTenantId((await createTenant(ctx)).tenantId)
    const imported = await importTimeline(ctx, { tenantId, connString: pg.connString() })
    const a = parseTimelineId(imported.timelineId)
    const b = parseTimelineId((await branchTimeline(ctx, { tenantId, ancestorTimelineId: a })).timelineId)
    const taken = defaultSlotName(a)

    const refused = await setTimelineWalSource(ctx, { tenantId, timelineId: b, connString: pg.connString(), slotName: taken }).catch((e: unknown) => e)
    expect(refused).toMatchObject({ code: 'SLOT_IN_USE', exitCode: 4 })
    expect((refused as Error).message).toContain(`timeline ${a} of tenant ${tenantId} streams through it`)

    // The timeline's own slot (a new connection string for the same source), and a slot of its own, are fine.
    expect((await setTimelineWalSource(ctx, { tenantId, timelineId: a, connString: pg.connString(), slotName: taken })).walSource.slotName).toBe(taken)
    expect((await setTimelineWalSource(ctx, { tenantId, timelineId: b, connString: pg.connString() })).walSource.slotName).toBe(defaultSlotName(b))
  }, 120_000)
})
