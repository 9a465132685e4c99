/**
 * A small JSON HTTP server: routing by method and path pattern, bounded request bodies, typed errors mapped
 * to status codes, optional bearer-token authentication. node:http is enough for a dozen routes; a framework
 * would add a dependency tree for no gain here.
 *
 * Errors are `{"msg": "..."}` as Neon's API returns them, with our stable `code`, `hint` and error `kind`
 * beside (the CLI rebuilds the same error, and so exits as it would offline): usage 400, unauthorized 401,
 * forbidden 403, not found 404, conflict 409, timeout 408, unavailable 503, anything else 500. A 405 names the allowed methods (`Allow`); HEAD is answered as GET without the body.
 *
 * Bounds: at most `connectionsMax` connections are open at once, so a flood of connections costs at most that
 * many file descriptors and cannot starve the rest of the process (the page service) of them. When a new one
 * comes at the cap, the oldest connection without a request in progress (one that never finished its headers,
 * or an idle keep-alive) is closed to make room; only when every one has a request in progress is the new one
 * answered 503 at once and closed. So idle sockets, which anyone who can reach the port can open without a token, cannot lock
 * out clients that send requests. Headers must arrive within
 * `headersTimeoutMs`, the whole request within `requestTimeoutMs`. A client that hangs up before its request
 * is in is not a server failure: it is reported through `onClientGone`, never `onError`.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { AddressInfo, Socket } from 'node:net'
import { assert, PageserverError } from '../lib/errors.js'
import { listenOn } from '../lib/host-port.js'

/** Largest request body accepted (management requests are small JSON documents). */
export const HTTP_BODY_BYTES_MAX = 1024 * 1024
/** How long a connection refused at the cap (answered 503) may stay open for its client to read the answer. */
const REFUSED_LINGER_MS = 200
/** At close, how long the 503 answers to requests still in progress get to be written before sockets close. */
const SHUTDOWN_ANSWER_LINGER_MS = 200

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = 'HTTP_ERROR',
    readonly hint?: string,
  ) {
    super(message)
  }
}

export interface RouteContext {
  params: Record<string, string>
  query: URLSearchParams
  /** The parsed JSON body; read after the guard has passed, so a refused request's body is never parsed. */
  body: unknown
  headers: IncomingMessage['headers']
}

export interface RouteResult {
  status?: number
  json?: unknown
  text?: string
  contentType?: string
}

export type Handler = (ctx: RouteContext) => Promise<RouteResult> | RouteResult

interface Route {
  method: string
  pattern: RegExp
  names: string[]
  handler: Handler
  /** Runs before the body is read and the handler runs (authentication); throws HttpError to refuse. */
  guard: ((ctx: RouteContext) => Promise<void> | void) | null
}

const STATUS_BY_KIND: Record<string, number> = {
  usage: 400,
  not_found: 404,
  conflict: 409,
  timeout: 408,
  unavailable: 503,
  corruption: 500,
  unsupported: 400,
  internal: 500,
  interrupted: 503,
}

/** Default for receiving a whole request (see the constructor). */
export const REQUEST_RECEIVE_TIMEOUT_MS = 30_000
/** Default for receiving the request line and headers (see the constructor). */
export const REQUEST_HEADERS_TIMEOUT_MS = 10_000

export interface JsonHttpServerOptions {
  /** Open connections at most; one more, with every open one busy, is answered 503 at once and closed. */
  connectionsMax: number
  /**
   * How long a client may take to send a whole request (headers and body, a small JSON document): a slow or
   * stalled sender is answered 408 and its connection freed, instead of being held for minutes. It bounds
   * receiving only; a handler may run longer (an import takes minutes).
   */
  requestTimeoutMs?: number
  /** How long a client may take to send the request line and headers (at most `requestTimeoutMs`). */
  headersTimeoutMs?: number
  /** A failure that is not the client's: a handler's unexpected exception, a listener error (EMFILE). */
  onError?: (e: unknown) => void
  /** A client hung up before its request was in (e.g. mid-body): nothing to answer, nothing failed. */
  onClientGone?: (method: string, path: string) => void
}

export class JsonHttpServer {
  private readonly routes: Route[] = []
  private readonly server: Server
  private readonly onError: ((e: unknown) => void) | undefined
  private readonly onClientGone: ((method: string, path: string) => void) | undefined
  private readonly connectionsMax: number
  /** Open connections, oldest first (a Map keeps insertion order), with their requests in progress. */
  private readonly open = new Map<Socket, { active: number }>()
  /** Connections refused at the cap (answered 503 at once; their requests are not handled). */
  private readonly refused = new WeakSet<object>()
  /** Refused connections not closed yet (see refuse). */
  private refusedLingering = 0
  /** Connections closed to make room for a new one at the cap, and new ones refused there. */
  readonly capStats = { evicted: 0, refused: 0 }
  /** Responses not sent yet, of requests whose handler runs (answered 503 if the server stops first). */
  private readonly unanswered = new Set<ServerResponse>()
  /** Handlers running now (one may outlive its response: see `close`). */
  private running = 0
  private idleWaiters: Array<() => void> = []
  private closing = false

