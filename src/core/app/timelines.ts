/**
 * Use cases for tenants (create, list, delete) and timelines (create, list, branch, delete), and the
 * bootstrap of a timeline from a fresh `initdb`.
 *
 * Results are plain objects with LSNs as "X/X" strings: exactly what `--json` prints (the contract scripts
 * rely on).
 */
import { dropSlots, slotsOfTimelines, type SlotsDropped } from './slots.js'
import { basename, join } from 'node:path'
import { existsSync } from 'node:fs'
import { ConflictError, InterruptedError, NotFoundError, PageserverError, UsageError } from '../lib/errors.js'
import { generateTimelineId, type TenantId, type TimelineId } from '../model/ids.js'
import { alignLsn8, formatLsn, type Lsn } from '../pg/lsn.js'
import { DBState, decodeControlFile, PG_CONTROL_FILE_SIZE } from '../pg/controlfile.js'
import { readSmallFile } from '../storage/small-file.js'
import { liftToSameWal, lowerToSameWal, positionBetweenRecords } from './wal-position.js'
import { DatadirImporter } from '../datadir/import.js'
import { runInitdb } from '../postgres/initdb.js'
import { readFileChunks, walkFiles } from '../storage/tree-walk.js'
import { Timeline } from '../repository/timeline.js'
import { readMetadata, rootTimelineMetadata, type TimelineMetadata } from '../repository/metadata.js'
import { METADATA_FILE } from '../repository/timeline.js'
import { ancestorNotLoaded, metadataMissing, type DeleteTimelineOptions, type Tenant } from '../repository/tenant.js'
import type { IgnoredTenantEntry, Repository } from '../repository/repository.js'
import { encodeValue } from '../model/value.js'
import { redactConnString } from '../protocol/conn-string-redact.js'
import { postgresInstallation, tenantOptions, withRepository, type AppContext } from './context.js'

export const PG_VERSION = 15

export interface TimelineInfo {
  tenantId: string
  timelineId: string
  ancestorTimelineId: string | null
  ancestorLsn: string | null
  lastRecordLsn: string
  diskConsistentLsn: string
  prevRecordLsn: string | null
  initdbLsn: string
  minReadableLsn: string
  latestGcCutoffLsn: string
  pgVersion: number
  dataChecksums: boolean
  walSource: { connString: string; slotName: string | null; systemId: string } | null
}

/**
 * What listings and creates report of a timeline: its metadata, with the last and previous record LSNs of
 * `live` (a loaded timeline: in memory, ahead of the metadata on disk; the two always from the same place).
 */
export function timelineInfo(
  tenantId: TenantId,
  timelineId: TimelineId,
  m: TimelineMetadata,
  live: { readonly lastRecordLsn: Lsn; readonly prevRecordLsn: Lsn | null } = m,
): TimelineInfo {
  return {
    tenantId,
    timelineId,
    ancestorTimelineId: m.ancestorTimeline,
    ancestorLsn: m.ancestorLsn === null ? null : formatLsn(m.ancestorLsn),
    lastRecordLsn: formatLsn(live.lastRecordLsn),
    diskConsistentLsn: formatLsn(m.diskConsistentLsn),
    prevRecordLsn: live.prevRecordLsn === null ? null : formatLsn(live.prevRecordLsn),
    initdbLsn: formatLsn(m.initdbLsn),
    minReadableLsn: formatLsn(m.minReadableLsn),
    latestGcCutoffLsn: formatLsn(m.latestGcCutoffLsn),
    pgVersion: m.pgVersion,
    dataChecksums: m.dataChecksums,
    walSource: m.walSource === null ? null : { connString: redactConnString(m.walSource.connString), slotName: m.walSource.slotName, systemId: m.walSource.systemId },
  }
}

// --- tenants ---

// Each use case has a form that works in an open repository (`...In`, used by the running server, which
// holds the lock and the live timelines) and a form that opens the workdir itself (offline commands).

export async function createTenantIn(repo: Repository, tenantId?: TenantId): Promise<{ tenantId: string }> {
  return { tenantId: (await repo.createTenant(tenantId)).id }
}

