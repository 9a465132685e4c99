/**
 * Which timeline of this workdir a physical replication slot on a primary belongs to.
 *
 * A timeline that streams from a primary names its slot in its metadata (`walSource.slotName`, with the
 * primary's `systemId`). A slot is:
 *   owned    when a readable timeline's metadata names it on the same cluster (system identifier): the same
 *            name on another cluster is another slot;
 *   unknown  when no timeline owns it but one may: a timeline whose metadata cannot be read, or one being
 *            created while the workdir is locked (an import creates its slot before the timeline's metadata
 *            exists, and streams through it only after the base backup), and the slot has the name that
 *            timeline would use: its default name (app/slots.ts `defaultSlotName`), or the one its
 *            half-written metadata names;
 *   orphan   otherwise: nothing here streams through it, and it keeps the primary's WAL for nobody.
 * Owned beats unknown: a readable timeline naming the slot settles it. An import records its slot before it
 * creates it (app/import-slot-records.ts): while a live process holds the workdir lock such a slot is
 * unknown (that process may be the import); otherwise it is an orphan whose reason names the import that
 * did not finish.
 *
 * Limits of what this can know: only this workdir is read, so a slot that another page server (another
 * workdir) streams through from the same primary is an orphan here; a timeline that a broken one's custom
 * --slot named cannot be matched (its name is in the unreadable metadata). Callers that drop slots refuse
 * unknown ones unless forced, and drop only inactive ones.
 *
 * Reading is read-only and lock-free: metadata files are replaced atomically, so a running `serve` can keep
 * the workdir meanwhile.
 */
import { join } from 'node:path'
import { ConflictError, messageOf, PageserverError } from '../lib/errors.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import { readMetadata } from '../repository/metadata.js'
import type { Repository } from '../repository/repository.js'
import { METADATA_FILE } from '../repository/timeline.js'
import { liveLockHolder, type LockHolder } from '../storage/workdir-lock.js'
import { withRepository, type AppContext } from './context.js'
import { readImportSlots } from './import-slot-records.js'
import { defaultSlotName } from './slots.js'

export type SlotState = 'owned' | 'orphan' | 'unknown'

export interface TimelineRef {
  readonly tenantId: TenantId
  readonly timelineId: TimelineId
}

/** What the timelines of a workdir say about replication slots. */
export interface SlotClaims {
  /** Readable timelines that stream through a slot: its name and the primary's system id (decimal). */
  readonly sources: ReadonlyArray<TimelineRef & { readonly slotName: string; readonly systemId: string }>
  /** Timelines that may hold a slot of this name on any cluster, and why that cannot be told. */
  readonly uncertain: ReadonlyArray<TimelineRef & { readonly slotName: string; readonly reason: string }>
  /** Slots recorded by imports that did not finish (no live process holds the workdir lock). */
  readonly unfinishedImports: ReadonlyArray<TimelineRef & { readonly slotName: string; readonly systemId: string; readonly startedAt: string }>
}

export interface SlotOwnership {
  readonly state: SlotState
  /** The timeline that owns the slot (owned) or may own it (unknown); null for an orphan. */
  readonly owner: TimelineRef | null
  /** Why, as a sentence without its full stop. */
  readonly reason: string
}

/** The owner of slot `slotName` on the cluster whose system identifier is `systemId`. */
export function slotOwnership(slotName: string, systemId: bigint, claims: SlotClaims): SlotOwnership {
  const system = String(systemId)
  const source = claims.sources.find((s) => s.slotName === slotName && s.systemId === system)
  if (source !== undefined) {
    return { state: 'owned', owner: ref(source), reason: `timeline ${source.timelineId} of tenant ${source.tenantId} streams through it` }
  }
  const maybe = claims.uncertain.find((u) => u.slotName === slotName)
  if (maybe !== undefined) return { state: 'unknown', owner: ref(maybe), reason: maybe.reason }
  const dead = claims.unfinishedImports.find((i) => i.slotName === slotName && i.systemId === system)
  if (dead !== undefined) {
    return {
      state: 'orphan',
      owner: null,
      reason: `an import of timeline ${dead.timelineId} of tenant ${dead.tenantId}, started ${dead.startedAt}, made it and did not finish (\`serve\`, or the next import from this primary, drops it)`,
    }
  }
  const elsewhere = claims.sources.find((s) => s.slotName === slotName)
  return {
    state: 'orphan',
    owner: null,
    reason:
      elsewhere === undefined
        ? 'no timeline of this workdir streams through it'
        : `no timeline of this workdir streams through it from this cluster (timeline ${elsewhere.timelineId} uses a slot of that name on cluster ${elsewhere.systemId})`,
  }
}

