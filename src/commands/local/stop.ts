import { Flags } from '@oclif/core'
import { stopBackgroundServe } from '../../cli/background-serve.js'
import { BaseCommand } from '../../cli/base-command.js'
import { cliInvocation } from '../../cli/cli-invocation.js'
import { isInteractive, startProgress } from '../../cli/render.js'
import { servingProcess } from '../../cli/server-client.js'
import { branchDataDirs, localCommand, localDir, postmasterPid, requireLocalState, runningPostmaster, serverStartedByLocal, stopLocalPostgres, writeLocalState } from '../../core/app/local.js'
import { lockLocalCommand } from '../../core/app/local-start-lock.js'
import { formatDuration, parseDuration } from '../../core/lib/units.js'
import { pgCtlCommand, shellWord } from '../../cli/pg-commands.js'

export interface LocalStopResult {
  /** The page server that `local start` started was stopped. */
  serverStopped: boolean
  /** It did not exit within --timeout of SIGTERM and was killed (SIGKILL). */
  serverKilled: boolean
  /** The pid of a page server that `local start` did not start (it adopted one the user ran): left running. */
  serverLeftRunning: number | null
  postgresStopped: boolean
  /** PostgreSQLs still running on branch exports beside the local data directory (started by hand, left alone). */
  branchesRunning: Array<{ dataDir: string; port: number }>
}

export default class LocalStop extends BaseCommand<typeof LocalStop> {
  static override summary = 'Stop what `pageserver local start` started (the page server, then PostgreSQL).'
  static override description =
    'Sends SIGTERM to the page server that `local start` started in the background (it flushes and exits; after ' +
    '--timeout it is killed, and the result says so: its unflushed WAL streams again from the replication slot at ' +
    'the next start), then stops the local PostgreSQL with a fast shutdown. A `pageserver serve` started separately ' +
    'that `local start` found running is left running (the result names its pid). A pid recorded in the workdir ' +
    'lock or postmaster.pid is signalled only while it is still that process: one reused by another process ' +
    '(after a reboot) is left alone. Says what it waits for on stderr (a spinner on a terminal). Files are kept: ' +
    '`pageserver local start` resumes the same cluster. Refused while a `local start` runs on the workdir (LOCAL_START_RUNNING, ' +
    'exit 4: wait for it or interrupt it). With --json: {serverStopped, serverKilled, ' +
    'serverLeftRunning (a pid or null), postgresStopped, branchesRunning: [{dataDir, port}]}.'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --timeout 2m']
  static override flags = {
    timeout: Flags.string({
      summary: 'How long the page server gets to flush and exit after SIGTERM before it is killed ("60s", "2m").',
      default: '60s',
      helpValue: 'DURATION',
    }),
  }

  async run(): Promise<LocalStopResult> {
    const timeoutMs = parseDuration(this.flags.timeout, '--timeout')
    const ctx = { ...(await this.appContext()), cliName: cliInvocation() }
    const state = requireLocalState(ctx)
    // A spinner on a terminal; otherwise one line per step on stderr (stdout keeps the result, or the JSON).
    const spinner = !this.jsonEnabled() && isInteractive() ? await startProgress('stopping', false) : null
    const say = (m: string): void => {
      if (spinner) spinner.update(m)
      else process.stderr.write(`${m}\n`)
    }
    // Not while a local start runs (it would record, at its end, what this stops now).
    const unlock = lockLocalCommand(localDir(ctx), ctx.config.workdir, localCommand(ctx, 'stop'), 'local stop')
    let serverStopped = false
    let serverKilled = false
    let serverLeftRunning: number | null = null
    let postgresStopped: boolean
    try {
      // The server is whichever `serve` holds the workdir lock (checked to be the process that took it), listening
      // or still starting; it is ours to stop only if state.json says local start started that very process.
      const server = servingProcess(ctx.config.workdir)
      if (server !== null && serverStartedByLocal(state, server)) {
        say(`stopping the page server (pid ${server.pid}): it flushes and exits, killed after ${formatDuration(timeoutMs)}`)
        const r = await stopBackgroundServe(server, { timeoutMs })
        serverStopped = !r.gone
        serverKilled = r.killed
      } else if (server !== null) {
        serverLeftRunning = server.pid
      }
      if (postmasterPid(state.pgDataDir) !== null) say('stopping PostgreSQL (fast shutdown)')
      postgresStopped = await stopLocalPostgres(ctx, state.pgDataDir)
      const { serveStartedByLocal: _, ...kept } = state
      writeLocalState(ctx, { ...kept, servePid: null, serveProcessStart: null, pgAddr: null, httpAddr: null })
    } finally {
      unlock()
      spinner?.stop()
    }
    const stopped = [
      serverStopped ? (serverKilled ? `the page server (killed: it did not exit within ${formatDuration(timeoutMs)} of SIGTERM; its unflushed WAL streams again from the slot at the next start)` : 'the page server') : null,
      postgresStopped ? 'PostgreSQL' : null,
    ].filter((s) => s !== null)
    const lines = [stopped.length > 0 ? `stopped ${stopped.join(' and ')}` : 'stopped nothing: nothing of local start was running']
    if (serverLeftRunning !== null) lines.push(`left the page server (pid ${serverLeftRunning}) running: it was started separately, not by \`local start\``)
    // Branch PostgreSQLs were started by hand (local start's hints): not stopped, but named, as their WAL no
    // longer reaches a page server once it stops.
    const branchesRunning = branchDataDirs(state).flatMap((dataDir) => {
      const pm = runningPostmaster(dataDir)
      return pm === null ? [] : [{ dataDir, port: pm.port }]
    })
    for (const b of branchesRunning) lines.push(`still running: a PostgreSQL on a branch export, port ${b.port} (${b.dataDir}); stop it with: ${pgCtlCommand(ctx)} -D ${shellWord(b.dataDir)} stop`)
    this.log(lines.join('\n'))
    return { serverStopped, serverKilled, serverLeftRunning, postgresStopped, branchesRunning }
  }
}
