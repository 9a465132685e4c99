/**
 * `pageserver local start|stop`: the whole product on embedded defaults for a newcomer.
 *
 * start: a workdir (created if needed), a tenant and a timeline bootstrapped with the installed stock
 * PostgreSQL 15, exported at its last LSN into a data directory, a PostgreSQL started on it as the primary of
 * the timeline (replication slot and settings prepared), recorded as the timeline's WAL source. The command
 * layer then starts `pageserver serve` in the background, which streams that PostgreSQL's WAL.
 * stop: stops what start started (the server, then PostgreSQL), keeping every file for the next start.
 *
 * Invariants:
 * - start is a repair: from any mix of running and stopped parts (nothing, only the server, only PostgreSQL,
 *   both, or a server killed with SIGKILL leaving a stale workdir lock) it starts what is missing and leaves
 *   what runs alone. When both already run it changes nothing and reports them.
 * - While a `serve` holds the workdir, every change goes through it (`LocalServerOps`, the management API the
 *   command layer provides): the workdir lock forbids offline writers then, and the server must learn of a new
 *   WAL source at once. Core does not talk HTTP itself (the CLI owns the client), hence the interface.
 * - The port lives in two places that must agree: `state.json` and the managed section at the end of the data
 *   directory's postgresql.conf. While PostgreSQL is stopped, each start rewrites the section, so a later
 *   `--pg-port` takes effect; while it runs, its postmaster.pid says the port, and a different `--pg-port` is a
 *   conflict rather than being ignored.
 *
 * State lives in `<workdir>/local/state.json`: ids, the data directory, ports, pids. It is written before
 * PostgreSQL starts, so a failed first start (port taken) is retried on the same data directory.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync, chownSync, renameSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { createHash } from 'node:crypto'
import { join, resolve } from 'node:path'
import { ConflictError, PageserverError, UnavailableError, UsageError } from '../lib/errors.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../model/ids.js'
import { initWorkdir } from '../config/index.js'
import { isRoot, runPgTool } from '../postgres/install.js'
import { postgresCanAccess } from '../postgres/access.js'
import { lookupOsUser } from '../storage/os-user.js'
import { processAlive } from '../storage/workdir-lock.js'
import { exportTimeline } from './export.js'
import { bootstrapTimeline, createTenant, listTenants, listTimelines } from './timelines.js'
import { setTimelineWalSource } from './timelines-source.js'
import { postgresInstallation, type AppContext } from './context.js'

export const LOCAL_DIR = 'local'
const STATE_FILE = 'state.json'
export const DEFAULT_PG_PORT = 55432
/** The replication slot the local PostgreSQL keeps for the page server. */
const LOCAL_SLOT_NAME = 'pageserver_local'
/** pg_ctl's own wait (-t) for PostgreSQL to start or stop, and our deadline for pg_ctl itself (a bit longer). */
const PG_CTL_WAIT_S = 60
const PG_CTL_TIMEOUT_MS = 90_000
/** How long a crashed server's zombie may take to be reaped (init reaps orphans late on some systems), and the poll. */
/** Log lines quoted in the error when PostgreSQL fails to start (the rest is in the log file). */
const PG_LOG_TAIL_LINES_MAX = 3
/** The managed section of postgresql.conf: from BEGIN to END (or to the end of the file, as first releases wrote it). */
const CONF_SECTION_BEGIN = '# pageserver local start: a primary whose WAL the page server streams'
const CONF_SECTION_END = '# end of the pageserver local start section (rewritten by each start; pass --pg-port to change the port)'

export interface LocalState {
  tenantId: string
  timelineId: string
  pgDataDir: string
  pgPort: number
  pgLogFile: string
  pgSocketDir: string
  servePid: number | null
  serveLogFile: string
  pgAddr: string | null
  httpAddr: string | null
}

/**
 * The `pageserver serve` running on the workdir, as local start needs it: while it runs it holds the workdir
 * lock, so these go through its management API (the command layer implements them with its HTTP client).
 */
