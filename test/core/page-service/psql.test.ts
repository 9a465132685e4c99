/**
 * Real `psql` from PostgreSQL 15 against the page service: libpq's startup (SSLRequest with the default
 * sslmode=prefer, declined with 'N'), trust and NeonJWT logins, command errors, and the refusal texts
 * a user sees.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { SignJWT, exportSPKI, generateKeyPair, type GenerateKeyPairResult } from 'jose'
import { findPostgres } from '../../../src/core/postgres/install.js'
import { loadJwtAuth } from '../../../src/core/page-service/auth-keys.js'
import { TENANT, TIMELINE, OTHER_TENANT } from './fake-backend.js'
import { startServer, type Running } from './support.js'

interface PsqlResult {
  code: number | null
  stdout: string
  stderr: string
}

function psql(port: number, sql: string, env: Record<string, string> = {}): Promise<PsqlResult> {
  const bin = join(findPostgres(undefined, process.env).binDir, 'psql')
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['-X', '-w', '-h', '127.0.0.1', '-p', String(port), '-U', 'cloud_admin', '-d', 'postgres', '-c', sql], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

let r: Running | null = null
afterEach(async () => {
  await r?.stop()
  r = null
})

describe('psql with trust auth', () => {
  it('connects (sslmode=prefer is declined and continues in plain text) and runs `set x`', async () => {
    r = await startServer()
    const res = await psql(r.port, 'set x')
    expect(res).toMatchObject({ code: 0, stderr: '' })
    expect(res.stdout.trim()).toBe('SELECT 1')
  })

  it('with sslmode=require psql refuses: the server does not do TLS', async () => {
    r = await startServer()
    const res = await psql(r.port, 'set x', { PGSSLMODE: 'require' })
    expect(res.code).toBe(2)
    expect(res.stderr).toMatch(/server does not support SSL, but SSL was required/)
  })

  it('shows command errors as ERROR and exits 1', async () => {
    r = await startServer()
    const bad = await psql(r.port, 'select 1')
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/ERROR:\s+unsupported command select in select 1/)
    const missing = await psql(r.port, `basebackup ${OTHER_TENANT.replace(/1/g, '2')} ${TIMELINE}`)
    expect(missing.stderr).toMatch(/ERROR:\s+Not found: timeline/)
  })

  it('beyond connectionsMax psql reports "too many clients"', async () => {
    r = await startServer({ connectionsMax: 1 })
    const held = await r.client()
    const res = await psql(r.port, 'set x')
    expect(res.code).toBe(2)
    expect(res.stderr).toMatch(/sorry, too many clients already/)
    await held.close()
  })
})

describe('psql with NeonJWT', () => {
  let dir: string
  let privateKey: GenerateKeyPairResult['privateKey']
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ps-psql-'))
    const kp = await generateKeyPair('EdDSA', { extractable: true })
    privateKey = kp.privateKey
    writeFileSync(join(dir, 'key.pem'), await exportSPKI(kp.publicKey))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('logs in with the token as password; a wrong or absent token is refused', async () => {
    r = await startServer({ authType: 'jwt', jwtAuth: await loadJwtAuth(join(dir, 'key.pem')) })
    const token = await new SignJWT({ scope: 'tenant', tenant_id: TENANT }).setProtectedHeader({ alg: 'EdDSA' }).sign(privateKey)
    const ok = await psql(r.port, 'set x', { PGPASSWORD: token })
    expect(ok).toMatchObject({ code: 0 })
    expect(ok.stdout.trim()).toBe('SELECT 1')

    const wrong = await psql(r.port, 'set x', { PGPASSWORD: `${token.slice(0, -4)}AAAA` })
    expect(wrong.code).toBe(2)
    expect(wrong.stderr).toMatch(/FATAL:\s+JWT authentication error/)

    const absent = await psql(r.port, 'set x')
    expect(absent.code).toBe(2)
    expect(absent.stderr).toMatch(/no password supplied/)

    const otherTenant = await psql(r.port, `pagestream_v2 ${OTHER_TENANT} ${TIMELINE}`, { PGPASSWORD: token })
    expect(otherTenant.code).toBe(1)
    expect(otherTenant.stderr).toMatch(/ERROR:\s+JWT authentication error\s+DETAIL:\s+Tenant id mismatch. Permission denied/)
  })
})
