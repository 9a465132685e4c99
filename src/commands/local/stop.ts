import { BaseCommand } from '../../cli/base-command.js'
import { localStopPostgres, pidAlive, requireLocalState, writeLocalState } from '../../core/app/local.js'

/** How long the page server gets to flush and exit after SIGTERM before it is killed. */
const SERVE_STOP_TIMEOUT_MS = 60_000

export default class LocalStop extends BaseCommand<typeof LocalStop> {
  static override summary = 'Stop what `pageserver local start` started (the page server, then PostgreSQL).'
  static override description =
    'Sends SIGTERM to the background page server (it flushes and exits), then stops the local PostgreSQL with a ' +
    'fast shutdown. Files are kept: `pageserver local start` resumes the same cluster.'
  static override examples = ['<%= config.bin %> <%= command.id %>']

  async run(): Promise<{ serverStopped: boolean; postgresStopped: boolean }> {
    const ctx = await this.appContext()
    const state = requireLocalState(ctx)
    let serverStopped = false
    // The server is whichever `serve` holds the workdir lock (start may have adopted one it did not spawn);
    // state.servePid alone could name a crashed server's pid, since reused by an unrelated process.
    const servePid = (await this.serverClient())?.server.pid ?? null
    if (servePid !== null) {
      process.kill(servePid, 'SIGTERM')
      const deadline = Date.now() + SERVE_STOP_TIMEOUT_MS
      while (pidAlive(servePid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      if (pidAlive(servePid)) process.kill(servePid, 'SIGKILL')
      serverStopped = true
    }
    const postgresStopped = await localStopPostgres(ctx, state)
    writeLocalState(ctx, { ...state, servePid: null, pgAddr: null, httpAddr: null })
    this.log(`stopped${serverStopped ? ' the page server' : ''}${serverStopped && postgresStopped ? ' and' : ''}${postgresStopped ? ' PostgreSQL' : ''}${!serverStopped && !postgresStopped ? ': nothing was running' : ''}`)
    return { serverStopped, postgresStopped }
  }
}
