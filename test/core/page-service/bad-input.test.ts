/**
 * Hostile and broken clients: garbage before the startup packet, oversized lengths, truncated messages,
 * unknown message types, CancelRequest, SSL/GSS negotiation, a client that never reads, too many
 * connections, silent clients. After each, the server must still serve a fresh client, and nothing
 * may crash it or grow without bound.
 */
import { describe, expect, it } from 'vitest'
import { lsn, MAX_LSN } from '../../../src/core/pg/lsn.js'
import { encodeRequestFrame } from '../../../src/core/protocol/pagestream.js'
import { cancelRequest, gssEncRequest, query, sslRequest, startupMessage } from '../../../src/core/protocol/pg-frontend-messages.js'
import { REL, TENANT, TIMELINE } from './fake-backend.js'
import { errorCode, errorMessage, serverPerTest, type Running } from './support.js'

const start = serverPerTest()

/** A fresh client can still log in and run a pagestream request. */
async function stillServes(r: Running): Promise<void> {
  const c = await r.client()
  const s = await c.pagestream(TENANT, TIMELINE)
  expect(await s.nblocks(REL)).toBe(10)
  await c.close()
}

const be32 = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n >>> 0)
  return b
}

describe('before login', () => {
  it('garbage before the startup packet (an HTTP request) is refused and the connection closed', async () => {
    const r = await start()
    const raw = await r.raw()
    raw.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    const frames = await raw.closedFrames()
    expect(frames.map(errorCode)).toEqual(['08P01'])
    expect(errorMessage(frames[0]!)).toMatch(/invalid startup packet length 1195725856/)
    await stillServes(r)
    expect(r.server.metrics.protocolErrors).toBe(1)
  })

  it('a startup packet over 10,000 bytes is refused without waiting for its body', async () => {
    const r = await start()
    const raw = await r.raw()
    raw.write(Buffer.concat([be32(20_000), be32(3 << 16)]))
    const frames = await raw.closedFrames()
    expect(errorMessage(frames[0]!)).toBe('invalid startup packet length 20000 (allowed 8 to 10000)')
    await stillServes(r)
  })

  it('a truncated startup packet followed by EOF just ends that connection', async () => {
    const r = await start()
    const raw = await r.raw()
    raw.write(startupMessage({ user: 'x' }).subarray(0, 11))
    raw.socket.end()
    await raw.closed
    await stillServes(r)
  })

  it('a CancelRequest is closed without an answer', async () => {
    const r = await start()
    const raw = await r.raw()
    raw.write(cancelRequest(1234, 5678))
    expect(await raw.closedFrames()).toEqual([])
    expect(raw.bufferedBytes).toBe(0)
    expect(r.server.metrics.cancelRequests).toBe(1)
    await stillServes(r)
  })

  it("SSLRequest and GSSENCRequest are answered 'N'; login continues in plain text; a third request is refused", async () => {
    const r = await start()
    const raw = await r.raw()
    raw.write(sslRequest())
    expect(await raw.byte()).toBe('N')
    raw.write(gssEncRequest())
    expect(await raw.byte()).toBe('N')
    await raw.login()
    expect((await raw.query('set x')).map((f) => f.type).join('')).toBe('CZ')
    const again = await r.raw()
    for (let i = 0; i < 2; i++) {
      again.write(sslRequest())
      expect(await again.byte()).toBe('N')
    }
    again.write(sslRequest())
    const frames = await again.closedFrames()
    expect(errorMessage(frames[0]!)).toMatch(/too many encryption requests/)
  })

  it('a client that says nothing is dropped after the handshake timeout', async () => {
    const r = await start({ handshakeTimeoutMs: 200 })
    const raw = await r.raw()
    expect(await raw.closedFrames(10_000)).toEqual([])
    await stillServes(r)
  })

  it('a logged-in client that goes silent is dropped after the idle timeout', async () => {
    const r = await start({ idleTimeoutMs: 200 })
    const raw = await r.raw()
    await raw.login()
    await raw.closedFrames(10_000)
    expect(raw.isClosed).toBe(true)
  })

  it('the idle timeout spares a client that keeps asking, and drops a silent one no sooner than the timeout', async () => {
    const r = await start({ idleTimeoutMs: 300 })
    const silent = await r.raw()
    await silent.login()
    const loggedInAt = Date.now()
    let closedAt = 0
    const silentClosed = silent.closedFrames(10_000).then(() => (closedAt = Date.now()))
    const talker = await r.client()
    const s = await talker.pagestream(TENANT, TIMELINE)
    // 1.2 s of requests 100 ms apart: four idle timeouts' worth, never 300 ms quiet.
    for (let i = 0; i < 12; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect(await s.nblocks(REL)).toBe(10)
    }
    await silentClosed
    expect(closedAt - loggedInAt).toBeGreaterThanOrEqual(300)
    expect(s.active).toBe(true)
    await talker.close()
  })
})

