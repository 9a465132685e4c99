/** Offline form of attaching a WAL source to a timeline (the server's is ServerManagement.setWalSource, server-management.ts). */
import type { TenantId, TimelineId } from '../model/ids.js'
import { withRepository, type AppContext } from './context.js'
import { attachWalSource, type AttachedWalSource } from './wal-source.js'
import { redactConnString } from '../protocol/conn-string-redact.js'

/** The result of `timeline source` (offline and through the server): `notes` say how a password left out is found again. */
export interface WalSourceSet {
  tenantId: string
  timelineId: string
  /** As `timeline list` prints it: the connection string without a password. */
  walSource: { connString: string; slotName: string | null; systemId: string }
  /** The given connection string had a password, and it was not stored (see notes). */
  passwordOmitted: boolean
  notes: string[]
}

export function walSourceSet(tenantId: TenantId, timelineId: TimelineId, attached: AttachedWalSource): WalSourceSet {
  return {
    tenantId,
    timelineId,
    walSource: { connString: redactConnString(attached.walSource.connString), slotName: attached.walSource.slotName, systemId: attached.walSource.systemId },
    passwordOmitted: attached.passwordOmitted,
    notes: attached.notes,
  }
}

export async function setTimelineWalSource(
  ctx: AppContext,
  o: { tenantId: TenantId; timelineId: TimelineId; connString: string; slotName?: string | undefined },
): Promise<WalSourceSet> {
  return withRepository(
    ctx,
    async (repo) => {
      const tl = await (await repo.tenant(o.tenantId)).timeline(o.timelineId)
      const attached = await attachWalSource(ctx, repo, tl, o.slotName === undefined ? { connString: o.connString } : { connString: o.connString, slotName: o.slotName })
      return walSourceSet(o.tenantId, o.timelineId, attached)
    },
    { lockFor: 'timeline source' },
  )
}
