/**
 * `pageserver tenant delete` end to end, through the built CLI: offline (under the workdir lock) and through
 * a running `pageserver serve` (its management API; the server stops serving the tenant at once), with the
 * --json contract, the --tenant-id spelling `tenant create` uses, exit 3 for an unknown tenant and exit 2 for
 * a malformed id. Timelines are real: bootstrapped with stock initdb, plus a branch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from '../support/cli.js'
import { startServe, type ServeHandle } from '../support/serve-process.js'
import { PageServiceClient } from '../../src/core/page-service/client.js'
import { parseTenantId, parseTimelineId } from '../../src/core/model/ids.js'
import { parseServerAddress } from '../../src/cli/getpage-server.js'

describe('pageserver tenant delete', () => {
  let root: string
  let workdir: string
  let serve: ServeHandle | null = null
  const env = () => ({ PAGESERVER_WORKDIR: workdir })
  const cli = (args: string[]) => runCli([...args, '-c', 'no_sync=true'], { env: env(), timeoutMs: 120_000 })

  /** A tenant with a bootstrapped root timeline and a branch of it; returns the tenant id. */
  async function tenantWithBranch(): Promise<{ tenantId: string; timelineId: string }> {
    const t = await cli(['tenant', 'create', '--json'])
    expect(t.code, t.stderr).toBe(0)
    const tenantId = t.json<{ tenantId: string }>().tenantId
    const tl = await cli(['timeline', 'create', '--tenant', tenantId, '--json'])
    expect(tl.code, tl.stderr).toBe(0)
    const timelineId = tl.json<{ timelineId: string }>().timelineId
    const br = await cli(['timeline', 'branch', '--tenant', tenantId, '--ancestor', timelineId, '--json'])
    expect(br.code, br.stderr).toBe(0)
    return { tenantId, timelineId }
  }

  const tenantIds = async () => (await cli(['tenant', 'list', '--json'])).json<Array<{ tenantId: string }>>().map((t) => t.tenantId)

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'ps-tenant-delete-'))
    workdir = join(root, '.neon')
    expect((await runCli(['init'], { env: env() })).code).toBe(0)
  })
  afterAll(async () => {
    await serve?.stop()
    if (root) rmSync(root, { recursive: true, force: true })
  })

  it('offline: deletes the tenant with its timelines; --json prints {tenantId, deleted: true, slotsDropped, slotsLeft}', async () => {
    const keep = await tenantWithBranch()
    const gone = await tenantWithBranch()
    const r = await cli(['tenant', 'delete', '--tenant', gone.tenantId, '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.json()).toEqual({ tenantId: gone.tenantId, deleted: true, slotsDropped: [], slotsLeft: [], slotsUnknown: [] })
    expect(existsSync(join(workdir, 'tenants', gone.tenantId))).toBe(false)
    expect(readdirSync(join(workdir, 'tenants'))).toEqual([keep.tenantId])
    expect(await tenantIds()).toEqual([keep.tenantId])
    const tls = await cli(['timeline', 'list', '--tenant', gone.tenantId, '--json'])
    expect(tls.code).toBe(3)
    // Without --json: one line naming it.
    const other = await tenantWithBranch()
    const plain = await cli(['tenant', 'delete', '--tenant-id', other.tenantId])
    expect(plain.code, plain.stderr).toBe(0)
    expect(plain.stdout.trim()).toBe(`deleted tenant ${other.tenantId}`)
  })

  it('an unknown tenant exits 3 (TENANT_NOT_FOUND); a malformed id or no id exits 2', async () => {
    const missing = await cli(['tenant', 'delete', '--tenant', '0123456789abcdef0123456789abcdef', '--json'])
    expect(missing.code).toBe(3)
    expect(missing.json<{ error: { code: string; hint: string | null } }>().error.code).toBe('TENANT_NOT_FOUND')
    const plain = await cli(['tenant', 'delete', '--tenant', '0123456789abcdef0123456789abcdef'])
    expect(plain.code).toBe(3)
    expect(plain.stderr).toMatch(/^Error: tenant 0123456789abcdef0123456789abcdef does not exist/)
    expect(plain.stderr).toContain('Hint: ')
    expect((await cli(['tenant', 'delete', '--tenant', 'xyz'])).code).toBe(2)
    expect((await cli(['tenant', 'delete'])).code).toBe(2)
  })

  it('while serve runs: goes through its API, which stops serving the tenant; the server keeps serving the rest', async () => {
    const keep = (await tenantIds())[0]!
    serve = await startServe(workdir)
    // Created through the server, so it is being served.
    const gone = await tenantWithBranch()
    const client = await PageServiceClient.connect(parseServerAddress(serve.pgAddr))
    try {
      const ps = await client.pagestream(parseTenantId(gone.tenantId), parseTimelineId(gone.timelineId), { version: 2 })
      expect(await ps.nblocks({ spcNode: 1663, dbNode: 1, relNode: 1259, forkNum: 0 }, {})).toBeGreaterThan(0)
    } finally {
      await client.close()
    }

    const r = await cli(['tenant', 'delete', '--tenant', gone.tenantId, '--json'])
    expect(r.code, r.stderr).toBe(0) // offline it would have failed on the server's lock (exit 4)
    expect(r.json()).toEqual({ tenantId: gone.tenantId, deleted: true, slotsDropped: [], slotsLeft: [], slotsUnknown: [] })
    expect(existsSync(join(workdir, 'tenants', gone.tenantId))).toBe(false)
    expect(await tenantIds()).toEqual([keep])
    const again = await cli(['tenant', 'delete', '--tenant', gone.tenantId, '--json'])
    expect(again.code).toBe(3)
    expect(again.json<{ error: { code: string } }>().error.code).toBe('TENANT_NOT_FOUND')

    // The page service no longer knows it; the other tenant is still served.
    const after = await PageServiceClient.connect(parseServerAddress(serve.pgAddr))
    try {
      await expect(after.pagestream(parseTenantId(gone.tenantId), parseTimelineId(gone.timelineId), { version: 2 })).rejects.toThrow(/not served|not found|does not exist/i)
    } finally {
      await after.close()
    }
    expect((await cli(['timeline', 'list', '--tenant', keep, '--json'])).code).toBe(0)

    // A graceful stop and restart find nothing to trip over.
    expect(await serve.stop()).toBe(0)
    serve = await startServe(workdir)
    expect(await tenantIds()).toEqual([keep])
    expect(await serve.stop()).toBe(0)
    serve = null
    expect(readdirSync(join(workdir, 'tenants'))).toEqual([keep])
  })
})
