// Two imports through one replication slot at once, as a running server takes them (a client retrying an
// import with the same slot_name, say): the second is refused with SLOT_IN_USE before it does anything, and
// the first gets the slot alone. Before, the second either failed on the record file the first was writing
// (FILE_NOT_FOUND), or reused the first's slot and made a second timeline streaming through it, whose WAL
// receiver the primary then refused for good ("replication slot ... is active for PID").
import { afterAll, describe, expect, it } from 'vitest'
import { importTimelineIn } from '../../../src/core/app/import.js'
import { createTenantIn, listTimelinesIn } from '../../../src/core/app/timelines.js'
import { withRepository } from '../../../src/core/app/context.js'
import { parseTenantId } from '../../../src/core/model/ids.js'
import { PgCluster, pgAvailable } from '../../support/pg-cluster.js'
import { contextFor } from '../../support/tenant-fixture.js'
import { tempDirs } from '../../support/timeline-fixture.js'

const newDir = tempDirs('ps-import-concurrent-slot-')

describe.skipIf(!pgAvailable())('concurrent imports through one slot, in one process', () => {
  let pg: PgCluster | null = null
  afterAll(async () => {
    await pg?.destroy()
  })

  it('the second is refused with SLOT_IN_USE; the first imports through the slot alone', async () => {
    pg = await PgCluster.start({ name: 'import-concurrent-slot' })
    await pg.sql('CREATE TABLE t AS SELECT g, md5(g::text) AS v FROM generate_series(1, 20000) g')
    const ctx = await contextFor(newDir())
    const slotName = 'shared_import_slot'
    await withRepository(ctx, async (repo) => {
      const tenantId = parseTenantId((await createTenantIn(repo)).tenantId)
      const both = await Promise.allSettled([
        importTimelineIn(repo, ctx, { tenantId, connString: pg!.connString(), slotName }),
        importTimelineIn(repo, ctx, { tenantId, connString: pg!.connString(), slotName }),
      ])
      const done = both.filter((r) => r.status === 'fulfilled')
      const refused = both.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as { code?: string; message?: string })
      expect(refused.map((e) => [e.code, e.message])).toHaveLength(1)
      expect(refused[0]).toMatchObject({ code: 'SLOT_IN_USE', exitCode: 4 })
      expect(refused[0]!.message).toContain('is being taken by timeline')
      expect(done).toHaveLength(1)
      const listed = await listTimelinesIn(repo, tenantId)
      expect(listed.map((t) => (t.state === 'Active' ? t.walSource?.slotName : null))).toEqual([slotName])
    }, { lockFor: 'test' })
    expect(await pg.sql(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${slotName}'`)).toBe('1')
  }, 120_000)
})
