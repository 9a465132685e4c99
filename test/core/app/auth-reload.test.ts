// Rotating the JWT validation keys of a running PageServer: POST /v1/reload_auth_validation_keys reads the key
// directory again, and the HTTP API and new page service connections use the new keys at once; a reload that
// cannot load the keys keeps the old ones. The keys loaded at start are logged by file name, never by content.
// No PostgreSQL needed.
import { afterEach, describe, expect, it } from 'vitest'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { exportSPKI, generateKeyPair, SignJWT, type GenerateKeyPairResult } from 'jose'
import { loadConfig } from '../../../src/core/config/index.js'
import { PageServer } from '../../../src/core/app/server.js'
import { PageServiceClient } from '../../../src/core/page-service/client.js'
import { tempDirs } from '../../support/timeline-fixture.js'

const newDir = tempDirs('ps-auth-reload-')
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

type Key = GenerateKeyPairResult['privateKey']
async function edKey(): Promise<{ privateKey: Key; pem: string }> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true })
  return { privateKey, pem: await exportSPKI(publicKey) }
}
const adminToken = (key: Key) => new SignJWT({ scope: 'pageserverapi' }).setProtectedHeader({ alg: 'EdDSA' }).sign(key)

type Logged = Array<{ level: string; message: string; fields: Record<string, unknown> | undefined }>

async function start(authType: 'NeonJWT' | 'Trust', keyDir: string | null): Promise<{ server: PageServer; base: string; logged: Logged }> {
  const workdir = newDir()
  const overrides = ['no_sync=true', 'listen_pg_addr="127.0.0.1:0"', 'listen_http_addr="127.0.0.1:0"', `auth_type="${authType}"`]
  if (keyDir !== null) overrides.push(`auth_validation_public_key_path="${keyDir}"`)
  const logged: Logged = []
  const ctx = { config: await loadConfig({ workdir, overrides, env: {} }), env: {}, log: (level: string, message: string, fields?: Record<string, unknown>) => void logged.push({ level, message, fields }) }
  const server = await PageServer.start(ctx)
  cleanups.push(() => server.stop())
  return { server, base: `http://127.0.0.1:${server.addresses.http.port}`, logged }
}

async function post(base: string, path: string, token: string | null): Promise<{ status: number; body: { keys?: number; msg?: string; code?: string } }> {
  const res = await fetch(base + path, { method: 'POST', headers: token === null ? {} : { authorization: `Bearer ${token}` } })
  return { status: res.status, body: (await res.json()) as { keys?: number; msg?: string; code?: string } }
}

/** Whether the page service lets a token log in (a new connection). */
async function pageServiceAccepts(server: PageServer, token: string): Promise<boolean> {
  try {
    const c = await PageServiceClient.connect({ host: '127.0.0.1', port: server.addresses.pg.port, token })
    await c.close()
    return true
  } catch (e) {
    if ((e as { code?: string }).code === 'PAGE_SERVICE_UNAUTHORIZED') return false
    throw e
  }
}

describe('POST /v1/reload_auth_validation_keys', () => {
  it('rotates the keys of the HTTP API and the page service without a restart; a failed reload keeps the old ones', async () => {
    const [a, b] = [await edKey(), await edKey()]
    const keyDir = join(newDir(), 'keys')
    mkdirSync(keyDir)
    writeFileSync(join(keyDir, 'a.pem'), a.pem)
    const { server, base, logged } = await start('NeonJWT', keyDir)
    const [tokenA, tokenB] = [await adminToken(a.privateKey), await adminToken(b.privateKey)]
    expect(logged.find((l) => l.message === 'JWT validation keys loaded')?.fields).toEqual({ path: keyDir, keys: 1, files: ['a.pem'] })
    expect(JSON.stringify(logged)).not.toContain('BEGIN PUBLIC KEY')

    expect((await post(base, '/v1/tenant', tokenB)).status).toBe(401)
    expect(await pageServiceAccepts(server, tokenB)).toBe(false)
    // The route needs a server-wide token, like every server-wide route.
    expect((await post(base, '/v1/reload_auth_validation_keys', null)).status).toBe(401)

    // Add B's key and reload: B's tokens work at once, on both.
    writeFileSync(join(keyDir, 'b.pem'), b.pem)
    expect(await post(base, '/v1/reload_auth_validation_keys', tokenA)).toEqual({ status: 200, body: { keys: 2 } })
    expect((await post(base, '/v1/tenant', tokenB)).status).toBe(201)
    expect(await pageServiceAccepts(server, tokenB)).toBe(true)

    // A key file that is not a key: the reload fails, says why, and A and B still work.
    writeFileSync(join(keyDir, 'c.pem'), 'not a key')
    const failed = await post(base, '/v1/reload_auth_validation_keys', tokenB)
    expect([failed.status, failed.body.code]).toEqual([500, 'JWT_KEYS_RELOAD_FAILED'])
    expect(failed.body.msg).toMatch(/the 2 loaded before stay in use: .*c\.pem is not an Ed25519 public key/)
    expect(logged.some((l) => l.level === 'warn' && l.message.startsWith('reloading the JWT validation keys failed'))).toBe(true)
    expect((await post(base, '/v1/tenant', tokenA)).status).toBe(201)
    expect(await pageServiceAccepts(server, tokenA)).toBe(true)

    // Retire A: its tokens are refused from then on.
    rmSync(join(keyDir, 'c.pem'))
    rmSync(join(keyDir, 'a.pem'))
    expect(await post(base, '/v1/reload_auth_validation_keys', tokenB)).toEqual({ status: 200, body: { keys: 1 } })
    expect((await post(base, '/v1/tenant', tokenA)).status).toBe(401)
    expect(await pageServiceAccepts(server, tokenA)).toBe(false)
    expect(logged.filter((l) => l.message === 'JWT validation keys reloaded').map((l) => l.fields?.files)).toEqual([['a.pem', 'b.pem'], ['b.pem']])
  })

  it('without JWT auth there is nothing to reload: 400 JWT_AUTH_NOT_CONFIGURED', async () => {
    const { base } = await start('Trust', null)
    const r = await post(base, '/v1/reload_auth_validation_keys', null)
    expect([r.status, r.body.code]).toEqual([400, 'JWT_AUTH_NOT_CONFIGURED'])
  })
})
