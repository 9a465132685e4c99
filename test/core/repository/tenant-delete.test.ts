// Tenant delete, below the CLI: offline through the app use case (under the workdir lock), the crash
// leftovers a restart must finish or ignore (a tombstone, for tenants and timelines alike), an unknown
// tenant, and DELETE /v1/tenant/:tenant_id on an in-process PageServer (timelines dropped from service
// with their WAL receivers stopped, Neon's JWT scopes). No PostgreSQL needed: timelines are built by hand.
import { describe, expect, it } from 'vitest'
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { exportSPKI, generateKeyPair, SignJWT } from 'jose'
import { tenantOptions, withRepository, type AppContext } from '../../../src/core/app/context.js'
import { createTenant, deleteTenant, deleteTenantIn, listTenants } from '../../../src/core/app/timelines.js'
import { PageServer } from '../../../src/core/app/server.js'
import { Repository, TENANTS_DIR } from '../../../src/core/repository/repository.js'
import { TEMP_DIR_PREFIX, tombstoneDir } from '../../../src/core/storage/atomic-dir.js'
import { ManagementClient } from '../../../src/cli/server-client.js'
import { ConflictError, NotFoundError, UsageError } from '../../../src/core/lib/errors.js'
import { generateTenantId, parseTenantId } from '../../../src/core/model/ids.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { contextFor, tenantWithTimelines } from '../../support/tenant-fixture.js'

const newDir = tempDirs('ps-tenant-delete-')

const tenantsDirOf = (ctx: AppContext) => join(ctx.config.workdir, TENANTS_DIR)

describe('tenant delete (offline)', () => {
  it('deletes the tenant with every timeline, branches included, and leaves nothing behind', async () => {
    const ctx = await contextFor(newDir())
    const keep = await tenantWithTimelines(ctx)
    const gone = await tenantWithTimelines(ctx)
    expect(await deleteTenant(ctx, gone.tenantId)).toEqual({ tenantId: gone.tenantId, deleted: true, slotsDropped: [], slotsLeft: [], slotsUnknown: [] })
    expect(readdirSync(tenantsDirOf(ctx))).toEqual([keep.tenantId])
    expect(await listTenants(ctx)).toEqual([{ tenantId: keep.tenantId, timelines: 2 }])
    // The other tenant is untouched and still loads.
    await withRepository(ctx, async (repo) => {
      const t = await repo.tenant(keep.tenantId)
      expect((await t.timeline(keep.branch)).ancestor?.timelineId).toBe(keep.root)
    })
    // The id is free again.
    expect((await createTenant(ctx, gone.tenantId)).tenantId).toBe(gone.tenantId)
  })

  it('refuses an unknown tenant with TENANT_NOT_FOUND (exit 3), changing nothing', async () => {
    const ctx = await contextFor(newDir())
    const keep = await tenantWithTimelines(ctx)
    const err = await deleteTenant(ctx, generateTenantId()).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(NotFoundError)
    expect((err as NotFoundError).code).toBe('TENANT_NOT_FOUND')
    expect((err as NotFoundError).exitCode).toBe(3)
    expect(await listTenants(ctx)).toEqual([{ tenantId: keep.tenantId, timelines: 2 }])
  })

  it('takes the workdir lock: refused (conflict) while another process holds it', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    await withRepository(
      ctx,
      async () => {
        await expect(deleteTenant(ctx, f.tenantId)).rejects.toBeInstanceOf(ConflictError)
      },
      { lockFor: 'holder' },
    )
    expect((await listTenants(ctx)).map((t) => t.tenantId)).toEqual([f.tenantId])
  })

  it('closes a tenant loaded in the same repository before deleting it', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    await withRepository(
      ctx,
      async (repo) => {
        const t = await repo.tenant(f.tenantId)
        const branch = await t.timeline(f.branch)
        // A reader waiting on the timeline is failed by its close, not left to read deleted files.
        const waiting = branch.waitForLsn(lsn(0x200), 10_000)
        waiting.catch(() => {})
        await deleteTenantIn(repo, ctx, f.tenantId)
        expect(repo.loadedTenants()).toEqual([])
        await expect(waiting).rejects.toThrow(/shutting down/)
        await expect(repo.tenant(f.tenantId)).rejects.toBeInstanceOf(NotFoundError)
      },
      { lockFor: 'test' },
    )
  })
})

