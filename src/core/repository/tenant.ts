/**
 * Tenant: a directory of timelines sharing one PostgreSQL cluster's history, and the redo workers that
 * rebuild its pages.
 *
 * Layout: `<workdir>/tenants/<tenant_id>/config.toml` and `.../timelines/<timeline_id>/` (metadata and layer
 * files). Timelines load lazily, ancestors first; a timeline object is shared by all its children. Creating
 * a timeline builds it under a temporary name and renames it into place (storage/atomic-dir.ts), so a crash
 * leaves nothing half-made and two creations of one id give one success and one conflict. Deleting renames
 * it to a `.tmp-*` tombstone first (storage/atomic-dir.ts), so a crash never leaves a timeline directory
 * with its metadata but only some of its layers; `timelineIds()` removes such tombstones.
 */
import { join } from 'node:path'
import { ConflictError, CorruptionError, errorOfKind, NotFoundError, PageserverError } from '../lib/errors.js'
import { parseTimelineId, type TenantId, type TimelineId } from '../model/ids.js'
import { createDirAtomically, creationsUnderway, deleteDirAtomically, listSubdirs, pathExists, removeAbandonedTempDirs } from '../storage/atomic-dir.js'
import { type WalRedoStats, WalRedoManager, type WalRedoLogger } from '../walredo/manager.js'
import { defaultWorkerCommand } from '../walredo/worker-command.js'
import { closedError } from '../walredo/worker-failure.js'
import type { RedoProcessBudget } from '../walredo/process-budget.js'
import { readMetadata } from './metadata.js'
import { METADATA_FILE, Timeline, type TimelineOptions } from './timeline.js'
import { FUTURE_LAYERS_DIR, futureLayersKept } from './future-layers.js'

export interface TenantOptions extends TimelineOptions {
  readonly walRedo: {
    readonly command: readonly string[] | null
    readonly poolSize: number
    readonly requestTimeoutMs: number
    readonly idleTimeoutMs: number
    /** Requests that may wait for a worker before more are refused (WALREDO_OVERLOADED); default WALREDO_QUEUED_MAX. */
    readonly maxQueued?: number
    /** The server-wide cap on worker processes, shared with other tenants; none: only poolSize applies. */
    readonly budget?: RedoProcessBudget
    readonly logger?: WalRedoLogger
  }
}

/** Bound on queued redo requests per tenant before callers are told the server is overloaded (offline use). */
export const WALREDO_QUEUED_MAX = 1024
/** Pipelined requests per worker (bench/redo.ts measures the pool with this depth). */
export const WALREDO_IN_FLIGHT_PER_WORKER_MAX = 16

export interface DeleteTimelineOptions {
  /**
   * `--force`: delete even when another timeline's metadata cannot be read (it might branch from this one:
   * that branch would then lose its ancestor for good), and when this one keeps layer files aside in
   * future-layers/ (they may be the only copy of their WAL). A readable branch still refuses the delete.
   */
  force?: boolean
}

export class Tenant {
  private readonly timelines = new Map<TimelineId, Promise<Timeline>>()
  private readonly redoManagers = new Map<boolean, WalRedoManager>()
  private closed = false

  constructor(
    readonly id: TenantId,
    readonly dir: string,
    private readonly opts: TenantOptions,
  ) {}

  get timelinesDir(): string {
    return join(this.dir, 'timelines')
  }

  timelineDir(id: TimelineId): string {
    return join(this.timelinesDir, id)
  }

  /** Timeline ids on disk (sorted). Removes leftovers of creations and deletions that never finished. */
  async timelineIds(): Promise<TimelineId[]> {
    if (!this.opts.readOnly) await removeAbandonedTempDirs(this.timelinesDir)
    const out: TimelineId[] = []
    for (const name of await listSubdirs(this.timelinesDir)) {
      try {
        out.push(parseTimelineId(name))
      } catch {
        // not a timeline directory
      }
    }
    return out
  }

  /**
   * Timelines whose creation (import, bootstrap, branch) has a temporary directory here: in progress in the
   * process holding the workdir lock, or abandoned by one that died. Read-only; for `slot list`, which must
   * not take a slot being imported for an orphan.
   */
  async timelinesBeingCreated(): Promise<Array<{ timelineId: TimelineId; tmpDir: string }>> {
    const out: Array<{ timelineId: TimelineId; tmpDir: string }> = []
    for (const c of await creationsUnderway(this.timelinesDir)) {
      try {
        out.push({ timelineId: parseTimelineId(c.name), tmpDir: c.tmpDir })
      } catch {
        // not a timeline's
      }
    }
    return out
  }

  /** Loads (once) the timeline and its ancestors. */
  timeline(id: TimelineId): Promise<Timeline> {
    let p = this.timelines.get(id)
    if (!p) {
      p = this.load(id)
      this.timelines.set(id, p)
      p.catch(() => this.timelines.delete(id))
    }
    return p
  }

