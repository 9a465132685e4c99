// A timeline that cannot be loaded (its metadata damaged, or its ancestor's) is isolated: listings show it
// as Broken with its error and go on with the others, `serve` starts and serves every other timeline, and
// requests for it are refused with why (management API, page service, metrics). It can still be deleted.
// A stray directory named like a tenant is left out the same way.
// No PostgreSQL needed: timelines are built by hand (test/support/tenant-fixture.ts).
import { describe, expect, it } from 'vitest'
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { withRepository } from '../../../src/core/app/context.js'
import { deleteTimeline, listTenants, listTimelines, type ListedTimeline } from '../../../src/core/app/timelines.js'
import { PageServer } from '../../../src/core/app/server.js'
import { ManagementClient } from '../../../src/cli/server-client.js'
import { PageServiceClient } from '../../../src/core/page-service/client.js'
import { PageServiceServerError } from '../../../src/core/page-service/client-errors.js'
import { ConflictError, CorruptionError } from '../../../src/core/lib/errors.js'
import type { TenantId, TimelineId } from '../../../src/core/model/ids.js'
import { formatLsn } from '../../../src/core/pg/lsn.js'
import { TENANTS_DIR } from '../../../src/core/repository/repository.js'
import { METADATA_FILE } from '../../../src/core/repository/timeline.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { contextFor, FIXTURE_LSN, FIXTURE_REL, tenantWithTimelines } from '../../support/tenant-fixture.js'
import { runCli } from '../../support/cli.js'
import { defaultSlotName } from '../../../src/core/app/slots.js'

const newDir = tempDirs('ps-broken-')
const listen = ['listen_pg_addr="127.0.0.1:0"', 'listen_http_addr="127.0.0.1:0"']

/** Overwrites bytes in the middle of a timeline's metadata file, as a bad disk or a stray write would. */
function damageMetadata(workdir: string, t: TenantId, tl: TimelineId): string {
  const path = join(workdir, TENANTS_DIR, t, 'timelines', tl, METADATA_FILE)
  const bytes = readFileSync(path)
  bytes.write('garbage', 10)
  writeFileSync(path, bytes)
  return path
}

const byId = (list: ListedTimeline[], id: string) => list.find((t) => t.timelineId === id)!

