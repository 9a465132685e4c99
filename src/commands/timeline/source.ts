import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { tenantIdFlag, timelineIdFlag } from '../../cli/flags.js'
import { setTimelineWalSource, type WalSourceSet } from '../../core/app/timelines-source.js'
import { redactConnString } from '../../core/protocol/conn-string-redact.js'

export default class TimelineSource extends BaseCommand<typeof TimelineSource> {
  static override summary = 'Set the PostgreSQL whose WAL continues a timeline (e.g. one started on an export of a branch).'
  static override description =
    'Checks that the server belongs to the same cluster (system identifier, else WAL_SYSTEM_ID_MISMATCH) and has WAL ' +
    "at least up to the timeline's last record (else WAL_SOURCE_BEHIND); when it has WAL beyond it, that its next " +
    "record continues the timeline's history (else WAL_SOURCE_DIVERGED: a server of the same cluster whose history " +
    'went another way, such as one started on an export of a sibling branch). Then it creates (or reuses) a physical ' +
    "replication slot and records the server as the timeline's WAL source (exit 4 for each refusal, which changes " +
    'nothing). A running `serve` starts streaming at once; offline, `timeline sync` streams it. ' +
    'The password is never stored: the timeline records the connection string without it. This command connects ' +
    'with the password in --from, else PGPASSWORD, else the password file (PGPASSFILE, else ~/.pgpass, mode 0600; a ' +
    'line host:port:replication:user:password); `serve` and `timeline sync` find it the same way later (a running ' +
    'server given the password through this command keeps using it until it stops). When --from has a password, the ' +
    'output says so (with --json: passwordOmitted and notes).'
  static override examples = [
    '<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210 --from "host=127.0.0.1 port=5433 user=postgres"',
    'PGPASSWORD=secret <%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210 --from "host=db user=replicator"',
  ]
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
    timeline: timelineIdFlag({ summary: 'The timeline.', required: true }),
    from: Flags.string({
      summary: 'Connection string of the PostgreSQL (replication connections must be allowed); recorded without its password.',
      required: true,
    }),
    slot: Flags.string({ summary: 'Physical replication slot to create or reuse (default: pageserver_<timeline id prefix>).' }),
  }

  async run(): Promise<WalSourceSet> {
    const f = this.flags
    const server = await this.serverClient()
    const r = server
      ? await server.request<WalSourceSet>('PUT', `/v1/tenant/${f.tenant}/timeline/${f.timeline}/wal_source`, { conn_string: f.from, slot_name: f.slot })
      : await setTimelineWalSource(await this.appContext(), { tenantId: f.tenant, timelineId: f.timeline, connString: f.from, slotName: f.slot })
    this.log(`timeline ${r.timelineId} now streams WAL from ${redactConnString(f.from)} (slot ${r.walSource.slotName})`)
    for (const note of r.notes ?? []) this.log(`Note: ${note}`)
    return r
  }
}
