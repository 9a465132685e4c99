/**
 * Runs the built CLI (`node bin/run.js`, so `npm run build` must have run) as a child process and collects
 * its exit code and output. Every CLI end-to-end test uses this.
 *
 * The child gets the test's environment minus PAGESERVER_WORKDIR (a developer's or CI's value must not
 * decide where a test writes) and minus PAGESERVER_DEBUG, with NO_COLOR=1, plus `opts.env` (which may set
 * either back; a value of undefined removes a variable). The default cwd is the OS temp directory, never
 * the repository, so a test that forgets -D cannot write `.neon/` into the checkout. A run that outlives
 * `timeoutMs` is killed (SIGKILL) and reported with code null and `timedOut`.
 */
import { spawn } from 'node:child_process'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const CLI_BIN = join(REPO_ROOT, 'bin', 'run.js')

/** Output beyond this is dropped (and `truncated` set), so a runaway command cannot exhaust test memory. */
const CLI_OUTPUT_MAX_BYTES = 64 * 1024 * 1024
const CLI_TIMEOUT_DEFAULT_MS = 60_000

export interface RunCliOptions {
  cwd?: string
  env?: Record<string, string | undefined>
  /** Written to stdin, which is then closed (stdin is always closed, so nothing waits on a terminal). */
  input?: string | Buffer
  timeoutMs?: number
}

export interface CliResult {
  /** Exit code; null when killed by a signal (e.g. on timeout). */
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  /** stdout as the bytes written (for binary output such as `getpage`'s raw page). */
  stdoutBytes: Buffer
  stderr: string
  timedOut: boolean
  truncated: boolean
  /** stdout parsed as JSON; throws with the output shown when it is not JSON. */
  json<T = any>(): T
}

export async function runCli(args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && k !== 'PAGESERVER_WORKDIR' && k !== 'PAGESERVER_DEBUG') env[k] = v
  }
  env.NO_COLOR = '1'
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k]
    else env[k] = v
  }
  const child = spawn(process.execPath, [CLI_BIN, ...args], {
    cwd: opts.cwd ?? tmpdir(),
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const out: Buffer[] = []
  const err: Buffer[] = []
  let sizeBytes = 0
  let truncated = false
  const collect = (sink: Buffer[]) => (chunk: Buffer) => {
    if (sizeBytes + chunk.length > CLI_OUTPUT_MAX_BYTES) {
      truncated = true
      return
    }
    sizeBytes += chunk.length
    sink.push(chunk)
  }
  child.stdout.on('data', collect(out))
  child.stderr.on('data', collect(err))
  child.stdin.on('error', () => {}) // the command may exit before reading its input
  child.stdin.end(opts.input ?? '')

  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, opts.timeoutMs ?? CLI_TIMEOUT_DEFAULT_MS)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (c, s) => resolve([c, s]))
  }).finally(() => clearTimeout(timer))

  const stdoutBytes = Buffer.concat(out)
  const stdout = stdoutBytes.toString('utf8')
  const stderr = Buffer.concat(err).toString('utf8')
  return {
    code,
    signal,
    stdout,
    stdoutBytes,
    stderr,
    timedOut,
    truncated,
    json<T>(): T {
      try {
        return JSON.parse(stdout) as T
      } catch {
        throw new Error(`stdout of pageserver ${args.join(' ')} is not JSON (exit ${code}):\n${stdout}\nstderr:\n${stderr}`)
      }
    },
  }
}

/**
 * A workdir made through the CLI, as a user would: `init` (no_sync), `tenant create`, `timeline create`
 * (stock initdb, imported). Throws with the failing command's stderr.
 */
export async function cliWorkdirWithTimeline(wd: string): Promise<{ tenant: string; timeline: string }> {
  const step = async (args: string[], timeoutMs?: number): Promise<CliResult> => {
    const r = await runCli([...args, '-D', wd, '--json'], timeoutMs === undefined ? {} : { timeoutMs })
    if (r.code !== 0) throw new Error(`pageserver ${args.join(' ')} failed (exit ${r.code}): ${r.stderr}`)
    return r
  }
  await step(['init', '-c', 'no_sync=true'])
  const tenant = (await step(['tenant', 'create'])).json<{ tenantId: string }>().tenantId
  const timeline = (await step(['timeline', 'create', '--tenant', tenant], 120_000)).json<{ timelineId: string }>().timelineId
  return { tenant, timeline }
}
