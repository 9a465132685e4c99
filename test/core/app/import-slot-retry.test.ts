// A running server keeps trying to drop the slot of an import that died: at its start the primary was down
// (an audit's slot then kept WAL until the next start, which could be weeks away); once the primary is back,
// a retry drops it and removes the record.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { IMPORT_SLOTS_DIR, recordImportSlot, releaseImportSlot } from '../../../src/core/app/import-slot-records.js'
import { PageServer } from '../../../src/core/app/server.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import { PgCluster, pgAvailable } from '../../support/pg-cluster.js'
import { contextFor } from '../../support/tenant-fixture.js'
import { tempDirs } from '../../support/timeline-fixture.js'

const newDir = tempDirs('ps-import-slot-retry-')

describe.skipIf(!pgAvailable())('the slots of dead imports, while the server runs', () => {
  let pg: PgCluster | null = null
  afterAll(async () => {
    await pg?.destroy()
  })

  it('are dropped by a retry once their primary, down at the start, is back', async () => {
    pg = await PgCluster.start({ name: 'import-slot-retry' })
    const slotName = 'pageserver_dead_import_retry'
    await pg.sql(`SELECT pg_create_physical_replication_slot('${slotName}', true)`)
    const ctx = await contextFor(newDir(), ['listen_pg_addr="127.0.0.1:0"', 'listen_http_addr="127.0.0.1:0"'])
    await recordImportSlot(ctx, { slotName, connString: pg.connString(), systemId: await pg.systemId(), tenantId: generateTenantId(), timelineId: generateTimelineId(), startedAt: new Date().toISOString() })
    releaseImportSlot(slotName) // as if another process, now dead, had recorded it
    await pg.stop()
    const logged: Array<[string, string]> = []
    const server = await PageServer.start({ ...ctx, log: (level, msg) => void logged.push([level, msg]) }, { importSlotRetryMs: 300 })
    try {
      const until = Date.now() + 20_000
      while (!logged.some(([level, msg]) => level === 'warn' && msg.includes('left a replication slot')) && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
      expect(logged).toContainEqual(['warn', 'an import that did not finish left a replication slot'])
      await pg.restart()
      const count = async () => pg!.sql(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${slotName}'`)
      while ((await count()) !== '0' && Date.now() < until) await new Promise((r) => setTimeout(r, 100))
      expect(await count()).toBe('0')
      expect(logged).toContainEqual(['info', 'dropped the replication slot of an import that did not finish'])
      expect(existsSync(join(ctx.config.workdir, IMPORT_SLOTS_DIR, `${slotName}.json`))).toBe(false)
    } finally {
      await server.stop()
    }
  }, 120_000)
})
