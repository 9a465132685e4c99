/**
 * `timeline import`: a new root timeline from a running PostgreSQL 15 primary.
 *
 * Order (so no WAL is lost): create (or reuse) a physical replication slot with RESERVE_WAL, then take a
 * BASE_BACKUP and import its tar as images at the backup's start (redo) LSN, then record the primary as the
 * timeline's WAL source. `timeline sync` (or `serve`) streams WAL from that LSN through the slot; pages are
 * served only from the backup's end LSN on (the copied files are fuzzy until then); the offline import streams
 * the WAL up to there before it returns. The primary is recorded without the password of its connection string
 * (app/source-password.ts): the rest of this command (and a server that imports) uses the one given, later
 * runs find it in PGPASSWORD or a password file, and the result's `notes` say so.
 *
 * A killed import cannot drop its slot: it records the slot first (app/import-slots.ts), and the next import
 * from the same primary, or the next `serve`, drops the slots of imports that died.
 */
import { claimSlot, readSlotClaimsIn, slotOwnership } from './slot-owners.js'
import { ConflictError, CorruptionError, errorOfKind, PageserverError, UnsupportedError } from '../lib/errors.js'
import { generateTimelineId, type TenantId, type TimelineId } from '../model/ids.js'
import { encodeValue } from '../model/value.js'
import { parseLsn, type Lsn } from '../pg/lsn.js'
import { TarReader } from '../pg/tar.js'
import { DatadirImporter, type ImportFileSink } from '../datadir/import.js'
import { Timeline } from '../repository/timeline.js'
import { rootTimelineMetadata, type TimelineMetadata } from '../repository/metadata.js'
import type { Repository } from '../repository/repository.js'
import { tenantOptions, withRepository, type AppContext } from './context.js'
import { syncTimelineIn } from './sync.js'
import { PG_VERSION, timelineInfo, type TimelineInfo } from './timelines.js'
import { createPhysicalSlot, readReplicationSlot } from '../walreceiver/replication-slots.js'
import { defaultSlotName, dropSlots, type SlotRef } from './slots.js'
import { connectToSource, recordSourceConnString } from './source-password.js'
import { forgetImportSlot, readImportSlots, recordImportSlot, releaseImportSlot } from './import-slot-records.js'
import { sweepImportSlots } from './import-slots.js'

export interface ImportOptions {
  tenantId: TenantId
  timelineId?: TimelineId
  connString: string
  slotName?: string
  onProgress?: (message: string) => void
}

/** The new timeline, and what the user must know about the password of `connString` (it is not stored). */
export type ImportResult = TimelineInfo & {
  /** The connection string had a password, and it was left out of the timeline's metadata. */
  passwordOmitted: boolean
  notes: string[]
}

/**
 * The offline import: the base backup, then the WAL up to the backup's end LSN (streamed through the slot
 * as `timeline sync` does), so that pages, exports and branches are readable as soon as it returns. A page
 * server importing the timeline streams that WAL with its own receiver instead.
 */
export async function importTimeline(ctx: AppContext, o: ImportOptions): Promise<ImportResult> {
  return withRepository(
    ctx,
    async (repo) => {
      const info = await importTimelineIn(repo, ctx, o)
      const timelineId = info.timelineId as TimelineId
      const readableFrom = parseLsn(info.minReadableLsn)
      if (parseLsn(info.lastRecordLsn) >= readableFrom) return info
      o.onProgress?.(`streaming WAL to the end of the backup, ${info.minReadableLsn}`)
      await syncTimelineIn(repo, ctx, { tenantId: o.tenantId, timelineId, until: readableFrom })
      const tl = await (await repo.tenant(o.tenantId)).timeline(timelineId)
      return { ...timelineInfo(o.tenantId, timelineId, tl.metadata, tl), passwordOmitted: info.passwordOmitted, notes: info.notes }
    },
    { lockFor: 'timeline import' },
  )
}