  constructor(o: JsonHttpServerOptions) {
    assert(Number.isSafeInteger(o.connectionsMax) && o.connectionsMax > 0, () => `connectionsMax must be a positive integer, got ${o.connectionsMax}`)
    this.onError = o.onError
    this.onClientGone = o.onClientGone
    const requestTimeout = o.requestTimeoutMs ?? REQUEST_RECEIVE_TIMEOUT_MS
    const headersTimeout = Math.min(o.headersTimeoutMs ?? REQUEST_HEADERS_TIMEOUT_MS, requestTimeout)
    // Node checks both deadlines every connectionsCheckingInterval (30 s by default), so a deadline can be
    // overrun by up to that much: check every second (a walk over at most connectionsMax connections).
    this.server = createServer({ connectionsCheckingInterval: Math.min(headersTimeout, 1_000) }, (req, res) => {
      // A refused connection's request (it was answered 503 already): nothing more to say on it.
      if (this.refused.has(req.socket)) return
      this.requestStarted(req, res)
      // handle() answers every error itself; anything escaping it is a bug to report, never a crash.
      this.handle(req, res).catch((e: unknown) => this.onError?.(e))
    })
    this.connectionsMax = o.connectionsMax
    this.server.on('connection', (socket: Socket) => this.admit(socket))
    this.server.keepAliveTimeout = 5_000
    this.server.headersTimeout = headersTimeout
    this.server.requestTimeout = requestTimeout
    // What Node refuses before a request reaches us (a malformed request line or header, headers over 16 KiB,
    // headers or body too slow) is answered in our JSON error form too, not with an empty body.
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(err, socket))
  }

  /** A new connection: admitted, making room at the cap if one is idle (see the header), or closed. */
  private admit(socket: Socket): void {
    if (this.open.size >= this.connectionsMax) {
      let idle: Socket | null = null
      for (const [s, st] of this.open) {
        if (st.active === 0) {
          idle = s
          break
        }
      }
      if (idle === null) {
        this.capStats.refused++
        this.refuse(socket)
        return
      }
      this.capStats.evicted++
      this.open.delete(idle)
      idle.destroy()
    }
    this.open.set(socket, { active: 0 })
    socket.once('close', () => this.open.delete(socket))
  }

  private requestStarted(req: IncomingMessage, res: ServerResponse): void {
    const st = this.open.get(req.socket as Socket)
    if (st === undefined) return
    st.active++
    res.once('close', () => st.active--)
  }

  /**
   * A connection over the cap with every open one busy: answered 503 TOO_MANY_CONNECTIONS before its request
   * is read (HTTP allows an early answer), then closed; a client that neither reads nor closes is cut off
   * after REFUSED_LINGER_MS. A bare close left a flood's clients with "socket hang up" (a concurrency audit).
   */
  private refuse(socket: Socket): void {
    // Refused sockets are outside the cap while they linger: beyond as many again, they are closed at once
    // (a flood of connections that never close must not hold descriptors past twice the cap).
    if (this.refusedLingering >= this.connectionsMax) {
      socket.destroy()
      return
    }
    this.refusedLingering++
    socket.once('close', () => this.refusedLingering--)
    this.refused.add(socket)
    socket.on('error', () => undefined)
    answerAndClose(
      socket,
      503,
      {
        msg: `the management API has ${this.connectionsMax} connections open, each with a request in progress`,
        code: 'TOO_MANY_CONNECTIONS',
        hint: 'Retry shortly, or send fewer requests at once.',
        kind: 'unavailable',
      },
      REFUSED_LINGER_MS,
      'Retry-After: 1\r\n',
    )
  }

  /** `path` like "/v1/tenant/:tenant_id/timeline"; ":name" matches one segment. */
  route(method: string, path: string, handler: Handler, guard: Route['guard'] = null): this {
    const names: string[] = []
    const re = path.replace(/:([a-z_]+)/g, (_m, n: string) => {
      names.push(n)
      return '([^/]+)'
    })
    this.routes.push({ method, pattern: new RegExp(`^${re}$`), names, handler, guard })
    return this
  }

  /** Port 0 picks a free port (read it from `address`). A taken port is UnavailableError naming listen_http_addr. */
  async listen(host: string, port: number): Promise<void> {
    await listenOn(this.server, host, port, { setting: 'listen_http_addr', code: 'HTTP_LISTEN_FAILED' })
    // From now on a listener error (EMFILE on accept) must not crash the process: report it.
    this.server.on('error', (e) => this.onError?.(e))
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo
    return { host: a.address, port: a.port }
  }

  /** Handlers still running (a stopped server keeps its workdir lock while any is: see app/server-shutdown.ts). */
  get handlersRunning(): number {
    return this.running
  }

  /**
   * Stops listening, closes idle connections, and gives requests in progress up to `graceMs` to finish and
   * be answered. Those still running then are answered 503 SERVER_SHUTTING_DOWN (their outcome unknown) and
   * every connection is closed; their handlers may go on (see `handlersRunning`). New requests on open
   * connections meanwhile get 503 at once. Before, every connection was dropped at once: a client saw
   * "unreachable" for a create that went on to succeed (a concurrency audit).
   */
  async close(graceMs = 0): Promise<void> {
    this.closing = true
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    this.server.closeIdleConnections()
    if (graceMs > 0 && this.running > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs)
        this.idleWaiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    for (const res of [...this.unanswered]) {
      res.shouldKeepAlive = false
      send(res, 503, {
        json: {
          msg: 'the page server stopped while this request was in progress: whether it took effect is not known',
          code: 'SERVER_SHUTTING_DOWN',
          hint: 'Once the server is back (or offline), list or get what the request changes to see whether it took effect, then retry if it did not.',
          kind: 'unavailable',
        },
      })
    }
    // Let those answers go out before the sockets are closed under them.
    await Promise.race([closed, new Promise((r) => setTimeout(r, SHUTDOWN_ANSWER_LINGER_MS).unref())])
    this.server.closeAllConnections()
    await closed
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.closing) {
      res.shouldKeepAlive = false
      return send(res, 503, { json: { msg: 'the page server is shutting down', code: 'SERVER_SHUTTING_DOWN', hint: 'Retry once it is back, or run the command offline once it has stopped.', kind: 'unavailable' } })
    }
    this.running++
    this.unanswered.add(res)
    res.once('close', () => this.unanswered.delete(res))
    try {
      await this.dispatch(req, res)
    } finally {
      this.unanswered.delete(res)
      if (--this.running === 0) {
        const waiters = this.idleWaiters
        this.idleWaiters = []
        for (const w of waiters) w()
      }
    }
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let path = '?'
    try {
      const url = parseRequestUrl(req.url ?? '/')
      path = url.pathname
      const allowed: string[] = []
      for (const r of this.routes) {
        const m = r.pattern.exec(url.pathname)
        if (!m) continue
        allowed.push(r.method)
        // HEAD is GET without the body (node:http drops the body of a response to HEAD).
        if (r.method !== req.method && !(r.method === 'GET' && req.method === 'HEAD')) continue
        const params: Record<string, string> = {}
        r.names.forEach((n, i) => (params[n] = decodePathSegment(m[i + 1]!)))
        const ctx: RouteContext = { params, query: url.searchParams, body: undefined, headers: req.headers }
        // Authenticate first: an unauthenticated request gets 401 whatever its body, and costs no parsing.
        if (r.guard) await r.guard(ctx)
        ctx.body = await readBody(req)
        const result = await r.handler(ctx)
        return send(res, result.status ?? 200, result)
      }
      if (allowed.length === 0) throw new HttpError(404, `no route ${url.pathname}`, 'NO_ROUTE')
      if (allowed.includes('GET')) allowed.push('HEAD')
      // RFC 9110: a 405 lists the methods the resource supports.
      if (!res.headersSent) res.setHeader('allow', allowed.join(', '))
      throw new HttpError(405, `method ${req.method} is not allowed on ${url.pathname} (allowed: ${allowed.join(', ')})`, 'METHOD_NOT_ALLOWED')
    } catch (e) {
      if (e instanceof ClientGone) {
        this.onClientGone?.(req.method ?? '?', path)
        res.destroy()
        return
      }
      if (!(e instanceof HttpError) && !(e instanceof PageserverError)) this.onError?.(e)
      const status = e instanceof HttpError ? e.status : e instanceof PageserverError ? (STATUS_BY_KIND[e.kind] ?? 500) : 500
      const code = e instanceof HttpError || e instanceof PageserverError ? e.code : 'INTERNAL'
      const hint = e instanceof PageserverError || e instanceof HttpError ? e.hint : undefined
      // RFC 9110: a 401 names the scheme the client should authenticate with. (Not once answered: a request
      // answered 503 at shutdown may fail afterwards.)
      if (status === 401 && !res.headersSent) res.setHeader('www-authenticate', 'Bearer')
      const kind = e instanceof PageserverError ? e.kind : null
      send(res, status, { json: { msg: e instanceof Error ? e.message : String(e), code, hint: hint ?? null, ...(kind === null ? {} : { kind }) } })
    }
  }
}

