// The management API's HTTP server under hostile or careless clients: a stalled sender is answered 408 while
// a slow handler may finish; connections beyond the cap are answered 503 and closed at once (a flood of idle ones once took
// every file descriptor of the process) and headers that never finish free their slot; a client hanging up
// mid-body is logged at debug, not as a handler failure; 405 carries Allow; HEAD answers like GET.
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type Socket } from 'node:net'
import { CLIENT_ERROR_LINGER_MS, HttpError, JsonHttpServer } from '../../../src/core/http/http-server.js'
import { createManagementServer, MANAGEMENT_CONNECTIONS_MAX, MANAGEMENT_HEADERS_TIMEOUT_MS } from '../../../src/core/http/management-api.js'
import { fakeOps } from './fake-ops.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function listen(server: JsonHttpServer): Promise<number> {
  await server.listen('127.0.0.1', 0)
  cleanups.push(() => server.close())
  return server.address.port
}

/** A raw connection that records what it receives and when it is closed. */
interface Raw {
  socket: Socket
  received(): string
  closed: Promise<void>
  isClosed(): boolean
}

function rawConnection(port: number, send: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    let got = ''
    let closed = false
    const socket = connect(port, '127.0.0.1')
    cleanups.push(() => void socket.destroy())
    const closedP = new Promise<void>((r) => socket.on('close', () => ((closed = true), r())))
    socket.on('data', (d) => (got += d.toString('latin1')))
    socket.on('error', () => {}) // a reset is one way of being refused
    socket.once('connect', () => {
      socket.write(send)
      resolve({ socket, received: () => got, closed: closedP, isClosed: () => closed })
    })
    socket.once('error', reject)
  })
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> => Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms))])