export async function importTimelineIn(repo: Repository, ctx: AppContext, o: ImportOptions): Promise<ImportResult> {
  const recorded = recordSourceConnString(ctx, o.connString)
  const id = o.timelineId ?? generateTimelineId()
  const slot = o.slotName ?? defaultSlotName(id)
  {
    const tenant = await repo.tenant(o.tenantId)
    if ((await tenant.timelineIds()).includes(id)) throw new ConflictError('ALREADY_EXISTS', `timeline ${id} already exists`, { hint: 'Choose another timeline id.' })
    const { conn } = await connectToSource(ctx, o.connString, { applicationName: 'pageserver import' })
    let releaseSlot: (() => void) | null = null
    try {
      const version = conn.parameter('server_version') ?? ''
      if (!version.startsWith(`${PG_VERSION}.`) && version !== String(PG_VERSION)) {
        throw new UnsupportedError('PG_VERSION_UNSUPPORTED', `the primary runs PostgreSQL ${version || 'of an unknown version'}; only ${PG_VERSION} is supported`, {
          hint: `Import from a PostgreSQL ${PG_VERSION} primary.`,
        })
      }
      const sys = await conn.identifySystem()
      // A slot another timeline of this workdir streams through on this primary is not to be shared: two
      // receivers cannot stream through one slot, and deleting either timeline would drop it under the other.
      const owner = slotOwnership(slot, sys.systemId, await readSlotClaimsIn(repo, null))
      if (owner.state === 'owned') {
        throw new ConflictError('SLOT_IN_USE', `replication slot ${slot} on the primary belongs to another timeline: ${owner.reason}`, {
          hint: 'Import with another --slot name, or without --slot (the new timeline gets a slot of its own).',
          details: { slotName: slot, owner: owner.owner },
        })
      }
      // Nor with an import running in this process (a server imports concurrently): its timeline is not there
      // yet, so the check above cannot see it. Checked and claimed with no await in between.
      releaseSlot = claimSlot(slot, sys.systemId, { tenantId: o.tenantId, timelineId: id })
      const notes = await dropSlotsOfDeadImports(ctx, repo, String(sys.systemId), o.onProgress)
      // Recorded only when it is not there yet: a record of a slot that existed (a standby's, another
      // workdir's, named with --slot) would have a later sweep drop it if this import died before learning
      // that the slot existed (an audit killed one in that round trip).
      const preexisting = (await readReplicationSlot(conn, slot)) !== null
      if (!preexisting) {
        await recordImportSlot(ctx, {
          slotName: slot,
          connString: recorded.connString,
          systemId: String(sys.systemId),
          tenantId: o.tenantId,
          timelineId: id,
          startedAt: new Date().toISOString(),
        })
      }
      o.onProgress?.(`${preexisting ? 'reusing' : 'creating'} replication slot ${slot}`)
      let created: boolean
      try {
        created = (await createPhysicalSlot(conn, slot)).created
      } catch (e) {
        if (!preexisting) await forgetImportSlot(ctx, slot)
        throw e
      }
      // A slot that was there before is not ours to drop (nor one made between the check and the create).
      const ours = created
      if (!ours && !preexisting) await forgetImportSlot(ctx, slot)
      const tl = await withSlotDroppedOnFailure(ctx, ours ? { connString: o.connString, slotName: slot } : null, () => tenant.createTimeline(id, async (tmp) => {
        o.onProgress?.('taking a base backup')
        let timeline: Timeline | null = null
        let importer: DatadirImporter | null = null
        let tar: TarReader | null = null
        let startLsn: Lsn | null = null
        let file: ImportFileSink | null = null
        const result = await conn.baseBackup({ label: `pageserver import ${id}` }, (chunk) => {
          const type = chunk[0]
          if (type === 0x6e /* n: new archive */) {
            const name = chunk.toString('utf8', 1, chunk.indexOf(0, 1))
            if (name !== 'base.tar') {
              throw new UnsupportedError('USER_TABLESPACE', `the primary has a user tablespace (archive ${name})`, {
                hint: 'Only pg_default and pg_global are supported.',
              })
            }
            return
          }
          if (type !== 0x64 /* d: archive data */) return // progress, manifest
          if (tar === null) throw new CorruptionError('PG_BAD_REPLY', 'base backup data before its archive header')
          tar.feed(chunk.subarray(1))
        }, (start) => {
          // The start position arrives before any data: set up the timeline at that LSN.
          startLsn = start.lsn
          timeline = Timeline.createUnflushed(tmp, tenant.id, id, importMetadata(start.lsn, sys.systemId, recorded.connString, slot, start.timeline), tenantOptions(ctx))
          const tl = timeline
          const at = start.lsn
          importer = new DatadirImporter({ put: (key, value) => tl.put(key, at, encodeValue(value)) })
          const imp = importer
          tar = new TarReader({
            entry: (h) => {
              file = h.type === 'file' ? imp.openFile(h.path) : null
            },
            data: (c) => file?.write(c),
            entryEnd: () => {
              file?.end()
              file = null
            },
          })
        })
        if (timeline === null || importer === null || tar === null || startLsn === null) {
          throw new CorruptionError('PG_BAD_REPLY', 'the base backup carried no archive', { hint: 'The server replied oddly.' })
        }
        const t: Timeline = timeline
        const imp: DatadirImporter = importer
        ;(tar as TarReader).end()
        const control = imp.finish()
        o.onProgress?.('writing layers')
        t.finishRecords(startLsn, null)
        await t.checkpoint()
        const dataChecksums = control.data_checksum_version !== 0
        await t.updateMetadata({ minReadableLsn: result.endLsn, dataChecksums, hintBitsLogged: dataChecksums || control.wal_log_hints })
        await t.close()
      }))
      // The timeline names its slot now: the record has done its job.
      await forgetImportSlot(ctx, slot)
      return { ...timelineInfo(o.tenantId, id, tl.metadata, tl), passwordOmitted: recorded.passwordOmitted, notes: [...notes, ...recorded.notes] }
    } finally {
      releaseSlot?.()
      await conn.close()
    }
  }
}