export async function createTenant(ctx: AppContext, tenantId?: TenantId): Promise<{ tenantId: string }> {
  return withRepository(ctx, (repo) => createTenantIn(repo, tenantId), { lockFor: 'tenant create' })
}

/**
 * Deletes a tenant with every timeline it has (branches included, no child check: they all go). Crash-safe:
 * the tenant directory becomes a tombstone in one rename before anything inside is removed
 * (Repository.deleteTenant). Local files only: nothing is uploaded to remote storage yet, so there is no
 * remote copy to delete (timeline delete does the same).
 */
export async function deleteTenantIn(repo: Repository, ctx: AppContext, tenantId: TenantId): Promise<{ tenantId: string; deleted: true } & SlotsDropped> {
  const tenant = await repo.tenant(tenantId)
  // Slots before files (see deleteTimelineIn).
  const slots = await dropSlots(ctx, slotsOfTimelines(tenant, await tenant.timelineIds()))
  await repo.deleteTenant(tenantId)
  return { tenantId, deleted: true as const, ...slots }
}

export async function deleteTenant(ctx: AppContext, tenantId: TenantId): Promise<{ tenantId: string; deleted: true } & SlotsDropped> {
  return withRepository(ctx, (repo) => deleteTenantIn(repo, ctx, tenantId), { lockFor: 'tenant delete' })
}

/** A tenant as listed: its timelines counted, or (null) why its directory cannot be read. */
export interface ListedTenant {
  tenantId: string
  timelines: number | null
  error?: TimelineLoadError
}

export async function listTenantsIn(repo: Repository): Promise<ListedTenant[]> {
  const out: ListedTenant[] = []
  const ignored: IgnoredTenantEntry[] = []
  const ids = await repo.tenantIds(ignored)
  for (const i of ignored) {
    // A tenant's directory whose config.toml is gone: shown, so that the operator learns which file to restore.
    const e = i.configMissing ?? i.unreadable
    if (e !== undefined) out.push({ tenantId: basename(i.path), timelines: null, error: { code: e.code, message: e.message, hint: e.hint ?? null } })
  }
  for (const id of ids) {
    try {
      out.push(await tenantInfoIn(repo, id))
    } catch (e) {
      // Deleted since the directory was listed (a running server deletes while it lists): not listed.
      if (e instanceof NotFoundError) continue
      // One tenant that cannot be read does not hide the others.
      if (e instanceof PageserverError) out.push({ tenantId: id, timelines: null, error: { code: e.code, message: e.message, hint: e.hint ?? null } })
      else throw e
    }
  }
  return out.sort((a, b) => (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : 0))
}

/** One tenant as `listTenantsIn` lists it; NotFoundError (TENANT_NOT_FOUND) when it does not exist. */
export async function tenantInfoIn(repo: Repository, tenantId: TenantId): Promise<{ tenantId: string; timelines: number }> {
  const t = await repo.tenant(tenantId)
  return { tenantId, timelines: (await t.timelineIds()).length }
}

export async function listTenants(ctx: AppContext): Promise<ListedTenant[]> {
  return withRepository(ctx, listTenantsIn)
}

// --- timelines ---

/** Why a timeline cannot be loaded (or served), as the error JSON of the CLI shows errors. */
export interface TimelineLoadError {
  code: string
  message: string
  hint: string | null
}

/**
 * One entry of a timeline listing: the timeline's info with `state: "Active"`, or `state: "Broken"` with the
 * error that keeps it from loading (its metadata is unreadable, or its ancestor's is). One broken timeline
 * does not hide the others (Neon's timeline states, by name).
 */
export type ListedTimeline = ({ state: 'Active'; walReceiverStatus?: string } & TimelineInfo) | BrokenTimeline

/** A broken entry keeps the listing's contract fields, null (unknown), beside its error. */
export interface BrokenTimeline {
  tenantId: string
  timelineId: string
  state: 'Broken'
  error: TimelineLoadError
  ancestorTimelineId: null
  ancestorLsn: null
  lastRecordLsn: null
  diskConsistentLsn: null
}

export function brokenTimeline(tenantId: TenantId, timelineId: TimelineId, e: PageserverError): BrokenTimeline {
  return {
    tenantId,
    timelineId,
    state: 'Broken',
    error: { code: e.code, message: e.message, hint: e.hint ?? null },
    ancestorTimelineId: null,
    ancestorLsn: null,
    lastRecordLsn: null,
    diskConsistentLsn: null,
  }
}