describe('broken timelines offline', () => {
  it('timeline list shows a damaged branch as Broken with its error and its ancestor as Active', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    const path = damageMetadata(ctx.config.workdir, f.tenantId, f.branch)
    const list = await listTimelines(ctx, f.tenantId)
    expect(list).toHaveLength(2)
    expect(byId(list, f.root)).toMatchObject({ tenantId: f.tenantId, timelineId: f.root, state: 'Active', lastRecordLsn: formatLsn(FIXTURE_LSN) })
    expect(byId(list, f.branch)).toEqual({
      tenantId: f.tenantId,
      timelineId: f.branch,
      state: 'Broken',
      error: { code: 'METADATA_CORRUPT', message: expect.stringContaining(path), hint: expect.stringContaining('restore') },
      ancestorTimelineId: null,
      ancestorLsn: null,
      lastRecordLsn: null,
      diskConsistentLsn: null,
    })
  })

  it('a timeline directory without its metadata is damaged (METADATA_MISSING, exit 5), not an unknown timeline', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    const path = join(ctx.config.workdir, TENANTS_DIR, f.tenantId, 'timelines', f.branch, METADATA_FILE)
    rmSync(path)
    expect(byId(await listTimelines(ctx, f.tenantId), f.branch)).toMatchObject({ state: 'Broken', error: { code: 'METADATA_MISSING', message: expect.stringContaining(path) } })
    const get = await runCli(['getpage', '--workdir', ctx.config.workdir, '--tenant', f.tenantId, '--timeline', f.branch, '--rel', '1663/5/16384', '--blk', '0', '--lsn', '0/108', '--json'])
    expect(get.code).toBe(5)
    expect(get.json()).toMatchObject({ error: { code: 'METADATA_MISSING', hint: expect.stringContaining('Restore metadata') } })
  })

  it('a timeline keeping layer files aside in future-layers/ is deleted only with force (they may be the only copy of their WAL)', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    const aside = join(ctx.config.workdir, TENANTS_DIR, f.tenantId, 'timelines', f.branch, 'future-layers')
    mkdirSync(aside)
    writeFileSync(join(aside, `${'0'.repeat(36)}-${'F'.repeat(36)}__0000000000000109-0000000000000200`), 'layer')
    await expect(deleteTimeline(ctx, f.tenantId, f.branch)).rejects.toMatchObject({ code: 'TIMELINE_HAS_FUTURE_LAYERS', exitCode: 4, hint: expect.stringContaining('--force') })
    expect(await deleteTimeline(ctx, f.tenantId, f.branch, { force: true })).toMatchObject({ deleted: true })
  })

  it('a branch of a damaged timeline is Broken too, naming its ancestor', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    damageMetadata(ctx.config.workdir, f.tenantId, f.root)
    const list = await listTimelines(ctx, f.tenantId)
    expect(byId(list, f.root)).toMatchObject({ state: 'Broken', error: { code: 'METADATA_CORRUPT' } })
    const branch = byId(list, f.branch)
    expect(branch).toMatchObject({ state: 'Broken', error: { code: 'ANCESTOR_NOT_LOADED' } })
    expect(branch.state === 'Broken' && branch.error.message).toContain(`its ancestor ${f.root} cannot: timeline metadata`)
    // Loading it says the same, as a corruption (exit 5).
    await withRepository(ctx, async (repo) => {
      const err = await (await repo.tenant(f.tenantId)).timeline(f.branch).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(CorruptionError)
      expect((err as CorruptionError).code).toBe('ANCESTOR_NOT_LOADED')
    })
  })

  it('deletes a broken timeline; refuses to delete a timeline a broken one may branch from', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    damageMetadata(ctx.config.workdir, f.tenantId, f.branch)
    const refused = await deleteTimeline(ctx, f.tenantId, f.root).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(ConflictError)
    expect((refused as ConflictError).code).toBe('TIMELINE_CHILDREN_UNKNOWN')
    expect((refused as ConflictError).hint).toContain(`Delete timeline ${f.branch} first`)
    // Its metadata cannot say whether it held a replication slot: the result says so, with the name to look for.
    expect(await deleteTimeline(ctx, f.tenantId, f.branch)).toEqual({
      tenantId: f.tenantId,
      timelineId: f.branch,
      deleted: true,
      slotsDropped: [],
      slotsLeft: [],
      slotsUnknown: [{ timelineId: f.branch, reason: expect.stringContaining('is corrupt'), defaultSlotName: defaultSlotName(f.branch) }],
    })
    expect((await listTimelines(ctx, f.tenantId)).map((t) => [t.timelineId, t.state])).toEqual([[f.root, 'Active']])
  })

  it('two broken timelines, each of which may branch from the other, are deleted with --force', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    damageMetadata(ctx.config.workdir, f.tenantId, f.root)
    damageMetadata(ctx.config.workdir, f.tenantId, f.branch)
    // Without force each refuses the other's delete: neither can say it is not the other's branch.
    for (const [tl, other] of [[f.root, f.branch], [f.branch, f.root]] as const) {
      const refused = await deleteTimeline(ctx, f.tenantId, tl).catch((e: unknown) => e)
      expect(refused).toMatchObject({ code: 'TIMELINE_CHILDREN_UNKNOWN', hint: expect.stringContaining('--force') })
      expect((refused as ConflictError).message).toContain(other)
    }
    // The CLI's --force (offline), then the other without anything left to refuse it.
    const forced = await runCli(['timeline', 'delete', '--tenant', f.tenantId, '--timeline', f.root, '--force', '--json', '--workdir', ctx.config.workdir])
    expect(forced.code, forced.stderr).toBe(0)
    expect(forced.json()).toMatchObject({ timelineId: f.root, deleted: true })
    expect(await deleteTimeline(ctx, f.tenantId, f.branch)).toMatchObject({ deleted: true })
    expect(await listTimelines(ctx, f.tenantId)).toEqual([])
  })

  it('the server deletes one of two broken timelines with ?force=true, and refuses without it', async () => {
    const ctx = await contextFor(newDir(), listen)
    const f = await tenantWithTimelines(ctx)
    damageMetadata(ctx.config.workdir, f.tenantId, f.root)
    damageMetadata(ctx.config.workdir, f.tenantId, f.branch)
    const server = await PageServer.start({ ...ctx, log: () => undefined })
    try {
      const http = new ManagementClient({ pid: process.pid, httpAddr: `127.0.0.1:${server.addresses.http.port}`, pgAddr: undefined }, undefined)
      await expect(http.request('DELETE', `/v1/tenant/${f.tenantId}/timeline/${f.branch}`)).rejects.toMatchObject({ code: 'TIMELINE_CHILDREN_UNKNOWN' })
      expect(await http.request('DELETE', `/v1/tenant/${f.tenantId}/timeline/${f.branch}?force=true`)).toMatchObject({ deleted: true })
      expect(await http.request('DELETE', `/v1/tenant/${f.tenantId}/timeline/${f.root}`)).toMatchObject({ deleted: true })
      expect(await http.request('GET', `/v1/tenant/${f.tenantId}/timeline`)).toEqual([])
    } finally {
      await server.stop()
    }
  })

  it('--force still refuses a timeline that a readable branch names as its ancestor', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    const refused = await deleteTimeline(ctx, f.tenantId, f.root, { force: true }).catch((e: unknown) => e)
    expect(refused).toMatchObject({ code: 'TIMELINE_HAS_CHILDREN' })
    expect((await listTimelines(ctx, f.tenantId)).map((t) => t.timelineId).sort()).toEqual([f.root, f.branch].sort())
  })

  it('the CLI lists the others, flags the broken one on stderr and exits 0', async () => {
    const ctx = await contextFor(newDir())
    const f = await tenantWithTimelines(ctx)
    damageMetadata(ctx.config.workdir, f.tenantId, f.branch)
    const args = ['timeline', 'list', '--tenant', f.tenantId, '--workdir', ctx.config.workdir]
    const human = await runCli(args)
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toMatch(new RegExp(`${f.root}\\s*│\\s*Active`))
    expect(human.stdout).toMatch(new RegExp(`${f.branch}\\s*│\\s*Broken \\(METADATA_CORRUPT\\)`))
    expect(human.stderr).toContain(`pageserver: warning: timeline ${f.branch} is broken: timeline metadata`)
    expect(human.stderr).toMatch(/^Hint: /m)
    const json = await runCli([...args, '--json'])
    expect(json.code).toBe(0)
    expect(json.stderr).toBe('')
    expect(json.json<ListedTimeline[]>().map((t) => [t.timelineId, t.state]).sort()).toEqual([[f.root, 'Active'], [f.branch, 'Broken']].sort())
    const del = await runCli(['timeline', 'delete', '--tenant', f.tenantId, '--timeline', f.branch, '--workdir', ctx.config.workdir])
    expect(del.code, del.stderr).toBe(0)
    expect(del.stderr).toContain(`so a replication slot it may hold on its primary was not dropped; look for ${defaultSlotName(f.branch)}`)
  })
})

