/**
 * `pageserver local start|stop`: the whole product on embedded defaults for a newcomer.
 *
 * start: a workdir (created if needed), a tenant and a timeline bootstrapped with the installed stock
 * PostgreSQL 15, exported at its last LSN into a data directory, a PostgreSQL started on it as the primary of
 * the timeline (replication slot and settings prepared), recorded as the timeline's WAL source. The command
 * layer then starts `pageserver serve` in the background, which streams that PostgreSQL's WAL.
 * stop: stops what start started (the server, then PostgreSQL), keeping every file for the next start.
 *
 * State lives in `<workdir>/local/state.json`: ids, the data directory, ports, pids. A second start while
 * everything runs reports it and changes nothing.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync, chmodSync, chownSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { join, resolve } from 'node:path'
import { ConflictError, UsageError } from '../lib/errors.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../model/ids.js'
import { initWorkdir } from '../config/index.js'
import { isRoot, runPgTool } from '../postgres/install.js'
import { postgresCanAccess } from '../postgres/access.js'
import { lookupOsUser } from '../storage/os-user.js'
import { exportTimeline } from './export.js'
import { bootstrapTimeline, createTenant, listTenants, listTimelines } from './timelines.js'
import { setTimelineWalSource } from './timelines-source.js'
import { postgresInstallation, type AppContext } from './context.js'

export const LOCAL_DIR = 'local'
const STATE_FILE = 'state.json'
const DEFAULT_PG_PORT = 55432

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
  if (pid === null || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM'
  }
}

/** The postmaster pid of a data directory, if it runs. */
export function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
    return pidAlive(pid) ? pid : null
  } catch {
    return null
  }
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

export interface LocalPrepareOptions {
  pgPort?: number
  onProgress?: (message: string) => void
}

/**
 * Everything before the server starts: workdir, tenant, timeline, data directory, PostgreSQL running, WAL
 * source recorded. Returns the state (the caller starts `serve` and records its pid).
 */
export async function localPrepare(ctx: AppContext, o: LocalPrepareOptions = {}): Promise<LocalState> {
  const say = o.onProgress ?? (() => {})
  const existing = readLocalState(ctx)
  if (existing && pidAlive(existing.servePid) && postmasterPid(existing.pgDataDir) !== null) {
    throw new ConflictError('LOCAL_ALREADY_RUNNING', `the local setup already runs (server pid ${existing.servePid}, PostgreSQL on port ${existing.pgPort})`, {
      hint: 'Connect with the printed psql command, or stop it with `pageserver local stop`.',
    })
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
    tenantId = tenants.length > 0 ? parseTenantId(tenants[0]!.tenantId) : parseTenantId((await createTenant(ctx)).tenantId)
    const tls = await listTimelines(ctx, tenantId)
    const root = tls.find((t) => t.ancestorTimelineId === null && t.walSource === null) ?? tls[0]
    if (root) {
      timelineId = parseTimelineId(root.timelineId)
    } else {
      say('bootstrapping a PostgreSQL 15 cluster (initdb)')
      timelineId = parseTimelineId((await bootstrapTimeline(ctx, { tenantId, onProgress: say })).timelineId)
    }
  }
  const pgDataDir = existing?.pgDataDir ?? chooseDataDir(ctx, timelineId)
  const pgSocketDir = join(pgDataDir, '..')
  const pgPort = existing?.pgPort ?? o.pgPort ?? DEFAULT_PG_PORT
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
    await exportTimeline(ctx, { tenantId, timelineId, dir: pgDataDir })
    appendFileSync(
      join(pgDataDir, 'postgresql.conf'),
      [
        '',
        '# pageserver local start: a primary whose WAL the page server streams',
        `port = ${pgPort}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${pgSocketDir}'`,
        'wal_level = replica',
        'max_wal_senders = 10',
        'max_replication_slots = 10',
        '',
      ].join('\n'),
    )
  }
  if (postmasterPid(pgDataDir) === null) {
    say(`starting PostgreSQL on port ${pgPort}`)
    await runPgTool(inst, 'pg_ctl', ['-D', pgDataDir, '-l', pgLogFile, '-w', '-t', '60', 'start'], { asPostgresUser: true, timeoutMs: 90_000 })
  }
  const connString = `host=127.0.0.1 port=${pgPort} user=postgres dbname=postgres`
  say('recording PostgreSQL as the WAL source of the timeline')
  await setTimelineWalSource(ctx, { tenantId, timelineId, connString, slotName: 'pageserver_local' })
  const state: LocalState = {
    tenantId,
    timelineId,
    pgDataDir,
    pgPort,
    pgLogFile,
    pgSocketDir,
    servePid: null,
    serveLogFile: join(localDir(ctx), 'pageserver.log'),
    pgAddr: null,
    httpAddr: null,
  }
  writeLocalState(ctx, state)
  return state
}

/** Stops PostgreSQL of the local setup (the caller stops the server first). */
export async function localStopPostgres(ctx: AppContext, state: LocalState): Promise<boolean> {
  if (postmasterPid(state.pgDataDir) === null) return false
  await runPgTool(postgresInstallation(ctx), 'pg_ctl', ['-D', state.pgDataDir, '-m', 'fast', '-w', '-t', '60', 'stop'], { asPostgresUser: true, timeoutMs: 90_000 })
  return true
}

export function requireLocalState(ctx: AppContext): LocalState {
  const s = readLocalState(ctx)
  if (!s) throw new UsageError('LOCAL_NOT_STARTED', `nothing was started in ${ctx.config.workdir}`, { hint: 'Start it with `pageserver local start`.' })
  return s
}