/**
 * Runs `fn` (the timeline's creation); when it fails, drops `slot` (the one this import created: a slot
 * that existed before, reused by a retry, stays) so that a failed import does not leave the primary keeping
 * WAL for a timeline that does not exist. When the slot cannot be dropped either, the error's hint says
 * how to drop it by hand, and its record stays for the next import or serve to drop it (app/import-slots.ts).
 */
async function withSlotDroppedOnFailure<T>(ctx: AppContext, slot: SlotRef | null, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (e) {
    if (slot === null) throw e
    if (!(e instanceof PageserverError)) {
      // Not ours to explain: the record stays, and the next import or serve drops the slot.
      releaseImportSlot(slot.slotName)
      throw e
    }
    const { slotsLeft } = await dropSlots(ctx, { refs: [slot], unknown: [] })
    const left = slotsLeft[0]
    if (left === undefined) await forgetImportSlot(ctx, slot.slotName)
    else releaseImportSlot(slot.slotName)
    const what = left
      ? `The replication slot ${slot.slotName} it created on ${left.server} could not be dropped (${left.reason}): run ${left.dropWith} there.`
      : `The replication slot ${slot.slotName} it created was dropped.`
    throw errorOfKind(e.kind, e.code, e.message, { hint: `${e.hint ? `${e.hint} ` : ''}${what}`, cause: e, details: { ...e.details, slotName: slot.slotName, slotDropped: !left } })
  }
}

/**
 * Drops the slots that imports from this primary (system `systemId`) left when they died, before this
 * import makes its own. Imports run under the workdir lock, so no other import is running. Returns notes for
 * the result: what was dropped, and what could not be.
 */
async function dropSlotsOfDeadImports(ctx: AppContext, repo: Repository, systemId: string, onProgress?: (message: string) => void): Promise<string[]> {
  const { records, unreadable } = await readImportSlots(ctx.config.workdir)
  const unreadableNotes = unreadable.map((u) => `A record of an earlier import's replication slot cannot be read (${u.file}: ${u.reason}): look at it, drop the slot it names if it is still there, and remove the file.`)
  const mine = records.filter((r) => r.systemId === systemId)
  if (mine.length === 0) return unreadableNotes
  onProgress?.(`dropping ${mine.length === 1 ? 'the replication slot' : `${mine.length} replication slots`} of an import that did not finish (${mine.map((r) => r.slotName).join(', ')})`)
  const sweep = await sweepImportSlots(ctx, repo, mine)
  return [
    ...unreadableNotes,
    ...sweep.dropped.map((d) => `Dropped replication slot ${d.slotName} on ${d.server}: an import of timeline ${d.timelineId} made it and did not finish.`),
    ...sweep.left.map((l) => `An earlier import that did not finish left replication slot ${l.slotName} on ${l.server} (${l.reason}); it keeps WAL there: ${l.dropWith}`),
  ]
}

/** `connString` is the one to record: without a password (recordSourceConnString). */
function importMetadata(at: Lsn, systemId: bigint, connString: string, slot: string, pgTimeline: number): TimelineMetadata {
  return rootTimelineMetadata(at, {
    pgVersion: PG_VERSION,
    walSource: { connString, slotName: slot, systemId: String(systemId), pgTimeline },
    dataChecksums: false,
    hintBitsLogged: false,
  })
}