export interface LocalServerOps {
  pid: number
  pgAddr: string | null
  httpAddr: string
  createTenant(): Promise<TenantId>
  bootstrapTimeline(tenantId: TenantId): Promise<TimelineId>
  /** Writes a full backup of the timeline at its last LSN from the server (it holds WAL not yet flushed). */
  exportTimeline(o: { tenantId: TenantId; timelineId: TimelineId; dir: string }): Promise<void>
  setWalSource(tenantId: TenantId, timelineId: TimelineId, src: { connString: string; slotName: string }): Promise<void>
}

export function localDir(ctx: AppContext): string {
  return join(ctx.config.workdir, LOCAL_DIR)
}

export function readLocalState(ctx: AppContext): LocalState | null {
  const p = join(localDir(ctx), STATE_FILE)
  if (!existsSync(p)) return null
  return JSON.parse(readFileSync(p, 'utf8')) as LocalState
}

export function writeLocalState(ctx: AppContext, s: LocalState): void {
  mkdirSync(localDir(ctx), { recursive: true })
  writeFileSync(join(localDir(ctx), STATE_FILE), JSON.stringify(s, null, 2) + '\n')
}

export function pidAlive(pid: number | null): boolean {
  return pid !== null && pid > 0 && processAlive(pid)
}

/**
 * The postmaster of a data directory, if it runs: its pid and the port it listens on (postmaster.pid
 * lines 1 and 4, as PostgreSQL 15 writes them).
 */
export function runningPostmaster(dataDir: string): { pid: number; port: number } | null {
  try {
    const lines = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')
    const pid = Number(lines[0])
    return pidAlive(pid) ? { pid, port: Number(lines[3]) } : null
  } catch {
    return null
  }
}

/** The postmaster pid of a data directory, if it runs. */
export function postmasterPid(dataDir: string): number | null {
  return runningPostmaster(dataDir)?.pid ?? null
}

/**
 * Where the local PostgreSQL keeps its data: inside the workdir, unless we are root and the `postgres` user
 * cannot reach the workdir (e.g. under /root); then under its home, keyed by the workdir.
 */
function chooseDataDir(ctx: AppContext, timelineId: string): string {
  const inWorkdir = join(localDir(ctx), `pgdata-${timelineId.slice(0, 12)}`)
  if (!isRoot() || postgresCanAccess(ctx.config.workdir)) return inWorkdir
  const key = createHash('sha256').update(resolve(ctx.config.workdir)).digest('hex').slice(0, 12)
  return join('/var/lib/postgresql/pageserver-local', key, `pgdata-${timelineId.slice(0, 12)}`)
}

/**
 * Fails with PG_PORT_IN_USE unless 127.0.0.1:port can be bound (where the local PostgreSQL listens):
 * pg_ctl would only say "could not start server; examine the log output".
 */
export async function assertPortFree(port: number): Promise<void> {
  const error = await new Promise<NodeJS.ErrnoException | null>((done) => {
    const probe = createServer()
    probe.once('error', (e) => done(e))
    probe.listen({ host: '127.0.0.1', port, exclusive: true }, () => probe.close(() => done(null)))
  })
  if (error === null) return
  if (error.code === 'EADDRINUSE') {
    throw new ConflictError('PG_PORT_IN_USE', `port ${port} on 127.0.0.1 is already in use, so the local PostgreSQL cannot listen on it`, {
      hint: 'Pass a free port: `local start --pg-port <port>` (it is remembered for later starts).',
    })
  }
  throw new UsageError('PG_PORT_UNUSABLE', `cannot listen on 127.0.0.1:${port}: ${error.message}`, { hint: 'Pass another port with --pg-port.' })
}

/**
 * Replaces the managed section at the end of postgresql.conf (appending it the first time). Written under a
 * temporary name and renamed, with the owner and mode of the original (root writes a file of the postgres user).
 */
