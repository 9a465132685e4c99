/**
 * Talking to a running `pageserver serve` of the same workdir. The server records its addresses in the
 * workdir lock file; commands that change the workdir go through its HTTP management API instead of
 * failing on the lock, so a script can create tenants, branch and checkpoint whether or not a server runs.
 */
import { ConflictError, NotFoundError, PageserverError, TimeoutError, UnavailableError, UsageError } from '../core/lib/errors.js'
import { liveLockHolder } from '../core/storage/workdir-lock.js'

/** Deadline of one management request (bootstrap runs initdb: allow minutes). */
const MANAGEMENT_REQUEST_TIMEOUT_MS = 10 * 60_000

export interface RunningServer {
  pid: number
  httpAddr: string
  pgAddr: string | undefined
}

export function runningServer(workdir: string): RunningServer | null {
  const h = liveLockHolder(workdir)
  if (!h || h.command !== 'serve' || !h.httpAddr) return null
  return { pid: h.pid, httpAddr: h.httpAddr, pgAddr: h.pgAddr }
}

export class ManagementClient {
  constructor(
    readonly server: RunningServer,
    private readonly token: string | undefined,
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `http://${this.server.httpAddr}${path}`
    let res: Response
    try {
      res = await fetch(url, {
        method,
        headers: { 'content-type': 'application/json', ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(MANAGEMENT_REQUEST_TIMEOUT_MS),
      })
    } catch (e) {
      if ((e as { name?: string }).name === 'TimeoutError') throw new TimeoutError('SERVER_TIMEOUT', `the page server (pid ${this.server.pid}) did not answer ${method} ${path} in time`)
      throw new UnavailableError('SERVER_UNREACHABLE', `cannot reach the running page server at ${this.server.httpAddr} (pid ${this.server.pid}): ${e instanceof Error ? e.message : String(e)}`, {
        hint: 'Check that `pageserver serve` is healthy, or stop it to work offline.',
      })
    }
    const text = await res.text()
    const json = text === '' ? undefined : (JSON.parse(text) as unknown)
    if (res.ok) return json as T
    const err = (json ?? {}) as { msg?: string; code?: string; hint?: string | null }
    const msg = err.msg ?? `HTTP ${res.status}`
    const opts = { hint: err.hint ?? undefined }
    const code = err.code ?? `HTTP_${res.status}`
    switch (res.status) {
      case 400:
      case 401:
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
