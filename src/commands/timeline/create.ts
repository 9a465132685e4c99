import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { abortOnSignals } from '../../cli/interrupt.js'
import { tenantIdFlag, timelineIdFlag } from '../../cli/flags.js'
import { withProgress } from '../../cli/render.js'
import { timelineLine } from '../../cli/timeline-render.js'
import { bootstrapTimeline, type TimelineInfo } from '../../core/app/timelines.js'

export default class TimelineCreate extends BaseCommand<typeof TimelineCreate> {
  static override summary = 'Create a root timeline by bootstrapping a new PostgreSQL 15 cluster (initdb).'
  static override description =
    'Runs stock initdb (as the postgres user when run as root), imports the data directory at its checkpoint ' +
    'LSN (initdb_lsn) and writes it as the first layer. The timeline has no WAL source: start a PostgreSQL on ' +
    'it (see `timeline export`, `local start`). The creation is atomic; an existing id is a conflict (exit 4). ' +
    'Ctrl-C or SIGTERM during initdb stops it and removes its files (exit 130): nothing is created.'
  static override examples = ['<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef']
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
    'timeline-id': timelineIdFlag({ summary: 'The id of the new timeline; random by default.' }),
    'data-checksums': Flags.boolean({ summary: 'Initialise the cluster with data page checksums (initdb --data-checksums).', default: false }),
  }

  async run(): Promise<TimelineInfo> {
    const info = await withProgress('bootstrapping', this.jsonEnabled(), async (progress) => {
      const server = await this.serverClient()
      return server
        ? await server.request<TimelineInfo>('POST', `/v1/tenant/${this.flags.tenant}/timeline`, {
            new_timeline_id: this.flags['timeline-id'],
            data_checksums: this.flags['data-checksums'],
          })
        : await this.bootstrapOffline((m) => progress.update(m))
    })
    this.log(timelineLine(info))
    return info
  }

  /** Ctrl-C or SIGTERM stops initdb and removes its files (TIMELINE_CREATE_INTERRUPTED, exit 130). */
  private async bootstrapOffline(onProgress: (m: string) => void): Promise<TimelineInfo> {
    const interrupt = abortOnSignals()
    try {
      return await bootstrapTimeline(await this.appContext(), {
        tenantId: this.flags.tenant,
        timelineId: this.flags['timeline-id'],
        dataChecksums: this.flags['data-checksums'],
        onProgress,
        signal: interrupt.signal,
      })
    } finally {
      interrupt.dispose()
    }
  }
}
