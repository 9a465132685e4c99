/**
 * PageServiceClient against a scripted server that misbehaves on purpose: responses out of step (wrong
 * v3 reqid, wrong type, garbage), an oversized message, an ErrorResponse in the middle of a stream, a
 * server that closes. Every pending request must fail with a typed error; nothing may hang.
 * Also: the outstanding-request bound waits instead of failing, and SSLRequest negotiation.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { PageServiceClient } from '../../../src/core/page-service/client.js'
import { FrameReader } from '../../../src/core/protocol/pg-frames.js'
import { authenticationOk, copyBothResponse, errorResponse, readyForQuery } from '../../../src/core/protocol/pg-backend-messages.js'
import { decodeRequest, encodeResponseFrame, type GetPageRequest, type PagestreamRequest } from '../../../src/core/protocol/pagestream.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import { REL, TENANT, TIMELINE } from './fake-backend.js'

type Answer = (req: PagestreamRequest, socket: Socket) => void

let server: Server | null = null
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
  server = null
})

/** A minimal v3 page server: trust login, CopyBoth on any query, then `answer` for every request. */
async function scripted(answer: Answer, opts: { sslAnswer?: string } = {}): Promise<number> {
  const sockets = new Set<Socket>()
  server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
    const r = new FrameReader({ messageBytesMax: 1 << 20, peer: 'client' })
    r.expectStartup = true
    socket.on('data', (chunk: Buffer) => {
      r.push(chunk)
      for (let f = r.next(); f !== null; f = r.next()) {
        if (f.type === 0) {
          if (f.body.readUInt32BE(0) === 80877103) {
            socket.write(opts.sslAnswer ?? 'N')
            continue
          }
          r.expectStartup = false
          socket.write(Buffer.concat([authenticationOk(), readyForQuery()]))
        } else if (f.type === 0x51) {
          socket.write(copyBothResponse())
        } else if (f.type === 0x64) {
          answer(decodeRequest(f.body, 3), socket)
        }
      }
    })
  })
  server.on('close', () => sockets.forEach((s) => s.destroy()))
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const close = server.close.bind(server)
  server.close = ((cb?: (err?: Error) => void) => {
    sockets.forEach((s) => s.destroy())
    return close(cb)
  }) as typeof server.close
  return port
}

const page = Buffer.alloc(8192, 3)

