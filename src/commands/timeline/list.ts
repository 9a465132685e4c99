import { BaseCommand } from '../../cli/base-command.js'
import { tenantIdFlag } from '../../cli/flags.js'
import { timelineTable } from '../../cli/timeline-render.js'
import { listTimelines, type TimelineInfo } from '../../core/app/timelines.js'

export default class TimelineList extends BaseCommand<typeof TimelineList> {
  static override summary = "List a tenant's timelines with their ancestors and LSNs."
  static override description = 'With --json, an array of {tenantId, timelineId, ancestorTimelineId, ancestorLsn, lastRecordLsn, diskConsistentLsn, ...}.'
  static override examples = ['<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef']
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
  }

  async run(): Promise<TimelineInfo[]> {
    const server = await this.serverClient()
    const list = server ? await server.request<TimelineInfo[]>('GET', `/v1/tenant/${this.flags.tenant}/timeline`) : await listTimelines(await this.appContext(), this.flags.tenant)
    if (!this.jsonEnabled()) this.log(list.length === 0 ? 'no timelines' : await timelineTable(list))
    return list
  }
}
