// The HTTP management API and the CLI's client of it, in process: a busy listen_http_addr (the same typed
// error as a busy listen_pg_addr), malformed percent-encoding in a path (400, not 500), IPv6 addresses in
// the lock file and back, Neon's 401/403 split of authentication (before the body is read), deadlines of
// the CLI's client against a server that accepts and never answers, and GET /v1/tenant/:tenant_id.
// No PostgreSQL needed.
import { afterEach, describe, expect, it } from 'vitest'
import { createServer, type Server, type Socket } from 'node:net'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { exportSPKI, generateKeyPair, SignJWT } from 'jose'
import { loadConfig } from '../../../src/core/config/index.js'
import type { AppContext } from '../../../src/core/app/context.js'
import { PageServer } from '../../../src/core/app/server.js'
import { createManagementServer, type ManagementOps } from '../../../src/core/http/management-api.js'
import type { JsonHttpServer } from '../../../src/core/http/http-server.js'
import { JwtAuth } from '../../../src/core/page-service/auth.js'
import { ManagementClient, MANAGEMENT_READ_TIMEOUT_MS, recordedAddress, runningServer } from '../../../src/cli/server-client.js'
import { parseServerAddress } from '../../../src/cli/getpage-server.js'
import { formatHostPort, splitHostPort } from '../../../src/core/lib/host-port.js'
import { InterruptedError, NotFoundError, TimeoutError, UnavailableError, UsageError } from '../../../src/core/lib/errors.js'
import { toUserFacing } from '../../../src/cli/errors.js'
import { generateTenantId, type TenantId } from '../../../src/core/model/ids.js'
import { fakeOps } from './fake-ops.js'
import { tempDirs } from '../../support/timeline-fixture.js'

const newDir = tempDirs('ps-mgmt-api-')
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function contextFor(workdir: string, overrides: string[]): Promise<AppContext> {
  return { config: await loadConfig({ workdir, overrides: ['no_sync=true', ...overrides], env: {} }), env: {} }
}

async function startServer(overrides: string[] = ['listen_pg_addr="127.0.0.1:0"', 'listen_http_addr="127.0.0.1:0"']): Promise<{ server: PageServer; ctx: AppContext }> {
  const ctx = await contextFor(newDir(), overrides)
  const server = await PageServer.start(ctx)
  cleanups.push(() => server.stop())
  return { server, ctx }
}

async function listenHttp(http: JsonHttpServer): Promise<string> {
  await http.listen('127.0.0.1', 0)
  cleanups.push(() => http.close())
  return `http://127.0.0.1:${http.address.port}`
}

async function holdPort(host: string): Promise<{ server: Server; port: number }> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, host, r))
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())))
  return { server, port: (server.address() as { port: number }).port }
}

describe('listen_http_addr taken', () => {
  it('is UnavailableError HTTP_LISTEN_FAILED (exit 6) naming the setting, as a taken listen_pg_addr is, and releases the workdir', async () => {
    const { port } = await holdPort('127.0.0.1')
    const ctx = await contextFor(newDir(), ['listen_pg_addr="127.0.0.1:0"', `listen_http_addr="127.0.0.1:${port}"`])
    const err = await PageServer.start(ctx).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UnavailableError)
    expect(err).toMatchObject({ code: 'HTTP_LISTEN_FAILED', exitCode: 6 })
    expect((err as UnavailableError).message).toContain(`127.0.0.1:${port}`)
    expect((err as UnavailableError).hint).toMatch(/listen_http_addr/)
    expect(toUserFacing(err).exitCode).toBe(6)

    const pgErr = await PageServer.start(await contextFor(newDir(), [`listen_pg_addr="127.0.0.1:${port}"`, 'listen_http_addr="127.0.0.1:0"'])).catch((e: unknown) => e)
    expect(pgErr).toMatchObject({ code: 'PAGE_SERVICE_LISTEN_FAILED', exitCode: 6 })
    expect((pgErr as UnavailableError).hint).toMatch(/listen_pg_addr/)

    // Nothing was left holding the workdir: the next start with a free port works.
    const server = await PageServer.start({ ...ctx, config: { ...ctx.config, listenHttpAddr: '127.0.0.1:0' } })
    await server.stop()
  })
})

