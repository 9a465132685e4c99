/**
 * The local PostgreSQL 15 installation: where its binaries are and how to run them.
 *
 * PostgreSQL refuses to run as root, so when we are root its server-side tools (initdb, pg_ctl, postgres)
 * run as the `postgres` user through `runuser`; clients (psql, pgbench, pg_waldump) run as we are.
 * This module and walredo/ are the only places in core that start processes.
 *
 * Binary lookup: an explicit directory (config `pg_distrib_dir`, Neon layout `<dir>/v15/bin` or a plain
 * bin directory) is the only place looked at when set, and so is `PGBIN` when set (a setting that names the
 * wrong place is an error, never a silent fall-back to another installation); with neither, Debian's
 * `/usr/lib/postgresql/15/bin`, then `pg_config --bindir`.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { InterruptedError, NotFoundError, TimeoutError, UnavailableError } from '../lib/errors.js'

export const PG_MAJOR_VERSION = 15

/** Upper bound on captured output of one tool run, so a runaway tool cannot exhaust memory. */
const TOOL_OUTPUT_MAX_BYTES = 256 * 1024 * 1024
/** How much of a failed tool's stderr its error keeps in `details.stderr` (the end of it, where the cause is). */
const TOOL_STDERR_DETAIL_MAX_CHARS = 4096

export interface PgInstallation {
  readonly binDir: string
  /** e.g. "15.18" */
  readonly version: string
}

const cache = new Map<string, PgInstallation>()

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

/** Where to look, and what told us to (for the error when nothing there is PostgreSQL 15). */
function candidates(explicitDir: string | undefined, env: NodeJS.ProcessEnv): { dirs: string[]; setBy: 'pg_distrib_dir' | 'PGBIN' | null } {
  if (explicitDir) return { dirs: [join(explicitDir, `v${PG_MAJOR_VERSION}`, 'bin'), join(explicitDir, 'bin'), explicitDir], setBy: 'pg_distrib_dir' }
  if (env.PGBIN) return { dirs: [env.PGBIN], setBy: 'PGBIN' }
  const dirs = [`/usr/lib/postgresql/${PG_MAJOR_VERSION}/bin`]
  const r = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' })
  const configured = r.status === 0 ? r.stdout.trim() : ''
  if (configured !== '' && !dirs.includes(configured)) dirs.push(configured)
  return { dirs, setBy: null }
}

/**
 * Finds a PostgreSQL 15 installation. `env` is passed in (core never reads process.env itself);
 * the CLI passes the process environment.
 */
export function findPostgres(explicitDir?: string, env: NodeJS.ProcessEnv = {}): PgInstallation {
  const key = `${explicitDir ?? ''}|${env.PGBIN ?? ''}`
  const hit = cache.get(key)
  if (hit) return hit
  const { dirs, setBy } = candidates(explicitDir, env)
  /** Installations of another major version found on the way ("16.4 in /x/bin"). */
  const otherVersions: string[] = []
  for (const dir of dirs) {
    const postgres = join(dir, 'postgres')
    if (!existsSync(postgres)) continue
    const r = spawnSync(postgres, ['--version'], { encoding: 'utf8' })
    const m = /\(PostgreSQL\) (\d+)(?:\.(\d+))?/.exec(r.stdout ?? '')
    if (m === null) continue
    if (Number(m[1]) !== PG_MAJOR_VERSION) {
      otherVersions.push(`${m[1]}${m[2] ? `.${m[2]}` : ''} in ${dir}`)
      continue
    }
    const inst = { binDir: dir, version: m[2] ? `${m[1]}.${m[2]}` : m[1]! }
    cache.set(key, inst)
    return inst
  }
  const found = otherVersions.length > 0 ? `; found PostgreSQL ${otherVersions.join(', ')}` : ''
  if (setBy === 'pg_distrib_dir') {
    throw new NotFoundError('POSTGRES_NOT_FOUND', `PostgreSQL ${PG_MAJOR_VERSION} was not found where pg_distrib_dir points (looked in ${dirs.join(', ')}${found})`, {
      hint: `Set pg_distrib_dir to a PostgreSQL ${PG_MAJOR_VERSION} installation (its bin directory, or Neon's layout with v${PG_MAJOR_VERSION}/bin), or remove it to use the installed PostgreSQL ${PG_MAJOR_VERSION}.`,
    })
  }
  if (setBy === 'PGBIN') {
    throw new NotFoundError('POSTGRES_NOT_FOUND', `PostgreSQL ${PG_MAJOR_VERSION} was not found in PGBIN (${dirs[0]}${found})`, {
      hint: `Set PGBIN to the bin directory of a PostgreSQL ${PG_MAJOR_VERSION} installation, or unset it to use the installed one.`,
    })
  }
  throw new NotFoundError('POSTGRES_NOT_FOUND', `PostgreSQL ${PG_MAJOR_VERSION} was not found (looked in ${dirs.join(', ')}${found})`, {
    hint: `Install it (apt-get install -y postgresql-${PG_MAJOR_VERSION}), or set pg_distrib_dir in pageserver.toml, or PGBIN.`,
  })
}

