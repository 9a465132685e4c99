import { join } from 'node:path'
import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { parseServerAddress } from '../../cli/getpage-server.js'
import { pgCtlCommand, shellWord } from '../../cli/pg-commands.js'
import { assertServeAddressesFree, startBackgroundServe } from '../../cli/background-serve.js'
import { cliInvocation, RUN_JS } from '../../cli/cli-invocation.js'
import { abortOnSignals } from '../../cli/interrupt.js'
import { startProgress } from '../../cli/render.js'
import type { ManagementClient } from '../../cli/server-client.js'
import { DEFAULT_PG_PORT, dataDirOutsideWorkdir, localCommand, localDir, localPrepare, stopPostgresAfterFailedStart, writeLocalState, type LocalServerOps, type LocalState } from '../../core/app/local.js'
import { firstFreePort } from '../../core/app/local-postgres.js'
import { lockLocalCommand } from '../../core/app/local-start-lock.js'
import { exportTimelineFromServer } from '../../core/app/export.js'
import type { AppContext } from '../../core/app/context.js'
import { parseTenantId, parseTimelineId } from '../../core/model/ids.js'

/** First port suggested for a PostgreSQL started on a branch export (any free port does; the first free from here). */
const BRANCH_PG_PORT = 55440

export interface LocalStartResult extends LocalState {
  psql: string
  /** What this start started; both false when everything already ran (then nothing changed). */
  startedPostgres: boolean
  startedServer: boolean
  /** Timelines of the workdir that stream from another PostgreSQL: left alone (the page server streams them too). */
  otherSourceTimelines: number
  /** How to invoke this CLI in a shell: `pageserver` when that resolves on PATH to this installation, else RUN_JS. */
  cli: string
}


/** What local start does through the running `serve` (it holds the workdir lock): its management API. */
function serverOps(ctx: AppContext, client: ManagementClient): LocalServerOps {
  return {
    pid: client.server.pid,
    processStart: client.server.processStart ?? null,
    pgAddr: client.server.pgAddr ?? null,
    httpAddr: client.server.httpAddr,
    createTenant: async () => parseTenantId((await client.request<{ tenant_id: string }>('POST', '/v1/tenant', {})).tenant_id),
    bootstrapTimeline: async (t) => parseTimelineId((await client.request<{ timelineId: string }>('POST', `/v1/tenant/${t}/timeline`, {})).timelineId),
    exportTimeline: async (o) => {
      const { host, port } = parseServerAddress(client.server.pgAddr ?? '')
      const token = ctx.env.NEON_AUTH_TOKEN
      await exportTimelineFromServer(ctx, { ...o, host, port, ...(token === undefined ? {} : { token }) })
    },
    timelineBroken: async (t, tl) => (await client.request<{ state?: string }>('GET', `/v1/tenant/${t}/timeline/${tl}`)).state === 'Broken',
    setWalSource: async (t, tl, src) => {
      await client.request('PUT', `/v1/tenant/${t}/timeline/${tl}/wal_source`, { conn_string: src.connString, slot_name: src.slotName })
    },
  }
}

