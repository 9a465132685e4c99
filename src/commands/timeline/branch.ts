import { BaseCommand } from '../../cli/base-command.js'
import { lsnFlag, tenantIdFlag, timelineIdFlag } from '../../cli/flags.js'
import { timelineLine } from '../../cli/timeline-render.js'
import { branchTimeline, type TimelineInfo } from '../../core/app/timelines.js'
import { formatLsn } from '../../core/pg/lsn.js'

export default class TimelineBranch extends BaseCommand<typeof TimelineBranch> {
  static override summary = 'Branch a timeline at an LSN (copy-on-write, O(1)).'
  static override description =
    'The new timeline reads its ancestor below the branch point and keeps its own changes above it; nothing is ' +
    'copied. The LSN (aligned up to 8) must not be above the ancestor\'s last record nor below its GC cutoff or ' +
    'first readable LSN. Any LSN works: the branch holds the records that end at or before it, so one inside a ' +
    'record\'s bytes leaves that record out, and one inside a WAL page header stands for the page boundary (the ' +
    'output and errors name the LSN so adjusted).'
  static override examples = ['<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --ancestor fedcba9876543210fedcba9876543210 --lsn 0/16B3748']
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
    ancestor: timelineIdFlag({ summary: 'The timeline to branch from.', required: true }),
    lsn: lsnFlag({ summary: "The branch point (default: the ancestor's last record LSN)." }),
    'timeline-id': timelineIdFlag({ summary: 'The id of the new timeline; random by default.' }),
  }

  async run(): Promise<TimelineInfo> {
    const server = await this.serverClient()
    const info = server
      ? await server.request<TimelineInfo>('POST', `/v1/tenant/${this.flags.tenant}/timeline`, {
          new_timeline_id: this.flags['timeline-id'],
          ancestor_timeline_id: this.flags.ancestor,
          ancestor_start_lsn: this.flags.lsn === undefined ? undefined : formatLsn(this.flags.lsn),
        })
      : await branchTimeline(await this.appContext(), {
          tenantId: this.flags.tenant,
          ancestorTimelineId: this.flags.ancestor,
          lsn: this.flags.lsn,
          timelineId: this.flags['timeline-id'],
        })
    this.log(timelineLine(info))
    return info
  }
}
