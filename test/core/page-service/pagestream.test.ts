/**
 * The page service end to end over loopback sockets, with the fake backend: commands, every pagestream
 * request in v2 and v3, the request_lsn / not_modified_since rules, waiting for WAL, pipelining with
 * out-of-order completion, in-band errors, and how a pagestream ends.
 */
import { describe, expect, it } from 'vitest'
import { lsn, MAX_LSN, type Lsn } from '../../../src/core/pg/lsn.js'
import type { PagestreamVersion } from '../../../src/core/protocol/pagestream.js'
import { encodeRequestFrame } from '../../../src/core/protocol/pagestream.js'
import { copyDoneMessage, copyDataMessage, query } from '../../../src/core/protocol/pg-frontend-messages.js'
import type { TenantId, TimelineId } from '../../../src/core/model/ids.js'
import { PagestreamRequestError } from '../../../src/core/page-service/client-errors.js'
import { CorruptionError } from '../../../src/core/lib/errors.js'
import { PageServiceServer } from '../../../src/core/page-service/server.js'
import { fakePage, REL, TENANT, TIMELINE, OTHER_TENANT } from './fake-backend.js'
import { errorCode, errorMessage, serverPerTest, type RawSocket, type Running } from './support.js'

const start = serverPerTest()

const REL_FSM = { ...REL, forkNum: 1 }
const REL_MISSING = { ...REL, relNode: 99999 }

describe('server lifecycle', () => {
  it('listening on a port in use fails clearly; close() is idempotent and ends with no connections', async () => {
    const r = await start()
    const other = new PageServiceServer(r.backend)
    await expect(other.listen('127.0.0.1', r.port)).rejects.toMatchObject({ code: 'PAGE_SERVICE_LISTEN_FAILED', kind: 'unavailable' })
    await other.close()
    await r.client()
    await Promise.all([r.server.close(), r.server.close()])
    expect(r.server.liveConnections).toBe(0)
  })
})

describe('commands', () => {
  it('reports server parameters at login and answers `set ...` with SELECT 1, case-insensitively', async () => {
    const r = await start()
    const c = await r.client()
    expect(Object.fromEntries(c.serverParameters)).toEqual({ client_encoding: 'UTF8', integer_datetimes: 'on', server_version: '14.1' })
    expect(await c.simpleQuery('set x')).toEqual({ commandTag: 'SELECT 1', rows: [] })
    expect((await c.simpleQuery("SET datestyle TO 'ISO'")).commandTag).toBe('SELECT 1')
  })

  it('refuses unknown and malformed commands with Neon\'s texts and stays usable', async () => {
    const r = await start()
    const c = await r.client()
    await expect(c.simpleQuery('foo bar')).rejects.toThrow('unsupported command foo in foo bar')
    await expect(c.simpleQuery('set')).rejects.toThrow('cannot parse query: set')
    await expect(c.simpleQuery('pagestream_v2 nothex tl')).rejects.toThrow('Failed to parse tenant id from nothex')
    await expect(c.simpleQuery(`pagestream_v3 ${TENANT}`)).rejects.toThrow(/invalid number of parameters for pagestream command/)
    expect((await c.simpleQuery('set y')).commandTag).toBe('SELECT 1')
  })

  it('an unknown tenant or timeline is an ErrorResponse at command start; the connection stays usable', async () => {
    const r = await start()
    const c = await r.client()
    const err = await c.pagestream('22222222222222222222222222222222' as TenantId, TIMELINE).catch((e: unknown) => e)
    // The backend's code, as offline; the message keeps Neon's "Not found:" text.
    expect(err).toMatchObject({ code: 'TIMELINE_NOT_FOUND', kind: 'not_found', sqlstate: '42704' })
    expect((err as Error).message).toMatch(/Not found: timeline 2{32}\/f/)
    await expect(c.pagestream(TENANT, '33333333333333333333333333333333' as TimelineId)).rejects.toThrow(/Not found/)
    expect((await c.simpleQuery('set x')).commandTag).toBe('SELECT 1')
  })

  it('supports the minimal extended protocol Neon accepts (Parse/Bind/Describe/Execute/Sync)', async () => {
    const r = await start()
    const raw = await r.raw()
    await raw.login()
    const msg = (type: string, body: Buffer): Buffer => Buffer.concat([Buffer.from(type), Buffer.from([0, 0, 0, 0]), body]).fill(0, 1, 5)
    const framed = (type: string, body: Buffer): Buffer => {
      const b = msg(type, body)
      b.writeUInt32BE(4 + body.length, 1)
      return b
    }
    raw.write(framed('P', Buffer.from('\0set x\0\0\0', 'latin1')))
    raw.write(framed('B', Buffer.from('\0\0\0\0\0\0\0\0', 'latin1')))
    raw.write(framed('D', Buffer.from('P\0', 'latin1')))
    raw.write(framed('E', Buffer.from('\0\0\0\0\0', 'latin1')))
    raw.write(framed('S', Buffer.alloc(0)))
    const frames = await raw.untilReady()
    expect(frames.map((f) => f.type).join('')).toBe('12tnCZ')
  })
})