export default class LocalStart extends BaseCommand<typeof LocalStart> {
  static override summary = 'Start everything locally: a PostgreSQL 15 primary whose WAL a page server stores.'
  static override description =
    'In one command for a newcomer: creates the workdir if needed, bootstraps a tenant and a timeline with the ' +
    'installed stock PostgreSQL 15 (initdb), exports it, starts that PostgreSQL as the primary of the timeline ' +
    '(replication slot and settings prepared), and runs `pageserver serve` in the background streaming its WAL. ' +
    'Prints how to connect with psql and how to branch. `pageserver local stop` stops what it started; a later ' +
    'start resumes the same cluster. Starts only what is not running (PostgreSQL, the page server, or both; a ' +
    'server that crashed leaves a stale lock, which is taken over); when both run, it reports them and changes nothing. ' +
    'A `serve` already running on the workdir is used as it is, and `local stop` leaves it running. ' +
    'It only uses a timeline of its own: the one it recorded, or on a first start a root timeline without a WAL source that loads (a broken one is passed over), ' +
    'else one it bootstraps (in a new tenant when every tenant has timelines). Timelines that stream from other primaries ' +
    '(`timeline import`, `timeline source`) are left alone (the page server streams them too); a recorded timeline that ' +
    'now follows another primary is refused (LOCAL_TIMELINE_HAS_OTHER_SOURCE, exit 4), and one since deleted too ' +
    '(LOCAL_TIMELINE_GONE, exit 3: move local/state.json aside to set up anew). ' +
    'One local start at a time: another one running on the workdir is LOCAL_START_RUNNING (exit 4), a local stop running ' +
    'LOCAL_STOP_RUNNING (exit 4); a page server it ' +
    'started that does not listen yet (still loading) is LOCAL_SERVER_STARTING (exit 6: run it again in a moment). ' +
    'The data directory is exported under a temporary name and renamed into place when complete: after an interrupted ' +
    'first start (Ctrl-C stops the export at once; a kill leaves the temporary directory) run it again. ' +
    'If the page server cannot start, the PostgreSQL this start started is stopped again; an address already in use ' +
    'is SERVE_PORT_IN_USE (exit 4): set listen_pg_addr / listen_http_addr in <workdir>/pageserver.toml, which every ' +
    'later start reads (a -c override applies to one run only). A pid in a lock or postmaster.pid that now belongs to ' +
    'another process (after a reboot) is taken as stale. With --json: what local/state.json records (tenantId, ' +
    'timelineId, pgDataDir, pgPort, pgLogFile, pgSocketDir, servePid, serveLogFile, pgAddr, httpAddr, ...) plus ' +
    'psql (the command to connect), startedPostgres, startedServer, otherSourceTimelines and cli (how to invoke ' +
    'this CLI in a shell).'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --pg-port 55433']
  static override flags = {
    'pg-port': Flags.integer({
      summary: `Port of the local PostgreSQL (default ${DEFAULT_PG_PORT}, then the port of the last start); a new port applies when PostgreSQL is not running.`,
      min: 1,
      max: 65535,
    }),
  }