describe('JsonHttpServer receive deadline', () => {
  it('answers 408 to a body that stops coming, and lets a slow handler finish', async () => {
    const server = new JsonHttpServer({ connectionsMax: 8, requestTimeoutMs: 400 })
    server.route('POST', '/slow', async () => {
      await new Promise((r) => setTimeout(r, 900))
      return { json: { ok: true } }
    })
    const port = await listen(server)
    const slow = await fetch(`http://127.0.0.1:${port}/slow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    expect(slow.status).toBe(200)
    expect(await slow.json()).toEqual({ ok: true })

    const t0 = Date.now()
    const c = await rawConnection(port, 'POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"')
    await c.closed
    expect(c.received().split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout')
    expect(Date.now() - t0).toBeLessThan(5_000)
  })
})

describe('close at shutdown', () => {
  it('lets a request in progress finish within the grace; answers one that outlives it 503 SERVER_SHUTTING_DOWN and counts its handler until it ends', async () => {
    const server = new JsonHttpServer({ connectionsMax: 8 })
    let releaseLong: () => void = () => {}
    const longDone = new Promise<void>((r) => (releaseLong = r))
    server.route('POST', '/short', async () => {
      await new Promise((r) => setTimeout(r, 150))
      return { json: { done: 'short' } }
    })
    server.route('POST', '/long', async () => {
      await longDone
      return { json: { done: 'long' } }
    })
    const port = await listen(server)
    const post = (path: string) => fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    const short = post('/short')
    const long = post('/long')
    for (let i = 0; i < 500 && server.handlersRunning < 2; i++) await new Promise((r) => setTimeout(r, 10))
    expect(server.handlersRunning).toBe(2)
    await server.close(600)
    const s = await short
    expect(s.status).toBe(200)
    expect(await s.json()).toEqual({ done: 'short' })
    const l = await long
    expect(l.status).toBe(503)
    expect(await l.json()).toMatchObject({ code: 'SERVER_SHUTTING_DOWN', kind: 'unavailable', hint: expect.stringContaining('took effect') })
    // Its handler goes on (the server keeps the workdir lock meanwhile); its late answer is dropped.
    expect(server.handlersRunning).toBe(1)
    releaseLong()
    await new Promise((r) => setTimeout(r, 20))
    expect(server.handlersRunning).toBe(0)
  })

  it('a request answered 503 at close whose guard then refuses it (401) does not crash the server', async () => {
    const errors: unknown[] = []
    const server = new JsonHttpServer({ connectionsMax: 8, onError: (e) => errors.push(e) })
    server.route(
      'GET',
      '/guarded',
      async () => ({ json: { ok: true } }),
      async () => {
        await new Promise((r) => setTimeout(r, 300)) // a token check still pending at the close
        throw new HttpError(401, 'bad token', 'UNAUTHORIZED')
      },
    )
    const port = await listen(server)
    const pending = fetch(`http://127.0.0.1:${port}/guarded`)
    for (let i = 0; i < 500 && server.handlersRunning < 1; i++) await new Promise((r) => setTimeout(r, 10))
    await server.close(50)
    expect((await pending).status).toBe(503)
    await new Promise((r) => setTimeout(r, 400)) // the guard refuses now, after the answer
    expect(server.handlersRunning).toBe(0)
    expect(errors).toEqual([])
  })
})

describe('connection cap', () => {
  it('the management API has named limits: 128 connections, 5 s for headers', () => {
    expect(MANAGEMENT_CONNECTIONS_MAX).toBe(128)
    expect(MANAGEMENT_HEADERS_TIMEOUT_MS).toBe(5_000)
  })

  it('at the cap, the oldest connection without a request in progress makes room; with every one busy, a new one is closed at once', async () => {
    const capMax = 3
    const port = await listen(createManagementServer(fakeOps(), null, { connectionsMax: capMax, headersTimeoutMs: 1_500 }))
    // Idle sockets fill the cap (anyone can open them, no token needed)...
    const idle: Raw[] = []
    for (let i = 0; i < capMax; i++) idle.push(await rawConnection(port, 'GET /v1/status HTTP/1.1\r\nHost: x\r\n'))
    await new Promise((r) => setTimeout(r, 100))
    // ...and still a request gets in: the oldest idle one is closed for it, unanswered.
    const status = await fetch(`http://127.0.0.1:${port}/v1/status`, { headers: { connection: 'close' } })
    expect([status.status, await status.json()]).toEqual([200, { id: 1 }])
    expect(await within(idle[0]!.closed, 1_000)).not.toBe('timeout')
    expect(idle[0]!.received()).toBe('')
    expect(idle.slice(1).map((c) => c.isClosed())).toEqual([false, false])
    // The others are answered 408 and closed once their headers are late.
    for (const c of idle.slice(1)) expect(await within(c.closed, 5_000)).not.toBe('timeout')
    expect(idle[1]!.received().split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout')
  })

  it('a client that neither reads nor closes after a 408 is cut off: the half-closed socket does not stay for good', async () => {
    const port = await listen(createManagementServer(fakeOps(), null, { headersTimeoutMs: 500 }))
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    cleanups.push(() => void socket.destroy())
    let got = ''
    socket.on('data', (d) => (got += d.toString('latin1')))
    const ended = new Promise<void>((r) => socket.once('end', () => r()))
    const gone = new Promise<string>((r) => {
      socket.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'))
      socket.once('close', () => r('close'))
    })
    await new Promise<void>((r) => socket.once('connect', () => r()))
    socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n')
    expect(await within(ended, 3_000)).not.toBe('timeout')
    expect(got.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout')
    // Our side stays open (allowHalfOpen) and says nothing; after the linger the server has let go of the socket,
    // so what we write now is answered with a reset.
    await new Promise((r) => setTimeout(r, CLIENT_ERROR_LINGER_MS + 500))
    socket.write('x')
    await new Promise((r) => setTimeout(r, 100))
    if (!socket.destroyed) socket.write('x')
    expect(await within(gone, 2_000)).toMatch(/ECONNRESET|EPIPE|close/)
  })

  it('with every connection in the middle of a request, a new one is answered 503 at once and closed', async () => {
    const server = new JsonHttpServer({ connectionsMax: 2 })
    let release: () => void = () => {}
    const held = new Promise<void>((r) => (release = r))
    server.route('GET', '/hold', async () => {
      await held
      return { json: { ok: true } }
    })
    const port = await listen(server)
    const busy = [fetch(`http://127.0.0.1:${port}/hold`), fetch(`http://127.0.0.1:${port}/hold`)]
    for (let i = 0; i < 500 && server.handlersRunning < 2; i++) await new Promise((r) => setTimeout(r, 10))
    const excess = await rawConnection(port, 'GET /hold HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(await within(excess.closed, 1_000)).not.toBe('timeout')
    const got = excess.received()
    expect(got.split('\r\n')[0]).toBe('HTTP/1.1 503 Service Unavailable')
    expect(JSON.parse(got.slice(got.indexOf('{')))).toMatchObject({ code: 'TOO_MANY_CONNECTIONS', kind: 'unavailable' })
    expect(server.capStats.refused).toBe(1)
    // So does fetch: a status to act on, not "socket hang up".
    const viaFetch = await fetch(`http://127.0.0.1:${port}/hold`)
    expect(viaFetch.status).toBe(503)
    expect(server.capStats.refused).toBe(2)
    release()
    for (const r of await Promise.all(busy)) expect(r.status).toBe(200)
    await server.close()
  })
})

describe('a client that hangs up mid-body', () => {
  it('is logged at debug, not as a failed handler', async () => {
    const logged: Array<[string, string]> = []
    const port = await listen(createManagementServer(fakeOps(), null, { log: (level, message) => logged.push([level, message]) }))
    const c = await rawConnection(port, 'POST /v1/tenant HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"new_')
    await new Promise((r) => setTimeout(r, 100))
    c.socket.destroy()
    const deadline = Date.now() + 5_000
    while (logged.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(logged).toEqual([['debug', 'management API client hung up before its request was in']])
  })
})

describe('methods', () => {
  it('405 names the allowed methods in Allow; HEAD /v1/status answers like GET without a body', async () => {
    const port = await listen(createManagementServer(fakeOps(), null))
    const put = await fetch(`http://127.0.0.1:${port}/v1/status`, { method: 'PUT' })
    expect(put.status).toBe(405)
    expect(put.headers.get('allow')).toBe('GET, HEAD')
    expect(((await put.json()) as { code: string }).code).toBe('METHOD_NOT_ALLOWED')
    const del = await fetch(`http://127.0.0.1:${port}/v1/tenant`, { method: 'DELETE' })
    expect(del.headers.get('allow')).toBe('GET, POST, HEAD')

    const head = await fetch(`http://127.0.0.1:${port}/v1/status`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.headers.get('content-type')).toBe('application/json')
    expect(await head.text()).toBe('')
  })

  it('refuses a target that is not one path (//host/... was routed as /...), and answers what Node refuses in JSON', async () => {
    const port = await listen(createManagementServer(fakeOps(), null))
    const body = (raw: string): { status: string; json: { code: string; msg: string } } => {
      // (the body may come chunked: the JSON object is between its first and last brace)
      return { status: raw.split('\r\n')[0]!, json: JSON.parse(raw.slice(raw.indexOf('{'), raw.lastIndexOf('}') + 1)) }
    }
    const slashes = await rawConnection(port, 'GET //evil.example/v1/tenant HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    await within(slashes.closed, 5_000)
    expect(body(slashes.received())).toMatchObject({ status: 'HTTP/1.1 400 Bad Request', json: { code: 'BAD_PATH' } })

    const garbage = await rawConnection(port, 'GARBAGE\r\n\r\n')
    await within(garbage.closed, 5_000)
    expect(body(garbage.received())).toMatchObject({ status: 'HTTP/1.1 400 Bad Request', json: { code: 'BAD_HTTP_REQUEST' } })

    const huge = await rawConnection(port, `GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(20_000)}\r\n\r\n`)
    await within(huge.closed, 5_000)
    expect(body(huge.received())).toMatchObject({ status: 'HTTP/1.1 431 Request Header Fields Too Large', json: { code: 'HEADERS_TOO_LARGE' } })
    // And the server still answers.
    expect((await fetch(`http://127.0.0.1:${port}/v1/status`)).status).toBe(200)
  })
})
