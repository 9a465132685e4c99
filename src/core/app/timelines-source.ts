/** Offline form of attaching a WAL source to a timeline (the server's is PageServer.setWalSource). */
import type { TenantId, TimelineId } from '../model/ids.js'
import { withRepository, type AppContext } from './context.js'
import { attachWalSource } from './wal-source.js'

export async function setTimelineWalSource(
  ctx: AppContext,
  o: { tenantId: TenantId; timelineId: TimelineId; connString: string; slotName?: string | undefined },
): Promise<{ tenantId: string; timelineId: string; walSource: { slotName: string | null; systemId: string } }> {
  return withRepository(
    ctx,
    async (repo) => {
      const tl = await (await repo.tenant(o.tenantId)).timeline(o.timelineId)
      const src = await attachWalSource(tl, o.slotName === undefined ? { connString: o.connString } : { connString: o.connString, slotName: o.slotName })
      return { tenantId: o.tenantId, timelineId: o.timelineId, walSource: { slotName: src.slotName, systemId: src.systemId } }
    },
    { lockFor: 'timeline source' },
  )
}
