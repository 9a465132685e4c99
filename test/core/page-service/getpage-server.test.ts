/**
 * getPageFromServer (the `pageserver getpage --server` path) against the page service with the fake
 * backend: address parsing, latest vs. an explicit LSN, past-the-end blocks, a JWT, and errors typed for
 * the CLI's exit codes.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { getPageFromServer, parseServerAddress } from '../../../src/cli/getpage-server.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import type { TimelineId } from '../../../src/core/model/ids.js'
import { fakePage, REL, TENANT, TIMELINE } from './fake-backend.js'
import { startServer, type Running } from './support.js'

let r: Running | null = null
afterEach(async () => {
  await r?.stop()
  r = null
})

const base = { tenant: TENANT, timeline: TIMELINE, rel: { spcNode: 1663, dbNode: 5, relNode: 16384 }, fork: 0 }

describe('parseServerAddress', () => {
  it('takes host:port and [v6]:port; refuses the rest', () => {
    expect(parseServerAddress('127.0.0.1:64000')).toEqual({ host: '127.0.0.1', port: 64000 })
    expect(parseServerAddress('localhost:1')).toEqual({ host: 'localhost', port: 1 })
    expect(parseServerAddress('[::1]:64000')).toEqual({ host: '::1', port: 64000 })
    for (const bad of ['127.0.0.1', ':64000', 'host:0', 'host:70000', 'a:b', '::1:5']) {
      expect(() => parseServerAddress(bad), bad).toThrow(/is not HOST:PORT/)
    }
  })
})

describe('getPageFromServer', () => {
  it('reads the latest page, and a page at an explicit LSN, with the relation size', async () => {
    r = await startServer()
    const tl = r.backend.main
    const server = `127.0.0.1:${r.port}`
    const latest = await getPageFromServer({ ...base, server, block: 3 })
    expect(latest).toMatchObject({ rel: '1663/5/16384', fork: 'main', block: 3, requestLsn: 'latest', notModifiedSince: '0/0', nblocks: 10, pastEnd: false })
    expect(latest.page.equals(fakePage(REL, 3, tl.last))).toBe(true)
    const at = await getPageFromServer({ ...base, server, block: 3, lsn: lsn(0x4000), protocol: 2 })
    expect(at).toMatchObject({ requestLsn: '0/4000', notModifiedSince: '0/4000' })
    expect(at.page.equals(fakePage(REL, 3, lsn(0x4000)))).toBe(true)
    const past = await getPageFromServer({ ...base, server, block: 50 })
    expect(past.pastEnd).toBe(true)
    expect(past.page.equals(Buffer.alloc(8192))).toBe(true)
    expect(r.server.liveConnections).toBeLessThanOrEqual(1) // each call closes its connection
  })

  it('errors carry codes the CLI maps to exit codes', async () => {
    r = await startServer()
    const server = `127.0.0.1:${r.port}`
    await expect(getPageFromServer({ ...base, server, block: 0, timeline: '55555555555555555555555555555555' as TimelineId })).rejects.toMatchObject({ kind: 'not_found' })
    await expect(getPageFromServer({ ...base, server, block: 0, rel: { ...base.rel, relNode: 4242 } })).rejects.toMatchObject({ code: 'REL_MISSING', kind: 'not_found' })
    await expect(getPageFromServer({ ...base, server, block: 0, lsn: lsn(0x10), notModifiedSince: lsn(0x20) })).rejects.toMatchObject({ code: 'BAD_LSN_RANGE', kind: 'usage' })
    await r.stop()
    r = null
    await expect(getPageFromServer({ ...base, server, block: 0 })).rejects.toMatchObject({ code: 'PAGE_SERVICE_CONNECT_FAILED', kind: 'unavailable' })
  })
})