describe('a directory named like a tenant without its config.toml', () => {
  it('is left out of listings and by serve (with a warning), instead of failing them', async () => {
    const ctx = await contextFor(newDir(), listen)
    const f = await tenantWithTimelines(ctx)
    const stray = join(ctx.config.workdir, TENANTS_DIR, '0123456789abcdef0123456789abcdef')
    mkdirSync(join(stray, 'timelines'), { recursive: true })
    // Listed with what is wrong (its config.toml may be what an operator lost), not failing the listing.
    const listed = await listTenants(ctx)
    expect(listed).toHaveLength(2)
    expect(listed.find((t) => t.tenantId === f.tenantId)).toEqual({ tenantId: f.tenantId, timelines: 2 })
    expect(listed.find((t) => t.tenantId === '0123456789abcdef0123456789abcdef')).toMatchObject({ timelines: null, error: { code: 'TENANT_CONFIG_MISSING', hint: expect.stringContaining('restore config.toml') } })
    // Looked up, it is damage (exit 5), not an unknown tenant that creating would then say exists.
    const get = await runCli(['getpage', '--workdir', ctx.config.workdir, '--tenant', '0123456789abcdef0123456789abcdef', '--timeline', f.root, '--rel', '1663/5/16384', '--blk', '0', '--lsn', '0/108', '--json'])
    expect(get.code).toBe(5)
    expect(get.json()).toMatchObject({ error: { code: 'TENANT_CONFIG_MISSING' } })
    const logged: Array<[string, string]> = []
    const server = await PageServer.start({ ...ctx, log: (level, msg) => void logged.push([level, msg]) })
    try {
      expect(server.servedTimelines()).toHaveLength(2)
      expect(logged).toContainEqual(['warn', `${stray}: it is named like a tenant but has no config.toml; ignored`])
    } finally {
      await server.stop()
    }
  })
})