for (const version of [2, 3] as const) {
  describe(`pagestream v${version}`, () => {
    it('answers Exists, Nblocks, GetPage, DbSize and GetSlruSegment', async () => {
      const r = await start()
      const tl = r.backend.main
      const s = await (await r.client()).pagestream(TENANT, TIMELINE, { version })
      expect(await s.exists(REL)).toBe(true)
      expect(await s.exists(REL_MISSING)).toBe(false)
      expect(await s.nblocks(REL)).toBe(10)
      expect(await s.nblocks(REL_FSM)).toBe(0) // a missing FSM fork has 0 blocks
      const page = await s.getPage(REL, 4)
      expect(page.equals(fakePage(REL, 4, tl.last))).toBe(true)
      expect((await s.getPage(REL, 10)).equals(Buffer.alloc(8192))).toBe(true) // past the end: zeros
      expect(await s.dbSize(5)).toBe(13n * 8192n)
      const seg = await s.slruSegment(1, 2)
      expect(seg.length).toBe(3 * 8192)
      expect([seg[0], seg[8192], seg[16384]]).toEqual([64, 65, 66])
      expect((await s.slruSegment(0, 3)).length).toBe(0)
    })

    it('answers failures in-band and keeps the stream going', async () => {
      const r = await start()
      const s = await (await r.client()).pagestream(TENANT, TIMELINE, { version })
      const results = await Promise.allSettled([
        s.nblocks(REL_MISSING),
        s.slruSegment(3, 0),
        s.getPage({ ...REL, forkNum: 4 }, 0),
        s.exists({ ...REL, relNode: 0 }),
        s.getPage(REL, 1),
      ])
      const reasons = results.map((x) => (x.status === 'rejected' ? (x.reason as PagestreamRequestError).message : 'ok'))
      expect(reasons).toEqual([
        expect.stringMatching(/^Read error: not found: could not find data for key [^(]*$/),
        'Bad request: invalid SLRU kind',
        'Bad request: invalid fork number 4',
        'Bad request: invalid relnode',
        'ok',
      ])
      // A NotFoundError from the backend: its kind and code, as offline (the FakeTimeline's REL_MISSING).
      expect((results[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'REL_MISSING', kind: 'not_found', errorClass: 'not_found' })
      expect((results[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'INVALID_RELNODE', kind: 'usage', errorClass: 'bad_request' })
      expect(r.server.metrics.requestErrors).toBe(4)
    })

    it('a backend answering at once (no promise) gives the same answers and in-band failures', async () => {
      const r = await start()
      const tl = r.backend.main
      tl.answerAtOnce = 'always'
      const s = await (await r.client()).pagestream(TENANT, TIMELINE, { version })
      expect(await s.exists(REL)).toBe(true)
      expect(await s.nblocks(REL)).toBe(10)
      expect((await s.getPage(REL, 4)).equals(fakePage(REL, 4, tl.last))).toBe(true)
      expect((await s.getPage(REL, 10)).equals(Buffer.alloc(8192))).toBe(true)
      tl.failNextRead = new Error('disk on fire')
      const results = await Promise.allSettled([s.getPage(REL, 1), s.nblocks(REL_MISSING), s.exists({ ...REL, relNode: 0 }), s.getPage(REL, 2)])
      expect(results.map((x) => (x.status === 'rejected' ? (x.reason as PagestreamRequestError).message : 'ok'))).toEqual([
        'Read error: internal error: disk on fire',
        expect.stringMatching(/^Read error: not found: could not find data for key/),
        'Bad request: invalid relnode',
        'ok',
      ])
      expect(r.server.metrics.requestErrors).toBe(3)
      // The backend is told of the read failures (for the server's log), not of refused requests.
      expect(tl.readFailures.map((e) => (e as Error).message)).toEqual(['disk on fire', expect.stringMatching(/^could not find data for key/)])
    })

    it('a read that finds damaged files is a corruption for the client, not an outage', async () => {
      const r = await start()
      const tl = r.backend.main
      const s = await (await r.client()).pagestream(TENANT, TIMELINE, { version })
      tl.failNextRead = new CorruptionError('LAYER_CORRUPT', 'layer file /x/y is corrupt: value fails its checksum')
      const err = await s.getPage(REL, 1).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(PagestreamRequestError)
      expect(err).toMatchObject({
        kind: 'corruption',
        exitCode: 5,
        code: 'LAYER_CORRUPT',
        errorClass: 'data_corrupted',
        message: 'Read error: data corrupted: layer file /x/y is corrupt: value fails its checksum',
      })
      expect((err as PagestreamRequestError).hint).toContain('restore it from a backup')
      expect(tl.readFailures).toHaveLength(1)
      expect((await s.getPage(REL, 4)).equals(fakePage(REL, 4, tl.last))).toBe(true)
    })

    it('a request that waits for WAL is answered after it arrives even when the backend could answer at once', async () => {
      const r = await start()
      const tl = r.backend.main
      tl.answerAtOnce = 'always'
      const s = await (await r.client()).pagestream(TENANT, TIMELINE, { version })
      const target = lsn(tl.last + 0x100n)
      const late = s.getPage(REL, 3, { requestLsn: target, notModifiedSince: target })
      const now = s.getPage(REL, 4)
      await new Promise((res) => setTimeout(res, 50))
      tl.advanceTo(target)
      expect((await late).equals(fakePage(REL, 3, target))).toBe(true)
      expect((await now).equals(fakePage(REL, 4, target))).toBe(false) // read before the wait ended, at the old LSN
      expect(tl.reads.map((x) => x.lsn)).toEqual([lsn(target - 0x100n), target])
    })

    it('applies the request_lsn / not_modified_since rules exactly as Neon', async () => {
      const r = await start()
      const tl = r.backend.main
      tl.last = lsn(0x5000)
      tl.gcCutoff = lsn(0x1000)
      const s = await (await r.client()).pagestream(TENANT, TIMELINE, { version })
      const bad = async (requestLsn: Lsn, notModifiedSince: Lsn): Promise<string> =>
        s.getPage(REL, 0, { requestLsn, notModifiedSince }).then(
          () => 'ok',
          (e: Error) => e.message,
        )
      expect(await bad(lsn(0x2000), lsn(0x3000))).toBe('Bad request: invalid request with request LSN 0/2000 and not_modified_since 0/3000')
      expect(await bad(lsn(0), lsn(0))).toBe('Bad request: invalid LSN(0) in request')
      expect(await bad(lsn(0x800), lsn(0x800))).toBe('Bad request: tried to request a page version that was garbage collected. requested at 0/800 gc cutoff 0/1000')
      // Which LSN the read used (the fake records it):
      const readAt = async (requestLsn: Lsn, notModifiedSince: Lsn): Promise<bigint> => {
        await s.getPage(REL, 0, { requestLsn, notModifiedSince })
        return tl.reads.at(-1)!.lsn
      }
      expect(await readAt(MAX_LSN, lsn(0))).toBe(0x5000n) // latest
      expect(await readAt(MAX_LSN, lsn(0x4000))).toBe(0x5000n)
      expect(await readAt(lsn(0x3000), lsn(0x3000))).toBe(0x3000n) // replica / static at an older LSN
      expect(await readAt(lsn(0x1000), lsn(0x1000))).toBe(0x1000n) // exactly at the cutoff is allowed
      expect(await readAt(lsn(0x9000), lsn(0x2000))).toBe(0x5000n) // not modified since 0/2000: no wait, read at last
      expect(r.server.metrics.requestErrors).toBe(3)
    })

    it('waits for WAL up to not_modified_since, then reads at it', async () => {
      const r = await start()
      const tl = r.backend.main
      tl.last = lsn(0x10000)
      const s = await (await r.client()).pagestream(TENANT, TIMELINE, { version })
      const target = lsn(0x10000 + 0x800)
      const waiting = s.getPage(REL, 2, { requestLsn: target, notModifiedSince: target })
      const behind = s.nblocks(REL) // pipelined behind the waiting request: answered after it
      let settled = false
      void waiting.then(() => (settled = true))
      await new Promise((res) => setTimeout(res, 50))
      expect(settled).toBe(false)
      tl.startAdvancing(0x100n, 5)
      const page = await waiting
      expect(page.equals(fakePage(REL, 2, target))).toBe(true)
      expect(await behind).toBe(10)
      expect(tl.last >= target).toBe(true)
    })

    it('times out with Neon\'s text and keeps the stream', async () => {
      const r = await start({ waitLsnTimeoutMs: 100 })
      const tl = r.backend.main
      tl.last = lsn(0x20000)
      const s = await (await r.client()).pagestream(TENANT, TIMELINE, { version })
      const err = await s.getPage(REL, 0, { requestLsn: lsn(0x30000), notModifiedSince: lsn(0x30000) }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(PagestreamRequestError)
      expect((err as Error).message).toBe(
        'LSN timeout: Timed out while waiting for WAL record at LSN 0/30000 to arrive, last_record_lsn 0/20000 disk consistent LSN=0/20000, WalReceiver status: fake',
      )
      expect(err).toMatchObject({ kind: 'timeout', errorClass: 'lsn_timeout' })
      expect(await s.nblocks(REL)).toBe(10)
    })

    // 'even-blocks': even blocks are answered at once, so they wait in the queue behind slower odd ones.
    it.each(['never', 'even-blocks'] as const)('answers 1,000 pipelined GetPage requests in order while the backend completes them out of order (answers at once: %s)', async (answerAtOnce) => {
      const r = await start()
      const tl = r.backend.main
      tl.answerAtOnce = answerAtOnce
      tl.readDelayMaxMs = 3
      tl.sizes.set(`1663/5/16384/0`, 1000)
      const s = await (await r.client()).pagestream(TENANT, TIMELINE, { version })
      const blocks = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 1000)
      const pages = await Promise.all(blocks.map((b) => s.getPage(REL, b)))
      for (let i = 0; i < blocks.length; i++) {
        if (!pages[i]!.equals(fakePage(REL, blocks[i]!, tl.last))) throw new Error(`request ${i} (block ${blocks[i]}) got the wrong page`)
      }
      const order = tl.completionOrder
      expect(order.length).toBe(1000)
      expect(order.some((v, i) => i > 0 && v < order[i - 1]!)).toBe(true) // really out of order
      expect(r.server.metrics.requestsCompleted).toBe(1000)
    })
  })
}

describe('ending a pagestream', () => {
  async function rawStream(r: Running, version: PagestreamVersion = 2): Promise<RawSocket> {
    const s = await r.raw()
    await s.login()
    s.write(query(`pagestream_v${version} ${TENANT} ${TIMELINE}`))
    expect((await s.frame()).type).toBe('W')
    return s
  }
  const getpage = (blkno: number, version: PagestreamVersion = 2): Buffer =>
    encodeRequestFrame({ type: 'getpage', hdr: { reqid: 1n, request_lsn: MAX_LSN, not_modified_since: lsn(0) }, rel: REL, blkno }, version)

  it('an unexpected message (CopyDone) ends it after earlier responses: ErrorResponse + ReadyForQuery, usable again', async () => {
    const r = await start()
    r.backend.main.readDelayMaxMs = 5
    const s = await rawStream(r)
    s.write(Buffer.concat([getpage(1), getpage(2), copyDoneMessage()]))
    // v2 GetPage response = tag 102, then the page; the fake page has its blkno at offset 16.
    const f1 = await s.frame()
    const f2 = await s.frame()
    expect([f1.type, f1.body[0], f1.body.readUInt32BE(1 + 16)]).toEqual(['d', 102, 1])
    expect([f2.type, f2.body[0], f2.body.readUInt32BE(1 + 16)]).toEqual(['d', 102, 2])
    const end = await s.untilReady()
    expect(end.map((f) => f.type).join('')).toBe('EZ')
    expect(errorMessage(end[0]!)).toBe("unexpected message: 'c' during COPY")
    expect(errorCode(end[0]!)).toBe('XX000')
    const again = await s.query('set x')
    expect(again.map((f) => f.type).join('')).toBe('CZ')
  })

  it('a malformed request ends it the same way, after the responses before it', async () => {
    const r = await start()
    const s = await rawStream(r, 3)
    const bad = copyDataMessage(Buffer.from([9, ...Buffer.alloc(40)]))
    s.write(Buffer.concat([getpage(3, 3), bad]))
    const first = await s.frame()
    expect(first.type).toBe('d')
    expect(first.body.readUInt32BE(1 + 24 + 13)).toBe(3) // v3 echo: blkno after header and RelTag
    const end = await s.untilReady()
    expect(end.map((f) => f.type).join('')).toBe('EZ')
    expect(errorMessage(end[0]!)).toBe('malformed pagestream request: invalid tag 9')
    // Back in query mode: queries work, and CopyData there is a protocol violation that closes the connection.
    expect((await s.query('set x')).map((f) => f.type).join('')).toBe('CZ')
    s.write(getpage(4, 3))
    const closing = await s.closedFrames()
    expect(closing.map((f) => [errorCode(f), errorMessage(f)])).toEqual([['08P01', "unexpected message type 'd'"]])
  })

  it('Terminate during the stream: earlier responses are written, then the connection closes', async () => {
    const r = await start()
    r.backend.main.readDelayMaxMs = 10
    const s = await rawStream(r)
    s.write(Buffer.concat([getpage(5), getpage(6), Buffer.from([0x58, 0, 0, 0, 4])]))
    const frames = await s.closedFrames()
    expect(frames.map((f) => [f.type, f.body.readUInt32BE(17)])).toEqual([
      ['d', 5],
      ['d', 6],
    ])
  })

  it('server close(): pagestream and idle clients get 57P01 shutdown after pending responses; nothing stays open', async () => {
    const r = await start()
    r.backend.main.readDelayMaxMs = 20
    const idle = await r.raw()
    await idle.login()
    const s = await rawStream(r)
    s.write(Buffer.concat([getpage(7), getpage(8)]))
    await new Promise((res) => setTimeout(res, 5))
    await r.server.close()
    const streamed = await s.closedFrames()
    expect(streamed.map((f) => f.type).join('')).toBe('ddE')
    expect(errorCode(streamed[2]!)).toBe('57P01')
    const idleFrames = await idle.closedFrames()
    expect(idleFrames.map((f) => errorCode(f))).toEqual(['57P01'])
    expect(r.server.liveConnections).toBe(0)
    expect(r.server.metrics.connectionsLive).toBe(0)
  })

  it('server close(): clients that never close their side do not hold the stop up to its deadline', async () => {
    const r = await start()
    const idle = await r.raw({ allowHalfOpen: true })
    await idle.login()
    const t0 = Date.now()
    await r.server.close()
    // Before, the stop waited the whole linger (5 s, the close deadline) for such a client to close.
    expect(Date.now() - t0).toBeLessThan(1_500)
    expect(errorCode(await idle.frame())).toBe('57P01')
    expect(r.server.liveConnections).toBe(0)
  })

  it('server close(): a request waiting for WAL ends as 57P01 shutdown at once, after the answers before it', async () => {
    const r = await start({ waitLsnTimeoutMs: 60_000 })
    r.backend.main.last = lsn(0x20000)
    const s = await rawStream(r)
    const waiting = encodeRequestFrame({ type: 'getpage', hdr: { reqid: 2n, request_lsn: lsn(0x30000), not_modified_since: lsn(0x30000) }, rel: REL, blkno: 1 }, 2)
    s.write(Buffer.concat([getpage(7), waiting]))
    await new Promise((res) => setTimeout(res, 20))
    const t0 = Date.now()
    await r.server.close()
    // Before, the wait held the close until the server's own deadline (5 s) destroyed the connection.
    expect(Date.now() - t0).toBeLessThan(2_000)
    const frames = await s.closedFrames()
    expect(frames.map((f) => f.type).join('')).toBe('dE')
    expect(errorCode(frames[1]!)).toBe('57P01')
  })

  it('a deleted timeline: the answers before are sent, then its stream ends with 3D000, and nothing is read', async () => {
    const r = await start()
    const s = await rawStream(r)
    s.write(getpage(3))
    await new Promise((res) => setTimeout(res, 20))
    r.backend.main.isDeleted = true
    s.write(getpage(4))
    const frames = await s.closedFrames()
    expect(frames.map((f) => f.type).join('')).toBe('dE')
    expect(errorCode(frames[1]!)).toBe('3D000')
    for (let i = 0; i < 100 && r.server.liveConnections > 0; i++) await new Promise((res) => setTimeout(res, 10))
    expect(r.server.liveConnections).toBe(0)
  })

  it('another tenant on the same server is served independently', async () => {
    const r = await start()
    const a = await (await r.client()).pagestream(TENANT, TIMELINE)
    const b = await (await r.client()).pagestream(OTHER_TENANT, TIMELINE)
    r.backend.timeline(OTHER_TENANT, TIMELINE).sizes.set('1663/5/16384/0', 77)
    expect(await a.nblocks(REL)).toBe(10)
    expect(await b.nblocks(REL)).toBe(77)
  })
})
