/**
 * The PostgreSQL of `pageserver local start|stop`: is it running, start it, stop it.
 *
 * Invariants:
 * - We only ever signal (through pg_ctl) a postmaster we have checked is one: postmaster.pid names a live
 *   process that is a postgres postmaster of this data directory. PostgreSQL itself takes a postmaster.pid as
 *   stale when kill(pid, 0) fails with ESRCH or EPERM (miscinit.c, CreateLockFile); after a reboot its pid
 *   often belongs to some other process, which answers signal 0 when root asks. So a pid whose command is not
 *   `postgres`, that is a PostgreSQL child process (its title "postgres: ..."), or a postmaster of another data
 *   directory is not ours either. Where /proc does not tell, a live pid is taken as the postmaster.
 * - An error for a failed start quotes only what this attempt wrote to postgresql.log (its size is taken
 *   before pg_ctl runs) and pg_ctl's own stderr: older lines of the log are from other runs and mislead.
 * - The port lives in the managed section at the end of postgresql.conf, rewritten at every start (local.ts).
 */
import { existsSync, readFileSync, realpathSync, statSync, writeFileSync, chownSync, renameSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { ConflictError, PageserverError, UnavailableError, UsageError } from '../lib/errors.js'
import { isRoot, runPgTool } from '../postgres/install.js'
import { fileSizeOrZero, textAppendedSince } from '../storage/appended-text.js'
import { isZombie, processAlive, processName } from '../storage/process-identity.js'
import { postgresInstallation, type AppContext } from './context.js'

/** pg_ctl's own wait (-t) for PostgreSQL to start or stop, and our deadline for pg_ctl itself (a bit longer). */
const PG_CTL_WAIT_S = 60
const PG_CTL_TIMEOUT_MS = 90_000
/** Log lines quoted in the error when PostgreSQL fails to start (the rest is in the log file). */
const PG_LOG_TAIL_LINES_MAX = 3
/** How much of the log a failed start reads back (its own lines are a few hundred bytes; a loop could write more). */
const PG_LOG_READ_MAX_BYTES = 64 * 1024
/** The managed section of postgresql.conf: from BEGIN to END (or to the end of the file, as first releases wrote it). */
const CONF_SECTION_BEGIN = '# pageserver local start: a primary whose WAL the page server streams'
const CONF_SECTION_END = '# end of the pageserver local start section (rewritten by each start; pass --pg-port to change the port)'
/**
 * How long a start waits for a postmaster that exited (kill -9) to be reaped: until its parent (init, after
 * pg_ctl daemonized it) reaps it, PostgreSQL's kill(pid, 0) still finds the pid and refuses to start over its
 * postmaster.pid. Some init processes reap slowly (over a second seen).
 */
const POSTMASTER_REAP_WAIT_MS = 10_000
/** How many ports from the first suggestion a free-port search tries before naming the first one anyway. */
const PORT_SEARCH_MAX = 50

/** What postmaster.pid says (lines 1 and 4, as PostgreSQL 15 writes them), or null when there is none. */
function readPostmasterPid(dataDir: string): { pid: number; port: number } | null {
  try {
    const lines = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')
    const pid = Number(lines[0])
    return Number.isInteger(pid) && pid > 0 ? { pid, port: Number(lines[3]) } : null
  } catch {
    return null
  }
}

/** Whether `pid` is the postmaster of `dataDir`, by the rules in the header. */
function isPostmasterOf(pid: number, dataDir: string): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false // ESRCH: gone; EPERM: another user's process, so not our postgres (as PostgreSQL judges it)
  }
  if (isZombie(pid)) return false // exited, not yet reaped
  const name = processName(pid)
  if (name === null) return true // no /proc: liveness is all we can know
  if (name !== 'postgres' && name !== 'postmaster') return false
  let argv: string[]
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  } catch {
    return true
  }
  // A backend or auxiliary process overwrites its argv with its title: "postgres: checkpointer".
  if (argv[0]!.startsWith('postgres:')) return false
  // pg_ctl starts "<bindir>/postgres -D <dataDir> ..."; started with PGDATA instead there is no -D to compare.
  const d = argv.indexOf('-D')
  if (d < 0 || argv[d + 1] === undefined) return true
  try {
    return realpathSync(argv[d + 1]!) === realpathSync(dataDir)
  } catch {
    return argv[d + 1] === dataDir
  }
}