describe('malformed percent-encoding in a path', () => {
  it('is 400 BAD_PATH with the usual error body, not a 500 with a logged stack', async () => {
    const errors: unknown[] = []
    const base = await listenHttp(createManagementServer(fakeOps(), null, { log: (level, _m, fields) => level === 'error' && errors.push(fields) }))
    for (const path of ['/v1/tenant/%zz/timeline', '/v1/tenant/%E0%A4%A/timeline', '/v1/tenant/%/timeline/%ff']) {
      const res = await fetch(base + path)
      expect(res.status, path).toBe(400)
      const body = (await res.json()) as { msg: string; code: string; hint: string | null }
      expect(body.code).toBe('BAD_PATH')
      expect(body.msg).toMatch(/percent-encoding/)
      expect(body.hint).toEqual(expect.any(String))
    }
    expect(errors).toEqual([])
  })
})

describe('host:port text', () => {
  it('IPv6 literals get brackets, and every formatted address splits back', () => {
    expect(formatHostPort('127.0.0.1', 64000)).toBe('127.0.0.1:64000')
    expect(formatHostPort('localhost', 9898)).toBe('localhost:9898')
    expect(formatHostPort('::1', 9898)).toBe('[::1]:9898')
    expect(formatHostPort('fe80::1%eth0', 1)).toBe('[fe80::1%eth0]:1')
    for (const [host, port] of [['127.0.0.1', 0], ['::1', 44191], ['::', 80], ['fe80::1%eth0', 65535], ['db-1.local', 5432]] as const) {
      expect(splitHostPort(formatHostPort(host, port))).toEqual({ host, port })
    }
    expect(parseServerAddress(formatHostPort('::1', 6400))).toEqual({ host: '::1', port: 6400 })
    expect(splitHostPort('::1:9898')).toBeNull()
  })

  it('a lock file written before brackets ("::1:44191") is read as [::1]:44191; good addresses pass unchanged', () => {
    expect(recordedAddress('::1:44191')).toBe('[::1]:44191')
    expect(recordedAddress('::ffff:127.0.0.1:80')).toBe('[::ffff:127.0.0.1]:80')
    expect(recordedAddress('[::1]:44191')).toBe('[::1]:44191')
    expect(recordedAddress('127.0.0.1:9898')).toBe('127.0.0.1:9898')
  })

  it('a server on [::1] records bracketed addresses, and the CLI reaches it through the lock file', async (t) => {
    if (!(await hasIpv6Loopback())) t.skip()
    const { server, ctx } = await startServer(['listen_pg_addr="[::1]:0"', 'listen_http_addr="[::1]:0"'])
    const lock = JSON.parse(readFileSync(join(ctx.config.workdir, 'pageserver.lock'), 'utf8')) as { pgAddr: string; httpAddr: string }
    expect(lock.pgAddr).toBe(`[::1]:${server.addresses.pg.port}`)
    expect(lock.httpAddr).toBe(`[::1]:${server.addresses.http.port}`)
    const running = runningServer(ctx.config.workdir)!
    expect(running.httpAddr).toBe(lock.httpAddr)
    expect(parseServerAddress(running.pgAddr!)).toEqual({ host: '::1', port: server.addresses.pg.port })
    expect(await new ManagementClient(running, undefined).request('GET', '/v1/tenant')).toEqual([])
  })
})

async function hasIpv6Loopback(): Promise<boolean> {
  const s = createServer()
  return new Promise<boolean>((resolve) => {
    s.once('error', () => resolve(false))
    s.listen(0, '::1', () => s.close(() => resolve(true)))
  })
}

