import { accessSync, constants, openSync, closeSync, readFileSync, existsSync, realpathSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { parseServerAddress } from '../../cli/getpage-server.js'
import { pgCtlCommand, shellWord } from '../../cli/pg-commands.js'
import { startProgress } from '../../cli/render.js'
import type { ManagementClient } from '../../cli/server-client.js'
import { DEFAULT_PG_PORT, localPrepare, writeLocalState, type LocalServerOps, type LocalState } from '../../core/app/local.js'
import { exportTimelineFromServer } from '../../core/app/export.js'
import type { AppContext } from '../../core/app/context.js'
import { TimeoutError } from '../../core/lib/errors.js'
import { parseTenantId, parseTimelineId } from '../../core/model/ids.js'

/** How long to wait for the background server to listen. */
const SERVE_START_TIMEOUT_MS = 60_000
/** Port suggested for a PostgreSQL started on a branch export (any free port does). */
const BRANCH_PG_PORT = 55440

/** This checkout's entry point, absolute (dist/commands/local/start.js is three levels below the root). */
const RUN_JS = join(fileURLToPath(new URL('../../..', import.meta.url)), 'bin', 'run.js')

export interface LocalStartResult extends LocalState {
  psql: string
  /** What this start started; both false when everything already ran (then nothing changed). */
  startedPostgres: boolean
  startedServer: boolean
  /** How to invoke this CLI in a shell: `pageserver` when that resolves on PATH to this installation, else RUN_JS. */
  cli: string
}


/**
 * `pageserver` if the shell would run this installation under that name (the first executable `pageserver` on
 * PATH, e.g. an `npm link`/`npm install -g` symlink, resolves to this bin/run.js), else the absolute path of
 * bin/run.js: a newcomer who ran `./bin/run.js local start` has no `pageserver` on PATH.
 */
function cliInvocation(): string {
  const self = realpathSync(RUN_JS)
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, 'pageserver')
    try {
      accessSync(candidate, constants.X_OK)
    } catch {
      continue
    }
    try {
      return realpathSync(candidate) === self ? 'pageserver' : shellWord(RUN_JS)
    } catch {
      return shellWord(RUN_JS)
    }
  }
  return shellWord(RUN_JS)
}

/** What local start does through the running `serve` (it holds the workdir lock): its management API. */
function serverOps(ctx: AppContext, client: ManagementClient): LocalServerOps {
  return {
    pid: client.server.pid,
    pgAddr: client.server.pgAddr ?? null,
    httpAddr: client.server.httpAddr,
    createTenant: async () => parseTenantId((await client.request<{ tenant_id: string }>('POST', '/v1/tenant', {})).tenant_id),
    bootstrapTimeline: async (t) => parseTimelineId((await client.request<{ timelineId: string }>('POST', `/v1/tenant/${t}/timeline`, {})).timelineId),
    exportTimeline: async (o) => {
      const { host, port } = parseServerAddress(client.server.pgAddr ?? '')
      const token = ctx.env.NEON_AUTH_TOKEN
      await exportTimelineFromServer(ctx, { ...o, host, port, ...(token === undefined ? {} : { token }) })
    },
    setWalSource: async (t, tl, src) => {
      await client.request('PUT', `/v1/tenant/${t}/timeline/${tl}/wal_source`, { conn_string: src.connString, slot_name: src.slotName })
    },
  }
}

/** Starts `serve` in the background and waits until it has taken the workdir lock and listens; its pid and addresses. */
async function startServe(ctx: AppContext, logFile: string, configOverrides: string[]): Promise<{ pid: number; pgAddr: string | null; httpAddr: string }> {
  const log = openSync(logFile, 'a')
  const args = [RUN_JS, 'serve', '--workdir', ctx.config.workdir, ...configOverrides.flatMap((c) => ['-c', c])]
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log], env: { ...process.env, PAGESERVER_WORKDIR: ctx.config.workdir } })
  let spawnFailed = false
  child.once('error', () => (spawnFailed = true)) // e.g. node not executable: reported below as not started
  child.unref()
  closeSync(log)
  const lockPath = join(ctx.config.workdir, 'pageserver.lock')
  const deadline = Date.now() + SERVE_START_TIMEOUT_MS
  let addrs: { pgAddr?: string; httpAddr?: string; pid?: number } = {}
  while (Date.now() < deadline) {
    if (existsSync(lockPath)) {
      try {
        addrs = JSON.parse(readFileSync(lockPath, 'utf8')) as typeof addrs
      } catch {
        addrs = {} // being replaced (a stale lock taken over, or addresses added): read it again
      }
      if (child.pid !== undefined && addrs.pid === child.pid && addrs.httpAddr) return { pid: child.pid, pgAddr: addrs.pgAddr ?? null, httpAddr: addrs.httpAddr }
    }
    if (spawnFailed || child.exitCode !== null || child.signalCode !== null) break
    await new Promise((r) => setTimeout(r, 100))
  }
  // Not listening in time: do not leave a half-started server behind.
  if (!spawnFailed && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r))
    child.kill('SIGKILL')
    await exited
  }
  throw new TimeoutError('SERVE_DID_NOT_START', `the page server did not start; see ${logFile}`, {
    hint: 'Another process may hold the workdir, or listen_pg_addr / listen_http_addr is taken (-c listen_pg_addr=127.0.0.1:<port>).',
  })
}