/** The postmaster of a data directory, if it runs: its pid and the port it listens on. */
export function runningPostmaster(dataDir: string): { pid: number; port: number } | null {
  const p = readPostmasterPid(dataDir)
  return p !== null && isPostmasterOf(p.pid, dataDir) ? p : null
}

/** The postmaster pid of a data directory, if it runs. */
export function postmasterPid(dataDir: string): number | null {
  return runningPostmaster(dataDir)?.pid ?? null
}

/**
 * A postmaster.pid naming a live process that is not this data directory's postmaster (its pid reused, e.g.
 * after a reboot): PostgreSQL refuses to start over it when that process belongs to its own user. Null if
 * there is no such file, or its pid is gone (PostgreSQL then takes it over itself).
 */
function stalePostmasterPid(dataDir: string): { pid: number; name: string | null } | null {
  const p = readPostmasterPid(dataDir)
  if (p === null || !processAlive(p.pid) || isPostmasterOf(p.pid, dataDir)) return null
  return { pid: p.pid, name: processName(p.pid) }
}

/**
 * Waits up to `timeoutMs` while the postmaster.pid of `dataDir` names a zombie (a postmaster that exited and is
 * not reaped yet); whether none is left. True at once when there is no postmaster.pid or its pid is not a zombie.
 */
export async function waitUntilPostmasterReaped(dataDir: string, timeoutMs: number = POSTMASTER_REAP_WAIT_MS): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const p = readPostmasterPid(dataDir)
    if (p === null || !isZombie(p.pid)) return true
    if (Date.now() >= deadline) return false
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Why host:port (default 127.0.0.1) cannot be bound now (EADDRINUSE...), or null if it can. */
export async function portBindError(port: number, host = '127.0.0.1'): Promise<NodeJS.ErrnoException | null> {
  return new Promise<NodeJS.ErrnoException | null>((done) => {
    const probe = createServer()
    probe.once('error', (e) => done(e))
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => done(null)))
  })
}

/**
 * The first port from `first` up that 127.0.0.1 can bind now, skipping `taken`; `first` if none of
 * PORT_SEARCH_MAX is. Free now is all anyone can say: Linux's ephemeral range (32768-60999) holds the
 * outgoing connections of every process, so a port there is free or not from moment to moment.
 */
export async function firstFreePort(first: number, taken: readonly number[] = []): Promise<number> {
  for (let port = first; port < first + PORT_SEARCH_MAX && port <= 65535; port++) {
    if (taken.includes(port)) continue
    if ((await portBindError(port)) === null) return port
  }
  return first
}

/**
 * Fails with PG_PORT_IN_USE unless 127.0.0.1:port can be bound (where the local PostgreSQL listens):
 * pg_ctl would only say "could not start server; examine the log output". `startCommand` is how to run
 * `local start` on this workdir, for the hint.
 */
