/**
 * `pageserver serve` and its JWT validation keys, as a process: SIGHUP reloads them (a daemon must not die on
 * SIGHUP: it used to, without its shutdown, leaving pageserver.lock behind), and an unreadable key path is a
 * config error (exit 2), not a bug. No PostgreSQL needed.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { exportSPKI, generateKeyPair, SignJWT } from 'jose'
import { runCli } from '../support/cli.js'
import { startServe, type ServeHandle } from '../support/serve-process.js'
import { tempDirs } from '../support/timeline-fixture.js'

const newDir = tempDirs('ps-serve-keys-')
let serve: ServeHandle | null = null
afterEach(async () => {
  await serve?.stop()
  serve = null
})

async function edKey() {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true })
  return { token: await new SignJWT({ scope: 'pageserverapi' }).setProtectedHeader({ alg: 'EdDSA' }).sign(privateKey), pem: await exportSPKI(publicKey) }
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('serve and SIGHUP', () => {
  it('reloads the JWT keys and keeps running; SIGTERM still shuts down cleanly and releases the lock', async () => {
    const [a, b] = [await edKey(), await edKey()]
    const workdir = newDir()
    const keyDir = join(newDir(), 'keys')
    mkdirSync(keyDir)
    writeFileSync(join(keyDir, 'a.pem'), a.pem)
    serve = await startServe(workdir, ['-c', 'auth_type="NeonJWT"', '-c', `auth_validation_public_key_path="${keyDir}"`], { PAGESERVER_LOG: 'info' })
    const s = serve
    const tenants = (token: string) => fetch(`http://${s.httpAddr}/v1/tenant`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status)
    expect(s.stderr()).toMatch(/JWT validation keys loaded.*a\.pem/)
    expect(await tenants(b.token)).toBe(401)

    writeFileSync(join(keyDir, 'b.pem'), b.pem)
    s.child.kill('SIGHUP')
    await waitFor('the reload', () => s.stderr().includes('JWT validation keys reloaded'))
    expect(s.child.exitCode).toBeNull()
    expect(await tenants(b.token)).toBe(200)

    // A reload that fails is logged and changes nothing.
    writeFileSync(join(keyDir, 'c.pem'), 'not a key')
    s.child.kill('SIGHUP')
    await waitFor('the failed reload', () => s.stderr().includes('reloading the JWT validation keys failed'))
    expect(await tenants(a.token)).toBe(200)

    expect(await s.stop()).toBe(0)
    expect(existsSync(join(workdir, 'pageserver.lock'))).toBe(false)
  })
})

describe('serve with an unreadable key path', () => {
  it('exits 2 with JWT_KEY_UNREADABLE naming the setting and the path, not as a bug', async () => {
    const dir = newDir()
    const loop = join(dir, 'loop.pem') // as root nothing is unreadable by mode; a link loop fails like EACCES
    symlinkSync(loop, loop)
    const r = await runCli(['serve', '--json', '-c', 'listen_pg_addr="127.0.0.1:0"', '-c', 'listen_http_addr="127.0.0.1:0"', '-c', 'auth_type="NeonJWT"', '-c', `auth_validation_public_key_path="${loop}"`], {
      env: { PAGESERVER_WORKDIR: newDir() },
      timeoutMs: 30_000,
    })
    expect(r.code, r.stderr).toBe(2)
    const err = (r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { error?: { code: string; message: string; hint: string } }).find((l) => l.error))!.error!
    expect(err.code).toBe('JWT_KEY_UNREADABLE')
    expect(err.message).toBe(`auth_validation_public_key_path: cannot read ${loop}: ELOOP`)
    expect(err.hint).not.toMatch(/bug/)
  })
})
