/**
 * JWT authentication (Neon's NeonJWT): keys generated in the test, tokens of every bad kind (alg none,
 * HS256 keyed with the public key, RS256, expired, wrong key, wrong scope, missing tenant_id, another
 * tenant) refused; `pageserverapi` and a matching `tenant` token accepted; key rotation by directory,
 * symbolic links followed (a Kubernetes secret mount), unreadable paths as config errors, and a JwtAuth
 * whose keys are replaced (a reload). Checked both on JwtAuth directly and over the wire with the client.
 */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { SignJWT, exportSPKI, generateKeyPair, type GenerateKeyPairResult } from 'jose'
import { KeyObject, sign as cryptoSign } from 'node:crypto'
import { JwtAuth, checkPermission } from '../../../src/core/page-service/auth.js'
import { keyReadError, loadJwtAuth } from '../../../src/core/page-service/auth-keys.js'
import { toUserFacing } from '../../../src/cli/errors.js'
import { OTHER_TENANT, REL, TENANT, TIMELINE } from './fake-backend.js'
import { startServer, type Running } from './support.js'

type Key = GenerateKeyPairResult['privateKey']
let dir: string
let keyA: { privateKey: Key; pem: string }
let keyB: { privateKey: Key; pem: string }
let keyC: { privateKey: Key; pem: string } // not configured anywhere
let rsa: { privateKey: Key }

async function edKey(): Promise<{ privateKey: Key; pem: string }> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true })
  return { privateKey, pem: await exportSPKI(publicKey) }
}

function sign(claims: Record<string, unknown>, key: Key = keyA.privateKey, alg = 'EdDSA'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg }).sign(key)
}

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url')

/** A token over a payload given as text (jose signs objects, which cannot hold a key twice), signed with key A. */
function signRaw(payload: string): string {
  const input = `${b64({ alg: 'EdDSA' })}.${Buffer.from(payload).toString('base64url')}`
  const key = keyA.privateKey instanceof KeyObject ? keyA.privateKey : KeyObject.from(keyA.privateKey as Parameters<typeof KeyObject.from>[0])
  return `${input}.${cryptoSign(null, Buffer.from(input), key).toString('base64url')}`
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ps-auth-'))
  keyA = await edKey()
  keyB = await edKey()
  keyC = await edKey()
  rsa = await generateKeyPair('RS256', { extractable: true })
  writeFileSync(join(dir, 'a.pem'), keyA.pem)
  mkdirSync(join(dir, 'rotation'))
  writeFileSync(join(dir, 'rotation', 'a.pem'), keyA.pem)
  writeFileSync(join(dir, 'rotation', 'b.pem'), keyB.pem)
  mkdirSync(join(dir, 'rotation', 'subdir-ignored'))
  writeFileSync(join(dir, 'not-a-key.pem'), 'hello')
})

afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
})