export function activeTimeline(info: TimelineInfo): ListedTimeline {
  const { tenantId, timelineId, ...rest } = info
  return { tenantId, timelineId, state: 'Active', ...rest }
}

/**
 * The timelines of a tenant. `live` answers for the timelines the caller serves: the loaded timeline (its last
 * record LSN is in memory, ahead of the metadata on disk), or the error it failed to load with. The others
 * are read from their metadata; a branch of a broken timeline is broken too (it cannot load without it).
 */
export async function listTimelinesIn(
  repo: Repository,
  tenantId: TenantId,
  live?: (id: TimelineId) => Timeline | PageserverError | null,
): Promise<ListedTimeline[]> {
  const t = await repo.tenant(tenantId)
  const ids = await t.timelineIds()
  const found = new Map<TimelineId, Timeline | TimelineMetadata | PageserverError>()
  const listed: TimelineId[] = []
  for (const id of ids) {
    const f = live?.(id) ?? readMetadataOrError(tenantId, id, t.timelineDir(id))
    // Deleted since the directory was listed (renamed to its tombstone): gone, not broken.
    if (f instanceof NotFoundError && !existsSync(t.timelineDir(id))) continue
    found.set(id, f)
    listed.push(id)
  }
  // A branch loads after its ancestors, so it is broken when one of them is (`hops` bounds a cycle).
  const resolve = (id: TimelineId, hops: number): Timeline | TimelineMetadata | PageserverError => {
    const f = found.get(id) ?? new NotFoundError('TIMELINE_NOT_FOUND', `timeline ${id} of tenant ${tenantId} does not exist`)
    if (f instanceof PageserverError || f instanceof Timeline || f.ancestorTimeline === null || hops > ids.length) return f
    const a = resolve(f.ancestorTimeline, hops + 1)
    return a instanceof PageserverError ? ancestorNotLoaded(tenantId, id, f.ancestorTimeline, a) : f
  }
  return listed.map((id) => {
    const f = resolve(id, 0)
    if (f instanceof PageserverError) return brokenTimeline(tenantId, id, f)
    return activeTimeline(f instanceof Timeline ? timelineInfo(tenantId, id, f.metadata, f) : timelineInfo(tenantId, id, f))
  })
}

function readMetadataOrError(tenantId: TenantId, id: TimelineId, dir: string): TimelineMetadata | PageserverError {
  try {
    return readMetadata(join(dir, METADATA_FILE))
  } catch (e) {
    // A missing file in a directory still there is damage (as a load reports it); with the directory gone,
    // the timeline was deleted since the listing.
    if (e instanceof NotFoundError && existsSync(dir)) return metadataMissing(tenantId, id, dir)
    if (e instanceof PageserverError) return e
    throw e
  }
}

export async function listTimelines(ctx: AppContext, tenantId: TenantId): Promise<ListedTimeline[]> {
  return withRepository(ctx, (repo) => listTimelinesIn(repo, tenantId))
}

/**
 * Deletes a timeline no other branches from, and drops its replication slot on its primary (app/slots.ts).
 * The refusals come first (nothing is dropped for a delete that will not happen), then `beforeRemove` (a
 * server takes the timeline out of service), then the slot, then the files: a delete killed in between
 * leaves a timeline without its slot, which a retry deletes, never a slot that no metadata names any more (it
 * would keep the primary's WAL for ever, and nothing would find it).
 */
export async function deleteTimelineIn(
  repo: Repository,
  ctx: AppContext,
  tenantId: TenantId,
  timelineId: TimelineId,
  beforeRemove?: () => Promise<void>,
  opts: DeleteTimelineOptions = {},
): Promise<{ tenantId: string; timelineId: string; deleted: true } & SlotsDropped> {
  const tenant = await repo.tenant(tenantId)
  let slots: SlotsDropped | null = null
  await tenant.deleteTimeline(
    timelineId,
    async () => {
      await beforeRemove?.()
      slots = await dropSlots(ctx, slotsOfTimelines(tenant, [timelineId]))
    },
    opts,
  )
  return { tenantId, timelineId, deleted: true as const, ...slots! }
}

