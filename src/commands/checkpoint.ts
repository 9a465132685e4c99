import { BaseCommand } from '../cli/base-command.js'
import { tenantIdFlag, timelineIdFlag } from '../cli/flags.js'
import { checkpointTimeline } from '../core/app/pages.js'

export default class Checkpoint extends BaseCommand<typeof Checkpoint> {
  static override summary = "Flush a timeline's in-memory layers to layer files now."
  static override description =
    'Freezes the open in-memory layer and writes everything ingested as L0 delta layer files, then advances ' +
    'disk_consistent_lsn. While `pageserver serve` runs on the workdir it asks the server (which holds the ' +
    'in-memory layers); offline nothing is held in memory, so it confirms what is durable. With --json: ' +
    '{tenantId, timelineId, diskConsistentLsn, layers} (layers: how many layer files the timeline has after the flush).'
  static override examples = ['<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210']
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
    timeline: timelineIdFlag({ summary: 'The timeline.', required: true }),
  }

  async run(): Promise<{ tenantId: string; timelineId: string; diskConsistentLsn: string; layers: number }> {
    const server = await this.serverClient()
    const r = server
      ? await server.request<{ tenantId: string; timelineId: string; diskConsistentLsn: string; layers: number }>('PUT', `/v1/tenant/${this.flags.tenant}/timeline/${this.flags.timeline}/checkpoint`)
      : await checkpointTimeline(await this.appContext(), this.flags.tenant, this.flags.timeline)
    this.log(`disk consistent LSN ${r.diskConsistentLsn}, ${r.layers} layer files`)
    return r
  }
}