describe('NeonJWT on the management API', () => {
  const tenant = generateTenantId()
  const other = generateTenantId()

  async function authServer(ran: string[] = []) {
    const good = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const wrong = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const auth = await JwtAuth.fromPublicKeyPems([{ name: 'test.pem', pem: await exportSPKI(good.publicKey) }])
    const base = await listenHttp(createManagementServer(fakeOps(ran), auth))
    const sign = (claims: Record<string, unknown>, key = good.privateKey) => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA' }).sign(key)
    return { base, sign, wrongKey: wrong.privateKey }
  }

  const call = async (base: string, path: string, token: string | null, init: RequestInit = {}) => {
    const res = await fetch(base + path, { ...init, headers: token === null ? {} : { authorization: token.includes(' ') ? token : `Bearer ${token}` } })
    return { status: res.status, body: (await res.json()) as { msg: string; code: string; hint: string | null }, wwwAuthenticate: res.headers.get('www-authenticate') }
  }

  it('401 UNAUTHORIZED when the token does not authenticate: missing, malformed header, bad signature, wrong key, expired, alg none', async () => {
    const { base, sign, wrongKey } = await authServer()
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url')
    const path = `/v1/tenant/${tenant}/timeline`
    const cases: Array<[string, string | null]> = [
      ['no header', null],
      ['not Bearer', 'Basic dXNlcjpwdw=='],
      ['Bearer abc', 'abc'],
      ['wrong key', await sign({ scope: 'pageserverapi' }, wrongKey)],
      ['expired', await sign({ scope: 'pageserverapi', exp: Math.floor(Date.now() / 1000) - 3600 })],
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ scope: 'pageserverapi' })}.`],
      ['no scope', await sign({ tenant_id: tenant })],
    ]
    for (const [what, token] of cases) {
      const r = await call(base, path, token)
      expect(r.status, what).toBe(401)
      expect(r.body.code, what).toBe('UNAUTHORIZED')
      expect(r.wwwAuthenticate, what).toBe('Bearer')
    }
  })

  it('403 FORBIDDEN only for a valid token out of scope: another tenant, a tenant token on a server-wide route, an ineligible scope', async () => {
    const { base, sign } = await authServer()
    const cases: Array<[string, string, string]> = [
      ['another tenant', `/v1/tenant/${tenant}/timeline`, await sign({ scope: 'tenant', tenant_id: other })],
      ['tenant token, server-wide route', '/v1/tenant', await sign({ scope: 'tenant', tenant_id: tenant })],
      ['ineligible scope', `/v1/tenant/${tenant}/timeline`, await sign({ scope: 'safekeeperdata' })],
    ]
    for (const [what, path, token] of cases) {
      const r = await call(base, path, token)
      expect(r.status, what).toBe(403)
      expect(r.body.code, what).toBe('FORBIDDEN')
    }
    expect((await call(base, `/v1/tenant/${tenant}/timeline`, await sign({ scope: 'tenant', tenant_id: tenant }))).status).toBe(200)
    expect((await call(base, '/v1/tenant', await sign({ scope: 'pageserverapi' }))).status).toBe(200)
  })

  it('a connection string needs a server-wide token: a tenant token cannot make the server connect where it says', async () => {
    const ran: string[] = []
    const ops: ManagementOps = {
      ...fakeOps(ran),
      createTimeline: async (_t, req) => (ran.push(req.importFrom ? 'import' : 'bootstrap'), {}),
      setWalSource: async () => (ran.push('setWalSource'), {}),
    }
    const good = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const auth = await JwtAuth.fromPublicKeyPems([{ name: 'test.pem', pem: await exportSPKI(good.publicKey) }])
    const base = await listenHttp(createManagementServer(ops, auth))
    const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA' }).sign(good.privateKey)
    const tenantToken = await sign({ scope: 'tenant', tenant_id: tenant })
    const adminToken = await sign({ scope: 'pageserverapi' })
    const tl = '0'.repeat(31) + '1'
    const json = (method: string, body: unknown): RequestInit => ({ method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
    const importBody = json('POST', { import_from: { conn_string: 'host=127.0.0.1 port=1 user=replicator' } })
    const sourceBody = json('PUT', { conn_string: 'host=127.0.0.1 port=1 user=replicator' })
    const forbidden = [
      await call(base, `/v1/tenant/${tenant}/timeline`, tenantToken, importBody),
      await call(base, `/v1/tenant/${tenant}/timeline/${tl}/wal_source`, tenantToken, sourceBody),
    ]
    for (const r of forbidden) expect([r.status, r.body.code]).toEqual([403, 'FORBIDDEN'])
    expect(ran).toEqual([])
    // The same token still bootstraps a timeline of its tenant; a server-wide token may give connection strings.
    expect((await call(base, `/v1/tenant/${tenant}/timeline`, tenantToken, json('POST', {}))).status).toBe(201)
    expect((await call(base, `/v1/tenant/${tenant}/timeline`, adminToken, importBody)).status).toBe(201)
    expect((await call(base, `/v1/tenant/${tenant}/timeline/${tl}/wal_source`, adminToken, sourceBody)).status).toBe(200)
    expect(ran).toEqual(['bootstrap', 'import', 'setWalSource'])
  })

  it('authenticates before reading the body: an unauthenticated POST with bad JSON is 401, an authenticated one 400', async () => {
    const ran: string[] = []
    const { base, sign } = await authServer(ran)
    const post = { method: 'POST', body: '{not json' }
    expect((await call(base, '/v1/tenant', null, post)).status).toBe(401)
    expect((await call(base, '/v1/tenant', 'abc', post)).status).toBe(401)
    const ok = await call(base, '/v1/tenant', await sign({ scope: 'pageserverapi' }), post)
    expect(ok.status).toBe(400)
    expect(ok.body.code).toBe('BAD_JSON')
    expect(ran).toEqual([])
  })

  it('through the CLI client: a 401 is a usage error whose hint says to set NEON_AUTH_TOKEN', async () => {
    const { base, sign } = await authServer()
    const running = { pid: process.pid, httpAddr: base.slice('http://'.length), pgAddr: undefined }
    for (const token of [undefined, 'abc']) {
      const err = await new ManagementClient(running, token).request('GET', `/v1/tenant/${tenant}/timeline`).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(UsageError)
      expect(err).toMatchObject({ code: 'UNAUTHORIZED', exitCode: 2 })
      expect((err as UsageError).hint).toMatch(/NEON_AUTH_TOKEN/)
    }
    const forbidden = await new ManagementClient(running, await sign({ scope: 'tenant', tenant_id: other })).request('GET', `/v1/tenant/${tenant}/timeline`).catch((e: unknown) => e)
    expect(forbidden).toMatchObject({ code: 'FORBIDDEN', exitCode: 2 })
  })
})

describe('the CLI client against a server that accepts and never answers (a SIGSTOPped serve)', () => {
  async function silentServer(): Promise<string> {
    const sockets = new Set<Socket>()
    const server = createServer((s) => {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy()
          server.close(() => r())
        }),
    )
    return `127.0.0.1:${(server.address() as { port: number }).port}`
  }

  it('reads time out after the read deadline (30 s by default): TimeoutError SERVER_TIMEOUT, exit 7, with a hint', async () => {
    expect(MANAGEMENT_READ_TIMEOUT_MS).toBe(30_000)
    const client = new ManagementClient({ pid: 4242, httpAddr: await silentServer(), pgAddr: undefined }, undefined, { readTimeoutMs: 200 })
    const started = Date.now()
    const err = await client.request('GET', `/v1/tenant/${generateTenantId()}/timeline`).catch((e: unknown) => e)
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(err).toBeInstanceOf(TimeoutError)
    expect(err).toMatchObject({ code: 'SERVER_TIMEOUT', exitCode: 7 })
    expect((err as TimeoutError).message).toMatch(/pid 4242.*GET/)
    expect((err as TimeoutError).hint).toMatch(/SIGSTOP/)
  })

  it('mutations with a long deadline, or none (import, sync), are caught by the status probe within the read deadline', async () => {
    const client = new ManagementClient({ pid: 4242, httpAddr: await silentServer(), pgAddr: undefined }, undefined, { readTimeoutMs: 200 })
    const started = Date.now()
    for (const timeoutMs of [undefined, null]) {
      const err = await client.request('POST', '/v1/tenant', {}, timeoutMs === undefined ? {} : { timeoutMs }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'SERVER_TIMEOUT', exitCode: 7 })
      expect((err as TimeoutError).message).toMatch(/GET \/v1\/status/)
    }
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it('a request without a deadline ends on its signal: InterruptedError, exit 130', async () => {
    const client = new ManagementClient({ pid: 4242, httpAddr: await silentServer(), pgAddr: undefined }, undefined, { readTimeoutMs: 60_000 })
    const abort = new AbortController()
    setTimeout(() => abort.abort(), 100)
    const err = await client.request('GET', '/v1/tenant', undefined, { timeoutMs: null, signal: abort.signal }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InterruptedError)
    expect(err).toMatchObject({ exitCode: 130 })
  })
})

describe('GET /v1/tenant/:tenant_id', () => {
  it('answers one tenant as the list does; 404 TENANT_NOT_FOUND for an unknown one, 400 for a bad id', async () => {
    const { server } = await startServer()
    const client = new ManagementClient({ pid: process.pid, httpAddr: `127.0.0.1:${server.addresses.http.port}`, pgAddr: undefined }, undefined)
    const { tenant_id: id } = await client.request<{ tenant_id: TenantId }>('POST', '/v1/tenant', {})
    const [listed] = await client.request<unknown[]>('GET', '/v1/tenant')
    expect(await client.request('GET', `/v1/tenant/${id}`)).toEqual({ id, state: { slug: 'Active' }, timelines: 0 })
    expect(await client.request('GET', `/v1/tenant/${id}`)).toEqual(listed)
    const missing = await client.request('GET', `/v1/tenant/${generateTenantId()}`).catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(NotFoundError)
    expect(missing).toMatchObject({ code: 'TENANT_NOT_FOUND', exitCode: 3 })
    await expect(client.request('GET', '/v1/tenant/not-hex')).rejects.toBeInstanceOf(UsageError)
  })
})