describe('a tenant whose directory cannot be read', () => {
  it('is listed with its error and left unserved, while every other tenant is served; a file named like a tenant is ignored', async () => {
    const ctx = await contextFor(newDir(), listen)
    const good = await tenantWithTimelines(ctx)
    const bad = await tenantWithTimelines(ctx)
    // Its timelines directory replaced by a file (an audit's repair gone wrong): it cannot even be listed.
    const timelinesDir = join(ctx.config.workdir, TENANTS_DIR, bad.tenantId, 'timelines')
    rmSync(timelinesDir, { recursive: true })
    writeFileSync(timelinesDir, 'x')
    const strayFile = join(ctx.config.workdir, TENANTS_DIR, 'fedcba9876543210fedcba9876543210')
    writeFileSync(strayFile, 'x')

    const listed = await listTenants(ctx)
    expect(listed.find((t) => t.tenantId === good.tenantId)).toEqual({ tenantId: good.tenantId, timelines: 2 })
    expect(listed.find((t) => t.tenantId === bad.tenantId)).toEqual({
      tenantId: bad.tenantId,
      timelines: null,
      error: { code: 'IO_ERROR', message: expect.stringContaining(`${timelinesDir} failed: it, or a directory above it, is not a directory`), hint: expect.stringContaining('move it aside') },
    })
    expect(listed).toHaveLength(2)
    const cli = await runCli(['tenant', 'list', '--workdir', ctx.config.workdir])
    expect(cli.code, cli.stderr).toBe(0)
    expect(cli.stderr).toContain(`warning: tenant ${bad.tenantId} cannot be read:`)

    const logged: Array<[string, string, Record<string, unknown>]> = []
    const server = await PageServer.start({ ...ctx, log: (level, msg, fields) => void logged.push([level, msg, fields ?? {}]) })
    try {
      expect(server.servedTimelines().map((x) => x.timeline.timelineId).sort()).toEqual([good.root, good.branch].sort())
      expect(logged.find(([, msg]) => msg.startsWith('tenant failed to load'))?.[2]).toMatchObject({ tenant: bad.tenantId, code: 'IO_ERROR' })
      expect(logged).toContainEqual(['warn', `${strayFile}: it is named like a tenant but is not a directory; ignored`, { path: strayFile }])
      expect(() => server.service(bad.tenantId, bad.root)).toThrow(expect.objectContaining({ code: 'TENANT_BROKEN', kind: 'unavailable' }))
      const http = new ManagementClient({ pid: process.pid, httpAddr: `127.0.0.1:${server.addresses.http.port}`, pgAddr: undefined }, undefined)
      const tenants = await http.request<Array<{ id: string; state: { slug: string } }>>('GET', '/v1/tenant')
      expect(tenants.find((t) => t.id === bad.tenantId)?.state).toMatchObject({ slug: 'Broken', data: { code: 'IO_ERROR' } })
      const metrics = await fetch(`http://127.0.0.1:${server.addresses.http.port}/metrics`).then((r) => r.text())
      expect(metrics).toMatch(/^pageserver_broken_tenants 1$/m)
    } finally {
      await server.stop()
    }
  })

  it('a tenant whose config.toml cannot even be inspected (an audit: a tenant created by root in a workdir served as postgres) is isolated too', async () => {
    const ctx = await contextFor(newDir(), listen)
    const good = await tenantWithTimelines(ctx)
    const bad = await tenantWithTimelines(ctx)
    const config = join(ctx.config.workdir, TENANTS_DIR, bad.tenantId, 'config.toml')
    rmSync(config)
    symlinkSync('config.toml', config) // stat fails with ELOOP, as it would with EACCES for another user
    const listed = await listTenants(ctx)
    expect(listed.find((t) => t.tenantId === bad.tenantId)).toMatchObject({ timelines: null, error: { code: 'IO_ERROR' } })
    expect(listed.find((t) => t.tenantId === good.tenantId)).toEqual({ tenantId: good.tenantId, timelines: 2 })
    const server = await PageServer.start(ctx)
    try {
      expect(server.servedTimelines().map((x) => x.timeline.timelineId).sort()).toEqual([good.root, good.branch].sort())
      expect(() => server.service(bad.tenantId, bad.root)).toThrow(expect.objectContaining({ code: 'TENANT_BROKEN' }))
    } finally {
      await server.stop()
    }
  })

  it('a file where the tenants directory belongs is a typed I/O error naming it, not a bug', async () => {
    const ctx = await contextFor(newDir(), listen)
    await tenantWithTimelines(ctx)
    const tenants = join(ctx.config.workdir, TENANTS_DIR)
    rmSync(tenants, { recursive: true })
    writeFileSync(tenants, 'x')
    await expect(PageServer.start(ctx)).rejects.toMatchObject({ code: 'IO_ERROR', kind: 'unavailable', message: `${tenants} is not a directory` })
    await expect(listTenants(ctx)).rejects.toMatchObject({ code: 'IO_ERROR', message: expect.stringContaining('is not a directory') })
  })
})

