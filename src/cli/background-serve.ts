/**
 * The `pageserver serve` that `local start` runs in the background, and its stop by `local stop`.
 *
 * Start: spawned detached with `--json`, stdout and stderr appended to `<workdir>/local/pageserver.log`. It is
 * up once the workdir lock names its pid with an HTTP address. If it exits first, the reason is in the log:
 * with --json a failed start ends with one line `{"error": {code, message, hint}}`, read back from where the
 * log ended before the spawn (older lines are other runs'). A port already in use becomes SERVE_PORT_IN_USE
 * (conflict) naming the setting and the file that keeps it; other failures keep the server's code, with the
 * kind its exit code says. Not up in SERVE_START_TIMEOUT_MS, or interrupted: killed and waited for.
 *
 * Stop: SIGTERM (the server flushes and exits), then SIGKILL after the deadline. Every signal goes to a pid
 * checked to still be the process the lock named (its start identity), never to a pid reused since.
 */
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { ConflictError, EXIT_CODES, errorOfKind, InterruptedError, TimeoutError, UnavailableError, type ErrorKind, type PageserverError } from '../core/lib/errors.js'
import { fileSizeOrZero, textAppendedSince } from '../core/storage/appended-text.js'
import { isSameProcess, processStartId } from '../core/storage/process-identity.js'
import { LOCK_FILE, type LockHolder } from '../core/storage/workdir-lock.js'
import { splitHostPort } from '../core/lib/host-port.js'
import { portBindError } from '../core/app/local-postgres.js'

/** How long to wait for the background server to listen. */
const SERVE_START_TIMEOUT_MS = 60_000
/** How often the start and the stop look at the lock file and the process. */
const POLL_MS = 100
/** How long a SIGKILLed server may take to be gone (it cannot refuse; this bounds a wait on a stuck kernel). */
const SERVE_KILL_WAIT_MS = 5_000
/** How much of the log a failed start reads back (its last lines say why). */
const SERVE_LOG_READ_MAX_BYTES = 64 * 1024

export interface BackgroundServe {
  pid: number
  processStart: string | null
  pgAddr: string | null
  httpAddr: string
}

export interface StartServeOptions {
  workdir: string
  /** bin/run.js of this installation. */
  runJs: string
  logFile: string
  configOverrides: string[]
  signal?: AbortSignal
  /** How to run `local start` on this workdir (with -D when not the default), for hints. */
  startCommand: string
  /**
   * Called as soon as the server is spawned, before it listens, with its pid and start identity: a caller
   * killed (kill -9) while waiting would otherwise leave a running server nobody recorded as its own.
   */
  onSpawn?: (server: { pid: number; processStart: string | null }) => void
}

/** The `{"error": ...}` line a failed `serve --json` wrote to the log after `offset`, if any. */
function errorLoggedSince(path: string, offset: number): { code: string; message: string; hint: string | null } | null {
  for (const line of textAppendedSince(path, offset, SERVE_LOG_READ_MAX_BYTES).split('\n').reverse()) {
    if (!line.startsWith('{"error"')) continue
    try {
      const e = (JSON.parse(line) as { error?: { code?: unknown; message?: unknown; hint?: unknown } }).error
      if (typeof e?.code === 'string' && typeof e.message === 'string') return { code: e.code, message: e.message, hint: typeof e.hint === 'string' ? e.hint : null }
    } catch {
      // a torn line: keep looking
    }
  }
  return null
}

function kindOfExitCode(code: number | null): ErrorKind {
  const kind = (Object.keys(EXIT_CODES) as ErrorKind[]).find((k) => EXIT_CODES[k] === code)
  return kind === undefined || kind === 'internal' ? 'unavailable' : kind
}

/** The settings whose address a listen failure names, by the server's error code (core/lib/host-port.ts). */
const LISTEN_SETTINGS: Readonly<Record<string, string>> = { PAGE_SERVICE_LISTEN_FAILED: 'listen_pg_addr', HTTP_LISTEN_FAILED: 'listen_http_addr' }

function serveFailed(o: StartServeOptions, logged: { code: string; message: string; hint: string | null } | null, exitCode: number | null): PageserverError {
  if (logged === null) {
    return new UnavailableError('SERVE_DID_NOT_START', `the page server exited (code ${exitCode}) before it listened; see ${o.logFile}`, {
      hint: 'The end of that log says why.',
    })
  }
  const setting = LISTEN_SETTINGS[logged.code]
  if (setting !== undefined && logged.message.includes('EADDRINUSE')) {
    return new ConflictError('SERVE_PORT_IN_USE', `the page server did not start: ${logged.message}`, {
      hint:
        `Another process listens there: stop it, or set a free address in ${join(o.workdir, 'pageserver.toml')} ` +
        `(${setting} = "127.0.0.1:<port>"), which later \`local start\`s read; a -c override applies to one run only.`,
    })
  }
  return errorOfKind(kindOfExitCode(exitCode), logged.code, `the page server did not start: ${logged.message}`, { hint: logged.hint ?? `See ${o.logFile}.` })
}

/**
 * Fails with SERVE_PORT_IN_USE, naming every one of listen_pg_addr and listen_http_addr that cannot be bound
 * now, before local start starts anything (the server would report only the first, after PostgreSQL started).
 * Port 0 (any free port) is not probed. Free now is all a probe can say; the server's own bind stays the check.
 */
