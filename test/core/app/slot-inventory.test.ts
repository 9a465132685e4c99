// `slot list` and `slot drop` below the CLI, against a real PostgreSQL 15: slots made on the server, timelines
// made by hand in a workdir (owned by one, named by another on another cluster, unreadable, none at all).
// Checks the listing against pg_replication_slots, the WAL retained, and that dropping removes orphans only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dropSlotsFrom, listSlots, type SlotEntry } from '../../../src/core/app/slot-inventory.js'
import { defaultSlotName } from '../../../src/core/app/slots.js'
import { createTenant } from '../../../src/core/app/timelines.js'
import { parseTenantId, type TenantId, type TimelineId } from '../../../src/core/model/ids.js'
import { parseLsn } from '../../../src/core/pg/lsn.js'
import { parseConnString } from '../../../src/core/protocol/conn-string.js'
import { ReplicationConnection } from '../../../src/core/walreceiver/replication-connection.js'
import { listPhysicalSlots } from '../../../src/core/walreceiver/slot-listing.js'
import type { AppContext } from '../../../src/core/app/context.js'
import { PgCluster } from '../../support/pg-cluster.js'
import { contextFor } from '../../support/tenant-fixture.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { damagedTimeline, timelineWithSlot } from '../../support/slot-fixture.js'

const newDir = tempDirs('ps-slot-inv-')