describe('PageServiceClient against a misbehaving server', () => {
  it('a v3 response with another reqid fails every pending request and closes the connection', async () => {
    const port = await scripted((req, s) => {
      if (req.type !== 'getpage') return
      s.write(encodeResponseFrame({ type: 'getpage', req: { ...req, hdr: { ...req.hdr, reqid: req.hdr.reqid + 100n } }, page }, 3))
    })
    const c = await PageServiceClient.connect({ host: '127.0.0.1', port })
    const s = await c.pagestream(TENANT, TIMELINE)
    const results = await Promise.allSettled([s.getPage(REL, 1), s.getPage(REL, 2)])
    expect(results.map((x) => x.status)).toEqual(['rejected', 'rejected'])
    expect((results[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'PAGESTREAM_OUT_OF_STEP' })
    expect((results[0] as PromiseRejectedResult).reason.message).toMatch(/reqid 101 while reqid 1 was expected/)
    await expect(s.getPage(REL, 3)).rejects.toMatchObject({ code: 'PAGESTREAM_OUT_OF_STEP' })
  })

  it('a response of the wrong type, or an undecodable one, is out of step too', async () => {
    const port = await scripted((req, s) => {
      if (req.type === 'getpage') s.write(encodeResponseFrame({ type: 'nblocks', req: { type: 'nblocks', hdr: req.hdr, rel: req.rel }, n_blocks: 1 }, 3))
      else s.write(Buffer.from([0x64, 0, 0, 0, 6, 0xee, 0]))
    })
    const c1 = await PageServiceClient.connect({ host: '127.0.0.1', port })
    await expect((await c1.pagestream(TENANT, TIMELINE)).getPage(REL, 1)).rejects.toThrow(/a nblocks response to a getpage request/)
    const c2 = await PageServiceClient.connect({ host: '127.0.0.1', port })
    await expect((await c2.pagestream(TENANT, TIMELINE)).nblocks(REL)).rejects.toThrow(/invalid tag 238/)
  })

  it.each([
    ['another block', (r: GetPageRequest): GetPageRequest => ({ ...r, blkno: r.blkno + 1 }), /echoed blkno 2 differs from 1/],
    ['another relation', (r: GetPageRequest): GetPageRequest => ({ ...r, rel: { ...r.rel, relNode: r.rel.relNode + 1 } }), /echoed relation differs/],
    ['another request LSN', (r: GetPageRequest): GetPageRequest => ({ ...r, hdr: { ...r.hdr, request_lsn: (r.hdr.request_lsn - 1n) as Lsn } }), /its LSNs differ/],
    ['another not_modified_since', (r: GetPageRequest): GetPageRequest => ({ ...r, hdr: { ...r.hdr, not_modified_since: (r.hdr.not_modified_since + 1n) as Lsn } }), /its LSNs differ/],
  ])('a GetPage answer echoing %s is out of step, and the later requests fail too', async (_what, change, message) => {
    let n = 0
    const port = await scripted((req, s) => {
      if (req.type === 'getpage') s.write(encodeResponseFrame({ type: 'getpage', req: ++n === 2 ? change(req) : req, page }, 3))
    })
    const c = await PageServiceClient.connect({ host: '127.0.0.1', port })
    const s = await c.pagestream(TENANT, TIMELINE)
    const results = await Promise.allSettled([s.getPage(REL, 0, { requestLsn: 0x5000n as Lsn }), s.getPage(REL, 1, { requestLsn: 0x5000n as Lsn }), s.getPage(REL, 2)])
    expect(results[0]).toEqual({ status: 'fulfilled', value: page })
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'PAGESTREAM_OUT_OF_STEP' })
    expect((results[1] as PromiseRejectedResult).reason.message).toMatch(message)
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'PAGESTREAM_OUT_OF_STEP' })
    expect(s.active).toBe(false)
  })

  it('a GetPage answer one byte short is refused as malformed', async () => {
    const port = await scripted((req, s) => {
      const whole = encodeResponseFrame({ type: 'getpage', req: req as GetPageRequest, page }, 3)
      const short = whole.subarray(0, whole.length - 1)
      short.writeUInt32BE(short.length - 1, 1)
      s.write(short)
    })
    const c = await PageServiceClient.connect({ host: '127.0.0.1', port })
    const s = await c.pagestream(TENANT, TIMELINE)
    await expect(s.getPage(REL, 1)).rejects.toMatchObject({ code: 'PAGESTREAM_MALFORMED' })
    expect(s.active).toBe(false)
  })

  it('an ErrorResponse during the stream fails all pending requests with the server\'s message', async () => {
    let n = 0
    const port = await scripted((req, s) => {
      if (++n === 1) s.write(encodeResponseFrame({ type: 'nblocks', req: req as never, n_blocks: 5 }, 3))
      else if (n === 3) s.write(Buffer.concat([errorResponse({ severity: 'FATAL', code: '57P01', message: 'shutdown' }), readyForQuery()]))
    })
    const c = await PageServiceClient.connect({ host: '127.0.0.1', port })
    const s = await c.pagestream(TENANT, TIMELINE)
    const results = await Promise.allSettled([s.nblocks(REL), s.nblocks(REL), s.nblocks(REL)])
    expect(results[0]).toEqual({ status: 'fulfilled', value: 5 })
    for (const x of results.slice(1)) expect((x as PromiseRejectedResult).reason).toMatchObject({ code: 'PAGE_SERVICE_UNAVAILABLE', sqlstate: '57P01' })
    expect(s.active).toBe(false)
  })

  it('an oversized message from the server is refused from its header', async () => {
    const port = await scripted((_req, s) => s.write(Buffer.from([0x64, 0x7f, 0xff, 0xff, 0xff])))
    const c = await PageServiceClient.connect({ host: '127.0.0.1', port, messageBytesMax: 1 << 20 })
    await expect((await c.pagestream(TENANT, TIMELINE)).nblocks(REL)).rejects.toMatchObject({ code: 'PG_MESSAGE_TOO_LARGE' })
  })

  it('a server that closes mid-stream fails pending requests as connection closed', async () => {
    const port = await scripted((_req, s) => s.destroy())
    const c = await PageServiceClient.connect({ host: '127.0.0.1', port })
    await expect((await c.pagestream(TENANT, TIMELINE)).nblocks(REL)).rejects.toMatchObject({ code: 'PAGE_SERVICE_CONNECTION_CLOSED' })
  })

  it('more requests than outstandingMax wait for a slot and all complete in order', async () => {
    const port = await scripted((req, s) => s.write(encodeResponseFrame({ type: 'getpage', req: req as never, page: Buffer.alloc(8192, (req as { blkno: number }).blkno) }, 3)))
    const c = await PageServiceClient.connect({ host: '127.0.0.1', port, outstandingMax: 2 })
    const s = await c.pagestream(TENANT, TIMELINE)
    const pages = await Promise.all([1, 2, 3, 4, 5, 6].map((b) => s.getPage(REL, b)))
    expect(pages.map((p) => p[0])).toEqual([1, 2, 3, 4, 5, 6])
    expect(s.outstanding).toBe(0)
  })

  it("SSLRequest: 'N' continues in plain text, 'S' is refused (no TLS in this client)", async () => {
    const port = await scripted(() => undefined)
    const ok = await PageServiceClient.connect({ host: '127.0.0.1', port, sslRequest: true })
    expect((await ok.pagestream(TENANT, TIMELINE)).active).toBe(true)
    await new Promise<void>((resolve) => server!.close(() => resolve()))
    const port2 = await scripted(() => undefined, { sslAnswer: 'S' })
    await expect(PageServiceClient.connect({ host: '127.0.0.1', port: port2, sslRequest: true })).rejects.toMatchObject({ code: 'PAGE_SERVICE_TLS' })
  })

  it('connect gives up after connectTimeoutMs when the server never answers', async () => {
    server = createServer((s) => {
      s.on('error', () => undefined)
      s.resume() // reads (and so notices the close), says nothing
    })
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    const err = await PageServiceClient.connect({ host: '127.0.0.1', port, connectTimeoutMs: 100 }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'PAGE_SERVICE_CONNECT_TIMEOUT', kind: 'timeout' })
  })
})
