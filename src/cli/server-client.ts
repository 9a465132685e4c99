/**
 * Talking to a running `pageserver serve` of the same workdir. The server records its addresses in the
 * workdir lock file; commands that change the workdir go through its HTTP management API instead of
 * failing on the lock, so a script can create tenants, branch and checkpoint whether or not a server runs.
 *
 * Deadlines. A server can accept connections and never answer (stopped with SIGSTOP, stuck): the kernel
 * completes the TCP handshake for it, so only a deadline notices. Each request has one, covering the
 * response body too, and runs out as TimeoutError SERVER_TIMEOUT (exit 7):
 *   - reads (GET): MANAGEMENT_READ_TIMEOUT_MS, 30 s; they answer from memory and a few small files;
 *   - other requests: MANAGEMENT_MUTATION_TIMEOUT_MS, 10 min; bootstrap runs initdb, checkpoint and the
 *     deletes wait for flushes of up to checkpoint_distance each;
 *   - none (`timeoutMs: null`) for `timeline import`, which copies a base backup of the whole database
 *     (hours for a large one), and `timeline sync`, which waits for WAL (bounded on the server by
 *     wait_lsn_timeout); a signal interrupts them.
 * A request whose deadline is longer than the read deadline first asks GET /v1/status with the read
 * deadline, so a hung server is reported within 30 s whatever the command.
 */
import { ConflictError, errorOfKind, EXIT_CODES, InterruptedError, NotFoundError, PageserverError, TimeoutError, UnavailableError, UsageError, type ErrorKind } from '../core/lib/errors.js'
import { formatHostPort, splitHostPort } from '../core/lib/host-port.js'
import { liveLockHolder } from '../core/storage/workdir-lock.js'

/** Deadline of a read, and of the liveness probe before a longer request. */
export const MANAGEMENT_READ_TIMEOUT_MS = 30_000
/** Deadline of a mutation (bootstrap runs initdb: allow minutes). */
export const MANAGEMENT_MUTATION_TIMEOUT_MS = 10 * 60_000

/** The hint for a request the server refused as unauthenticated (the page service's wording, for this API). */
const NO_TOKEN_HINT = 'Pass a token signed for this tenant (NEON_AUTH_TOKEN), or one with scope "pageserverapi" for server-wide requests.'
const BAD_TOKEN_HINT = 'Set NEON_AUTH_TOKEN to a token signed by a key the page server trusts (this one is not: wrong key, expired, or not a JWT).'

export interface RunningServer {
  pid: number
  /** The server's process start identity from the lock (storage/process-identity.ts); absent from older locks. */
  processStart?: string
  /** "host:port", "[v6addr]:port" */
  httpAddr: string
  pgAddr: string | undefined
}

export function runningServer(workdir: string): RunningServer | null {
  const h = liveLockHolder(workdir)
  if (!h || h.command !== 'serve' || !h.httpAddr) return null
  return { pid: h.pid, ...(h.processStart === undefined ? {} : { processStart: h.processStart }), httpAddr: recordedAddress(h.httpAddr), pgAddr: h.pgAddr === undefined ? undefined : recordedAddress(h.pgAddr) }
}

/**
 * The `serve` holding the workdir lock, whether or not it listens yet (its addresses are written once it does,
 * and a full disk can keep them out): for stopping it, which needs only the process.
 */
export function servingProcess(workdir: string): { pid: number; processStart: string | null } | null {
  const h = liveLockHolder(workdir)
  return h !== null && h.command === 'serve' ? { pid: h.pid, processStart: h.processStart ?? null } : null
}

/**
 * An address from the lock file in host:port form. Servers before IPv6 brackets recorded "::1:44191"; the
 * port is what follows the last colon there (Node printed `${host}:${port}`), so it is read as [::1]:44191.
 */
export function recordedAddress(text: string): string {
  if (splitHostPort(text) !== null) return text.trim()
  const m = /^([0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[A-Za-z0-9_.-]+)?):(\d{1,5})$/.exec(text.trim())
  return m ? formatHostPort(m[1]!, Number(m[2])) : text
}

export interface ManagementRequestOptions {
  /** Deadline of the whole request, response body included; null for none. Default: by method (see above). */
  timeoutMs?: number | null
  /** Aborting it ends the request with InterruptedError (exit 130). */
  signal?: AbortSignal
}

export interface ManagementClientOptions {
  /** The read deadline (and the probe's); tests shorten it. */
  readTimeoutMs?: number
}