describe('broken timelines in a running server', () => {
  it('serves every other timeline, refuses the broken ones with why, and deletes them', async () => {
    const ctx = await contextFor(newDir(), listen)
    const bad = await tenantWithTimelines(ctx)
    const good = await tenantWithTimelines(ctx)
    const badLayer = await tenantWithTimelines(ctx)
    damageMetadata(ctx.config.workdir, bad.tenantId, bad.root)
    // A layer file whose header (magic) is damaged: its timeline fails to load, and its branch with it.
    const rootDir = join(ctx.config.workdir, TENANTS_DIR, badLayer.tenantId, 'timelines', badLayer.root)
    const layer = join(rootDir, readdirSync(rootDir).find((n) => n.includes('__'))!)
    const layerBytes = readFileSync(layer)
    layerBytes.writeUInt32BE(0xdeadbeef, 0)
    writeFileSync(layer, layerBytes)
    const logged: Array<[string, string, Record<string, unknown>]> = []
    const server = await PageServer.start({ ...ctx, log: (level, msg, fields) => void logged.push([level, msg, fields ?? {}]) })
    try {
      expect(server.servedTimelines().map((s) => s.timeline.timelineId).sort()).toEqual([good.root, good.branch].sort())
      const failures = logged.filter(([level, msg]) => level === 'error' && msg.startsWith('timeline failed to load'))
      expect(failures.map(([, , f]) => [f.timeline, f.code]).sort()).toEqual(
        [
          [bad.root, 'METADATA_CORRUPT'],
          [bad.branch, 'ANCESTOR_NOT_LOADED'],
          [badLayer.root, 'LAYER_CORRUPT'],
          [badLayer.branch, 'ANCESTOR_NOT_LOADED'],
        ].sort(),
      )
      expect(logged.find(([, msg]) => msg === 'page server started')?.[2]).toMatchObject({ timelines: 2, brokenTimelines: 4, crc32c: expect.stringMatching(/^(sse4_crc32|@node-rs\/crc32)$/) })

      // Requests for them: TIMELINE_BROKEN, a corruption (exit 5), saying what failed and what to do.
      const err = (() => {
        try {
          server.service(bad.tenantId, bad.root)
        } catch (e) {
          return e
        }
      })()
      expect(err).toBeInstanceOf(CorruptionError)
      expect((err as CorruptionError).code).toBe('TIMELINE_BROKEN')
      expect((err as CorruptionError).message).toContain('failed to load when the server started')
      expect((err as CorruptionError).hint).toMatch(/restore.*restarting the server loads the timeline.*timeline delete/s)

      // The management API lists them as Broken and refuses work on them.
      const http = new ManagementClient({ pid: process.pid, httpAddr: `127.0.0.1:${server.addresses.http.port}`, pgAddr: undefined }, undefined)
      const listed = await http.request<ListedTimeline[]>('GET', `/v1/tenant/${bad.tenantId}/timeline`)
      expect(listed.map((t) => [t.timelineId, t.state, t.state === 'Broken' ? t.error.code : null]).sort()).toEqual(
        [[bad.root, 'Broken', 'METADATA_CORRUPT'], [bad.branch, 'Broken', 'ANCESTOR_NOT_LOADED']].sort(),
      )
      expect(await http.request('GET', `/v1/tenant/${bad.tenantId}/timeline/${bad.root}`)).toMatchObject({ state: 'Broken', error: { code: 'METADATA_CORRUPT' } })
      expect(await http.request('GET', `/v1/tenant/${good.tenantId}/timeline/${good.root}`)).toMatchObject({ state: 'Active', lastRecordLsn: formatLsn(FIXTURE_LSN) })
      // Through the API the CLI gets the same error as offline: a corruption (exit 5), not a server failure.
      await expect(http.request('PUT', `/v1/tenant/${bad.tenantId}/timeline/${bad.root}/checkpoint`)).rejects.toMatchObject({ code: 'TIMELINE_BROKEN', kind: 'corruption', exitCode: 5 })
      await expect(http.request('POST', `/v1/tenant/${bad.tenantId}/timeline`, { ancestor_timeline_id: bad.root })).rejects.toMatchObject({ code: 'TIMELINE_BROKEN', kind: 'corruption' })
      const metrics = await fetch(`http://127.0.0.1:${server.addresses.http.port}/metrics`).then((r) => r.text())
      expect(metrics).toMatch(/^pageserver_broken_timelines 4$/m)

      // The page service: the good tenant's timelines answer (the fixture's key is no relation of a datadir, so
      // it does not exist); the broken timeline is refused as data corrupted, with the hint.
      const client = await PageServiceClient.connect({ host: '127.0.0.1', port: server.addresses.pg.port })
      try {
        const ps = await client.pagestream(good.tenantId, good.branch, { version: 2 })
        expect(await ps.exists(FIXTURE_REL, { requestLsn: FIXTURE_LSN })).toBe(false)
      } finally {
        await client.close()
      }
      const refused = await PageServiceClient.connect({ host: '127.0.0.1', port: server.addresses.pg.port })
      try {
        const e = await refused.pagestream(bad.tenantId, bad.root, { version: 2 }).catch((x: unknown) => x)
        expect(e).toBeInstanceOf(PageServiceServerError)
        expect(e).toMatchObject({ kind: 'corruption', code: 'TIMELINE_BROKEN', sqlstate: 'XX001' })
        expect((e as PageServiceServerError).message).toContain('failed to load when the server started')
        expect((e as PageServiceServerError).hint).toContain('timeline delete')
      } finally {
        await refused.close()
      }

      // A served timeline with a branch is refused before it leaves service.
      await expect(http.request('DELETE', `/v1/tenant/${good.tenantId}/timeline/${good.root}`)).rejects.toBeInstanceOf(ConflictError)
      expect(server.service(good.tenantId, good.root).lastRecordLsn()).toBe(FIXTURE_LSN)
      // Broken ones are deleted: the branch, then its ancestor.
      expect(await http.request('DELETE', `/v1/tenant/${bad.tenantId}/timeline/${bad.branch}`)).toMatchObject({ deleted: true })
      expect(await http.request('DELETE', `/v1/tenant/${bad.tenantId}/timeline/${bad.root}`)).toMatchObject({ deleted: true })
      expect(await http.request('GET', `/v1/tenant/${bad.tenantId}/timeline`)).toEqual([])
      expect(await fetch(`http://127.0.0.1:${server.addresses.http.port}/metrics`).then((r) => r.text())).toMatch(/^pageserver_broken_timelines 2$/m)
    } finally {
      await server.stop()
    }
  })
})
