import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { tenantIdFlag, timelineIdFlag } from '../../cli/flags.js'
import { setTimelineWalSource } from '../../core/app/timelines-source.js'
import { redactConnString } from '../../core/protocol/conn-string-redact.js'

interface SourceResult {
  tenantId: string
  timelineId: string
  walSource: { slotName: string | null; systemId: string }
}

export default class TimelineSource extends BaseCommand<typeof TimelineSource> {
  static override summary = 'Set the PostgreSQL whose WAL continues a timeline (e.g. one started on an export of a branch).'
  static override description =
    'Checks that the server belongs to the same cluster (system identifier, else WAL_SYSTEM_ID_MISMATCH) and has WAL ' +
    "at least up to the timeline's last record (else WAL_SOURCE_BEHIND); when it has WAL beyond it, that its next " +
    "record continues the timeline's history (else WAL_SOURCE_DIVERGED: a server of the same cluster whose history " +
    'went another way, such as one started on an export of a sibling branch). Then it creates (or reuses) a physical ' +
    "replication slot and records the server as the timeline's WAL source (exit 4 for each refusal, which changes " +
    'nothing). A running `serve` starts streaming at once; offline, `timeline sync` streams it.'
  static override examples = ['<%= config.bin %> <%= command.id %> --tenant ... --timeline ... --from "host=127.0.0.1 port=5433 user=postgres"']
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
    timeline: timelineIdFlag({ summary: 'The timeline.', required: true }),
    from: Flags.string({ summary: 'Connection string of the PostgreSQL (replication connections must be allowed).', required: true }),
    slot: Flags.string({ summary: 'Physical replication slot to create or reuse (default: pageserver_<timeline id prefix>).' }),
  }

  async run(): Promise<SourceResult> {
    const f = this.flags
    const server = await this.serverClient()
    const r = server
      ? await server.request<SourceResult>('PUT', `/v1/tenant/${f.tenant}/timeline/${f.timeline}/wal_source`, { conn_string: f.from, slot_name: f.slot })
      : await setTimelineWalSource(await this.appContext(), { tenantId: f.tenant, timelineId: f.timeline, connString: f.from, slotName: f.slot })
    this.log(`timeline ${r.timelineId} now streams WAL from ${redactConnString(f.from)} (slot ${r.walSource.slotName})`)
    return r
  }
}