export class ManagementClient {
  private readonly readTimeoutMs: number

  constructor(
    readonly server: RunningServer,
    private readonly token: string | undefined,
    options: ManagementClientOptions = {},
  ) {
    this.readTimeoutMs = options.readTimeoutMs ?? MANAGEMENT_READ_TIMEOUT_MS
  }

  async request<T>(method: string, path: string, body?: unknown, options: ManagementRequestOptions = {}): Promise<T> {
    const timeoutMs = options.timeoutMs !== undefined ? options.timeoutMs : method === 'GET' ? this.readTimeoutMs : MANAGEMENT_MUTATION_TIMEOUT_MS
    if (timeoutMs === null || timeoutMs > this.readTimeoutMs) {
      // Is anyone there? /v1/status is open and answers at once from a healthy server.
      await this.exchange('GET', '/v1/status', undefined, this.readTimeoutMs, options.signal)
    }
    return (await this.exchange(method, path, body, timeoutMs, options.signal)) as T
  }

  /** One request and its whole response; typed errors for every way it can fail. */
  private async exchange(method: string, path: string, body: unknown, timeoutMs: number | null, signal: AbortSignal | undefined): Promise<unknown> {
    const deadline = timeoutMs === null ? null : AbortSignal.timeout(timeoutMs)
    const signals = [deadline, signal].filter((s) => s !== null && s !== undefined)
    let status: number
    let text: string
    try {
      const res = await fetch(`http://${this.server.httpAddr}${path}`, {
        method,
        headers: { 'content-type': 'application/json', ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        ...(signals.length === 0 ? {} : { signal: AbortSignal.any(signals) }),
      })
      status = res.status
      text = await res.text()
    } catch (e) {
      if (signal?.aborted) throw new InterruptedError('INTERRUPTED', `${method} ${path} to the page server was interrupted`, { cause: e })
      if (deadline?.aborted) {
        throw new TimeoutError('SERVER_TIMEOUT', `the page server at ${this.server.httpAddr} (pid ${this.server.pid}) did not answer ${method} ${path} within ${timeoutMs! / 1000} s`, {
          hint: `It accepts connections but does not respond: it may be stopped (SIGSTOP), stuck or overloaded. Check its log, or stop it (kill ${this.server.pid}) to work offline.`,
          cause: e,
        })
      }
      throw new UnavailableError('SERVER_UNREACHABLE', `cannot reach the running page server at ${this.server.httpAddr} (pid ${this.server.pid}): ${e instanceof Error ? e.message : String(e)}`, {
        hint: 'Check that `pageserver serve` is healthy, or stop it to work offline.',
        cause: e,
      })
    }
    const json = parseJson(text)
    if (status >= 200 && status < 300) {
      if (json === NOT_JSON) throw new PageserverError('internal', 'SERVER_BAD_RESPONSE', `the page server answered ${method} ${path} with a body that is not JSON`)
      return json
    }
    const err = (json !== NOT_JSON && typeof json === 'object' && json !== null ? json : {}) as { msg?: string; code?: string; hint?: string | null; kind?: unknown }
    const msg = err.msg ?? `HTTP ${status}`
    const opts = { hint: err.hint ?? undefined }
    const code = err.code ?? `HTTP_${status}`
    // Our server names the error's kind: the same error, and exit code, as the command gives offline.
    if (status !== 401 && typeof err.kind === 'string' && err.kind !== 'internal' && Object.hasOwn(EXIT_CODES, err.kind)) {
      throw errorOfKind(err.kind as ErrorKind, code, msg, opts)
    }
    switch (status) {
      case 401:
        // The server cannot know where the CLI takes its token from; we do.
        throw new UsageError(code, msg, { hint: this.token ? BAD_TOKEN_HINT : NO_TOKEN_HINT })
      case 400:
      case 403:
      case 413:
        throw new UsageError(code, msg, opts)
      case 404:
        throw new NotFoundError(code, msg, opts)
      case 409:
        throw new ConflictError(code, msg, opts)
      case 408:
        throw new TimeoutError(code, msg, opts)
      case 503:
        throw new UnavailableError(code, msg, opts)
      default:
        throw new PageserverError('internal', code, `the page server failed: ${msg}`, opts)
    }
  }
}

const NOT_JSON = Symbol('not JSON')

/** The body as JSON: undefined when empty, NOT_JSON when it does not parse (a proxy's HTML error page). */
function parseJson(text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    return NOT_JSON
  }
}
