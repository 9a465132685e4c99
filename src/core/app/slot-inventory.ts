/**
 * `slot list` and `slot drop`: the physical replication slots on a primary, each with the WAL it keeps there
 * and the timeline of this workdir it belongs to (slot-owners.ts), and dropping those nothing here owns.
 *
 * A slot keeps the primary's WAL until it is dropped, and some paths leave one that no timeline names any
 * more (an import killed midway, a timeline re-pointed to another primary, a broken timeline deleted): these
 * use cases find such slots and remove them, and refuse to remove one a timeline still needs.
 *
 * One connection per use case, asking for a 'database' walsender (walreceiver/slot-listing.ts): SQL lists
 * the slots, IDENTIFY_SYSTEM gives the cluster's system identifier (which owner matching compares), and
 * DROP_REPLICATION_SLOT drops. The slots are listed before the workdir is read, so a slot an import is
 * creating right then is seen with its timeline's temporary directory (the import makes the slot first): it
 * reads as unknown, not as an orphan.
 *
 * Dropping decides slot by slot (a refusal does not stop the others), against the listing it just took:
 *   no such physical slot          -> SLOT_NOT_FOUND (not found, exit 3)
 *   a timeline here owns it        -> SLOT_OWNED (conflict, exit 4): delete or re-point that timeline instead
 *   its owner is unknown           -> SLOT_OWNER_UNKNOWN (conflict), unless forced
 *   a walsender is using it        -> SLOT_ACTIVE (conflict); also when PostgreSQL refuses the drop for that
 * `orphans` picks every inactive orphan named pageserver_*; the other pageserver_* slots are returned as
 * skipped (owned ones are not: they are the normal case). A dry run decides the same way and drops nothing.
 */
import { ConflictError, NotFoundError, PageserverError, assert, errorOfKind } from '../lib/errors.js'
import { formatLsn } from '../pg/lsn.js'
import { describeConnParams, type ConnParams } from '../protocol/conn-string.js'
import { validateSlotName } from '../walreceiver/replication-commands.js'
import { ReplicationConnection } from '../walreceiver/replication-connection.js'
import { dropSlot } from '../walreceiver/replication-slots.js'
import { listPhysicalSlots, type PhysicalSlot } from '../walreceiver/slot-listing.js'
import { requireWorkdir, type AppContext } from './context.js'
import { readSlotClaims, slotOwnership, type SlotState } from './slot-owners.js'
import { PAGESERVER_SLOT_PREFIX } from './slots.js'
import { readImportSlots } from './import-slot-records.js'


/** One slot as the results (and `--json`) show it: LSNs as "X/X", the WAL it keeps in bytes. */
export interface SlotEntry {
  slotName: string
  active: boolean
  activePid: number | null
  restartLsn: string | null
  /** The primary's current WAL position minus restart_lsn; null when the slot reserves no WAL. */
  retainedBytes: number | null
  /** The timeline that owns the slot (owned) or may own it (unknown); null for an orphan. */
  owner: { tenantId: string; timelineId: string } | null
  state: SlotState
  reason: string
}

export interface SlotInventory {
  /** user@host:port of the primary (never its password). */
  server: string
  /** The primary's system identifier (IDENTIFY_SYSTEM), decimal. */
  systemId: string
  slots: SlotEntry[]
}

export interface SlotListOptions {
  conn: ConnParams
  /** Every physical slot, not only those named pageserver_*. */
  all?: boolean
  signal?: AbortSignal
}

export interface SlotDropOptions {
  conn: ConnParams
  /** Drop these slots by name; or (exclusive) */
  slotNames?: readonly string[]
  /** drop every inactive orphan named pageserver_*. */
  orphans?: boolean
  /** Drop named slots whose owner is unknown too. Never drops an owned or active slot. */
  force?: boolean
  /** Decide, but drop nothing. */
  dryRun?: boolean
  signal?: AbortSignal
}