export default class LocalStart extends BaseCommand<typeof LocalStart> {
  static override summary = 'Start everything locally: a PostgreSQL 15 primary whose WAL a page server stores.'
  static override description =
    'In one command for a newcomer: creates the workdir if needed, bootstraps a tenant and a timeline with the ' +
    'installed stock PostgreSQL 15 (initdb), exports it, starts that PostgreSQL as the primary of the timeline ' +
    '(replication slot and settings prepared), and runs `pageserver serve` in the background streaming its WAL. ' +
    'Prints how to connect with psql and how to branch. `pageserver local stop` stops what it started; a later ' +
    'start resumes the same cluster. Starts only what is not running (PostgreSQL, the page server, or both; a ' +
    'server that crashed leaves a stale lock, which is taken over); when both run, it reports them and changes nothing.'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --pg-port 55433']
  static override flags = {
    'pg-port': Flags.integer({
      summary: `Port of the local PostgreSQL (default ${DEFAULT_PG_PORT}, then the port of the last start); a new port applies when PostgreSQL is not running.`,
      min: 1,
      max: 65535,
    }),
  }

  async run(): Promise<LocalStartResult> {
    const ctx = await this.appContext()
    const progress = await startProgress('starting', this.jsonEnabled())
    let state: LocalState
    let startedPostgres: boolean
    let startedServer = false
    try {
      const client = await this.serverClient()
      const prepared = await localPrepare(ctx, {
        pgPort: this.flags['pg-port'],
        server: client ? serverOps(ctx, client) : null,
        onProgress: (m) => progress.update(m),
      })
      state = prepared.state
      startedPostgres = prepared.startedPostgres
      if (client === null) {
        progress.update('starting the page server')
        const serve = await startServe(ctx, state.serveLogFile, this.flags.config ?? [])
        state = { ...state, servePid: serve.pid, pgAddr: serve.pgAddr, httpAddr: serve.httpAddr }
        startedServer = true
      }
      writeLocalState(ctx, state)
    } finally {
      progress.stop()
    }
    const psql = `psql -h 127.0.0.1 -p ${state.pgPort} -U postgres postgres`
    const cli = cliInvocation()
    const w = shellWord(ctx.config.workdir)
    const ids = `--workdir ${w} --tenant ${state.tenantId}`
    const pgCtl = pgCtlCommand(ctx)
    const branchPort = state.pgPort === BRANCH_PG_PORT ? BRANCH_PG_PORT + 1 : BRANCH_PG_PORT
    // Next to the local data directory: the postgres user can reach it, and it goes away with the workdir.
    const branchDir = shellWord(join(state.pgSocketDir, 'branch'))
    const pad = ' '.repeat(20)
    const what =
      startedPostgres || startedServer
        ? `PostgreSQL 15 runs on port ${state.pgPort}; the page server stores its WAL`
        : `Already running, nothing changed: PostgreSQL 15 on port ${state.pgPort}, the page server (pid ${state.servePid}) storing its WAL`
    this.log(
      [
        `${what} (page service ${state.pgAddr}, API ${state.httpAddr}).`,
        `  tenant   ${state.tenantId}`,
        `  timeline ${state.timelineId}`,
        '',
        `Connect:            ${psql}`,
        `Branch (now):       ${cli} timeline branch ${ids} --ancestor ${state.timelineId}   # prints the branch id`,
        // Export the branch, start a PostgreSQL on it, and make it the branch's WAL source: its writes then
        // stream into the branch through the running server.
        `Start on a branch:  ${cli} timeline export ${ids} --timeline <branch id> -D ${branchDir} && \\`,
        `${pad}${pgCtl} -D ${branchDir} -l ${branchDir}/postgresql.log -o '-p ${branchPort}' start && \\`,
        `${pad}${cli} timeline source ${ids} --timeline <branch id> --from 'host=127.0.0.1 port=${branchPort} user=postgres'`,
        `Read a page:        ${cli} getpage ${ids} --timeline ${state.timelineId} --rel 1663/5/1259 --blk 0`,
        `Stop a branch:      ${pgCtl} -D ${branchDir} stop`,
        `Stop:               ${cli} local stop --workdir ${w}`,
        `Logs:               ${state.serveLogFile}, ${state.pgLogFile}`,
      ].join('\n'),
    )
    return { ...state, psql, startedPostgres, startedServer, cli }
  }
}