describe('idle timeout', () => {
  it('the idle timeout spares a connection waiting on the server: a request or a backup waiting for WAL is answered', async () => {
    // The operator's idle timeout (page_service_idle_timeout) may be below wait_lsn_timeout: a client waiting
    // for its answer is not a silent one (Neon times out only reads of the next request).
    const r = await start({ idleTimeoutMs: 200, waitLsnTimeoutMs: 10_000 })
    const tl = r.backend.main
    const at = lsn(tl.last + 0x100n)
    const c = await r.client()
    const s = await c.pagestream(TENANT, TIMELINE)
    const page = s.getPage(REL, 1, { requestLsn: at })
    const b = await r.client()
    const backup = (async () => {
      let n = 0
      for await (const ch of b.basebackup(TENANT, TIMELINE, { lsn: at })) n += ch.length
      return n
    })().catch((e: unknown) => e)
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    tl.advanceTo(at)
    expect((await page.catch((e: unknown) => e) as Buffer).length).toBe(8192)
    expect(await backup).toBeGreaterThan(0)
  })
})

describe('after login', () => {
  it('a 2^31 length is refused from the 5-byte header, in query mode and inside a pagestream', async () => {
    const r = await start()
    const raw = await r.raw()
    await raw.login()
    raw.write(Buffer.concat([Buffer.from('Q'), be32(0x80000000)]))
    const frames = await raw.closedFrames()
    expect(frames.map(errorCode)).toEqual(['08P01'])
    expect(errorMessage(frames[0]!)).toBe("the client sent a 2147483644-byte message of type 'Q'; at most 1048576 bytes are accepted")

    const s = await r.raw()
    await s.login()
    s.write(query(`pagestream_v2 ${TENANT} ${TIMELINE}`))
    expect((await s.frame()).type).toBe('W')
    s.write(Buffer.concat([Buffer.from('d'), be32(0xffffffff)]))
    expect((await s.closedFrames()).map(errorCode)).toEqual(['08P01'])
    await stillServes(r)
  })

  it('a length field below 4 and an unknown message type are protocol violations', async () => {
    const r = await start()
    const a = await r.raw()
    await a.login()
    a.write(Buffer.concat([Buffer.from('Q'), be32(2)]))
    expect(errorMessage((await a.closedFrames())[0]!)).toMatch(/impossible length 2/)
    const b = await r.raw()
    await b.login()
    b.write(Buffer.concat([Buffer.from('Z'), be32(4)]))
    expect(errorMessage((await b.closedFrames())[0]!)).toBe("unexpected message type 'Z'")
    const c = await r.raw()
    await c.login()
    c.write(Buffer.concat([Buffer.from([0x01]), be32(4)]))
    expect(errorMessage((await c.closedFrames())[0]!)).toBe('unexpected message type 0x01')
    await stillServes(r)
  })

  it('a Query without its NUL and a truncated message followed by EOF do not hurt the server', async () => {
    const r = await start()
    const a = await r.raw()
    await a.login()
    a.write(Buffer.concat([Buffer.from('Q'), be32(7), Buffer.from('set')]))
    expect(errorMessage((await a.closedFrames())[0]!)).toBe('Query message is not NUL-terminated')
    const b = await r.raw()
    await b.login()
    b.write(query('set x').subarray(0, 8))
    b.socket.end()
    await b.closed
    await stillServes(r)
  })

  it('every truncation of a pagestream request is an error that ends only the stream', async () => {
    const r = await start()
    const full = encodeRequestFrame({ type: 'getpage', hdr: { reqid: 0n, request_lsn: MAX_LSN, not_modified_since: lsn(0) }, rel: REL, blkno: 1 }, 2).subarray(5)
    const s = await r.raw()
    await s.login()
    for (let n = 0; n < full.length; n++) {
      s.write(query(`pagestream_v2 ${TENANT} ${TIMELINE}`))
      expect((await s.frame()).type).toBe('W')
      const body = full.subarray(0, n)
      s.write(Buffer.concat([Buffer.from('d'), be32(4 + n), body]))
      const end = await s.untilReady()
      expect(end.map((f) => f.type).join(''), `length ${n}`).toBe('EZ')
      expect(errorMessage(end[0]!)).toMatch(/^malformed pagestream request: truncated/)
    }
    await stillServes(r)
  })
})

