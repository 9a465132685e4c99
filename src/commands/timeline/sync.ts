import { BaseCommand } from '../../cli/base-command.js'
import { lsnFlag, tenantIdFlag, timelineIdFlag } from '../../cli/flags.js'
import { startProgress } from '../../cli/render.js'
import { abortOnSignals } from '../../cli/interrupt.js'
import { syncTimeline, type SyncResult } from '../../core/app/sync.js'
import { formatLsn } from '../../core/pg/lsn.js'
import { formatBytes } from '../../core/lib/units.js'

export default class TimelineSync extends BaseCommand<typeof TimelineSync> {
  static override summary = "Stream WAL from the timeline's primary until caught up, flush, and exit."
  static override description =
    "Connects to the timeline's WAL source through its replication slot, ingests WAL from the last record LSN " +
    "until the primary's flush position at the start (or --until), flushes to layer files, reports the durable " +
    'LSN to the slot, and exits. Safe to interrupt or kill at any moment: the next run resumes from what is on disk (interrupted by SIGINT or SIGTERM before its target, it flushes what it ingested and exits 130, SYNC_INTERRUPTED). ' +
    'While `pageserver serve` runs, the server streams the timeline already: the command waits (up to its wait_lsn_timeout) ' +
    'until the server has ingested WAL that far, and has it flush. With --json, {tenantId, timelineId, lastRecordLsn, diskConsistentLsn, records}: ' +
    'the records ingested by this run (through a server: by its receiver while the command waited). ' +
    'The timeline stores its source without a password: offline, this command connects with PGPASSWORD, else the ' +
    "password file (the source's passfile, else PGPASSFILE, else ~/.pgpass, mode 0600; a line " +
    'host:port:replication:user:password); a running server uses its own environment. Metadata written before ' +
    'passwords were left out may still hold one, which is used first.'
  static override examples = ['<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210']
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
    timeline: timelineIdFlag({ summary: 'The timeline.', required: true }),
    until: lsnFlag({ summary: "Stop once WAL up to this LSN is ingested (default: the primary's flush LSN at the start)." }),
  }

  async run(): Promise<SyncResult> {
    const progress = await startProgress('syncing', this.jsonEnabled())
    const interrupt = abortOnSignals()
    try {
      const server = await this.serverClient()
      if (server) {
        // A running server streams this timeline already: wait for it to get there, and flush.
        progress.update('waiting for the running page server')
        // No deadline: the server bounds the wait by its wait_lsn_timeout; a signal interrupts it.
        const r = await server.request<SyncResult>(
          'POST',
          `/v1/tenant/${this.flags.tenant}/timeline/${this.flags.timeline}/sync`,
          { until: this.flags.until === undefined ? undefined : formatLsn(this.flags.until) },
          { timeoutMs: null, signal: interrupt.signal },
        )
        progress.stop()
        this.log(`last record ${r.lastRecordLsn}, disk consistent ${r.diskConsistentLsn} (streamed by the running server)`)
        return r
      }
      const r = await syncTimeline(await this.appContext(), {
        tenantId: this.flags.tenant,
        timelineId: this.flags.timeline,
        until: this.flags.until,
        signal: interrupt.signal,
        onProgress: (p) => progress.update(`at ${formatLsn(p.lastRecordLsn)}, ${formatBytes(p.targetLsn > p.lastRecordLsn ? Number(p.targetLsn - p.lastRecordLsn) : 0)} behind ${formatLsn(p.targetLsn)} (${p.records} records)`),
      })
      progress.stop()
      this.log(`last record ${r.lastRecordLsn}, disk consistent ${r.diskConsistentLsn} (${r.records} records ingested)`)
      return r
    } finally {
      progress.stop()
      interrupt.dispose()
    }
  }
}
