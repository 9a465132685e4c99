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
 * - start only ever uses its own timeline: the one named in state.json, or, the first time, a root timeline
 *   without a WAL source that loads (e.g. made by `timeline create`; a broken one is passed over), else one it bootstraps (in a tenant without
 *   timelines, else in a tenant it creates). A timeline that streams from another primary (`timeline import`,
 *   `timeline source`) is never taken over: exporting it and re-pointing its WAL source at a local copy would
 *   silently cut it off from its primary and leave the primary's slot keeping WAL for ever. Such timelines are
 *   left alone (the page server streams them as it would anyway); if state.json names one, start refuses.
 *   "Its own source" is the shape start records: slot LOCAL_SLOT_NAME, `host=127.0.0.1 port=<n> user=postgres
 *   dbname=postgres`.
 * - The data directory appears whole or not at all: the export writes `<dir>.partial` and renames it into
 *   place once complete, so an interrupted first start (Ctrl-C, SIGTERM, kill -9) leaves only a `.partial`
 *   directory that the next start removes and writes again. A data directory without global/pg_control
 *   (left by versions that exported in place) cannot start, and is exported again too.
 * - While a `serve` holds the workdir, every change goes through it (`LocalServerOps`, the management API the
 *   command layer provides): the workdir lock forbids offline writers then, and the server must learn of a new
 *   WAL source at once. Core does not talk HTTP itself (the CLI owns the client), hence the interface.
 * - The port lives in two places that must agree: `state.json` and the managed section at the end of the data
 *   directory's postgresql.conf. While PostgreSQL is stopped, each start rewrites the section, so a later
 *   `--pg-port` takes effect; while it runs, its postmaster.pid says the port, and a different `--pg-port` is a
 *   conflict rather than being ignored.
 * - stop stops only what start started: a `serve` start adopted (the user started it) is left running. State
 *   says which (`serveStartedByLocal`, with the server's pid and process start identity).
 *
 * State lives in `<workdir>/local/state.json`: ids, the data directory, ports, pids. It is written before
 * PostgreSQL starts, so a failed first start (port taken) is retried on the same data directory.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, chmodSync, chownSync, renameSync, rmSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { basename, dirname, join, resolve } from 'node:path'
import { ConflictError, errorOfKind, InterruptedError, messageOf, PageserverError, UnavailableError, UsageError } from '../lib/errors.js'
import { shellWord } from '../lib/shell-word.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../model/ids.js'
import { initWorkdir } from '../config/index.js'
import { isRoot } from '../postgres/install.js'
import { postgresCanAccess } from '../postgres/access.js'
import { fsyncDir, writeFileDurablySync } from '../storage/durable-file.js'
import { lookupOsUser } from '../storage/os-user.js'
import { liveLockHolder } from '../storage/workdir-lock.js'
import { exportTimeline } from './export.js'
import { runningPostmaster, startLocalPostgres, stopLocalPostgres } from './local-postgres.js'
import { bootstrapTimeline, createTenant, listTenants, listTimelines, type ListedTimeline, type TimelineInfo } from './timelines.js'
import { setTimelineWalSource } from './timelines-source.js'
import { resolvedLocalPaths, storedLocalPaths } from './local-state-paths.js'
import { postgresInstallation, withRepository, type AppContext } from './context.js'

export { postmasterPid, runningPostmaster, stopLocalPostgres } from './local-postgres.js'

export const LOCAL_DIR = 'local'
const STATE_FILE = 'state.json'
export const DEFAULT_PG_PORT = 55432
/** The workdir when neither -D nor PAGESERVER_WORKDIR says otherwise (BaseCommand's default). */
const DEFAULT_WORKDIR = '.neon'
/** The replication slot the local PostgreSQL keeps for the page server. */
const LOCAL_SLOT_NAME = 'pageserver_local'
/** The connection string start records as the WAL source: the local PostgreSQL on some port. */
const LOCAL_CONN_STRING_RE = /^host=127\.0\.0\.1 port=\d{1,5} user=postgres dbname=postgres$/
/** The name chooseDataDir gives a data directory: `pgdata-` and the first 12 hex digits of the timeline id. */
const DATA_DIR_NAME_RE = /^pgdata-[0-9a-f]{12}$/
/** Suffix of the directory an export writes before it is renamed into place. */
const PARTIAL_SUFFIX = '.partial'

export interface LocalState {
  tenantId: string
  timelineId: string
  pgDataDir: string
  pgPort: number
  pgLogFile: string
  pgSocketDir: string
  /** The page server last seen serving the workdir (started by local start or adopted), or null. */
  servePid: number | null
  /** Its process start identity (storage/process-identity.ts); absent in older state files. */
  serveProcessStart?: string | null
  /** Whether local start started that server (local stop stops only then); absent in older files, read as true. */
  serveStartedByLocal?: boolean
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
  /** The server's process start identity, from the workdir lock; null if the lock has none. */
  processStart: string | null
  pgAddr: string | null
  httpAddr: string
  createTenant(): Promise<TenantId>
  bootstrapTimeline(tenantId: TenantId): Promise<TimelineId>
  /** Writes a full backup of the timeline at its last LSN from the server (it holds WAL not yet flushed). */
  exportTimeline(o: { tenantId: TenantId; timelineId: TimelineId; dir: string; signal?: AbortSignal }): Promise<void>
  setWalSource(tenantId: TenantId, timelineId: TimelineId, src: { connString: string; slotName: string }): Promise<void>
  /** Whether the server failed to load the timeline (it is listed Broken: a damaged layer file, say). */
  timelineBroken(tenantId: TenantId, timelineId: TimelineId): Promise<boolean>
}

/** Whether the data directory of the local PostgreSQL lies outside the workdir (see chooseDataDir). */
export function dataDirOutsideWorkdir(ctx: AppContext, pgDataDir: string): boolean {
  const w = resolve(ctx.config.workdir)
  return !resolve(pgDataDir).startsWith(w + '/')
}

/**
 * The directories a branch PostgreSQL started by following local start's hints lives in: `branch-<id>` (and
 * `branch`, as earlier releases named it) beside the local data directory.
 */
export function branchDataDirs(state: Pick<LocalState, 'pgSocketDir'>): string[] {
  try {
    return readdirSync(state.pgSocketDir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && (d.name === 'branch' || d.name.startsWith('branch-')))
      .map((d) => join(state.pgSocketDir, d.name))
  } catch {
    return []
  }
}

export function localDir(ctx: AppContext): string {
  return join(ctx.config.workdir, LOCAL_DIR)
}

/** `pageserver local <sub>` as a user runs it on this workdir: with `-D <workdir>` unless it is the default. */
export function localCommand(ctx: AppContext, sub: 'start' | 'stop'): string {
  const w = ctx.config.workdir
  return `${ctx.cliName ?? 'pageserver'} local ${sub}${resolve(w) === resolve(DEFAULT_WORKDIR) ? '' : ` -D ${shellWord(w)}`}`
}

export function readLocalState(ctx: AppContext): LocalState | null {
  const p = join(localDir(ctx), STATE_FILE)
  if (!existsSync(p)) return null
  let s: unknown
  try {
    s = JSON.parse(readFileSync(p, 'utf8'))
  } catch (err) {
    throw localStateDamaged(p, messageOf(err))
  }
  const o = s as Partial<LocalState> | null
  if (o === null || typeof o !== 'object' || typeof o.tenantId !== 'string' || typeof o.timelineId !== 'string' || typeof o.pgDataDir !== 'string' || typeof o.pgPort !== 'number') {
    throw localStateDamaged(p, 'it lacks the tenant, timeline, data directory or port')
  }
  return resolvedLocalPaths(ctx.config.workdir, p, o as LocalState)
}

function localStateDamaged(path: string, why: string): PageserverError {
  return errorOfKind('corruption', 'LOCAL_STATE_DAMAGED', `${path} cannot be read: ${why}`, {
    hint: `It records what local start set up. Move it aside and run local start again, which sets up a new tenant and timeline; first stop by hand any PostgreSQL the old setup still runs (its data directory is named in the file, usually under ${dirname(path)}).`,
  })
}

/** Atomically and durably: a crash leaves the previous state or this one, never a torn file. */
export function writeLocalState(ctx: AppContext, s: LocalState): void {
  mkdirSync(localDir(ctx), { recursive: true })
  writeFileDurablySync(join(localDir(ctx), STATE_FILE), Buffer.from(JSON.stringify(storedLocalPaths(ctx.config.workdir, s), null, 2) + '\n'), { noSync: ctx.config.noSync })
}

/** Whether `server` (from the workdir lock) is the one local start started, as state.json records it. */
export function serverStartedByLocal(state: LocalState, server: { pid: number; processStart?: string | null | undefined }): boolean {
  if (state.serveStartedByLocal === false || state.servePid !== server.pid) return false
  // A state file from before identities were recorded, or a lock without one: the pid is all there is.
  const recorded = state.serveProcessStart ?? null
  const now = server.processStart ?? null
  return recorded === null || now === null || recorded === now
}

/** Whether a timeline's WAL source is the local PostgreSQL as start records it (see the header). */
function isLocalWalSource(src: TimelineInfo['walSource']): boolean {
  return src === null || (src.slotName === LOCAL_SLOT_NAME && LOCAL_CONN_STRING_RE.test(src.connString))
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

/** A --pg-port different from the one PostgreSQL runs on is refused, not ignored: it cannot take effect now. */
function assertPortUnchanged(ctx: AppContext, runningPort: number, askedPort: number | undefined): void {
  if (askedPort === undefined || askedPort === runningPort) return
  throw new ConflictError('LOCAL_PG_RUNNING_ON_OTHER_PORT', `the local PostgreSQL already runs on port ${runningPort}, not ${askedPort}`, {
    hint: `To move it, stop it first: \`${localCommand(ctx, 'stop')}\`, then \`${localCommand(ctx, 'start')} --pg-port ${askedPort}\`.`,
  })
}

function interrupted(ctx: AppContext): InterruptedError {
  return new InterruptedError('LOCAL_START_INTERRUPTED', 'local start was interrupted', {
    hint: `Run \`${localCommand(ctx, 'start')}\` again: it finishes what is missing (an interrupted export is written again).`,
  })
}

function throwIfInterrupted(ctx: AppContext, signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw interrupted(ctx)
}

export interface LocalPrepareOptions {
  /** A port asked for on this start; default: the one in state.json, else DEFAULT_PG_PORT. */
  pgPort?: number | undefined
  /** The running `serve` of the workdir, or null (then changes are made offline under the workdir lock). */
  server: LocalServerOps | null
  onProgress?: (message: string) => void
  /** Stops the start between steps and the export midway (Ctrl-C): InterruptedError. */
  signal?: AbortSignal
}

export interface LocalPrepared {
  state: LocalState
  /** Whether this start started PostgreSQL (false: it already ran). */
  startedPostgres: boolean
  /** Timelines of the workdir that stream from a PostgreSQL other than the local one: left alone. */
  otherSourceTimelines: number
}

type ActiveTimeline = Extract<ListedTimeline, { state: 'Active' }>

/** Every timeline of the workdir with its WAL source (read from the files, like `timeline list` offline). */
async function allTimelines(ctx: AppContext): Promise<{ tenants: Array<{ tenantId: string; timelines: number | null }>; timelines: ActiveTimeline[] }> {
  // A tenant that cannot be read is none of local start's business (`tenant list` says what is wrong with it).
  const tenants = (await listTenants(ctx)).filter((t) => t.error === undefined)
  const timelines: ActiveTimeline[] = []
  for (const t of tenants) {
    for (const tl of await listTimelines(ctx, parseTenantId(t.tenantId))) if (tl.state === 'Active') timelines.push(tl)
  }
  return { tenants, timelines }
}

/**
 * The timeline of a first start (no state.json): a root timeline without a WAL source, else one bootstrapped
 * in a tenant without timelines, else in a new tenant. Never one that streams from another primary.
 */
async function chooseFirstTimeline(
  ctx: AppContext,
  server: LocalServerOps | null,
  say: (m: string) => void,
  signal: AbortSignal | undefined,
): Promise<{ tenantId: TenantId; timelineId: TimelineId }> {
  const { tenants, timelines } = await allTimelines(ctx)
  for (const root of timelines.filter((t) => t.ancestorTimelineId === null && t.walSource === null)) {
    const ids = { tenantId: parseTenantId(root.tenantId), timelineId: parseTimelineId(root.timelineId) }
    // Its metadata reads (Active in the list), but a damaged layer file shows only as it loads: that one is
    // someone's to repair, and taking it failed every start the same way (LAYER_CORRUPT at the export).
    if (await (server ? server.timelineBroken(ids.tenantId, ids.timelineId) : timelineFailsToLoad(ctx, ids))) continue
    return ids
  }
  const empty = tenants.find((t) => t.timelines === 0)
  let tenantId: TenantId
  if (empty) tenantId = parseTenantId(empty.tenantId)
  else tenantId = server ? await server.createTenant() : parseTenantId((await createTenant(ctx)).tenantId)
  say('bootstrapping a PostgreSQL 15 cluster (initdb)')
  // Offline, an interrupt stops initdb (its files removed); a running server finishes its bootstrap.
  const timelineId = server
    ? await server.bootstrapTimeline(tenantId)
    : await bootstrapTimeline(ctx, { tenantId, onProgress: say, signal }).then(
        (t) => parseTimelineId(t.timelineId),
        (e: unknown) => {
          throw signal?.aborted ? interrupted(ctx) : e
        },
      )
  return { tenantId, timelineId }
}

/** Whether a timeline fails to load, read offline (as `serve` loads it: every layer file's header checked). */
async function timelineFailsToLoad(ctx: AppContext, ids: { tenantId: TenantId; timelineId: TimelineId }): Promise<boolean> {
  try {
    await withRepository(ctx, async (repo) => (await repo.tenant(ids.tenantId)).timeline(ids.timelineId))
    return false
  } catch (e) {
    if (e instanceof PageserverError && e.kind !== 'internal') return true
    throw e
  }
}

/**
 * Refuses the timeline named in state.json if it is gone (its tenant or it was deleted: nothing could stream
 * into it, and every start would fail the same way, after starting PostgreSQL) or if its WAL source is another
 * primary (see the header).
 */
async function assertOwnTimeline(ctx: AppContext, state: LocalState, tenantId: TenantId, timelineId: TimelineId): Promise<void> {
  let listed: ListedTimeline[]
  try {
    listed = await listTimelines(ctx, tenantId)
  } catch (e) {
    if (e instanceof PageserverError && e.kind === 'not_found') throw localTimelineGone(ctx, state, `its tenant ${tenantId} does not exist`, e)
    throw e
  }
  const tl = listed.find((t) => t.timelineId === timelineId)
  if (tl === undefined) throw localTimelineGone(ctx, state, `tenant ${tenantId} has no such timeline`)
  if (tl.state !== 'Active' || isLocalWalSource(tl.walSource)) return
  throw new ConflictError(
    'LOCAL_TIMELINE_HAS_OTHER_SOURCE',
    `timeline ${timelineId}, which ${join(localDir(ctx), STATE_FILE)} names, streams WAL from another PostgreSQL (${tl.walSource!.connString}); local start does not take it over`,
    {
      hint:
        'A timeline follows one primary. To run the local setup anyway, use another workdir (-D), or move local/ aside in this one ' +
        'so that local start bootstraps a timeline of its own; `timeline source` points a timeline at the PostgreSQL you choose.',
    },
  )
}

function localTimelineGone(ctx: AppContext, state: LocalState, why: string, cause?: unknown): PageserverError {
  const statePath = join(localDir(ctx), STATE_FILE)
  return errorOfKind('not_found', 'LOCAL_TIMELINE_GONE', `timeline ${state.timelineId}, which ${statePath} names, is gone (${why}): was it deleted?`, {
    hint:
      `Its PostgreSQL has nothing to stream into. If that PostgreSQL still runs, stop it with \`${localCommand(ctx, 'stop')}\`; then move ${statePath} aside ` +
      `and run \`${localCommand(ctx, 'start')}\`, which sets up a timeline of its own (the old data directory, ${state.pgDataDir}, is left as it is).`,
    ...(cause === undefined ? {} : { cause }),
  })
}

/**
 * Makes sure `pgDataDir` holds a complete export of the timeline (see the header): exports into
 * `<dir>.partial`, then renames it into place.
 */
async function ensureDataDir(
  ctx: AppContext,
  server: LocalServerOps | null,
  ids: { tenantId: TenantId; timelineId: TimelineId },
  pgDataDir: string,
  say: (m: string) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (existsSync(join(pgDataDir, 'global', 'pg_control'))) return
  const pgSocketDir = join(pgDataDir, '..')
  if (existsSync(pgDataDir)) {
    // Removed only when it is one of ours by name (state.json could name any directory).
    if (!DATA_DIR_NAME_RE.test(basename(pgDataDir))) {
      throw new UsageError('LOCAL_DATA_DIR_INCOMPLETE', `${pgDataDir} has no global/pg_control: PostgreSQL cannot start from it`, {
        hint: `Move it aside; \`${localCommand(ctx, 'start')}\` then exports the timeline into it again.`,
      })
    }
    say('removing a data directory an interrupted export left incomplete')
    rmSync(pgDataDir, { recursive: true, force: true })
  }
  mkdirSync(pgSocketDir, { recursive: true })
  if (isRoot()) {
    // PostgreSQL runs as the postgres user: its socket, lock and log file go here. Owned by it, not opened
    // to everyone.
    const pgUser = lookupOsUser('postgres')
    if (pgUser !== null) chownSync(pgSocketDir, pgUser.uid, pgUser.gid)
    else chmodSync(pgSocketDir, 0o777)
  }
  const partial = pgDataDir + PARTIAL_SUFFIX
  rmSync(partial, { recursive: true, force: true }) // a start killed during its export (kill -9) left it
  say('exporting the timeline into a data directory')
  const o = { ...ids, dir: partial, ...(signal === undefined ? {} : { signal }) }
  try {
    if (server) await server.exportTimeline(o)
    else await exportTimeline(ctx, o)
  } catch (e) {
    // The export removed what it wrote; its own hint ("run the export again") is not what to do here.
    if (signal?.aborted) throw interrupted(ctx)
    throw e
  }
  renameSync(partial, pgDataDir)
  await fsyncDir(pgSocketDir, { noSync: ctx.config.noSync })
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
  // A server this setup started that holds the workdir but does not listen yet (a start killed while it was
  // starting, run again at once): going on offline would fail on its lock, after writing over its record in
  // state.json (and `local stop` would then leave it running as started by someone else).
  const holder = server === null && existing !== null ? liveLockHolder(ctx.config.workdir) : null
  if (holder !== null && serverStartedByLocal(existing!, holder)) {
    throw new UnavailableError('LOCAL_SERVER_STARTING', `the page server local start started (pid ${holder.pid}) holds the workdir but does not listen yet`, {
      hint: `It is still starting (loading its tenants), or hung: run \`${localCommand(ctx, 'start')}\` again in a moment; \`${localCommand(ctx, 'stop')}\` stops it.`,
    })
  }
  const serverFields = (): Pick<LocalState, 'servePid' | 'serveProcessStart' | 'serveStartedByLocal' | 'pgAddr' | 'httpAddr'> =>
    server === null
      ? { servePid: null, serveProcessStart: null, serveStartedByLocal: false, pgAddr: null, httpAddr: null }
      : {
          servePid: server.pid,
          serveProcessStart: server.processStart,
          serveStartedByLocal: existing !== null && serverStartedByLocal(existing, server),
          pgAddr: server.pgAddr,
          httpAddr: server.httpAddr,
        }
  if (existing && running && server) {
    assertPortUnchanged(ctx, running.port, o.pgPort)
    const state = { ...existing, pgPort: running.port, ...serverFields() }
    return { state, startedPostgres: false, otherSourceTimelines: await countOtherSources(ctx) }
  }
  // Before anything is created: without PostgreSQL 15 nothing below can work (POSTGRES_NOT_FOUND says why).
  postgresInstallation(ctx)
  if (!existsSync(join(ctx.config.workdir, 'pageserver.toml'))) {
    say('creating the workdir')
    await initWorkdir({ workdir: ctx.config.workdir, env: {} })
  }
  throwIfInterrupted(ctx, o.signal)
  let ids: { tenantId: TenantId; timelineId: TimelineId }
  if (existing) {
    ids = { tenantId: parseTenantId(existing.tenantId), timelineId: parseTimelineId(existing.timelineId) }
    await assertOwnTimeline(ctx, existing, ids.tenantId, ids.timelineId)
  } else {
    ids = await chooseFirstTimeline(ctx, server, say, o.signal)
  }
  throwIfInterrupted(ctx, o.signal)
  const pgDataDir = existing?.pgDataDir ?? chooseDataDir(ctx, ids.timelineId)
  const pgSocketDir = join(pgDataDir, '..')
  const pgLogFile = join(pgSocketDir, 'postgresql.log')
  await ensureDataDir(ctx, server, ids, pgDataDir, say, o.signal)
  throwIfInterrupted(ctx, o.signal)
  const postmaster = runningPostmaster(pgDataDir)
  if (postmaster) assertPortUnchanged(ctx, postmaster.port, o.pgPort)
  const pgPort = postmaster?.port ?? o.pgPort ?? existing?.pgPort ?? DEFAULT_PG_PORT
  const state: LocalState = {
    tenantId: ids.tenantId,
    timelineId: ids.timelineId,
    pgDataDir,
    pgPort,
    pgLogFile,
    pgSocketDir,
    ...serverFields(),
    serveLogFile: join(localDir(ctx), 'pageserver.log'),
  }
  // Before PostgreSQL starts: a start that fails from here on is retried on the same data directory and port.
  writeLocalState(ctx, state)
  if (postmaster === null) {
    say(`starting PostgreSQL on port ${pgPort}`)
    try {
      await startLocalPostgres(ctx, { pgDataDir, pgPort, pgLogFile, pgSocketDir }, localCommand(ctx, 'start'))
    } catch (e) {
      // Ctrl-C reaches pg_ctl too (same process group), which then fails; PostgreSQL may be up all the same.
      if (o.signal?.aborted) throw await stopPostgresAfterFailedStart(ctx, state, interrupted(ctx))
      throw e
    }
  }
  // Every start records it (the port may have changed); through the running server, which starts streaming at once.
  const connString = `host=127.0.0.1 port=${pgPort} user=postgres dbname=postgres`
  say('recording PostgreSQL as the WAL source of the timeline')
  try {
    if (server) await server.setWalSource(ids.tenantId, ids.timelineId, { connString, slotName: LOCAL_SLOT_NAME })
    else await setTimelineWalSource(ctx, { ...ids, connString, slotName: LOCAL_SLOT_NAME })
  } catch (e) {
    if (postmaster === null) throw await stopPostgresAfterFailedStart(ctx, state, e)
    throw e
  }
  return { state, startedPostgres: postmaster === null, otherSourceTimelines: await countOtherSources(ctx) }
}

/** How many timelines of the workdir stream from a PostgreSQL other than the local one. */
async function countOtherSources(ctx: AppContext): Promise<number> {
  return (await allTimelines(ctx)).timelines.filter((t) => !isLocalWalSource(t.walSource)).length
}

/**
 * A start failed (`e`) after it had started PostgreSQL: stops it again, so that a failed start leaves nothing of
 * its own running (a PostgreSQL without its page server keeps WAL for the slot until its disk fills). Returns
 * the error to report, saying what became of PostgreSQL.
 */
export async function stopPostgresAfterFailedStart(ctx: AppContext, state: LocalState, e: unknown): Promise<unknown> {
  let note: string
  try {
    if (!(await stopLocalPostgres(ctx, state.pgDataDir))) return e
    note = 'the PostgreSQL this start had started was stopped again'
  } catch (stopError) {
    note = `the PostgreSQL this start had started is left running on port ${state.pgPort} (stopping it failed: ${messageOf(stopError)})`
  }
  if (!(e instanceof PageserverError)) return e
  return errorOfKind(e.kind, e.code, `${e.message}; ${note}`, { ...(e.hint === undefined ? {} : { hint: e.hint }), cause: e })
}

export function requireLocalState(ctx: AppContext): LocalState {
  const s = readLocalState(ctx)
  if (!s) throw new UsageError('LOCAL_NOT_STARTED', `nothing was started in ${ctx.config.workdir}`, { hint: `Start it with \`${localCommand(ctx, 'start')}\`.` })
  return s
}