  async run(): Promise<LocalStartResult> {
    const cli = cliInvocation()
    const ctx = { ...(await this.appContext()), cliName: cli }
    const progress = await startProgress('starting', this.jsonEnabled())
    // Ctrl-C or SIGTERM stop the start between steps, and the export midway (it removes what it wrote).
    const interrupt = abortOnSignals()
    let state: LocalState
    let startedPostgres = false
    let startedServer = false
    let otherSourceTimelines: number
    let unlock: (() => void) | null = null
    try {
      unlock = lockLocalCommand(localDir(ctx), ctx.config.workdir, localCommand(ctx, 'start'))
      const client = await this.serverClient()
      // Both addresses of the server to start, before PostgreSQL is started for it.
      if (client === null) await assertServeAddressesFree({ workdir: ctx.config.workdir, listenPgAddr: ctx.config.listenPgAddr, listenHttpAddr: ctx.config.listenHttpAddr })
      const prepared = await localPrepare(ctx, {
        pgPort: this.flags['pg-port'],
        server: client ? serverOps(ctx, client) : null,
        onProgress: (m) => progress.update(m),
        signal: interrupt.signal,
      })
      state = prepared.state
      startedPostgres = prepared.startedPostgres
      otherSourceTimelines = prepared.otherSourceTimelines
      if (client === null) {
        progress.update('starting the page server')
        try {
          const serve = await startBackgroundServe({
            workdir: ctx.config.workdir,
            runJs: RUN_JS,
            logFile: state.serveLogFile,
            configOverrides: this.flags.config ?? [],
            signal: interrupt.signal,
            startCommand: localCommand(ctx, 'start'),
            // Recorded at once: this start killed (kill -9) before the server listens leaves it running, and the
            // next start must know it started it (else it adopts it as started separately, and `local stop`
            // leaves it running).
            onSpawn: (s) => writeLocalState(ctx, { ...state, servePid: s.pid, serveProcessStart: s.processStart, serveStartedByLocal: true }),
          })
          state = { ...state, servePid: serve.pid, serveProcessStart: serve.processStart, serveStartedByLocal: true, pgAddr: serve.pgAddr, httpAddr: serve.httpAddr }
        } catch (e) {
          // A start that fails leaves nothing of its own running: PostgreSQL without a page server would fill
          // its disk with WAL kept for the slot. One that ran before this start keeps running.
          if (startedPostgres) throw await stopPostgresAfterFailedStart(ctx, state, e)
          throw e
        }
        startedServer = true
      }
      writeLocalState(ctx, state)
    } finally {
      unlock?.()
      interrupt.dispose()
      progress.stop()
    }
    const psql = `psql -h 127.0.0.1 -p ${state.pgPort} -U postgres postgres`
    const w = shellWord(ctx.config.workdir)
    const ids = `--workdir ${w} --tenant ${state.tenantId}`
    const pgCtl = pgCtlCommand(ctx)
    const branchPort = await firstFreePort(BRANCH_PG_PORT, [state.pgPort])
    // Next to the local data directory: the postgres user can reach it, and it goes away with the workdir (or
    // with the data directory, when that is outside it). One per branch: `branch-<branch id>`.
    const branchDir = `${shellWord(join(state.pgSocketDir, 'branch-'))}<branch id>`
    const pad = ' '.repeat(20)
    const what =
      startedPostgres || startedServer
        ? `PostgreSQL 15 runs on port ${state.pgPort}; the page server stores its WAL`
        : `Already running, nothing changed: PostgreSQL 15 on port ${state.pgPort}, the page server (pid ${state.servePid}) storing its WAL`
    const adopted = state.serveStartedByLocal === false ? ` The page server (pid ${state.servePid}) was started separately: \`local stop\` leaves it running.` : ''
    const others =
      otherSourceTimelines > 0
        ? [`Left alone:         ${otherSourceTimelines} other timeline(s) of this workdir stream WAL from their own primaries (the page server streams them too).`]
        : []
    this.log(
      [
        `${what} (page service ${state.pgAddr}, API ${state.httpAddr}).${adopted}`,
        `  tenant   ${state.tenantId}`,
        `  timeline ${state.timelineId}`,
        '',
        `Connect:            ${psql}`,
        `Branch (now):       ${cli} timeline branch ${ids} --ancestor ${state.timelineId}   # a line naming the branch (--json: .timelineId)`,
        // Export the branch, start a PostgreSQL on it, and make it the branch's WAL source: its writes then
        // stream into the branch through the running server.
        `Start on a branch:  ${cli} timeline export ${ids} --timeline <branch id> -D ${branchDir} && \\`,
        `${pad}${pgCtl} -D ${branchDir} -l ${branchDir}/postgresql.log -o '-p ${branchPort}' start && \\`,
        `${pad}${cli} timeline source ${ids} --timeline <branch id> --from 'host=127.0.0.1 port=${branchPort} user=postgres'`,
        `Read a page:        ${cli} getpage ${ids} --timeline ${state.timelineId} --rel 1663/5/1259 --blk 0`,
        `Stop a branch:      ${pgCtl} -D ${branchDir} stop`,
        `Stop:               ${cli} local stop --workdir ${w}`,
        // The page server's log only when this setup started it: a server started separately logs where its user chose.
        `Logs:               ${state.serveStartedByLocal === false ? '' : `${state.serveLogFile}, `}${state.pgLogFile}`,
        ...(dataDirOutsideWorkdir(ctx, state.pgDataDir)
          ? [`Data directory:     ${state.pgDataDir} (outside the workdir: the postgres user cannot reach ${ctx.config.workdir}; remove its parent too when you remove the workdir)`]
          : []),
        ...others,
      ].join('\n'),
    )
    return { ...state, psql, startedPostgres, startedServer, otherSourceTimelines, cli }
  }
}