describe('resource bounds', () => {
  it.each(['never', 'always'] as const)('a client that never reads: the server stops reading, holds a bounded write buffer, and serves others (pages answered at once: %s)', async (answerAtOnce) => {
    const r = await start()
    r.backend.main.answerAtOnce = answerAtOnce
    const raw = await r.raw()
    await raw.login()
    raw.write(query(`pagestream_v2 ${TENANT} ${TIMELINE}`))
    expect((await raw.frame()).type).toBe('W')
    raw.socket.pause() // never read again
    const req = encodeRequestFrame({ type: 'getpage', hdr: { reqid: 0n, request_lsn: MAX_LSN, not_modified_since: lsn(0) }, rel: REL, blkno: 1 }, 2)
    const batch = Buffer.concat(Array.from({ length: 1000 }, () => req))
    let sent = 0
    for (let i = 0; i < 100; i++) {
      raw.socket.write(batch) // 100,000 requests = 3.9 MB, far more than anyone buffers
      sent += 1000
    }
    // Let the server work until it is stuck on back-pressure.
    let last = -1
    for (let i = 0; i < 50 && r.server.metrics.requestsStarted !== last; i++) {
      last = r.server.metrics.requestsStarted
      await new Promise((res) => setTimeout(res, 100))
    }
    const started = r.server.metrics.requestsStarted
    // What got through is what fits in the kernel socket buffers plus in-flight requests: a few MB of
    // 8 KiB responses, nowhere near the 100,000 requests sent (819 MB of responses).
    expect(started).toBeLessThan(sent / 10)
    expect(r.server.metrics.requestsStarted - r.server.metrics.requestsCompleted).toBeLessThanOrEqual(32)
    // Node's write buffer for that socket stayed small: about inFlightMax responses (buffered plus in flight), and one more.
    expect(r.server.metrics.writeBufferedBytesPeak).toBeLessThan(16 * 1024 + 33 * 8200)
    await stillServes(r)
    raw.socket.destroy()
    for (let i = 0; i < 100 && r.server.liveConnections > 0; i++) await new Promise((res) => setTimeout(res, 20))
    expect(r.server.liveConnections).toBe(0)
  })

  it('connections beyond connectionsMax are refused with 53300 and hold no slot', async () => {
    const r = await start({ connectionsMax: 3 })
    const held = [await r.client(), await r.client(), await r.client()]
    const err = await r.client().catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'PAGE_SERVICE_UNAVAILABLE', sqlstate: '53300' })
    expect((err as Error).message).toMatch(/sorry, too many clients already/)
    expect(r.server.metrics.connectionsRefused).toBe(1)
    await held[0]!.close()
    for (let i = 0; i < 100 && r.server.liveConnections >= 3; i++) await new Promise((res) => setTimeout(res, 10))
    await stillServes(r)
  })

  it('at connectionsMax, a connection still logging in makes room for a new one: silent sockets cannot lock clients out', async () => {
    const r = await start({ connectionsMax: 3 })
    const silent = [await r.raw(), await r.raw(), await r.raw()] // accepted, never send a startup packet
    for (let i = 0; i < 100 && r.server.liveConnections < 3; i++) await new Promise((res) => setTimeout(res, 10))
    expect(r.server.liveConnections).toBe(3)
    const c = await r.client()
    await stillServes(r)
    expect(r.server.metrics.handshakesEvicted).toBeGreaterThanOrEqual(1)
    // The evicted one is told why, as PostgreSQL words it, before the close (not a bare reset).
    const evicted = await Promise.race(silent.map(async (s) => ({ s, frames: await s.closedFrames() })))
    expect(evicted.frames.map(errorCode)).toEqual(['53300'])
    expect(errorMessage(evicted.frames[0]!)).toBe('sorry, too many clients already')
    expect(r.server.metrics.connectionsRefused).toBe(0)
    // Logged-in connections are never evicted: with the slots held by them, a newcomer is refused.
    const held = [c, await r.client(), await r.client()]
    const err = await r.client().catch((e: unknown) => e)
    expect(err).toMatchObject({ sqlstate: '53300' })
    for (const h of held) await h.close()
    for (const s of silent) s.socket.destroy()
  })
})