describe('tenant delete: a crash midway', () => {
  it('after the rename (any point of the recursive removal): listings skip the tombstone, the next writer removes it', async () => {
    const ctx = await contextFor(newDir())
    const keep = await tenantWithTimelines(ctx)
    const crashed = await tenantWithTimelines(ctx)
    // What a crash leaves: the tombstone, with part of its contents already removed (config.toml first,
    // as the worst case: without the rename this would be a listed tenant that no longer loads).
    const tombstone = await tombstoneDir(tenantsDirOf(ctx), crashed.tenantId, `tenant ${crashed.tenantId}`)
    rmSync(join(tombstone, 'config.toml'))
    rmSync(join(tombstone, 'timelines', crashed.branch), { recursive: true })
    expect(readdirSync(tenantsDirOf(ctx)).sort()).toEqual([keep.tenantId, tombstone.slice(tenantsDirOf(ctx).length + 1)].sort())

    // A reader (read-only open, no lock) ignores it and removes nothing.
    expect(await listTenants(ctx)).toEqual([{ tenantId: keep.tenantId, timelines: 2 }])
    expect(existsSync(tombstone)).toBe(true)
    // The deleted tenant is gone for every operation.
    await expect(deleteTenant(ctx, crashed.tenantId)).rejects.toBeInstanceOf(NotFoundError)
    // The next writer (here that delete's own open; `serve` at start the same way) finished it.
    expect(existsSync(tombstone)).toBe(false)
    expect(readdirSync(tenantsDirOf(ctx))).toEqual([keep.tenantId])
  })

  it('a restart of the server finishes an interrupted delete and serves the rest', async () => {
    const ctx = await contextFor(newDir(), ['listen_pg_addr="127.0.0.1:0"', 'listen_http_addr="127.0.0.1:0"'])
    const keep = await tenantWithTimelines(ctx)
    const crashed = await tenantWithTimelines(ctx)
    const tombstone = await tombstoneDir(tenantsDirOf(ctx), crashed.tenantId, `tenant ${crashed.tenantId}`)
    const server = await PageServer.start(ctx)
    try {
      expect(existsSync(tombstone)).toBe(false)
      expect(await server.listTenants()).toEqual([{ tenantId: keep.tenantId, timelines: 2 }])
      expect(server.servedTimelines().map((s) => s.tenant.id)).toEqual([keep.tenantId, keep.tenantId])
    } finally {
      await server.stop()
    }
  })

  it('timeline delete uses the same tombstone: a leftover one is skipped and removed', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    await withRepository(
      ctx,
      async (repo) => {
        const t = await repo.tenant(f.tenantId)
        const tombstone = await tombstoneDir(t.timelinesDir, f.branch, `timeline ${f.branch}`)
        rmSync(join(tombstone, 'metadata'))
        expect(await t.timelineIds()).toEqual([f.root])
        expect(existsSync(tombstone)).toBe(false)
        // And a complete timeline delete leaves no tombstone.
        await t.deleteTimeline(f.root)
        expect(readdirSync(t.timelinesDir)).toEqual([])
      },
      { lockFor: 'test' },
    )
  })

  it('before the rename: the tenant is whole (tombstoning a missing directory is NotFound)', async () => {
    const ctx = await contextFor(newDir())
    await expect(tombstoneDir(tenantsDirOf(ctx), generateTenantId(), 'tenant x')).rejects.toBeInstanceOf(NotFoundError)
    const repo = await Repository.open(ctx.config.workdir, tenantOptions(ctx))
    try {
      expect(readdirSync(tenantsDirOf(ctx)).filter((n) => n.startsWith(TEMP_DIR_PREFIX))).toEqual([])
    } finally {
      await repo.close()
    }
  })
})