export async function assertPortFree(port: number, startCommand: string): Promise<void> {
  const error = await portBindError(port)
  if (error === null) return
  if (error.code === 'EADDRINUSE') {
    throw new ConflictError('PG_PORT_IN_USE', `port ${port} on 127.0.0.1 is already in use, so the local PostgreSQL cannot listen on it`, {
      hint: `Pass a free port: \`${startCommand} --pg-port <port>\` (it is remembered for later starts).`,
    })
  }
  throw new UsageError('PG_PORT_UNUSABLE', `cannot listen on 127.0.0.1:${port}: ${error.message}`, { hint: `Pass another port: \`${startCommand} --pg-port <port>\`.` })
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

/** The lines `path` got after it was `offset` bytes long (storage/appended-text.ts), blank ones left out. */
function linesWrittenSince(path: string, offset: number): string[] {
  return textAppendedSince(path, offset, PG_LOG_READ_MAX_BYTES).split('\n').map((l) => l.trim()).filter((l) => l !== '')
}

export interface LocalPostgresPlace {
  pgDataDir: string
  pgPort: number
  pgLogFile: string
  pgSocketDir: string
}

/**
 * Starts the local PostgreSQL on `o.pgPort` (checked free first). A failure is PG_START_FAILED quoting what
 * this attempt logged and what pg_ctl said. `startCommand`: how to run `local start` here, for hints.
 */
export async function startLocalPostgres(ctx: AppContext, o: LocalPostgresPlace, startCommand: string): Promise<void> {
  if (!(await waitUntilPostmasterReaped(o.pgDataDir))) {
    const pid = readPostmasterPid(o.pgDataDir)?.pid
    throw new UnavailableError('PG_PREVIOUS_NOT_REAPED', `the previous PostgreSQL of ${o.pgDataDir} (pid ${pid}) has exited but was not reaped by its parent within ${POSTMASTER_REAP_WAIT_MS / 1000} s; PostgreSQL refuses to start while that pid exists`, {
      hint: `Run \`${startCommand}\` again once pid ${pid} is gone (\`ps -p ${pid}\` shows it as <defunct> until then).`,
    })
  }
  await assertPortFree(o.pgPort, startCommand)
  writeConfSection(o.pgDataDir, o)
  const logOffset = fileSizeOrZero(o.pgLogFile)
  try {
    await runPgTool(postgresInstallation(ctx), 'pg_ctl', ['-D', o.pgDataDir, '-l', o.pgLogFile, '-w', '-t', String(PG_CTL_WAIT_S), 'start'], {
      asPostgresUser: true,
      timeoutMs: PG_CTL_TIMEOUT_MS,
    })
  } catch (e) {
    if (!(e instanceof PageserverError) || e.code !== 'PG_TOOL_FAILED') throw e
    const logged = linesWrittenSince(o.pgLogFile, logOffset).slice(-PG_LOG_TAIL_LINES_MAX)
    // pg_ctl's stderr names failures that happen before the server logs anything ("could not open PID file");
    // its closing "Examine the log output." points at what is quoted already.
    const stderr = String(e.details?.stderr ?? '')
    const pgCtlSaid = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '' && l !== 'Examine the log output.')
    const said = [...logged, ...pgCtlSaid].join(' | ') || e.message
    const stale = stalePostmasterPid(o.pgDataDir)
    const staleHint = stale
      ? ` Its postmaster.pid names pid ${stale.pid}, which is not this PostgreSQL (it is ${stale.name ?? 'another process'}): ` +
        `a file left from before a reboot. If PostgreSQL refuses because of it, remove ${join(o.pgDataDir, 'postmaster.pid')} and start again.`
      : ''
    throw new UnavailableError('PG_START_FAILED', `PostgreSQL did not start on port ${o.pgPort}: ${said}`, {
      hint: `See ${o.pgLogFile}.${staleHint}`,
      cause: e,
    })
  }
}

/**
 * Stops the local PostgreSQL with a fast shutdown if its postmaster runs (never a pid that is not it: see the
 * header). Whether it ran.
 */
export async function stopLocalPostgres(ctx: AppContext, pgDataDir: string): Promise<boolean> {
  if (!existsSync(pgDataDir) || postmasterPid(pgDataDir) === null) return false
  await runPgTool(postgresInstallation(ctx), 'pg_ctl', ['-D', pgDataDir, '-m', 'fast', '-w', '-t', String(PG_CTL_WAIT_S), 'stop'], {
    asPostgresUser: true,
    timeoutMs: PG_CTL_TIMEOUT_MS,
  })
  return true
}