export interface SlotRefusal {
  slotName: string
  error: PageserverError
}

export interface SlotDropOutcome {
  server: string
  systemId: string
  dryRun: boolean
  /** Dropped (or, in a dry run, to be dropped), as listed just before. */
  dropped: SlotEntry[]
  refused: SlotRefusal[]
  /** With `orphans`: the pageserver_* slots left that are not owned (active orphans, unknown owners). */
  skipped: SlotEntry[]
}

export async function listSlots(ctx: AppContext, o: SlotListOptions): Promise<SlotInventory> {
  await requireWorkdir(ctx.config.workdir)
  return withSlotConnection(o.conn, 'pageserver slot list', o.signal, async (conn) => {
    const inv = await inventory(ctx, conn)
    if (o.all) return inv
    // Ours whatever their names: pageserver_*, those a timeline here uses or may use, and those an import
    // recorded (--slot names too: an audit's killed import kept 48 MiB in a slot this listing hid).
    const recorded = new Set((await readImportSlots(ctx.config.workdir, { runningHere: true })).records.map((r) => r.slotName))
    return { ...inv, slots: inv.slots.filter((s) => s.slotName.startsWith(PAGESERVER_SLOT_PREFIX) || s.state !== 'orphan' || recorded.has(s.slotName)) }
  })
}

export async function dropSlotsFrom(ctx: AppContext, o: SlotDropOptions): Promise<SlotDropOutcome> {
  const names = [...new Set(o.slotNames ?? [])]
  assert((names.length > 0) !== (o.orphans === true), 'slot drop takes slot names or orphans, not both and not neither')
  for (const name of names) validateSlotName(name)
  await requireWorkdir(ctx.config.workdir)
  return withSlotConnection(o.conn, 'pageserver slot drop', o.signal, async (conn) => {
    const inv = await inventory(ctx, conn)
    const byName = new Map(inv.slots.map((s) => [s.slotName, s]))
    const chosen: SlotEntry[] = []
    const refused: SlotRefusal[] = []
    const skipped: SlotEntry[] = []
    if (o.orphans) {
      for (const s of inv.slots) {
        if (!s.slotName.startsWith(PAGESERVER_SLOT_PREFIX) || s.state === 'owned') continue
        if (s.state === 'orphan' && !s.active) chosen.push(s)
        else skipped.push(s)
      }
    } else {
      for (const name of names) {
        const s = byName.get(name)
        const refusal = s === undefined ? notFound(name, inv.server) : refusalOf(s, o.force === true)
        if (refusal === null) chosen.push(s!)
        else refused.push({ slotName: name, error: refusal })
      }
    }
    const dropped: SlotEntry[] = []
    for (const s of chosen) {
      if (o.dryRun) {
        dropped.push(s)
        continue
      }
      try {
        const r = await dropSlot(conn, s.slotName)
        if (r.dropped) dropped.push(s)
        else refused.push({ slotName: s.slotName, error: notFound(s.slotName, inv.server) })
      } catch (e) {
        if (!(e instanceof PageserverError)) throw e
        // The walsender that took the slot since the listing, or a connection that broke: this slot stays.
        refused.push({ slotName: s.slotName, error: e.code === 'PG_SLOT_ACTIVE' ? activeError(s, e) : e })
      }
    }
    return { server: inv.server, systemId: inv.systemId, dryRun: o.dryRun === true, dropped, refused, skipped }
  })
}

/** Every physical slot of the primary, with its owner in this workdir. */
async function inventory(ctx: AppContext, conn: ReplicationConnection): Promise<SlotInventory> {
  const system = await conn.identifySystem()
  // Slots first, then the workdir (see the module comment).
  const slots = await listPhysicalSlots(conn)
  const claims = await readSlotClaims(ctx)
  return {
    server: describeConnParams(conn.params),
    systemId: String(system.systemId),
    slots: slots.map((s) => slotEntry(s, slotOwnership(s.slotName, system.systemId, claims))),
  }
}