/**
 * Slots (`<system id>/<name>`) that an import or a source change running in this process is taking for a
 * timeline, until it ends. Such a timeline does not name the slot on disk yet (an import's is not even there),
 * so the claims read there cannot see it, and a running server does these concurrently: two imports through
 * one slot (a client retrying an import with the same slot_name) left two timelines streaming through it, the
 * second's receiver refused for good ("slot is active"), or failed the second on the record file the first
 * was writing (FILE_NOT_FOUND).
 */
const slotsBeingTaken = new Map<string, TimelineRef>()

/**
 * Claims the slot for timeline `t`: SLOT_IN_USE when another timeline is taking it here. Check and claim are
 * one synchronous step; returns the release, to call when the import or change ends.
 */
export function claimSlot(slotName: string, systemId: bigint, t: TimelineRef): () => void {
  const k = `${systemId}/${slotName}`
  const other = slotsBeingTaken.get(k)
  if (other !== undefined && (other.tenantId !== t.tenantId || other.timelineId !== t.timelineId)) {
    throw new ConflictError('SLOT_IN_USE', `replication slot ${slotName} is being taken by timeline ${other.timelineId} of tenant ${other.tenantId} (an import or a WAL source change in progress)`, {
      hint: 'Wait for that to end, or use another slot name (or none: the timeline gets a slot of its own).',
      details: { slotName, owner: ref(other) },
    })
  }
  if (other !== undefined) return () => {}
  slotsBeingTaken.set(k, ref(t))
  return () => {
    slotsBeingTaken.delete(k)
  }
}

function ref(t: TimelineRef): TimelineRef {
  return { tenantId: t.tenantId, timelineId: t.timelineId }
}

/** Reads the slot claims of every timeline of the workdir (read-only, without the workdir lock). */
export async function readSlotClaims(ctx: AppContext): Promise<SlotClaims> {
  return withRepository(ctx, (repo) => readSlotClaimsIn(repo, liveLockHolder(ctx.config.workdir)))
}

/**
 * The claims of every timeline of `repo`. `lockHolder` is the live process holding the workdir lock, if any:
 * only then can a timeline's temporary directory be a creation in progress (else it was abandoned, and its
 * slot, if any, is an orphan).
 */
export async function readSlotClaimsIn(repo: Repository, lockHolder: LockHolder | null): Promise<SlotClaims> {
  const sources: Array<TimelineRef & { slotName: string; systemId: string }> = []
  const uncertain: Array<TimelineRef & { slotName: string; reason: string }> = []
  const unfinishedImports: Array<TimelineRef & { slotName: string; systemId: string; startedAt: string }> = []
  for (const r of (await readImportSlots(repo.workdir, { runningHere: true })).records) {
    const at = { tenantId: r.tenantId as TenantId, timelineId: r.timelineId as TimelineId, slotName: r.slotName }
    if (lockHolder === null) unfinishedImports.push({ ...at, systemId: r.systemId, startedAt: r.startedAt })
    else uncertain.push({ ...at, reason: `an import of timeline ${r.timelineId} of tenant ${r.tenantId} recorded it (started ${r.startedAt}), and pid ${lockHolder.pid} (${lockHolder.command}) holds the workdir lock: it may be that import` })
  }
  for (const tenantId of await repo.tenantIds()) {
    const tenant = await repo.tenant(tenantId)
    for (const timelineId of await tenant.timelineIds()) {
      let src
      try {
        src = readMetadata(join(tenant.timelineDir(timelineId), METADATA_FILE)).walSource
      } catch (e) {
        // Whatever keeps the metadata from being read (damage, permissions) keeps its slot from being known.
        const why = e instanceof PageserverError ? `${e.code}: ${e.message}` : messageOf(e)
        uncertain.push({ tenantId, timelineId, slotName: defaultSlotName(timelineId), reason: `timeline ${timelineId} of tenant ${tenantId} cannot be read (${why}) and this is its default slot name` })
        continue
      }
      if (src?.slotName) sources.push({ tenantId, timelineId, slotName: src.slotName, systemId: src.systemId })
    }
    if (lockHolder === null) continue
    for (const c of await tenant.timelinesBeingCreated()) {
      const reason = `timeline ${c.timelineId} of tenant ${tenantId} is being created (by pid ${lockHolder.pid}, ${lockHolder.command})`
      const names = new Set([defaultSlotName(c.timelineId)])
      try {
        const slotName = readMetadata(join(c.tmpDir, METADATA_FILE)).walSource?.slotName
        if (slotName) names.add(slotName)
      } catch {
        // no metadata written yet (an import writes it after the base backup): the default name is all we know
      }
      for (const slotName of names) uncertain.push({ tenantId, timelineId: c.timelineId, slotName, reason: `${reason} and would stream through a slot of this name` })
    }
  }
  return { sources, uncertain, unfinishedImports }
}
