import { BaseCommand } from '../../cli/base-command.js'
import { tenantIdFlag, timelineIdFlag } from '../../cli/flags.js'
import { deleteTimeline } from '../../core/app/timelines.js'

export default class TimelineDelete extends BaseCommand<typeof TimelineDelete> {
  static override summary = 'Delete a timeline and its layer files.'
  static override description = 'Refused (exit 4) while other timelines branch from it. A missing timeline exits 3.'
  static override examples = ['<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210']
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
    timeline: timelineIdFlag({ summary: 'The timeline to delete.', required: true }),
  }

  async run(): Promise<{ tenantId: string; timelineId: string; deleted: true }> {
    const server = await this.serverClient()
    const r = server
      ? await server.request<{ tenantId: string; timelineId: string; deleted: true }>('DELETE', `/v1/tenant/${this.flags.tenant}/timeline/${this.flags.timeline}`)
      : await deleteTimeline(await this.appContext(), this.flags.tenant, this.flags.timeline)
    this.log(`deleted timeline ${r.timelineId}`)
    return r
  }
}