function writeConfSection(pgDataDir: string, o: { pgPort: number; pgSocketDir: string }): void {
  const path = join(pgDataDir, 'postgresql.conf')
  const text = readFileSync(path, 'utf8')
  const begin = text.indexOf(`\n${CONF_SECTION_BEGIN}\n`)
  let kept = text
  if (begin >= 0) {
    const endMarker = text.indexOf(`${CONF_SECTION_END}\n`, begin)
    kept = text.slice(0, begin + 1) + (endMarker >= 0 ? text.slice(endMarker + CONF_SECTION_END.length + 1) : '')
  }
  const section = [
    CONF_SECTION_BEGIN,
    `port = ${o.pgPort}`,
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = '${o.pgSocketDir}'`,
    'wal_level = replica',
    'max_wal_senders = 10',
    'max_replication_slots = 10',
    CONF_SECTION_END,
    '',
  ].join('\n')
  const next = (kept.endsWith('\n') ? kept : kept + '\n') + section
  if (next === text) return
  const st = statSync(path)
  const tmp = `${path}.pageserver-tmp`
  writeFileSync(tmp, next, { mode: st.mode & 0o777 })
  if (isRoot()) chownSync(tmp, st.uid, st.gid)
  renameSync(tmp, path)
}

/** A --pg-port different from the one PostgreSQL runs on is refused, not ignored: it cannot take effect now. */
function assertPortUnchanged(runningPort: number, askedPort: number | undefined): void {
  if (askedPort === undefined || askedPort === runningPort) return
  throw new ConflictError('LOCAL_PG_RUNNING_ON_OTHER_PORT', `the local PostgreSQL already runs on port ${runningPort}, not ${askedPort}`, {
    hint: `To move it, stop it first: \`local stop\`, then \`local start --pg-port ${askedPort}\`.`,
  })
}

function logTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-PG_LOG_TAIL_LINES_MAX).join(' | ')
  } catch {
    return ''
  }
}

export interface LocalPrepareOptions {
  /** A port asked for on this start; default: the one in state.json, else DEFAULT_PG_PORT. */
  pgPort?: number | undefined
  /** The running `serve` of the workdir, or null (then changes are made offline under the workdir lock). */
  server: LocalServerOps | null
  onProgress?: (message: string) => void
}

export interface LocalPrepared {
  state: LocalState
  /** Whether this start started PostgreSQL (false: it already ran). */
  startedPostgres: boolean
}

/**
 * Everything before the server starts: workdir, tenant, timeline, data directory, PostgreSQL running, WAL
 * source recorded. Returns the state (the caller starts `serve` unless `o.server` runs, and records its pid).
 */