  private async load(id: TimelineId): Promise<Timeline> {
    const dir = this.timelineDir(id)
    let meta
    try {
      meta = readMetadata(join(dir, METADATA_FILE))
    } catch (e) {
      if (e instanceof NotFoundError) {
        // A directory without its metadata is a damaged timeline, not a missing one (creating the id would
        // say it exists).
        if (await pathExists(dir)) throw metadataMissing(this.id, id, dir)
        throw new NotFoundError('TIMELINE_NOT_FOUND', `timeline ${id} of tenant ${this.id} does not exist`, {
          hint: 'List timelines with `pageserver timeline list --tenant <id>`.',
        })
      }
      throw e
    }
    const ancestor = meta.ancestorTimeline === null ? null : await this.ancestorOf(id, meta.ancestorTimeline)
    return Timeline.load(dir, this.id, id, ancestor, this.opts)
  }

  /** Loads the ancestor of `id`; a branch whose ancestor cannot load cannot either. */
  private async ancestorOf(id: TimelineId, ancestorId: TimelineId): Promise<Timeline> {
    try {
      return await this.timeline(ancestorId)
    } catch (e) {
      if (e instanceof PageserverError) throw ancestorNotLoaded(this.id, id, ancestorId, e)
      throw e
    }
  }

  /**
   * Creates a timeline directory atomically: `populate` writes its contents (metadata, layers) into a
   * temporary directory; then the timeline is loaded.
   */
  async createTimeline(id: TimelineId, populate: (tmpDir: string) => Promise<void>): Promise<Timeline> {
    if (this.timelines.has(id)) throw new ConflictError('ALREADY_EXISTS', `timeline ${id} already exists`, { hint: 'Choose another timeline id.' })
    await createDirAtomically(this.timelinesDir, id, `timeline ${id}`, populate, { noSync: this.opts.noSync })
    return this.timeline(id)
  }

  /**
   * Deletes a timeline that no other timeline branches from. `beforeRemove` runs once the refusals are past
   * and before anything is closed or removed (a server takes the timeline out of service there, the caller
   * drops its replication slot), so that the check is made once and nothing is undone for a refused delete.
   */
  async deleteTimeline(id: TimelineId, beforeRemove?: () => Promise<void>, opts: DeleteTimelineOptions = {}): Promise<void> {
    await this.checkDeletable(id, opts)
    await beforeRemove?.()
    const loaded = this.timelines.get(id)
    if (loaded) {
      this.timelines.delete(id)
      await (await loaded).close()
    }
    await deleteDirAtomically(this.timelinesDir, id, `timeline ${id} of tenant ${this.id}`, { noSync: this.opts.noSync })
  }

  /**
   * Throws what `deleteTimeline(id)` would refuse with: TIMELINE_NOT_FOUND, or TIMELINE_HAS_CHILDREN when
   * another timeline's metadata names it as its ancestor. Another timeline whose metadata cannot be read
   * fails the check too (TIMELINE_CHILDREN_UNKNOWN: it may branch from `id`), unless it is an ancestor of
   * `id`, which cannot also be its child, or `force` is set. Without that escape two broken
   * timelines would each refuse the other's delete for good (each may be the other's branch). A timeline that
   * keeps layer files aside (repository/future-layers.ts) is TIMELINE_HAS_FUTURE_LAYERS unless `force`: an
   * audit's delete removed the only copy of WAL its restored metadata no longer named.
   */
  async checkDeletable(id: TimelineId, opts: DeleteTimelineOptions = {}): Promise<void> {
    const ids = await this.timelineIds()
    if (!ids.includes(id)) {
      throw new NotFoundError('TIMELINE_NOT_FOUND', `timeline ${id} of tenant ${this.id} does not exist`, {
        hint: `List the timelines of this tenant with \`pageserver timeline list --tenant ${this.id}\`.`,
      })
    }
    const ancestors = this.ancestorIdsOf(id, ids.length)
    for (const other of ids) {
      if (other === id || ancestors.has(other)) continue
      let m
      try {
        m = readMetadata(join(this.timelineDir(other), METADATA_FILE))
      } catch (e) {
        if (!(e instanceof PageserverError)) throw e
        if (opts.force) continue
        throw new ConflictError('TIMELINE_CHILDREN_UNKNOWN', `cannot tell whether timeline ${other} branches from timeline ${id}: ${e.message}`, {
          hint:
            `Delete timeline ${other} first (it cannot be loaded either), or restore its metadata; or delete this one with --force ` +
            `(if ${other} does branch from it, that branch can then never be restored).`,
          cause: e,
        })
      }
      if (m.ancestorTimeline === id) {
        throw new ConflictError('TIMELINE_HAS_CHILDREN', `timeline ${id} has child timelines (e.g. ${other})`, {
          hint: 'Delete the branches of this timeline first.',
        })
      }
    }
    if (!opts.force) {
      const aside = await futureLayersKept(this.timelineDir(id))
      if (aside.length > 0) {
        throw new ConflictError('TIMELINE_HAS_FUTURE_LAYERS', `timeline ${id} keeps ${aside.length} layer files aside in ${join(this.timelineDir(id), FUTURE_LAYERS_DIR)} (WAL its metadata does not cover; they may be the only copy of it)`, {
          hint: 'If its metadata was restored from an older copy, put the newer metadata back and move the files back beside it; to delete the timeline and them, use --force.',
          details: { files: aside.length },
        })
      }
    }
  }

