import { resolve } from 'node:path'
import { Flags } from '@oclif/core'
import { BaseCommand, workdirFlag } from '../../cli/base-command.js'
import { pgCtlCommand, shellWord } from '../../cli/pg-commands.js'
import { lsnFlag, tenantIdFlag, timelineIdFlag } from '../../cli/flags.js'
import { parseServerAddress } from '../../cli/getpage-server.js'
import { startProgress } from '../../cli/render.js'
import { exportTimeline, exportTimelineFromServer, postgresCannotReach, type ExportResult } from '../../core/app/export.js'
import { abortOnSignals } from '../../cli/interrupt.js'
import { formatBytes } from '../../core/lib/units.js'
import { firstFreePort } from '../../core/app/local-postgres.js'
import { formatLsn } from '../../core/pg/lsn.js'
import { waitNotice } from '../../cli/wait-notice.js'

export default class TimelineExport extends BaseCommand<typeof TimelineExport> {
  static override summary = 'Write the full backup of a timeline at an LSN into a directory stock PostgreSQL 15 starts from.'
  static override description =
    'The directory gets every relation file, the SLRUs, relmaps, two-phase files, PG_VERSION files, minimal ' +
    'configuration (trust on the local socket and loopback), a pg_control and a WAL segment holding a shutdown ' +
    'checkpoint at the LSN, so `postgres -D DIR` starts as a primary without recovery. The directory must be new ' +
    'or empty; it gets mode 0700 and, when run as root, belongs to the postgres user. Offline the workdir is read; ' +
    'with --server (or by default when `pageserver serve` runs on this workdir, since it holds WAL not yet flushed) ' +
    'the backup comes from the page server (its fullbackup command). ' +
    'As for `postgres -D DIR`, -D names the data directory to write here (also --pgdata or -o); this command ' +
    'takes the workdir as --workdir or PAGESERVER_WORKDIR only. Unlogged relations come ' +
    'back empty, as after a crash; sequences show the value last written to WAL (up to 32 ahead). With --json: ' +
    '{tenantId, timelineId, lsn (the data is as of it), checkpointLsn (where pg_control points), dir, files, ' +
    'bytes, source ("offline" or "server")}.'
  static override examples = [
    '<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210 -D /tmp/pg-at-head',
    '<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210 --lsn 0/16B3748 -D /tmp/pg-then',
    '<%= config.bin %> <%= command.id %> --server 127.0.0.1:64000 --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210 -o /tmp/pg-from-server',
  ]
  // -D is the data directory here, as the contract and `postgres -D` have it: the workdir keeps its
  // long form and environment variable only.
  static override baseFlags = {
    ...BaseCommand.baseFlags,
    workdir: workdirFlag(false),
  }
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
    timeline: timelineIdFlag({ summary: 'The timeline.', required: true }),
    lsn: lsnFlag({
      summary:
        "The backup LSN (default: the timeline's last record LSN); aligned up to 8. The backup holds the records that end at or " +
        'before it (one inside a record leaves that record out; one inside a WAL page header stands for the page boundary).',
    }),
    pgdata: Flags.string({ char: 'D', charAliases: ['o'], summary: 'The data directory to write (new or empty).', required: true, helpValue: 'DIR' }),
    server: Flags.string({ summary: 'Fetch the backup from a running page server at HOST:PORT (its listen_pg_addr) instead of reading the workdir.', helpValue: 'HOST:PORT' }),
    token: Flags.string({ summary: 'JWT for a page server with NeonJWT auth.', env: 'NEON_AUTH_TOKEN', helpValue: 'JWT' }),
    offline: Flags.boolean({ summary: 'Read the layer files even when a server runs on this workdir (its unflushed WAL is not seen).', default: false }),
  }

  async run(): Promise<ExportResult> {
    const f = this.flags
    const progress = await startProgress(`exporting timeline ${f.timeline}`, this.jsonEnabled())
    let lastDrawMs = 0
    let notice: { cancel(): void } | null = null
    const onProgress = (bytes: number, files: number) => {
      notice?.cancel()
      const now = Date.now()
      if (now - lastDrawMs < 100) return
      lastDrawMs = now
      progress.update(`exporting timeline ${f.timeline}: ${files} files, ${formatBytes(bytes)}`)
    }
    const ctx = await this.appContext()
    // Interrupted, the export removes what it wrote (a data directory without pg_control, or without some
    // relations, must not be left looking like one).
    const interrupt = abortOnSignals()
    const common = { tenantId: f.tenant, timelineId: f.timeline, dir: resolve(f.pgdata), onProgress, signal: interrupt.signal, ...(f.lsn === undefined ? {} : { lsn: f.lsn }) }
    // A server running on this workdir holds WAL not yet flushed: ask it rather than the files.
    const running = f.server === undefined && !f.offline ? (await this.serverClient())?.server.pgAddr : undefined
    const serverAddr = f.server ?? running
    let r: ExportResult
    try {
      if (serverAddr !== undefined) {
        const { host, port } = parseServerAddress(serverAddr)
        const at = f.lsn === undefined ? '' : ` at ${formatLsn(f.lsn)}`
        notice = waitNotice(`still waiting for ${serverAddr}: a backup${at} whose WAL the server has not received yet starts when that WAL arrives, or fails after its wait_lsn_timeout`)
        r = await exportTimelineFromServer(ctx, { ...common, host, port, ...(f.token === undefined ? {} : { token: f.token }) })
      } else {
        r = await exportTimeline(ctx, common)
      }
    } catch (e) {
      progress.fail()
      throw e
    } finally {
      notice?.cancel()
      interrupt.dispose()
    }
    progress.succeed(`exported timeline ${r.timelineId} at ${r.lsn}: ${r.files} files, ${formatBytes(r.bytes)}`)
    this.log(`wrote ${r.dir}: timeline ${r.timelineId} at ${r.lsn} (checkpoint at ${r.checkpointLsn}), ${r.files} files, ${formatBytes(r.bytes)}`)
    const dir = shellWord(r.dir)
    // A port free now (from 5432 up): the default one is often a system PostgreSQL's.
    this.log(`start it with: ${pgCtlCommand(ctx)} -D ${dir} -l ${dir}/postgresql.log -o '-p ${await firstFreePort(5432)}' start`)
    // As root the directory is given to the postgres user, but a parent it cannot enter (under /root, a
    // 0700 directory) still keeps PostgreSQL out: say so now rather than let pg_ctl fail.
    if (postgresCannotReach(r.dir)) {
      process.stderr.write(
        `pageserver: warning: the postgres user cannot reach ${r.dir} (a parent directory does not let it in): PostgreSQL cannot start there until it can (chmod o+x on the parents), or export under a directory it can reach\n`,
      )
    }
    return r
  }
}
