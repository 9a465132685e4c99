/**
 * What a running server serves: its TimelineServices by `tenant/timeline`, and what failed to load at start:
 *   - a timeline that failed to load (damaged metadata or layer file, a broken ancestor) is kept as Broken:
 *     listed with its error, requests for it refused with TIMELINE_BROKEN, until it is deleted;
 *   - a tenant whose timelines could not even be listed (its directory unreadable) is kept as Broken too:
 *     none of its timelines is served, requests for them are refused with TENANT_BROKEN.
 * A timeline leaves service (its WAL receiver stopped, then retired) before its files are deleted. One set,
 * owned by PageServer and shared with what loads (server-load.ts) and changes (server-management.ts) it, so
 * that the page service, the management API and the flush clock all see the same timelines.
 */
import { errorOfKind, NotFoundError, type PageserverError } from '../lib/errors.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import type { TimelineService } from './timeline-service.js'
import { timelineKey } from './mutation-guard.js'

export class ServedTimelines {
  private readonly services = new Map<string, TimelineService>()
  /** Timelines that failed to load at start, by key: not served; requests for them get TIMELINE_BROKEN. */
  private readonly broken = new Map<string, PageserverError>()
  /** Tenants whose timelines could not even be listed at start (their directory unreadable): none served. */
  private readonly brokenTenants = new Map<TenantId, PageserverError>()

  /** The served timeline, or undefined (whether broken or unknown). */
  find(t: TenantId, tl: TimelineId): TimelineService | undefined {
    return this.services.get(timelineKey(t, tl))
  }

  /** Serves `s` (the caller has checked that its timeline is not served yet). */
  add(s: TimelineService): void {
    this.services.set(timelineKey(s.tenant.id, s.timeline.timelineId), s)
  }

  /** The service of a served timeline; TIMELINE_BROKEN for one that failed to load, NotFoundError otherwise. */
  service(t: TenantId, tl: TimelineId): TimelineService {
    const s = this.services.get(timelineKey(t, tl))
    if (!s) {
      const brokenTenant = this.brokenTenants.get(t)
      if (brokenTenant) throw tenantBroken(t, brokenTenant)
      const broken = this.broken.get(timelineKey(t, tl))
      if (broken) throw timelineBroken(t, tl, broken)
      throw new NotFoundError('TIMELINE_NOT_FOUND', `timeline ${tl} of tenant ${t} is not served here`, {
        hint: 'Check the ids with `pageserver timeline list --tenant <id>`.',
      })
    }
    return s
  }

  /** The served timelines, live: one added while this is iterated is visited too (a shutdown's flush). */
  values(): IterableIterator<TimelineService> {
    return this.services.values()
  }

  get size(): number {
    return this.services.size
  }

  /** How many timelines and tenants failed to load (for the start's log line and the metrics). */
  get brokenCounts(): { brokenTimelines: number; brokenTenants: number } {
    return { brokenTimelines: this.broken.size, brokenTenants: this.brokenTenants.size }
  }

  /** Why a timeline failed to load at start, or undefined if it did not. */
  loadError(t: TenantId, tl: TimelineId): PageserverError | undefined {
    return this.broken.get(timelineKey(t, tl))
  }

  markBroken(t: TenantId, tl: TimelineId, err: PageserverError): void {
    this.broken.set(timelineKey(t, tl), err)
  }

  markTenantBroken(t: TenantId, err: PageserverError): void {
    this.brokenTenants.set(t, err)
  }

  /** Once a broken timeline is deleted. */
  forgetBroken(t: TenantId, tl: TimelineId): void {
    this.broken.delete(timelineKey(t, tl))
  }

  /**
   * Removes a timeline from service, once its delete is past the refusals (Tenant.deleteTimeline checks every
   * timeline's metadata on disk for branches of it, which include the served ones).
   */
  async dropTimeline(t: TenantId, tl: TimelineId): Promise<void> {
    const s = this.service(t, tl)
    await s.stopWal()
    this.services.delete(timelineKey(t, tl))
    s.retire()
  }

  /**
   * Removes every timeline of a tenant from service (before deleting the tenant): out of the served set
   * first, so the flush clock and new page service sessions no longer find them, then their WAL receivers
   * are stopped. No final flush: the data is about to be deleted.
   */
  async dropTenant(t: TenantId): Promise<void> {
    this.brokenTenants.delete(t)
    for (const k of this.broken.keys()) if (k.startsWith(`${t}/`)) this.broken.delete(k)
    const dropped: TimelineService[] = []
    for (const [k, s] of this.services) {
      if (s.tenant.id !== t) continue
      this.services.delete(k)
      dropped.push(s)
    }
    await Promise.all(dropped.map((s) => s.stopWal()))
    for (const s of dropped) s.retire()
  }
}

/**
 * What a request for a timeline that failed to load, or one of a tenant that did, gets: the load's error, and
 * how to get out of it.
 */
function tenantBroken(t: TenantId, cause: PageserverError): PageserverError {
  return errorOfKind(cause.kind === 'not_found' ? 'corruption' : cause.kind, 'TENANT_BROKEN', `tenant ${t} failed to load when the server started, so none of its timelines is served: ${cause.message}`, {
    hint: `${cause.hint ? `${cause.hint} ` : ''}Once that is repaired, restarting the server loads the tenant; \`pageserver tenant delete\` removes it instead.`,
    cause,
    details: { loadError: cause.code },
  })
}

export function timelineBroken(t: TenantId, tl: TimelineId, cause: PageserverError): PageserverError {
  return errorOfKind(cause.kind === 'not_found' ? 'corruption' : cause.kind, 'TIMELINE_BROKEN', `timeline ${tl} of tenant ${t} failed to load when the server started, so it is not served: ${cause.message}`, {
    hint: `${cause.hint ? `${cause.hint} ` : ''}Once that is repaired, restarting the server loads the timeline; \`pageserver timeline delete\` removes the timeline instead.`,
    cause,
    details: { loadError: cause.code },
  })
}