  /** The ancestors of `id` as far as their metadata can be read (at most `max` hops). */
  private ancestorIdsOf(id: TimelineId, max: number): Set<TimelineId> {
    const out = new Set<TimelineId>()
    let cur: TimelineId | null = id
    while (cur !== null && out.size < max) {
      let next: TimelineId | null
      try {
        next = readMetadata(join(this.timelineDir(cur), METADATA_FILE)).ancestorTimeline
      } catch {
        break
      }
      if (next === null || out.has(next)) break
      out.add(next)
      cur = next
    }
    return out
  }

  /** The statistics of this tenant's redo worker pools (those started so far). */
  redoStats(): WalRedoStats[] {
    return [...this.redoManagers.values()].map((m) => m.stats())
  }

  /**
   * The redo workers of this tenant (one pool per hint-bit mode, spawned lazily). None once the tenant is
   * closed (WALREDO_CLOSED): close() has stopped the pools, and one made later would never be closed.
   */
  redoManager(hintBitsLogged: boolean): WalRedoManager {
    let m = this.redoManagers.get(hintBitsLogged)
    if (!m) {
      if (this.closed) throw closedError()
      const w = this.opts.walRedo
      m = new WalRedoManager({
        // Records reach these workers from CRC-checked layer files or the WAL decoder: no second CRC pass.
        command: w.command ?? defaultWorkerCommand({ hintBitsLogged, checkRecordCrc: false }),
        poolSize: w.poolSize,
        requestTimeoutMs: w.requestTimeoutMs,
        idleTimeoutMs: w.idleTimeoutMs,
        maxQueued: w.maxQueued ?? WALREDO_QUEUED_MAX,
        maxInFlightPerWorker: WALREDO_IN_FLIGHT_PER_WORKER_MAX,
        ...(w.budget === undefined ? {} : { budget: w.budget }),
        logger: w.logger,
        // Another worker program knows relation forks only: SLRU pages are redone here.
        slruInProcess: w.command != null,
      })
      this.redoManagers.set(hintBitsLogged, m)
    }
    return m
  }

  /** Loaded timelines. */
  async loadedTimelines(): Promise<Timeline[]> {
    const out: Timeline[] = []
    for (const p of this.timelines.values()) {
      try {
        out.push(await p)
      } catch {
        // failed loads are reported to whoever asked for them
      }
    }
    return out
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    // Children first: they read their ancestors.
    const tls = await this.loadedTimelines()
    tls.sort((a, b) => depth(b) - depth(a))
    for (const tl of tls) await tl.close()
    this.timelines.clear()
    for (const m of this.redoManagers.values()) await m.close()
    this.redoManagers.clear()
  }
}

function depth(tl: Timeline): number {
  let d = 0
  for (let t = tl.ancestor; t !== null; t = t.ancestor) d++
  return d
}

/** A timeline directory without its metadata file: damaged, not missing. */
export function metadataMissing(tenantId: TenantId, id: TimelineId, dir: string): CorruptionError {
  return new CorruptionError('METADATA_MISSING', `timeline ${id} of tenant ${tenantId} has no ${METADATA_FILE} file: ${join(dir, METADATA_FILE)} is missing`, {
    hint: `Restore ${METADATA_FILE} from a backup of the workdir (the layer files beside it are intact), or remove the timeline with \`pageserver timeline delete --force\`.`,
    details: { path: join(dir, METADATA_FILE) },
  })
}

/** Why branch `id` cannot load: its ancestor failed with `e` (named in the message; its hint applies). */
export function ancestorNotLoaded(tenantId: TenantId, id: TimelineId, ancestorId: TimelineId, e: PageserverError): PageserverError {
  // A missing ancestor is not a lookup of the caller's failing: the branch's own metadata names it.
  const kind = e.kind === 'not_found' ? 'corruption' : e.kind
  return errorOfKind(kind, 'ANCESTOR_NOT_LOADED', `timeline ${id} of tenant ${tenantId} cannot load because its ancestor ${ancestorId} cannot: ${e.message}`, {
    hint: `This branch's own files are not at fault: repair its ancestor ${ancestorId} first${e.hint ? ` (${e.hint})` : ''}.`,
    cause: e,
    details: { ancestorTimelineId: ancestorId, ancestorError: e.code },
  })
}
