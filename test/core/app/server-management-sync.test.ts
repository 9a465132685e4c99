// A sync without `until` asks the timeline's WAL source where its WAL ends. When the server's shutdown begins
// while that connection hangs (a primary that accepts and never answers), the sync is answered at once with
// SERVER_SHUTTING_DOWN and the position reached, instead of holding the shutdown until its connect timeout
// (10 s, as long as the shutdown's grace for management requests). The server's parts are stand-ins: only
// the connection is real. A sync whose timeline is deleted while it waits is answered as not found (404).
import { afterEach, describe, expect, it } from 'vitest'
import { createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { ServerManagement, type ManagementDeps } from '../../../src/core/app/server-management.js'
import type { ServedTimelines } from '../../../src/core/app/server-timelines.js'
import { loadConfig } from '../../../src/core/config/index.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import { lsn } from '../../../src/core/pg/lsn.js'

describe('ServerManagement.syncTimeline during a shutdown', () => {
  const sockets: Socket[] = []
  let blackhole: Server | null = null
  afterEach(() => {
    for (const c of sockets) c.destroy()
    blackhole?.close()
  })

  it('stops asking a source that never answers as the stop begins, and answers 503 with the position reached', async () => {
    blackhole = createServer((c) => sockets.push(c))
    await new Promise<void>((r) => blackhole!.listen(0, '127.0.0.1', r))
    const port = (blackhole.address() as { port: number }).port
    const service = {
      timeline: { metadata: { walSource: { connString: `host=127.0.0.1 port=${port} user=postgres` } }, lastRecordLsn: lsn(0x1_0000_0100) },
    }
    const stop = new AbortController()
    const deps = {
      ctx: { config: await loadConfig({ workdir: join(tmpdir(), 'ps-sync-stop-none'), overrides: [], env: {} }), env: {} },
      served: { service: () => service } as unknown as ServedTimelines,
      stopping: () => stop.signal.aborted,
      stopBegun: stop.signal,
      shutdownAbort: new AbortController().signal,
    } as unknown as ManagementDeps
    const sync = new ServerManagement(deps).syncTimeline(generateTenantId(), generateTimelineId(), undefined)
    sync.catch(() => {})
    while (sockets.length === 0) await new Promise((r) => setTimeout(r, 10)) // it is connecting
    const t0 = Date.now()
    stop.abort()
    await expect(sync).rejects.toMatchObject({ code: 'SERVER_SHUTTING_DOWN', kind: 'unavailable', message: expect.stringMatching(/synced to 1\/100$/) })
    expect(Date.now() - t0).toBeLessThan(3000)
  })
})

describe('ServerManagement.syncTimeline when the timeline is deleted meanwhile', () => {
  it('answers TIMELINE_NOT_FOUND (404), not the closed timeline\'s TIMELINE_CLOSED ("shutting down", 503)', async () => {
    let retired = false
    let fail: (e: Error) => void = () => {}
    const service = {
      timeline: { metadata: { walSource: { connString: 'host=127.0.0.1 port=1 user=postgres' } }, lastRecordLsn: lsn(0x100) },
      driver: { ingest: { stats: { records: 0 } }, checkpoint: async () => lsn(0x100) },
      // Waits until the timeline closes under it, as a deleted timeline's waiters are failed.
      waitForLsn: () => new Promise<void>((_resolve, reject) => (fail = reject)),
      deleted: () => retired,
    }
    const stop = new AbortController()
    const deps = {
      ctx: { config: await loadConfig({ workdir: join(tmpdir(), 'ps-sync-deleted-none'), overrides: [], env: {} }), env: {} },
      served: { service: () => service } as unknown as ServedTimelines,
      stopping: () => false,
      stopBegun: stop.signal,
      shutdownAbort: new AbortController().signal,
    } as unknown as ManagementDeps
    const tl = generateTimelineId()
    const sync = new ServerManagement(deps).syncTimeline(generateTenantId(), tl, lsn(0x2000))
    sync.catch(() => {})
    await new Promise((r) => setTimeout(r, 10))
    retired = true
    fail(Object.assign(new Error(`timeline ${tl} is shutting down`), { code: 'TIMELINE_CLOSED', kind: 'unavailable' }))
    await expect(sync).rejects.toMatchObject({ code: 'TIMELINE_NOT_FOUND', kind: 'not_found', message: expect.stringContaining('was deleted while the sync waited') })
  })
})
