import { BaseCommand } from '../../cli/base-command.js'
import { tenantIdFlag } from '../../cli/flags.js'
import { brokenWarnings, timelineTable } from '../../cli/timeline-render.js'
import { listTimelines, type ListedTimeline } from '../../core/app/timelines.js'

export default class TimelineList extends BaseCommand<typeof TimelineList> {
  static override summary = "List a tenant's timelines with their ancestors and LSNs."
  static override description = [
    'With --json, an array of {tenantId, timelineId, state: "Active", ancestorTimelineId, ancestorLsn, lastRecordLsn, diskConsistentLsn, ...}.',
    '',
    'A timeline that cannot be loaded is listed with state "Broken" and {error: {code, message, hint}}, its LSNs and ancestor null, with a warning on stderr; the others are listed as usual and the exit code is 0. Offline, that is a timeline whose metadata is damaged, or that of an ancestor it branches from. While `pageserver serve` runs, the list is the server\'s: it also shows as Broken a timeline the server failed to load at start (a damaged layer file header, say), which it does not serve until restarted. `pageserver timeline delete` removes a broken timeline.',
    '',
    'Through a running server each served timeline also has walReceiverStatus, a sentence whose first word is the state: "no WAL source", "connecting ...", "streaming ...", "reconnecting ...", "restarting ..." or "stopped[: <why>]"; one whose WAL can no longer be ingested (an unsupported record, corruption) gets a warning on stderr: it serves pages up to its last record, and reads past it fail at once.',
  ].join('\n')
  static override examples = ['<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef']
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
  }

  async run(): Promise<ListedTimeline[]> {
    const server = await this.serverClient()
    const list = server ? await server.request<ListedTimeline[]>('GET', `/v1/tenant/${this.flags.tenant}/timeline`) : await listTimelines(await this.appContext(), this.flags.tenant)
    if (!this.jsonEnabled()) {
      this.log(list.length === 0 ? 'no timelines' : await timelineTable(list))
      process.stderr.write(brokenWarnings(list))
    }
    return list
  }
}
