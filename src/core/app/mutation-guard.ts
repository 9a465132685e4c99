/**
 * Which management operations of a running server may overlap. Offline, the workdir lock runs one mutating
 * command at a time; the server takes requests concurrently, and some pairs must not overlap:
 *   - a branch being built from a timeline, and that timeline's delete: the delete would see no child (the
 *     branch is still a temporary directory) and leave the branch without its ancestor, broken for good;
 *   - a timeline being created in a tenant (bootstrap, import, branch), and the tenant's delete: the creation
 *     would rename its directory into a tenant that is being removed.
 *   - two creations of one timeline id: the loser's cleanup (an import drops the replication slot it made,
 *     with the id's default name) would undo the winner's; the second is refused before it does anything;
 *   - a change of a served timeline (its WAL source) and the timeline's or its tenant's delete: the change
 *     would restart streaming into a timeline that is gone.
 * The second of such a pair is refused at once with a conflict (exit 4) naming what is in progress; the
 * caller retries once it is done. Checks and registrations happen before the first await, so two requests
 * cannot both pass.
 */
import { ConflictError } from '../lib/errors.js'
import type { TenantId, TimelineId } from '../model/ids.js'

export class MutationGuard {
  /** Timeline creations in progress, per tenant. */
  private readonly creating = new Map<TenantId, number>()
  /** Branches being built, per ancestor (`tenant/timeline`). */
  private readonly branching = new Map<string, number>()
  private readonly deletingTimelines = new Set<string>()
  private readonly deletingTenants = new Set<TenantId>()
  /** Timeline ids being created (`tenant/timeline`), when the request named one. */
  private readonly creatingIds = new Set<string>()
  /** Changes of served timelines in progress (`tenant/timeline`), and per tenant. */
  private readonly changing = new Map<string, number>()
  private readonly changingInTenant = new Map<TenantId, number>()

  /**
   * A timeline creation in `t` (a branch of `ancestor` when given; `id` when the request names the new
   * timeline's id); call the returned function when it ends.
   */
  beginCreate(t: TenantId, ancestor?: TimelineId, id?: TimelineId): () => void {
    if (this.deletingTenants.has(t)) throw new ConflictError('TENANT_BEING_DELETED', `tenant ${t} is being deleted`, { hint: 'Create the timeline in another tenant.' })
    const ak = ancestor === undefined ? null : timelineKey(t, ancestor)
    if (ak !== null && this.deletingTimelines.has(ak)) {
      throw new ConflictError('TIMELINE_BEING_DELETED', `timeline ${ancestor} of tenant ${t} is being deleted`, { hint: 'Branch from another timeline.' })
    }
    const ik = id === undefined ? null : timelineKey(t, id)
    if (ik !== null && this.creatingIds.has(ik)) {
      throw new ConflictError('TIMELINE_BEING_CREATED', `timeline ${id} of tenant ${t} is already being created`, {
        hint: 'Wait for that creation to end: it answers with the timeline, or with why it failed.',
      })
    }
    bump(this.creating, t, 1)
    if (ak !== null) bump(this.branching, ak, 1)
    if (ik !== null) this.creatingIds.add(ik)
    return once(() => {
      bump(this.creating, t, -1)
      if (ak !== null) bump(this.branching, ak, -1)
      if (ik !== null) this.creatingIds.delete(ik)
    })
  }

  /** A change of served timeline `tl` of `t` (its WAL source); call the returned function when it ends. */
  beginChange(t: TenantId, tl: TimelineId): () => void {
    const k = timelineKey(t, tl)
    if (this.deletingTenants.has(t)) throw new ConflictError('TENANT_BEING_DELETED', `tenant ${t} is being deleted`, { hint: 'There is nothing left to change.' })
    if (this.deletingTimelines.has(k)) throw new ConflictError('TIMELINE_BEING_DELETED', `timeline ${tl} of tenant ${t} is being deleted`, { hint: 'There is nothing left to change.' })
    bump(this.changing, k, 1)
    bump(this.changingInTenant, t, 1)
    return once(() => {
      bump(this.changing, k, -1)
      bump(this.changingInTenant, t, -1)
    })
  }

  /** The delete of timeline `tl` of `t`; call the returned function when it ends. */
  beginDeleteTimeline(t: TenantId, tl: TimelineId): () => void {
    const k = timelineKey(t, tl)
    if ((this.branching.get(k) ?? 0) > 0) {
      throw new ConflictError('TIMELINE_HAS_CHILDREN', `timeline ${tl} of tenant ${t} has a branch being created`, {
        hint: 'Wait until the branch is created; then delete the branch first, as for any timeline with children.',
      })
    }
    if (this.deletingTimelines.has(k)) throw new ConflictError('TIMELINE_BEING_DELETED', `timeline ${tl} of tenant ${t} is already being deleted`, { hint: 'Wait for that delete to finish.' })
    if ((this.changing.get(k) ?? 0) > 0) {
      throw new ConflictError('TIMELINE_BUSY', `timeline ${tl} of tenant ${t} is having its WAL source changed`, { hint: 'Wait until the change ends, then delete the timeline.' })
    }
    this.deletingTimelines.add(k)
    return once(() => this.deletingTimelines.delete(k))
  }

  /** The delete of tenant `t`; call the returned function when it ends. */
  beginDeleteTenant(t: TenantId): () => void {
    if ((this.creating.get(t) ?? 0) > 0) {
      throw new ConflictError('TENANT_BUSY', `tenant ${t} has a timeline being created`, { hint: 'Wait until the creation ends, then delete the tenant.' })
    }
    if ((this.changingInTenant.get(t) ?? 0) > 0) {
      throw new ConflictError('TENANT_BUSY', `tenant ${t} has a timeline whose WAL source is being changed`, { hint: 'Wait until the change ends, then delete the tenant.' })
    }
    if (this.deletingTenants.has(t)) throw new ConflictError('TENANT_BEING_DELETED', `tenant ${t} is already being deleted`, { hint: 'Wait for that delete to finish.' })
    this.deletingTenants.add(t)
    return once(() => this.deletingTenants.delete(t))
  }
}

/** A timeline's key in maps of the running server ("<tenant>/<timeline>"); also ServedTimelines'. */
export function timelineKey(t: TenantId, tl: TimelineId): string {
  return `${t}/${tl}`
}

function bump<K>(m: Map<K, number>, k: K, by: number): void {
  const n = (m.get(k) ?? 0) + by
  if (n === 0) m.delete(k)
  else m.set(k, n)
}

function once(fn: () => void): () => void {
  let done = false
  return () => {
    if (done) return
    done = true
    fn()
  }
}