describe('slot inventory against PostgreSQL 15', () => {
  let pg: PgCluster
  let systemId: string
  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'slots' })
    systemId = await pg.systemId()
    await pg.sql('CREATE TABLE t (id int, v text); CREATE ROLE norepl LOGIN')
  })
  afterAll(async () => {
    await pg?.destroy()
  })

  const conn = () => parseConnString(pg.connString())
  const slotNames = async () => (await pg.sql("SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots")).split(',').filter((s) => s !== '')
  const createSlots = (...names: string[]) => pg.sql(names.map((n) => `SELECT pg_create_physical_replication_slot('${n}', true);`).join('\n'))

  /** A workdir whose timelines own `owned`, name `elsewhere` on another cluster, and one whose metadata is damaged. */
  async function workdir(): Promise<{ ctx: AppContext; tenantId: TenantId; owner: TimelineId; broken: TimelineId }> {
    const ctx = await contextFor(newDir())
    const tenantId = parseTenantId((await createTenant(ctx)).tenantId)
    const owner = await timelineWithSlot(ctx.config.workdir, tenantId, { slotName: 'pageserver_owned', systemId })
    await timelineWithSlot(ctx.config.workdir, tenantId, { slotName: 'pageserver_elsewhere', systemId: '1' })
    const broken = damagedTimeline(ctx.config.workdir, tenantId)
    return { ctx, tenantId, owner, broken }
  }

  it('lists physical slots with their owner, restart_lsn and retained WAL; pageserver_* only unless all', async () => {
    const w = await workdir()
    await createSlots('pageserver_owned', 'pageserver_elsewhere', 'pageserver_orphan', defaultSlotName(w.broken), 'standby_1')
    await pg.sql('SELECT pg_create_physical_replication_slot(\'pageserver_noreserve\')') // no RESERVE_WAL: restart_lsn NULL
    try {
      await pg.sql("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g")
      const inv = await listSlots(w.ctx, { conn: conn() })
      expect(inv.server).toBe(`postgres@127.0.0.1:${pg.port}`)
      expect(inv.systemId).toBe(systemId)
      const by = (name: string) => inv.slots.find((s) => s.slotName === name)
      expect(inv.slots.map((s) => s.slotName)).toEqual([defaultSlotName(w.broken), 'pageserver_elsewhere', 'pageserver_noreserve', 'pageserver_orphan', 'pageserver_owned'].sort())
      expect(by('pageserver_owned')).toMatchObject({ state: 'owned', owner: { tenantId: w.tenantId, timelineId: w.owner }, active: false, activePid: null })
      expect(by('pageserver_elsewhere')).toMatchObject({ state: 'orphan', owner: null })
      expect(by('pageserver_orphan')).toMatchObject({ state: 'orphan', owner: null })
      expect(by(defaultSlotName(w.broken))).toMatchObject({ state: 'unknown', owner: { tenantId: w.tenantId, timelineId: w.broken } })
      expect(by('pageserver_noreserve')).toMatchObject({ restartLsn: null, retainedBytes: null })
      // restart_lsn as the server has it; the WAL retained is what was written since, measured by the server.
      const orphan = by('pageserver_orphan')!
      expect(orphan.restartLsn).toBe(await pg.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pageserver_orphan'"))
      const flushed = await pg.flushLsn()
      expect(typeof orphan.retainedBytes).toBe('number')
      expect(orphan.retainedBytes!).toBeGreaterThan(100 * 2000)
      expect(BigInt(orphan.retainedBytes!)).toBeLessThanOrEqual(flushed - parseLsn(orphan.restartLsn!))

      const all = await listSlots(w.ctx, { conn: conn(), all: true })
      expect(all.slots.map((s) => s.slotName)).toContain('standby_1')
      expect(all.slots.find((s) => s.slotName === 'standby_1')).toMatchObject({ state: 'orphan' })
    } finally {
      await pg.sql('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots')
    }
  })

  it('drops orphans (a dry run drops nothing), skips unknown ones, and refuses owned, unknown, active and missing slots by name', async () => {
    const w = await workdir()
    const unknown = defaultSlotName(w.broken)
    await createSlots('pageserver_owned', 'pageserver_elsewhere', 'pageserver_orphan', 'pageserver_streamed', unknown, 'standby_1')
    // A client streams from pageserver_streamed: active, so neither --orphans nor a name drops it.
    const streamer = await ReplicationConnection.connect(conn())
    try {
      const sys = await streamer.identifySystem()
      await streamer.startReplication({ slot: 'pageserver_streamed', startLsn: sys.xlogPos, timeline: sys.timeline })
      const names = (l: SlotEntry[]) => l.map((s) => s.slotName)

      const dry = await dropSlotsFrom(w.ctx, { conn: conn(), orphans: true, dryRun: true })
      expect(dry.dryRun).toBe(true)
      expect(names(dry.dropped)).toEqual(['pageserver_elsewhere', 'pageserver_orphan'])
      expect(dry.refused).toEqual([])
      expect(await slotNames()).toEqual(['pageserver_elsewhere', 'pageserver_orphan', 'pageserver_owned', 'pageserver_streamed', unknown, 'standby_1'].sort())

      const done = await dropSlotsFrom(w.ctx, { conn: conn(), orphans: true })
      expect(names(done.dropped)).toEqual(['pageserver_elsewhere', 'pageserver_orphan'])
      expect(done.skipped.map((s) => [s.slotName, s.state, s.active])).toEqual(
        [[unknown, 'unknown', false], ['pageserver_streamed', 'orphan', true]].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      )
      expect(await slotNames()).toEqual(['pageserver_owned', 'pageserver_streamed', unknown, 'standby_1'].sort())

      const refused = await dropSlotsFrom(w.ctx, { conn: conn(), slotNames: ['pageserver_owned', unknown, 'pageserver_streamed', 'no_such_slot', 'standby_1'] })
      const codes = Object.fromEntries(refused.refused.map((r) => [r.slotName, [r.error.code, r.error.exitCode]]))
      expect(codes).toEqual({
        pageserver_owned: ['SLOT_OWNED', 4],
        [unknown]: ['SLOT_OWNER_UNKNOWN', 4],
        pageserver_streamed: ['SLOT_ACTIVE', 4],
        no_such_slot: ['SLOT_NOT_FOUND', 3],
      })
      const owned = refused.refused.find((r) => r.slotName === 'pageserver_owned')!.error
      expect(owned.message).toContain(`timeline ${w.owner} of tenant ${w.tenantId}`)
      expect(owned.hint).toMatch(/timeline delete.*timeline source/)
      // A refusal does not stop the others: the slot a name picked without objection went.
      expect(names(refused.dropped)).toEqual(['standby_1'])

      const forced = await dropSlotsFrom(w.ctx, { conn: conn(), slotNames: [unknown, 'pageserver_owned'], force: true })
      expect(names(forced.dropped)).toEqual([unknown])
      expect(forced.refused.map((r) => r.error.code)).toEqual(['SLOT_OWNED'])
      expect(await slotNames()).toEqual(['pageserver_owned', 'pageserver_streamed'])
    } finally {
      await streamer.close()
      await pg.sql('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active')
    }
  })

  it("a 'database' connection runs SQL and replication commands; a physical one is not used for SQL; a role without REPLICATION gets a hint naming it", async () => {
    const db = await ReplicationConnection.connect(conn(), { replicationMode: 'database' })
    try {
      expect(db.replicationMode).toBe('database')
      // A logical walsender is connected to a database; a physical one is not.
      expect((await db.identifySystem()).dbname).toBe('postgres')
      expect(Array.isArray(await listPhysicalSlots(db))).toBe(true)
    } finally {
      await db.close()
    }
    const phys = await ReplicationConnection.connect(conn())
    try {
      await expect(listPhysicalSlots(phys)).rejects.toMatchObject({ kind: 'internal' })
    } finally {
      await phys.close()
    }
    const ctx = await contextFor(newDir())
    await expect(listSlots(ctx, { conn: parseConnString(pg.connString({ user: 'norepl' })) })).rejects.toMatchObject({
      message: expect.stringContaining('replication role'),
      hint: expect.stringContaining('REPLICATION attribute'),
    })
  })
})