describe('DELETE /v1/tenant/:tenant_id', () => {
  const listenOverrides = ['listen_pg_addr="127.0.0.1:0"', 'listen_http_addr="127.0.0.1:0"']

  it('stops the tenant\'s WAL receivers, drops it from service and deletes it; unknown tenants are 404 (exit 3)', async () => {
    const ctx = await contextFor(newDir(), listenOverrides)
    const keep = await tenantWithTimelines(ctx)
    // A WAL source nobody listens on (port 1): its receiver keeps retrying until stopped.
    const gone = await tenantWithTimelines(ctx, 'host=127.0.0.1 port=1 user=nobody')
    const server = await PageServer.start(ctx)
    try {
      expect(server.servedTimelines().length).toBe(4)
      const goneService = server.service(gone.tenantId, gone.root)
      // Nobody listens there: the status says the receiver is connecting or reconnecting, with the reason.
      const deadline = Date.now() + 10_000
      while (!/^reconnecting \(attempt \d+, last record 0\/108\): .*ECONNREFUSED/.test(goneService.walReceiverStatus()) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50))
      }
      expect(goneService.walReceiverStatus()).toMatch(/^reconnecting \(attempt \d+, last record 0\/108\): .*ECONNREFUSED/)
      expect(goneService.walReceiverRetrying).toBe(true)
      const metrics = await (await fetch(`http://127.0.0.1:${server.addresses.http.port}/metrics`)).text()
      expect(metrics).toContain(`pageserver_wal_receiver_retrying{tenant_id="${gone.tenantId}",timeline_id="${gone.root}"} 1`)
      expect(metrics).toContain(`pageserver_wal_receiver_retrying{tenant_id="${keep.tenantId}",timeline_id="${keep.root}"} 0`)
      const client = new ManagementClient({ pid: process.pid, httpAddr: `127.0.0.1:${server.addresses.http.port}`, pgAddr: undefined }, undefined)

      expect(await client.request('DELETE', `/v1/tenant/${gone.tenantId}`)).toEqual({ tenantId: gone.tenantId, deleted: true, slotsDropped: [], slotsLeft: [], slotsUnknown: [] })
      expect(goneService.walReceiverStatus()).toBe('stopped')
      expect(() => server.service(gone.tenantId, gone.root)).toThrow(NotFoundError)
      expect(server.servedTimelines().every((s) => s.tenant.id === keep.tenantId)).toBe(true)
      expect(readdirSync(tenantsDirOf(ctx))).toEqual([keep.tenantId])
      expect(await client.request('GET', '/v1/tenant')).toEqual([{ id: keep.tenantId, state: { slug: 'Active' }, timelines: 2 }])
      // The survivor is still served.
      expect(server.service(keep.tenantId, keep.branch).lastRecordLsn()).toBe(lsn(0x108))

      const again = await client.request('DELETE', `/v1/tenant/${gone.tenantId}`).catch((e: unknown) => e)
      expect(again).toBeInstanceOf(NotFoundError)
      expect((again as NotFoundError).code).toBe('TENANT_NOT_FOUND')
      expect((again as NotFoundError).exitCode).toBe(3)
      await expect(client.request('DELETE', '/v1/tenant/not-hex')).rejects.toBeInstanceOf(UsageError)
      // The id can be created again through the same server, empty.
      expect(await client.request('POST', '/v1/tenant', { new_tenant_id: gone.tenantId })).toEqual({ tenant_id: gone.tenantId })
      expect(await client.request('GET', `/v1/tenant/${gone.tenantId}/timeline`)).toEqual([])
    } finally {
      await server.stop()
    }
  })

  it('with NeonJWT: the guard of timeline delete (the tenant\'s own token or pageserverapi)', async () => {
    const dir = newDir()
    const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const keyPath = join(dir, 'auth_public_key.pem')
    writeFileSync(keyPath, await exportSPKI(publicKey))
    const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA' }).sign(privateKey)
    mkdirSync(join(dir, 'w')) // as `pageserver init` would: commands refuse a missing workdir
    const ctx = await contextFor(join(dir, 'w'), [...listenOverrides, 'http_auth_type="NeonJWT"', `auth_validation_public_key_path='${keyPath}'`])
    const a = parseTenantId((await createTenant(ctx)).tenantId)
    const b = parseTenantId((await createTenant(ctx)).tenantId)
    const server = await PageServer.start(ctx)
    try {
      const as = (token: string | undefined) =>
        new ManagementClient({ pid: process.pid, httpAddr: `127.0.0.1:${server.addresses.http.port}`, pgAddr: undefined }, token)
      await expect(as(undefined).request('DELETE', `/v1/tenant/${a}`)).rejects.toThrow(/Authorization/)
      await expect(as(await sign({ scope: 'tenant', tenant_id: b })).request('DELETE', `/v1/tenant/${a}`)).rejects.toThrow(/Forbidden/)
      expect(await as(await sign({ scope: 'tenant', tenant_id: a })).request('DELETE', `/v1/tenant/${a}`)).toEqual({ tenantId: a, deleted: true, slotsDropped: [], slotsLeft: [], slotsUnknown: [] })
      expect(await as(await sign({ scope: 'pageserverapi' })).request('DELETE', `/v1/tenant/${b}`)).toEqual({ tenantId: b, deleted: true, slotsDropped: [], slotsLeft: [], slotsUnknown: [] })
      expect(readdirSync(tenantsDirOf(ctx))).toEqual([])
    } finally {
      await server.stop()
    }
  })
})
