import { BaseCommand } from '../cli/base-command.js'
import { createLogger } from '../cli/logger.js'
import { PageServer } from '../core/app/server.js'
import { backupTar } from '../core/app/export.js'

export default class Serve extends BaseCommand<typeof Serve> {
  static override summary = 'Run the page server: serve every tenant over libpq and stream WAL into its timelines.'
  static override description =
    'Loads every tenant and timeline of the workdir and serves them over the libpq page service on listen_pg_addr ' +
    '(pagestream_v2/v3, basebackup, fullbackup; trust or NeonJWT auth). Every timeline with a WAL source streams WAL ' +
    'from its PostgreSQL primary, resuming from disk_consistent_lsn; the replication slot only advances to what is ' +
    'flushed. In-memory layers are flushed on checkpoint_distance, checkpoint_timeout and the memory ceiling. ' +
    'Holds the workdir lock: offline commands that change the workdir fail while it runs, naming it. ' +
    'SIGINT or SIGTERM shut down gracefully (stop accepting, stop WAL, flush, stop redo workers) within ' +
    '--shutdown-timeout; a second signal exits at once. Logs are JSON lines on stderr unless it is a terminal.'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> -c listen_pg_addr=127.0.0.1:6400']
  static override flags = {}
  static override enableJsonFlag = false

  async run(): Promise<void> {
    const log = createLogger({ minLevel: process.env.PAGESERVER_LOG })
    const ctx = { ...(await this.appContext()), log }
    const server = await PageServer.start(ctx, { backups: backupTar })
    const a = server.addresses
    process.stdout.write(`pageserver listening: page service ${a.pg.host}:${a.pg.port}, workdir ${ctx.config.workdir}\n`)
    let signals = 0
    await new Promise<void>((resolve) => {
      const onSignal = (sig: string) => {
        signals++
        if (signals > 1) {
          log('warn', 'second signal: exiting at once', { signal: sig })
          process.exit(130)
        }
        log('info', 'shutting down', { signal: sig })
        server.stop().then(resolve, (e) => {
          log('error', 'shutdown failed', { message: e instanceof Error ? e.message : String(e) })
          resolve()
        })
      }
      process.on('SIGINT', () => onSignal('SIGINT'))
      process.on('SIGTERM', () => onSignal('SIGTERM'))
    })
  }
}