function slotEntry(s: PhysicalSlot, own: ReturnType<typeof slotOwnership>): SlotEntry {
  return {
    slotName: s.slotName,
    active: s.active,
    activePid: s.activePid,
    restartLsn: s.restartLsn === null ? null : formatLsn(s.restartLsn),
    retainedBytes: s.retainedBytes === null ? null : Number(s.retainedBytes),
    owner: own.owner === null ? null : { tenantId: own.owner.tenantId, timelineId: own.owner.timelineId },
    state: own.state,
    reason: own.reason,
  }
}

/** Why slot `s` may not be dropped when named; null when it may. */
function refusalOf(s: SlotEntry, force: boolean): PageserverError | null {
  if (s.state === 'owned') {
    return new ConflictError('SLOT_OWNED', `slot ${s.slotName} belongs to timeline ${s.owner!.timelineId} of tenant ${s.owner!.tenantId}: ${s.reason}`, {
      hint:
        'Dropping it would lose WAL that timeline has not received. Delete the timeline (`pageserver timeline delete` drops its slot) ' +
        'or re-point it to another primary (`pageserver timeline source`) instead; after that, this slot is an orphan.',
      details: { slotName: s.slotName, ...s.owner },
    })
  }
  if (s.state === 'unknown' && !force) {
    return new ConflictError('SLOT_OWNER_UNKNOWN', `slot ${s.slotName} may belong to a timeline of this workdir: ${s.reason}`, {
      hint: 'Repair or delete that timeline (or let its creation finish), then list the slots again; --force drops the slot anyway.',
      details: { slotName: s.slotName, ...s.owner },
    })
  }
  if (s.active) return activeError(s)
  return null
}

function activeError(s: SlotEntry, cause?: PageserverError): ConflictError {
  return new ConflictError('SLOT_ACTIVE', `slot ${s.slotName} is in use${s.activePid === null ? '' : ` by server process ${s.activePid}`}: PostgreSQL does not drop a slot a client streams from`, {
    hint: 'Stop the client that streams from it (a page server of another workdir, a standby, `pageserver wal receive`), then drop it.',
    details: { slotName: s.slotName, activePid: s.activePid },
    cause,
  })
}

function notFound(slotName: string, server: string): NotFoundError {
  return new NotFoundError('SLOT_NOT_FOUND', `there is no physical replication slot ${slotName} on ${server}`, {
    hint: 'List the slots with `pageserver slot list --from ... --all`.',
    details: { slotName },
  })
}

async function withSlotConnection<T>(params: ConnParams, applicationName: string, signal: AbortSignal | undefined, fn: (conn: ReplicationConnection) => Promise<T>): Promise<T> {
  let conn: ReplicationConnection
  try {
    conn = await ReplicationConnection.connect(params, { applicationName, replicationMode: 'database', signal })
  } catch (e) {
    throw refusedAtConnect(e, params)
  }
  try {
    return await fn(conn)
  } finally {
    await conn.close()
  }
}

/**
 * A refused login says which pg_hba.conf lines apply: a 'database' walsender is matched as a normal
 * connection to the database (not by the `replication` lines the generic hint names), and a role without
 * REPLICATION is refused with 42501 ("must be superuser or replication role to start walsender").
 */
function refusedAtConnect(e: unknown, params: ConnParams): unknown {
  if (!(e instanceof PageserverError) || !(e.code === 'PG_AUTH_FAILED' || e.details?.sqlstate === '42501')) return e
  return errorOfKind(e.kind, e.code, e.message, {
    hint:
      `Listing slots runs SQL, so this connects as a client of database "${params.dbname}" (dbname in the connection string): ` +
      'pg_hba.conf must allow that database for this user (its "replication" lines do not apply), and the role needs the ' +
      'REPLICATION attribute (or superuser). Check the user, password and dbname too.',
    details: e.details,
    cause: e,
  })
}