/** After answering a malformed or too-slow request, how long the client may take to close before the socket is destroyed. */
export const CLIENT_ERROR_LINGER_MS = 2_000

/** Node's HTTP parser refusals, by its error code: status, our code, and what to say. */
const CLIENT_ERRORS: Readonly<Record<string, { status: number; code: string; msg: string }>> = {
  HPE_HEADER_OVERFLOW: { status: 431, code: 'HEADERS_TOO_LARGE', msg: 'request headers larger than 16 KiB' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'REQUEST_TIMEOUT', msg: 'the request was not received in time' },
}

function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const known = CLIENT_ERRORS[err.code ?? '']
  const e = known ?? { status: 400, code: 'BAD_HTTP_REQUEST', msg: `malformed HTTP request (${err.code ?? 'parse error'})` }
  answerAndClose(socket, e.status, { msg: e.msg, code: e.code, hint: null }, CLIENT_ERROR_LINGER_MS)
}

/**
 * A JSON answer written straight to the socket (no request to answer through node:http), then the close. A
 * client that neither reads nor closes would keep the half-closed socket (and a descriptor) for good (a soak
 * audit's server held one per such client up to the connection cap): it is destroyed after `lingerMs`.
 */
function answerAndClose(socket: Duplex, status: number, json: Record<string, unknown>, lingerMs: number, extraHeaders = ''): void {
  const body = JSON.stringify(json)
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n${extraHeaders}\r\n${body}`,
  )
  const linger = setTimeout(() => socket.destroy(), lingerMs)
  linger.unref()
  socket.once('close', () => clearTimeout(linger))
}

function parseRequestUrl(target: string): URL {
  // Origin-form only: a path starting with exactly one "/". `//host/...` would be read as an authority by
  // the URL parser (GET //evil.com/v1/tenant routed as /v1/tenant: a path filter in front could be passed).
  if (!target.startsWith('/') || target.startsWith('//')) {
    throw new HttpError(400, `the request target ${JSON.stringify(target.slice(0, 200))} is not a path starting with one "/"`, 'BAD_PATH')
  }
  try {
    return new URL(`http://localhost${target}`)
  } catch {
    throw new HttpError(400, `the request target ${JSON.stringify(target.slice(0, 200))} is not a URL path`, 'BAD_PATH')
  }
}

