import { Flags } from '@oclif/core'
import { BaseCommand } from '../cli/base-command.js'
import { createLogger } from '../cli/logger.js'
import { PageServer } from '../core/app/server.js'
import { backupTar } from '../core/app/export.js'
import { parseDuration } from '../core/lib/units.js'
import { formatHostPort } from '../core/lib/host-port.js'

/** Once stopped, how long the process may take to exit by itself before it is made to. */
const STOPPED_EXIT_MS = 2_000

/** What `serve --json` prints when it has stopped (its first line, at startup, gives the addresses). */
export interface ServeResult {
  stopped: true
  signal: string
}

export default class Serve extends BaseCommand<typeof Serve> {
  // JSON lines: the result at shutdown is one line, like the startup line (errors included).
  static override jsonLines = true
  static override summary = 'Run the page server: serve every tenant over libpq and stream WAL into its timelines.'
  static override description =
    'Loads every tenant and timeline of the workdir and serves them over the libpq page service on listen_pg_addr ' +
    '(pagestream_v2/v3, basebackup, fullbackup; trust or NeonJWT auth). Every timeline with a WAL source streams WAL ' +
    'from its PostgreSQL primary, resuming from disk_consistent_lsn; the replication slot only advances to what is ' +
    'flushed. WAL sources are stored without passwords: the server finds one in PGPASSWORD, else the password file ' +
    "(the source's passfile, else PGPASSFILE, else ~/.pgpass, mode 0600; a line host:port:replication:user:password), " +
    'read again at every reconnection; a password given through `timeline import` or `timeline source` while it runs ' +
    'is kept in memory until it stops. In-memory layers are flushed on checkpoint_distance, checkpoint_timeout and the memory ceiling. ' +
    'Holds the workdir lock: offline commands that change the workdir fail while it runs, naming it. ' +
    'SIGINT or SIGTERM shut down gracefully (stop accepting, stop WAL, flush, stop redo workers) within ' +
    '--shutdown-timeout; a second signal exits at once. Management requests in progress get a third of it (at most ' +
    '10 s) to finish and be answered; any still running then is answered 503 SERVER_SHUTTING_DOWN (whether it took ' +
    'effect is not known: check, then retry) and the process exits under it, as after a crash; a sync waiting for WAL ' +
    'stops waiting at once and is answered 503 with the position it reached. SIGHUP reloads the JWT validation keys ' +
    '(auth_validation_public_key_path) without a restart, as POST /v1/reload_auth_validation_keys does; if they cannot ' +
    'be loaded, the old keys stay in use and the error is logged. Logs are JSON lines on stderr unless it is a terminal. ' +
    'With --json, stdout gets one JSON line when it listens ({"listening": {pgAddr, httpAddr, workdir, pid}}), ' +
    'logs are JSON lines whatever stderr is, and a second line, the result ({stopped, signal}), at shutdown.'
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> -c listen_pg_addr=127.0.0.1:6400',
    '<%= config.bin %> <%= command.id %> --json --shutdown-timeout 10s',
  ]
  static override flags = {
    'shutdown-timeout': Flags.string({
      summary: 'How long the graceful shutdown may take before the server exits anyway ("30s", "2m").',
      description: 'WAL not yet flushed when it expires is streamed again from the replication slot at the next start.',
      default: '30s',
      helpValue: 'DURATION',
    }),
  }

  /** Set when the process must exit as soon as its result line is written (see run). */
  private exitAfterResult = false

  public override logJson(json: unknown): void {
    super.logJson(json)
    if (this.exitAfterResult) process.exit(0)
  }

  async run(): Promise<ServeResult> {
    const deadlineMs = parseDuration(this.flags['shutdown-timeout'], '--shutdown-timeout')
    const json = this.jsonEnabled()
    const log = createLogger({ minLevel: process.env.PAGESERVER_LOG, ...(json ? { json: true } : {}) })
    const ctx = { ...(await this.appContext()), log }
    // A daemon does not die on SIGHUP (its default action): it reloads the keys, once there is a server.
    let started: PageServer | null = null
    process.on('SIGHUP', () => {
      if (started === null) return log('info', 'SIGHUP while starting: ignored (the keys are read as the server starts)')
      // reloadAuthKeys logs the outcome; a failed reload keeps the old keys and the server running.
      started.reloadAuthKeys('SIGHUP').then(
        () => {},
        () => {},
      )
    })
    const server = await PageServer.start(ctx, { backups: backupTar })
    started = server
    const a = server.addresses
    if (json) {
      const listening = { pgAddr: formatHostPort(a.pg.host, a.pg.port), httpAddr: formatHostPort(a.http.host, a.http.port), workdir: ctx.config.workdir, pid: process.pid }
      process.stdout.write(JSON.stringify({ listening }) + '\n')
    } else {
      process.stdout.write(`pageserver listening: page service ${formatHostPort(a.pg.host, a.pg.port)}, API ${formatHostPort(a.http.host, a.http.port)}, workdir ${ctx.config.workdir}\n`)
    }
    let signals = 0
    return new Promise<ServeResult>((resolve) => {
      const onSignal = (sig: string) => {
        signals++
        if (signals > 1) {
          log('warn', 'second signal: exiting at once', { signal: sig })
          // Not past a bootstrap's initdb, which would go on running (and writing its scratch directory).
          server.abortWork()
          process.exit(130)
        }
        log('info', 'shutting down', { signal: sig, deadlineMs })
        const stopped = (): void => {
          // Requests still running past the deadline (see core/app/server-shutdown.ts) would go on writing into
          // the workdir: exit once the result is out (at once without --json, which prints none).
          if (server.exitRequired) {
            if (!json) process.exit(0)
            this.exitAfterResult = true
          }
          // Whatever else is still open (a client that does not close) must not keep a stopped server alive.
          setTimeout(() => process.exit(), STOPPED_EXIT_MS).unref()
          resolve({ stopped: true, signal: sig })
        }
        server.stop(deadlineMs).then(stopped, (e) => {
          log('error', 'shutdown failed', { message: e instanceof Error ? e.message : String(e) })
          stopped()
        })
      }
      process.on('SIGINT', () => onSignal('SIGINT'))
      process.on('SIGTERM', () => onSignal('SIGTERM'))
    })
  }
}