export async function deleteTimeline(
  ctx: AppContext,
  tenantId: TenantId,
  timelineId: TimelineId,
  opts: DeleteTimelineOptions = {},
): Promise<{ tenantId: string; timelineId: string; deleted: true } & SlotsDropped> {
  return withRepository(ctx, (repo) => deleteTimelineIn(repo, ctx, tenantId, timelineId, undefined, opts), { lockFor: 'timeline delete' })
}

export interface BootstrapOptions {
  tenantId: TenantId
  timelineId?: TimelineId
  dataChecksums?: boolean
  /** progress messages for long steps */
  onProgress?: (message: string) => void
  /**
   * Ctrl-C or SIGTERM: initdb is stopped and its scratch directory removed (TIMELINE_CREATE_INTERRUPTED). Once
   * the import has begun it runs to its end (a second or two): the timeline is then created or not at all.
   */
  signal?: AbortSignal
}

/**
 * Creates a root timeline from a fresh stock `initdb` (run as the postgres user when root): the data
 * directory is imported at its checkpoint LSN (initdb_lsn) and flushed as the timeline's first layer.
 */
export async function bootstrapTimeline(ctx: AppContext, o: BootstrapOptions): Promise<TimelineInfo> {
  return withRepository(ctx, (repo) => bootstrapTimelineIn(repo, ctx, o), { lockFor: 'timeline create' })
}

export async function bootstrapTimelineIn(repo: Repository, ctx: AppContext, o: BootstrapOptions): Promise<TimelineInfo> {
  const tenant = await repo.tenant(o.tenantId)
  const id = o.timelineId ?? generateTimelineId()
  if ((await tenant.timelineIds()).includes(id)) throw alreadyExists(id)
  const inst = postgresInstallation(ctx)
  o.onProgress?.('running initdb')
  const initdb = await runInitdb(inst, { dataChecksums: o.dataChecksums ?? false, signal: o.signal }).catch((e: unknown) => {
    throw o.signal?.aborted ? createInterrupted(id, e) : e
  })
  try {
    if (o.signal?.aborted) throw createInterrupted(id, undefined)
    const tl = await tenant.createTimeline(id, async (tmp) => {
      o.onProgress?.('importing the data directory')
      await importDataDirectory(ctx, tenant, id, tmp, initdb.dataDir)
    })
    return timelineInfo(o.tenantId, id, tl.metadata, tl)
  } finally {
    initdb.cleanup()
  }
}

function createInterrupted(id: TimelineId, cause: unknown): InterruptedError {
  return new InterruptedError('TIMELINE_CREATE_INTERRUPTED', `timeline create was interrupted before timeline ${id} was made; initdb was stopped and its files removed`, {
    hint: 'Nothing was created: run the command again.',
    cause,
  })
}

/** Imports a stopped data directory into a new timeline directory `dir` (not yet renamed into place). */
async function importDataDirectory(ctx: AppContext, tenant: Tenant, id: TimelineId, dir: string, dataDir: string): Promise<void> {
  // pg_control first: it gives the LSN every imported value is stored at.
  const control = decodeControlFile(readSmallFile(join(dataDir, 'global', 'pg_control'), PG_CONTROL_FILE_SIZE, 'pg_control'))
  if (control.state !== DBState.SHUTDOWNED) {
    throw new UsageError('IMPORT_NOT_SHUT_DOWN', 'the data directory was not shut down cleanly', {
      hint: 'Stop PostgreSQL with `pg_ctl stop -m fast` before importing a data directory.',
    })
  }
  const at = alignLsn8(control.checkPoint)
  const dataChecksums = control.data_checksum_version !== 0
  const meta = rootTimelineMetadata(at, {
    pgVersion: PG_VERSION,
    walSource: null,
    dataChecksums,
    hintBitsLogged: dataChecksums || control.wal_log_hints,
  })
  const tl = await Timeline.create(dir, tenant.id, id, meta, null, tenantOptions(ctx))
  try {
    const importer = new DatadirImporter({ put: (key, value) => tl.put(key, at, encodeValue(value)) })
    for await (const f of walkFiles(dataDir)) {
      if (importer.wants(f.relPath)) await importer.addFile(f.relPath, readFileChunks(f.absPath))
    }
    importer.finish()
    tl.finishRecords(at, null)
    await tl.checkpoint()
  } finally {
    await tl.close()
  }
}