/** A path segment without its percent-encoding; "%zz" or a broken UTF-8 sequence is the client's error. */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    throw new HttpError(400, `the path segment ${JSON.stringify(segment.slice(0, 200))} is not valid percent-encoding`, 'BAD_PATH', 'Encode the path with encodeURIComponent (a "%" must be followed by two hex digits).')
  }
}

/** The client closed the connection before its request was in: there is no one to answer. */
class ClientGone extends Error {}

async function readBody(req: IncomingMessage): Promise<unknown> {
  if (req.method === 'GET' || req.method === 'HEAD') return undefined
  const chunks: Buffer[] = []
  let n = 0
  try {
    for await (const c of req) {
      n += (c as Buffer).length
      if (n > HTTP_BODY_BYTES_MAX) throw new HttpError(413, `request body larger than ${HTTP_BODY_BYTES_MAX} bytes`, 'BODY_TOO_LARGE')
      chunks.push(c as Buffer)
    }
  } catch (e) {
    // node:http ends the body stream with Error("aborted") (ECONNRESET) when the peer hangs up mid-body.
    if (!(e instanceof HttpError) && (req.socket.destroyed || (e as { code?: unknown }).code === 'ECONNRESET')) throw new ClientGone()
    throw e
  }
  if (n === 0) return undefined
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HttpError(400, 'request body is not JSON', 'BAD_JSON')
  }
}

function send(res: ServerResponse, status: number, r: RouteResult): void {
  // Answered already (503 at shutdown, while the handler went on): the handler's own answer is dropped.
  if (res.headersSent || res.writableEnded) return
  if (r.text !== undefined) {
    res.writeHead(status, { 'content-type': r.contentType ?? 'text/plain; charset=utf-8' })
    res.end(r.text)
    return
  }
  const body = r.json === undefined ? '' : JSON.stringify(r.json, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(body)
}