export interface RunOptions {
  /** Run as the `postgres` OS user when we are root (server-side tools). */
  asPostgresUser?: boolean
  cwd?: string
  env?: NodeJS.ProcessEnv
  input?: string | Buffer
  timeoutMs?: number
  /** Accept these exit codes without throwing (default: only 0). */
  okCodes?: number[]
  /**
   * Stops the tool (SIGTERM, which `runuser` passes on; initdb then removes what it wrote) and rejects with
   * InterruptedError once it has exited: a command interrupted while a tool runs leaves no tool running.
   */
  signal?: AbortSignal
}

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs a PostgreSQL tool to completion, capturing its output; throws UnavailableError on failure. */
export function runPgTool(inst: PgInstallation, tool: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const bin = join(inst.binDir, tool)
  const asPg = opts.asPostgresUser === true && isRoot()
  const cmd = asPg ? 'runuser' : bin
  const argv = asPg ? ['-u', 'postgres', '--', bin, ...args] : args
  const timeoutMs = opts.timeoutMs ?? 120_000
  if (opts.signal?.aborted) return Promise.reject(new InterruptedError('INTERRUPTED', `${tool} was not started: interrupted`, { hint: 'The operation was stopped on request.' }))
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, {
      cwd: opts.cwd,
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let size = 0
    const collect = (sink: Buffer[]) => (b: Buffer) => {
      size += b.length
      if (size <= TOOL_OUTPUT_MAX_BYTES) sink.push(b)
    }
    child.stdout.on('data', collect(out))
    child.stderr.on('data', collect(err))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
    }, timeoutMs)
    let timedOut = false
    timer.unref()
    const onAbort = (): void => {
      child.kill('SIGTERM')
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    child.on('error', (e) => {
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      reject(new UnavailableError('PG_TOOL_FAILED', `could not run ${tool}: ${e.message}`, { cause: e }))
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      timedOut = signal === 'SIGKILL'
      const result = { code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }
      if (opts.signal?.aborted) {
        reject(new InterruptedError('INTERRUPTED', `${tool} was interrupted`, { hint: 'The operation was stopped on request.' }))
      } else if (timedOut) {
        reject(new TimeoutError('PG_TOOL_TIMEOUT', `${tool} did not finish within ${timeoutMs} ms`))
      } else if (result.code === 0 || opts.okCodes?.includes(result.code)) {
        resolve(result)
      } else {
        const detail = (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | ')
        reject(
          new UnavailableError('PG_TOOL_FAILED', `${tool} ${args.join(' ')} failed with exit code ${result.code}: ${detail}`, {
            // The whole of stderr's end, for callers that explain the failure (pg_ctl's own complaint).
            details: { tool, code: result.code, stderr: result.stderr.slice(-TOOL_STDERR_DETAIL_MAX_CHARS) },
          }),
        )
      }
    })
    // A tool that exits without reading its input (it failed early) closes the pipe: EPIPE on our side is
    // not the failure to report (its exit code and stderr are), and unhandled it would crash the process.
    child.stdin.on('error', () => undefined)
    if (opts.input !== undefined) child.stdin.end(opts.input)
    else child.stdin.end()
  })
}
