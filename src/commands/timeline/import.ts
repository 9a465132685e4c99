import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { tenantIdFlag, timelineIdFlag } from '../../cli/flags.js'
import { withProgress } from '../../cli/render.js'
import { timelineLine } from '../../cli/timeline-render.js'
import { importTimeline, type ImportResult } from '../../core/app/import.js'

export default class TimelineImport extends BaseCommand<typeof TimelineImport> {
  static override summary = 'Create a root timeline from a running PostgreSQL 15 primary (replication slot + BASE_BACKUP).'
  static override description =
    'Creates (or reuses) a physical replication slot with RESERVE_WAL, takes a base backup over the replication ' +
    'protocol and imports it; the primary becomes the WAL source of the timeline, streamed by `timeline sync` or ' +
    '`serve`. Pages are served from the end LSN of the backup on: offline, the import streams the WAL up to there ' +
    'before it returns (a running server streams it with its receiver). The primary needs wal_level=replica, a role with ' +
    'REPLICATION and a pg_hba.conf replication entry. An import that fails drops the slot it created (its error says ' +
    'so, or gives the SQL to drop it). One that is killed cannot, but it recorded the slot before creating it ' +
    '(<workdir>/import-slots/): the next import from the same primary, or the next `serve` (which tries again every 5 ' +
    'minutes while that primary is down), drops the slots of imports that did not finish (the result\'s notes, or the ' +
    'server\'s log, say so), since a slot keeps WAL there until ' +
    'dropped; `slot list` shows such a slot as an orphan naming the import. ' +
    'The password is never stored: the timeline records the connection string without it. The import connects with ' +
    'the password in --from, else PGPASSWORD, else the password file (PGPASSFILE, else ~/.pgpass, mode 0600; a line ' +
    'host:port:replication:user:password). `serve` and `timeline sync` never see --from: they take the password from ' +
    'PGPASSWORD or the password file (a running server that does the import keeps using the one given until it ' +
    'stops). When --from has a password, the output says so (with --json: passwordOmitted and notes).'
  static override examples = [
    '<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --from "host=127.0.0.1 port=5432 user=postgres"',
    'PGPASSWORD=secret <%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --from postgresql://replicator@db:5432/postgres --slot ps_main',
  ]
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
    from: Flags.string({
      summary: 'Connection string of the primary (key=value or postgresql:// URL); recorded without its password.',
      required: true,
    }),
    slot: Flags.string({ summary: 'Physical replication slot to create or reuse (default: pageserver_<timeline id prefix>).' }),
    'timeline-id': timelineIdFlag({ summary: 'The id of the new timeline; random by default.' }),
  }

  async run(): Promise<ImportResult> {
    const info = await withProgress('importing', this.jsonEnabled(), async (progress) => {
      const server = await this.serverClient()
      // Through a running server with no deadline: the base backup of a large database takes hours.
      return server
        ? await server.request<ImportResult>(
            'POST',
            `/v1/tenant/${this.flags.tenant}/timeline`,
            { new_timeline_id: this.flags['timeline-id'], import_from: { conn_string: this.flags.from, slot_name: this.flags.slot } },
            { timeoutMs: null },
          )
        : await importTimeline(await this.appContext(), {
            tenantId: this.flags.tenant,
            timelineId: this.flags['timeline-id'],
            connString: this.flags.from,
            slotName: this.flags.slot,
            onProgress: (m) => progress.update(m),
          })
    })
    this.log(timelineLine(info))
    for (const note of info.notes ?? []) this.log(`Note: ${note}`)
    return info
  }
}