describe('JwtAuth', () => {
  it('accepts a tenant token with its tenant_id and a pageserverapi token (exp optional)', async () => {
    const auth = await loadJwtAuth(join(dir, 'a.pem'))
    expect(await auth.verify(await sign({ scope: 'tenant', tenant_id: TENANT }))).toEqual({ scope: 'tenant', tenantId: TENANT })
    expect(await auth.verify(await sign({ scope: 'pageserverapi', iss: 'x', iat: 1 }))).toEqual({ scope: 'pageserverapi', tenantId: null })
    const future = Math.floor(Date.now() / 1000) + 3600
    expect((await auth.verify(await sign({ scope: 'pageserverapi', exp: future }))).scope).toBe('pageserverapi')
  })

  it('refuses every kind of bad token', async () => {
    const auth = await loadJwtAuth(join(dir, 'a.pem'))
    const claims = { scope: 'pageserverapi' }
    const refusals: Array<[string, string, RegExp]> = [
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`, /invalid JWT token/],
      ['HS256 keyed with the public key PEM', await sign(claims, new TextEncoder().encode(keyA.pem) as unknown as Key, 'HS256'), /invalid JWT token/],
      ['RS256', await sign(claims, rsa.privateKey, 'RS256'), /invalid JWT token/],
      ['signed by an unknown key', await sign(claims, keyC.privateKey), /invalid JWT token: signature verification failed/],
      ['expired', await sign({ ...claims, exp: Math.floor(Date.now() / 1000) - 3600 }), /invalid JWT token: "exp" claim timestamp check failed/],
      ['tenant scope without tenant_id', await sign({ scope: 'tenant' }), /jwt token scope is Tenant, but tenant id is missing/],
      ['safekeeperdata', await sign({ scope: 'safekeeperdata' }), /JWT scope 'safekeeperdata' is ineligible for Pageserver auth/],
      ['an unknown scope', await sign({ scope: 'superuser' }), /unknown scope "superuser"/],
      ['no scope', await sign({ tenant_id: TENANT }), /no scope/],
      ['a tenant_id that is not an id', await sign({ scope: 'tenant', tenant_id: 'abc' }), /tenant_id is not a tenant id/],
      ['a claim given twice', signRaw('{"scope":"tenant","tenant_id":"' + TENANT + '","scope":"pageserverapi"}'), /claim "scope" appears twice/],
      ['garbage', 'abc', /invalid JWT token/],
      ['empty', '', /no JWT token/],
    ]
    for (const [what, token, re] of refusals) {
      await expect(auth.verify(token), what).rejects.toThrow(re)
    }
  })

  it('checks the command tenant: tenant scope only its own, pageserverapi anything', () => {
    const tenant = { scope: 'tenant' as const, tenantId: TENANT }
    expect(checkPermission(tenant, TENANT)).toBeNull()
    expect(checkPermission(tenant, OTHER_TENANT)?.message).toBe('Tenant id mismatch. Permission denied')
    expect(checkPermission(tenant, null)?.message).toBe('Attempt to access management api with tenant scope. Permission denied')
    expect(checkPermission({ scope: 'pageserverapi', tenantId: null }, OTHER_TENANT)).toBeNull()
    expect(checkPermission({ scope: 'admin', tenantId: null }, TENANT)?.message).toBe("JWT scope 'admin' is ineligible for Pageserver auth")
  })

  it('a key directory accepts tokens of any key in it (rotation); files only, sorted', async () => {
    const auth = await loadJwtAuth(join(dir, 'rotation'))
    expect(auth.keyCount).toBe(2)
    expect((await auth.verify(await sign({ scope: 'pageserverapi' }, keyA.privateKey))).scope).toBe('pageserverapi')
    expect((await auth.verify(await sign({ scope: 'pageserverapi' }, keyB.privateKey))).scope).toBe('pageserverapi')
    await expect(auth.verify(await sign({ scope: 'pageserverapi' }, keyC.privateKey))).rejects.toThrow(/signature verification failed/)
  })

  it('follows symbolic links as Neon does: a Kubernetes secret mount, and a directory mixing a file and a link', async () => {
    // kubectl's layout: key files link into ..data, a link to the current timestamped directory.
    const mount = join(dir, 'k8s')
    mkdirSync(join(mount, '..2024_01_01_00_00_00.1'), { recursive: true })
    writeFileSync(join(mount, '..2024_01_01_00_00_00.1', 'a.pem'), keyA.pem)
    writeFileSync(join(mount, '..2024_01_01_00_00_00.1', 'b.pem'), keyB.pem)
    symlinkSync('..2024_01_01_00_00_00.1', join(mount, '..data'))
    symlinkSync('..data/a.pem', join(mount, 'a.pem'))
    symlinkSync('..data/b.pem', join(mount, 'b.pem'))
    const k8s = await loadJwtAuth(mount)
    expect(k8s.keyNames).toEqual([join(mount, 'a.pem'), join(mount, 'b.pem')])
    expect((await k8s.verify(await sign({ scope: 'pageserverapi' }, keyB.privateKey))).scope).toBe('pageserverapi')

    const mixed = join(dir, 'mixed')
    mkdirSync(mixed)
    writeFileSync(join(mixed, 'a.pem'), keyA.pem)
    symlinkSync(join(dir, 'rotation', 'b.pem'), join(mixed, 'b.pem'))
    symlinkSync(join(dir, 'rotation'), join(mixed, 'linked-dir-ignored'))
    const both = await loadJwtAuth(mixed)
    expect(both.keyCount).toBe(2)
    expect((await both.verify(await sign({ scope: 'pageserverapi' }, keyB.privateKey))).scope).toBe('pageserverapi')
    // The configured path itself may be a link too.
    symlinkSync(join(dir, 'a.pem'), join(dir, 'a-link.pem'))
    expect((await loadJwtAuth(join(dir, 'a-link.pem'))).keyCount).toBe(1)
  })

  it('an unreadable path or key file is a config error naming the setting and the path (exit 2), not a bug', async () => {
    // As root nothing is unreadable by mode; a symlink loop (ELOOP) fails the same way EACCES does.
    const loop = join(dir, 'loop.pem')
    symlinkSync(loop, loop)
    const err = await loadJwtAuth(loop).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'JWT_KEY_UNREADABLE', exitCode: 2 })
    expect((err as Error).message).toBe(`auth_validation_public_key_path: cannot read ${loop}: ELOOP`)
    expect(toUserFacing(err).exitCode).toBe(2)
    // In a directory: a dangling link is refused rather than its key silently left out.
    const dangling = join(dir, 'dangling')
    mkdirSync(dangling)
    writeFileSync(join(dangling, 'a.pem'), keyA.pem)
    symlinkSync(join(dir, 'gone.pem'), join(dangling, 'b.pem'))
    const d = await loadJwtAuth(dangling).catch((e: unknown) => e)
    expect(d).toMatchObject({ code: 'JWT_KEY_UNREADABLE', exitCode: 2 })
    expect((d as Error).message).toContain(join(dangling, 'b.pem'))
    // EACCES and EISDIR as node:fs raises them.
    for (const code of ['EACCES', 'EISDIR', 'EIO']) {
      const fsErr = Object.assign(new Error(`${code}: permission denied, open '/keys/a.pem'`), { code, errno: -13, syscall: 'open', path: '/keys/a.pem' })
      const mapped = keyReadError(fsErr, '/keys/a.pem')
      expect(mapped).toMatchObject({ code: 'JWT_KEY_UNREADABLE', exitCode: 2, message: `auth_validation_public_key_path: cannot read /keys/a.pem: ${code}` })
      expect(toUserFacing(mapped).hint).toMatch(/readable/)
    }
    const bug = new TypeError('x is undefined')
    expect(keyReadError(bug, '/keys')).toBe(bug)
  })

  it('replaceKeys: tokens verified after it see only the new keys', async () => {
    const auth = await loadJwtAuth(join(dir, 'a.pem'))
    const tokenB = await sign({ scope: 'pageserverapi' }, keyB.privateKey)
    await expect(auth.verify(tokenB)).rejects.toThrow(/signature verification failed/)
    auth.replaceKeys(await JwtAuth.fromPublicKeyPems([{ name: 'b.pem', pem: keyB.pem }]))
    expect((await auth.verify(tokenB)).scope).toBe('pageserverapi')
    await expect(auth.verify(await sign({ scope: 'pageserverapi' }))).rejects.toThrow(/signature verification failed/)
    expect([auth.keyCount, auth.keyNames]).toEqual([1, ['b.pem']])
  })

  it('key loading fails clearly: missing path, a file that is not a key, zero keys', async () => {
    await expect(loadJwtAuth(join(dir, 'missing.pem'))).rejects.toMatchObject({ code: 'JWT_KEY_PATH_MISSING' })
    await expect(loadJwtAuth(join(dir, 'not-a-key.pem'))).rejects.toMatchObject({ code: 'JWT_BAD_KEY' })
    mkdirSync(join(dir, 'empty'), { recursive: true })
    await expect(loadJwtAuth(join(dir, 'empty'))).rejects.toMatchObject({ code: 'JWT_NO_KEYS' })
    await expect(JwtAuth.fromPublicKeyPems([{ name: 'rsa', pem: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n' }])).rejects.toMatchObject({ code: 'JWT_BAD_KEY' })
  })
})

describe('NeonJWT over the wire', () => {
  let r: Running | null = null
  afterEach(async () => {
    await r?.stop()
    r = null
  })

  async function start(): Promise<Running> {
    r = await startServer({ authType: 'jwt', jwtAuth: await loadJwtAuth(join(dir, 'rotation')) })
    return r
  }

  it('a tenant token serves its tenant and is refused for another tenant on the same connection', async () => {
    const s = await start()
    const token = await sign({ scope: 'tenant', tenant_id: TENANT })
    const c = await s.client({ token })
    const err = await c.pagestream(OTHER_TENANT, TIMELINE).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'PAGE_SERVICE_UNAUTHORIZED', detail: 'Tenant id mismatch. Permission denied' })
    const stream = await c.pagestream(TENANT, TIMELINE)
    expect(await stream.nblocks(REL)).toBe(10)
    const api = await s.client({ token: await sign({ scope: 'pageserverapi' }, keyB.privateKey) })
    expect(await (await api.pagestream(OTHER_TENANT, TIMELINE)).nblocks(REL)).toBe(10)
  })

  it('bad tokens are refused at login with "JWT authentication error"; none given is a clear client error', async () => {
    const s = await start()
    for (const token of [
      `${b64({ alg: 'none' })}.${b64({ scope: 'pageserverapi' })}.`,
      await sign({ scope: 'pageserverapi' }, keyC.privateKey),
      await sign({ scope: 'tenant' }),
      await sign({ scope: 'safekeeperdata' }),
    ]) {
      const err = await s.client({ token }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'PAGE_SERVICE_UNAUTHORIZED', sqlstate: 'XX000' })
      expect((err as Error).message).toMatch(/JWT authentication error/)
    }
    await expect(s.client()).rejects.toMatchObject({ code: 'PAGE_SERVICE_TOKEN_REQUIRED' })
    expect(s.server.metrics.authFailures).toBe(4)
    expect((await s.client({ token: await sign({ scope: 'pageserverapi' }) })).serverParameters.get('client_encoding')).toBe('UTF8')
  })
})