export interface BranchOptions {
  tenantId: TenantId
  ancestorTimelineId: TimelineId
  /** Default: the ancestor's last record LSN. */
  lsn?: Lsn
  timelineId?: TimelineId
}

/**
 * Branches a timeline at an LSN in O(1): the new timeline only records its ancestor and the branch point.
 * The LSN (aligned up to 8) must lie between the ancestor's start and its last record, and not below its
 * GC cutoff or the first LSN it can serve.
 */
export async function branchTimeline(ctx: AppContext, o: BranchOptions): Promise<TimelineInfo> {
  return withRepository(ctx, (repo) => branchTimelineIn(repo, ctx, o), { lockFor: 'timeline branch' })
}

export async function branchTimelineIn(repo: Repository, ctx: AppContext, o: BranchOptions): Promise<TimelineInfo> {
  const tenant = await repo.tenant(o.tenantId)
  const ancestor = await tenant.timeline(o.ancestorTimelineId)
  const id = o.timelineId ?? generateTimelineId()
  const meta = branchMetadata(ancestor, o.lsn)
  // Make the branch point durable in the ancestor before anything depends on it.
  if (meta.ancestorLsn! > ancestor.diskConsistentLsn) await ancestor.checkpoint()
  const tl = await tenant.createTimeline(id, async (tmp) => {
    const created = await Timeline.create(tmp, tenant.id, id, meta, ancestor, tenantOptions(ctx))
    await created.close()
  })
  return timelineInfo(o.tenantId, id, tl.metadata, tl)
}

export function branchMetadata(ancestor: Timeline, requested: Lsn | undefined): TimelineMetadata {
  const a = ancestor.metadata
  const last = ancestor.lastRecordLsn
  const at = requested === undefined ? last : lowerToSameWal(ancestor, liftToSameWal(ancestor, positionBetweenRecords(ancestor, requested), a.minReadableLsn), last)
  // The LSN asked for, and where it was taken to when that differs (between records, in a page header).
  const named = requested === undefined || requested === at ? formatLsn(at) : `${formatLsn(requested)} (taken as ${formatLsn(at)})`
  const refuse = (why: string, hint: string) => new UsageError('BRANCH_LSN_INVALID', `cannot branch timeline ${ancestor.timelineId} at ${named}: ${why}`, { hint })
  if (at > last) throw refuse(`it is above the ancestor's last record ${formatLsn(last)}`, 'Sync the ancestor first (`timeline sync`), or pick an earlier LSN.')
  if (at < a.latestGcCutoffLsn) throw refuse(`it is below the ancestor's GC cutoff ${formatLsn(a.latestGcCutoffLsn)}`, 'History below the GC cutoff is gone; pick a later LSN.')
  // Before the first-readable check, which a branch's own branch point also sets: this one says what to do.
  if (a.ancestorLsn !== null && at < a.ancestorLsn) throw refuse(`it is below the ancestor's own branch point ${formatLsn(a.ancestorLsn)}`, 'Branch from the ancestor\'s ancestor instead.')
  if (at < a.minReadableLsn) throw refuse(`the ancestor serves pages only from ${formatLsn(a.minReadableLsn)}`, 'Pick an LSN at or after the ancestor\'s first readable LSN.')
  return {
    diskConsistentLsn: at,
    prevRecordLsn: at === last ? ancestor.prevRecordLsn : null,
    lastRecordLsn: at,
    ancestorTimeline: ancestor.timelineId,
    ancestorLsn: at,
    latestGcCutoffLsn: a.latestGcCutoffLsn,
    initdbLsn: a.initdbLsn,
    pgVersion: a.pgVersion,
    walSource: null,
    dataChecksums: a.dataChecksums,
    hintBitsLogged: a.hintBitsLogged,
    minReadableLsn: at,
    createdAt: Math.floor(Date.now() / 1000),
  }
}

function alreadyExists(id: TimelineId): ConflictError {
  return new ConflictError('ALREADY_EXISTS', `timeline ${id} already exists`, { hint: 'Choose another timeline id.' })
}