export async function assertServeAddressesFree(o: { workdir: string; listenPgAddr: string; listenHttpAddr: string }): Promise<void> {
  const busy: Array<{ setting: string; addr: string }> = []
  for (const [setting, addr] of [['listen_pg_addr', o.listenPgAddr], ['listen_http_addr', o.listenHttpAddr]] as const) {
    const hp = splitHostPort(addr)
    if (hp === null || hp.port === 0) continue
    const e = await portBindError(hp.port, hp.host)
    if (e?.code === 'EADDRINUSE') busy.push({ setting, addr })
  }
  if (busy.length === 0) return
  throw new ConflictError('SERVE_PORT_IN_USE', `the page server cannot listen: ${busy.map((b) => `${b.setting} ${b.addr}`).join(' and ')} ${busy.length > 1 ? 'are' : 'is'} already in use`, {
    hint:
      `Another process listens there (another workdir's page server?): stop it, or set free addresses in ${join(o.workdir, 'pageserver.toml')} ` +
      `(${busy.map((b) => `${b.setting} = "127.0.0.1:<port>"`).join(', ')}), which later \`local start\`s read; a -c override applies to one run only.`,
  })
}

/** Starts `serve` in the background and waits until it has taken the workdir lock and listens (see the header). */
export async function startBackgroundServe(o: StartServeOptions): Promise<BackgroundServe> {
  const logOffset = fileSizeOrZero(o.logFile)
  const log = openSync(o.logFile, 'a')
  const args = [o.runJs, 'serve', '--json', '--workdir', o.workdir, ...o.configOverrides.flatMap((c) => ['-c', c])]
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log], env: { ...process.env, PAGESERVER_WORKDIR: o.workdir } })
  let spawnError: Error | null = null
  child.once('error', (e) => (spawnError = e)) // e.g. node not executable
  child.unref()
  closeSync(log)
  if (child.pid !== undefined) o.onSpawn?.({ pid: child.pid, processStart: processStartId(child.pid) })
  const exited = () => spawnError !== null || child.exitCode !== null || child.signalCode !== null
  const lockPath = join(o.workdir, LOCK_FILE)
  const deadline = Date.now() + SERVE_START_TIMEOUT_MS
  while (Date.now() < deadline && !exited() && !o.signal?.aborted) {
    if (child.pid !== undefined && existsSync(lockPath)) {
      let holder: Partial<LockHolder> = {}
      try {
        holder = JSON.parse(readFileSync(lockPath, 'utf8')) as Partial<LockHolder>
      } catch {
        // being replaced (a stale lock taken over, or addresses added): read it again
      }
      if (holder.pid === child.pid && holder.httpAddr) {
        return { pid: child.pid, processStart: holder.processStart ?? null, pgAddr: holder.pgAddr ?? null, httpAddr: holder.httpAddr }
      }
    }
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
  if (exited()) {
    if (spawnError !== null) throw new UnavailableError('SERVE_DID_NOT_START', `could not run the page server: ${(spawnError as Error).message}`)
    throw serveFailed(o, errorLoggedSince(o.logFile, logOffset), child.exitCode)
  }
  // Not listening in time, or interrupted: do not leave a half-started server behind. The child was unref'd
  // (it outlives this process on success): ref it again, or nothing keeps the event loop alive for its exit
  // and the process ends in the middle of this await (exit 13, no message, PostgreSQL left running).
  const gone = new Promise((r) => child.once('exit', r))
  child.ref()
  child.kill('SIGKILL')
  await gone
  if (o.signal?.aborted) {
    throw new InterruptedError('LOCAL_START_INTERRUPTED', 'local start was interrupted while the page server was starting; it was stopped', {
      hint: `Run \`${o.startCommand}\` again.`,
    })
  }
  throw new TimeoutError('SERVE_DID_NOT_START', `the page server did not listen within ${SERVE_START_TIMEOUT_MS / 1000} s; see ${o.logFile}`, {
    hint: 'It was stopped. The end of that log says what it was doing (loading many timelines takes a while).',
  })
}

export interface StopServeOptions {
  /** How long the server gets after SIGTERM to flush and exit before SIGKILL. */
  timeoutMs: number
}

/**
 * Stops a server named by the workdir lock: SIGTERM, then SIGKILL after `timeoutMs`. `killed`: it had to be
 * killed (its unflushed WAL is streamed again from the replication slot at the next start). `gone`: it had
 * already exited (or its pid is another process now) and nothing was signalled.
 */
export async function stopBackgroundServe(server: { pid: number; processStart?: string | null | undefined }, o: StopServeOptions): Promise<{ gone: boolean; killed: boolean }> {
  const alive = () => isSameProcess(server.pid, server.processStart)
  const signal = (s: NodeJS.Signals): boolean => {
    if (!alive()) return false
    try {
      process.kill(server.pid, s)
      return true
    } catch {
      return false // exited between the check and the signal
    }
  }
  if (!signal('SIGTERM')) return { gone: true, killed: false }
  const deadline = Date.now() + o.timeoutMs
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, POLL_MS))
  if (!signal('SIGKILL')) return { gone: false, killed: false }
  const killDeadline = Date.now() + SERVE_KILL_WAIT_MS
  while (alive() && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, POLL_MS))
  return { gone: false, killed: true }
}