export async function localPrepare(ctx: AppContext, o: LocalPrepareOptions): Promise<LocalPrepared> {
  const say = o.onProgress ?? (() => {})
  const server = o.server
  const existing = readLocalState(ctx)
  const running = existing ? runningPostmaster(existing.pgDataDir) : null
  if (existing && running && server) {
    assertPortUnchanged(running.port, o.pgPort)
    const state = { ...existing, pgPort: running.port, servePid: server.pid, pgAddr: server.pgAddr, httpAddr: server.httpAddr }
    return { state, startedPostgres: false }
  }
  if (!existsSync(join(ctx.config.workdir, 'pageserver.toml'))) {
    say('creating the workdir')
    await initWorkdir({ workdir: ctx.config.workdir, env: {} })
  }
  let tenantId: TenantId
  let timelineId: TimelineId
  if (existing) {
    tenantId = parseTenantId(existing.tenantId)
    timelineId = parseTimelineId(existing.timelineId)
  } else {
    const tenants = await listTenants(ctx)
    if (tenants.length > 0) tenantId = parseTenantId(tenants[0]!.tenantId)
    else tenantId = server ? await server.createTenant() : parseTenantId((await createTenant(ctx)).tenantId)
    const tls = await listTimelines(ctx, tenantId)
    const active = tls.flatMap((t) => (t.state === 'Active' ? [t] : []))
    const root = active.find((t) => t.ancestorTimelineId === null && t.walSource === null) ?? active[0]
    if (root) {
      timelineId = parseTimelineId(root.timelineId)
    } else {
      say('bootstrapping a PostgreSQL 15 cluster (initdb)')
      timelineId = server ? await server.bootstrapTimeline(tenantId) : parseTimelineId((await bootstrapTimeline(ctx, { tenantId, onProgress: say })).timelineId)
    }
  }
  const pgDataDir = existing?.pgDataDir ?? chooseDataDir(ctx, timelineId)
  const pgSocketDir = join(pgDataDir, '..')
  const pgLogFile = join(pgSocketDir, 'postgresql.log')
  const inst = postgresInstallation(ctx)
  if (!existsSync(join(pgDataDir, 'PG_VERSION'))) {
    say('exporting the timeline into a data directory')
    mkdirSync(pgSocketDir, { recursive: true })
    if (isRoot()) {
      // PostgreSQL runs as the postgres user: its socket, lock and log file go here. Owned by it, not opened
      // to everyone.
      const pgUser = lookupOsUser('postgres')
      if (pgUser !== null) chownSync(pgSocketDir, pgUser.uid, pgUser.gid)
      else chmodSync(pgSocketDir, 0o777)
    }
    if (server) await server.exportTimeline({ tenantId, timelineId, dir: pgDataDir })
    else await exportTimeline(ctx, { tenantId, timelineId, dir: pgDataDir })
  }
  const postmaster = runningPostmaster(pgDataDir)
  if (postmaster) assertPortUnchanged(postmaster.port, o.pgPort)
  const pgPort = postmaster?.port ?? o.pgPort ?? existing?.pgPort ?? DEFAULT_PG_PORT
  const state: LocalState = {
    tenantId,
    timelineId,
    pgDataDir,
    pgPort,
    pgLogFile,
    pgSocketDir,
    servePid: server?.pid ?? null,
    serveLogFile: join(localDir(ctx), 'pageserver.log'),
    pgAddr: server?.pgAddr ?? null,
    httpAddr: server?.httpAddr ?? null,
  }
  // Before PostgreSQL starts: a start that fails from here on is retried on the same data directory and port.
  writeLocalState(ctx, state)
  if (postmaster === null) {
    await assertPortFree(pgPort)
    writeConfSection(pgDataDir, { pgPort, pgSocketDir })
    say(`starting PostgreSQL on port ${pgPort}`)
    try {
      await runPgTool(inst, 'pg_ctl', ['-D', pgDataDir, '-l', pgLogFile, '-w', '-t', String(PG_CTL_WAIT_S), 'start'], { asPostgresUser: true, timeoutMs: PG_CTL_TIMEOUT_MS })
    } catch (e) {
      if (!(e instanceof PageserverError) || e.code !== 'PG_TOOL_FAILED') throw e
      throw new UnavailableError('PG_START_FAILED', `PostgreSQL did not start on port ${pgPort}: ${logTail(pgLogFile) || e.message}`, {
        hint: `See ${pgLogFile}.`,
        cause: e,
      })
    }
  }
  // Every start records it (the port may have changed); through the running server, which starts streaming at once.
  const connString = `host=127.0.0.1 port=${pgPort} user=postgres dbname=postgres`
  say('recording PostgreSQL as the WAL source of the timeline')
  if (server) await server.setWalSource(tenantId, timelineId, { connString, slotName: LOCAL_SLOT_NAME })
  else await setTimelineWalSource(ctx, { tenantId, timelineId, connString, slotName: LOCAL_SLOT_NAME })
  return { state, startedPostgres: postmaster === null }
}

/** Stops PostgreSQL of the local setup (the caller stops the server first). */
export async function localStopPostgres(ctx: AppContext, state: LocalState): Promise<boolean> {
  if (postmasterPid(state.pgDataDir) === null) return false
  await runPgTool(postgresInstallation(ctx), 'pg_ctl', ['-D', state.pgDataDir, '-m', 'fast', '-w', '-t', String(PG_CTL_WAIT_S), 'stop'], {
    asPostgresUser: true,
    timeoutMs: PG_CTL_TIMEOUT_MS,
  })
  return true
}

export function requireLocalState(ctx: AppContext): LocalState {
  const s = readLocalState(ctx)
  if (!s) throw new UsageError('LOCAL_NOT_STARTED', `nothing was started in ${ctx.config.workdir}`, { hint: 'Start it with `pageserver local start`.' })
  return s
}
