/**
 * Clients that hold the server's resources without breaking the protocol (found by an audit of a running
 * serve): queries sent without reading the answers, a password message announced as a megabyte, a large
 * message dripped a byte at a time, a client that leaves while its requests wait for WAL or its backup
 * waits for its LSN, a stream ended while a request waits, and a graceful shutdown during a backup's wait or
 * with a backup still streaming at the close deadline.
 */
import { generateKeyPair, exportSPKI } from 'jose'
import { describe, expect, it } from 'vitest'
import { lsn, MAX_LSN } from '../../../src/core/pg/lsn.js'
import { encodeRequestFrame } from '../../../src/core/protocol/pagestream.js'
import { copyDoneMessage, query, startupMessage } from '../../../src/core/protocol/pg-frontend-messages.js'
import { FrameReader } from '../../../src/core/protocol/pg-frames.js'
import { JwtAuth } from '../../../src/core/page-service/auth.js'
import { READ_AHEAD_BYTES } from '../../../src/core/page-service/connection.js'
import { REL, TENANT, TIMELINE } from './fake-backend.js'
import { errorCode, errorMessage, serverPerTest, type RawSocket, type Running } from './support.js'

const start = serverPerTest()

const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms))

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time')
    await sleep(10)
  }
}

async function rawStream(r: Running): Promise<RawSocket> {
  const s = await r.raw()
  await s.login()
  s.write(query(`pagestream_v2 ${TENANT} ${TIMELINE}`))
  expect((await s.frame()).type).toBe('W')
  return s
}

/** A GetPage that waits for WAL up to `at`, or one answered now (`at` null: the latest page). */
const getpage = (blkno: number, at: bigint | null = null): Buffer =>
  encodeRequestFrame({ type: 'getpage', hdr: { reqid: 1n, request_lsn: at === null ? MAX_LSN : lsn(at), not_modified_since: lsn(at ?? 0n) }, rel: REL, blkno }, 2)

describe('back-pressure outside pagestream', () => {
  it('queries sent without reading the answers: the server stops taking them at its write buffer, and answers them all once read', async () => {
    const r = await start()
    const raw = await r.raw()
    await raw.login()
    raw.socket.pause() // reads nothing for now
    // Each "x y" is refused with an ErrorResponse (~200 bytes with its hint) plus ReadyForQuery: 20,000 of
    // them are 180 KB in and ~4 MB out, which the server held in memory before.
    const n = 20_000
    const one = query('x y')
    raw.socket.write(Buffer.concat(Array.from({ length: n }, () => one)))
    await sleep(300)
    expect(r.server.metrics.writeBufferedBytesPeak).toBeLessThan(64 * 1024)
    raw.socket.resume()
    let ready = 0
    for (let i = 0; i < n; i++) {
      const frames = await raw.untilReady()
      expect(frames.map((f) => f.type).join('')).toBe('EZ')
      ready++
    }
    expect(ready).toBe(n)
    expect(r.server.metrics.writeBufferedBytesPeak).toBeLessThan(64 * 1024)
  })
})

describe('before authentication', () => {
  it('a password message longer than a JWT is refused from its header, before its body arrives', async () => {
    const { publicKey } = await generateKeyPair('EdDSA', { extractable: true })
    const jwtAuth = await JwtAuth.fromPublicKeyPems([{ name: 'k.pem', pem: await exportSPKI(publicKey) }])
    const r = await start({ authType: 'jwt', jwtAuth })
    const raw = await r.raw()
    raw.write(startupMessage({ user: 'test', database: 'postgres' }))
    expect((await raw.frame()).type).toBe('R')
    const head = Buffer.alloc(5)
    head[0] = 'p'.charCodeAt(0)
    head.writeUInt32BE(4 + 1024 * 1024, 1)
    raw.write(head)
    const frames = await raw.closedFrames()
    expect(frames.map((f) => f.type)).toEqual(['E'])
    expect(errorCode(frames[0]!)).toBe('08P01')
    expect(errorMessage(frames[0]!)).toMatch(/1048576-byte message of type 'p'; at most 8193 bytes/)
  })
})

describe('protocol negotiation', () => {
  it('a client asking for protocol 3.2 and a _pq_ option gets NegotiateProtocolVersion (3.0, the option named), then logs in', async () => {
    const r = await start()
    const raw = await r.raw()
    const pkt = startupMessage({ user: 'test', database: 'postgres', '_pq_.compression': 'on' })
    pkt.writeUInt32BE((3 << 16) | 2, 4)
    raw.write(pkt)
    const frames = await raw.untilReady()
    expect(frames.map((f) => f.type).join('')).toBe('vRSSSZ')
    const v = frames[0]!.body
    expect([v.readUInt32BE(0), v.readUInt32BE(4), v.subarray(8).toString('latin1')]).toEqual([0, 1, '_pq_.compression\0'])
    raw.write(query('set x'))
    expect((await raw.untilReady()).map((f) => f.type).join('')).toBe('CZ')
  })

  it('protocol 3.0 without options: no NegotiateProtocolVersion', async () => {
    const r = await start()
    const raw = await r.raw()
    raw.write(startupMessage({ user: 'test', database: 'postgres' }))
    expect((await raw.untilReady()).map((f) => f.type).join('')).toBe('RSSSZ')
  })
})

describe('FrameReader, a message dripped a byte at a time', () => {
  it('holds the bytes in one growing buffer, not one object per read, and returns every frame intact', () => {
    const reader = new FrameReader({ messageBytesMax: 1 << 20, peer: 'client' })
    const body = Buffer.alloc(200_000)
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff
    const msg = Buffer.concat([Buffer.from([0x51]), Buffer.from([0, 0, 0, 0]), body])
    msg.writeUInt32BE(4 + body.length, 1)
    const small = Buffer.from([0x53, 0, 0, 0, 4]) // Sync, after it in the same stream
    const stream = Buffer.concat([msg, small])
    const got: Array<{ type: number; body: Buffer }> = []
    let consumed = 0
    let piecesMax = 0
    let miscounted = 0
    for (let i = 0; i < stream.length; i++) {
      reader.push(stream.subarray(i, i + 1))
      piecesMax = Math.max(piecesMax, reader.piecesHeld)
      for (let f = reader.next(); f !== null; f = reader.next()) {
        got.push({ type: f.type, body: Buffer.from(f.body) })
        consumed += 5 + f.body.length
      }
      if (reader.bufferedBytes !== i + 1 - consumed) miscounted++
    }
    expect(miscounted).toBe(0)
    // Five reads before the header is whole, then everything in the assembly.
    expect(piecesMax).toBeLessThanOrEqual(5)
    expect(got.map((f) => f.type)).toEqual([0x51, 0x53])
    expect(got[0]!.body.equals(body)).toBe(true)
    expect(got[1]!.body.length).toBe(0)
    expect(reader.bufferedBytes).toBe(0)
  })

  it('frames split at random places (assembled or not) come out equal to what was sent', () => {
    let seed = 12345
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed % n
    }
    const frames: Buffer[] = []
    for (let i = 0; i < 300; i++) {
      const len = [0, 1, 40, 8192, 70_000, 150_000][rand(6)]!
      const b = Buffer.alloc(5 + len)
      b[0] = 0x41 + (i % 26)
      b.writeUInt32BE(4 + len, 1)
      for (let k = 5; k < b.length; k++) b[k] = (i + k) & 0xff
      frames.push(b)
    }
    const stream = Buffer.concat(frames)
    const reader = new FrameReader({ messageBytesMax: 1 << 20, peer: 'client' })
    let at = 0
    let n = 0
    while (at < stream.length) {
      const step = [1, 3, 100, 4096, 65536, 200_000][rand(6)]!
      reader.push(stream.subarray(at, Math.min(stream.length, at + step)))
      at += step
      for (let f = reader.next(); f !== null; f = reader.next()) {
        const want = frames[n++]!
        expect(f.type).toBe(want[0])
        expect(f.body.equals(want.subarray(5))).toBe(true)
      }
    }
    expect(n).toBe(frames.length)
  })
})

describe('a client that leaves while it waits', () => {
  it('more requests waiting for WAL than fit in flight, then the client closes: its slot is freed at once', async () => {
    const r = await start({ waitLsnTimeoutMs: 60_000 })
    const s = await rawStream(r)
    // 40 requests beyond the last LSN: 32 in flight, 8 read ahead; nothing can be answered.
    s.write(Buffer.concat(Array.from({ length: 40 }, (_, i) => getpage(i % 10, 0x2000_0000n))))
    await until(() => r.server.metrics.requestsStarted === 32)
    s.socket.destroy()
    await until(() => r.server.liveConnections === 0, 2_000)
    expect(r.server.metrics.requestsCompleted).toBe(0)
  })

  it('a basebackup waiting for its LSN, then the client closes: its slot is freed at once', async () => {
    const r = await start({ waitLsnTimeoutMs: 60_000 })
    const s = await r.raw()
    await s.login()
    s.write(query(`basebackup ${TENANT} ${TIMELINE} 0/20000000`))
    await until(() => r.server.metrics.backupsStarted === 1)
    s.socket.destroy()
    await until(() => r.server.liveConnections === 0, 2_000)
  })

  it('read-ahead is bounded: a client that floods while its requests wait is paused, not buffered; all are answered later', async () => {
    const r = await start({ waitLsnTimeoutMs: 60_000 })
    const s = await rawStream(r)
    const waiting = getpage(1, 0x2000_0000n)
    const n = 20_000 // ~800 KB of requests
    s.write(Buffer.concat(Array.from({ length: n }, () => waiting)))
    await until(() => r.server.metrics.requestsStarted === 32)
    await sleep(200)
    expect(r.server.metrics.requestsStarted).toBe(32)
    // At most READ_AHEAD_BYTES and one read (64 KiB) were taken from the socket; the rest waits in TCP.
    expect(r.server.metrics.readBufferedBytesPeak).toBeGreaterThan(0)
    expect(r.server.metrics.readBufferedBytesPeak).toBeLessThanOrEqual(READ_AHEAD_BYTES + 64 * 1024)
    r.backend.main.advanceTo(lsn(0x2000_0000n))
    for (let got = 0; got < n; got++) {
      const f = await s.frame()
      expect([f.type, f.body[0]]).toEqual(['d', 102])
    }
  })
})

describe('ending a stream while a request waits for WAL', () => {
  it('CopyDone: the waiting request is answered when its WAL comes, then ErrorResponse + ReadyForQuery (not 57P01)', async () => {
    const r = await start({ waitLsnTimeoutMs: 60_000 })
    const s = await rawStream(r)
    s.write(Buffer.concat([getpage(1), getpage(2, 0x2000_0000n), copyDoneMessage()]))
    const first = await s.frame()
    expect([first.type, first.body[0]]).toEqual(['d', 102])
    await sleep(100)
    expect(s.bufferedBytes).toBe(0) // nothing more until the WAL arrives
    r.backend.main.advanceTo(lsn(0x2000_0000n))
    const second = await s.frame()
    expect([second.type, second.body[0], second.body.readUInt32BE(1 + 16)]).toEqual(['d', 102, 2])
    const end = await s.untilReady()
    expect(end.map((f) => f.type).join('')).toBe('EZ')
    expect(errorMessage(end[0]!)).toMatch(/unexpected message: 'c' during COPY/)
    s.write(query('set x'))
    expect((await s.untilReady()).map((f) => f.type).join('')).toBe('CZ')
  })

  it('CopyDone, then a shutdown: the wait ends at once as 57P01', async () => {
    const r = await start({ waitLsnTimeoutMs: 60_000 })
    const s = await rawStream(r)
    s.write(Buffer.concat([getpage(2, 0x2000_0000n), copyDoneMessage()]))
    await until(() => r.server.metrics.requestsStarted === 1)
    await sleep(50)
    const t0 = Date.now()
    await r.server.close()
    expect(Date.now() - t0).toBeLessThan(2_000)
    const frames = await s.closedFrames()
    expect(frames.map((f) => errorCode(f))).toEqual(['57P01'])
  })
})

describe('graceful shutdown during a backup', () => {
  it('a backup still streaming at the close deadline ends with 57P01 after the data already sent, not a bare close', async () => {
    const r = await start({ closeDeadlineMs: 300 })
    const tl = r.backend.timelines.get(`${TENANT}/${TIMELINE}`)!
    tl.basebackup = async (opts) => ({
      lsn: opts.lsn ?? tl.last,
      tar: (async function* () {
        for (let i = 0; i < 1000; i++) {
          yield Buffer.alloc(1000, 1)
          await sleep(20)
        }
      })(),
    })
    const s = await r.raw()
    await s.login()
    s.write(query(`basebackup ${TENANT} ${TIMELINE}`))
    await until(() => s.bufferedBytes > 2000)
    const t0 = Date.now()
    await r.server.close()
    expect(Date.now() - t0).toBeLessThan(2_000)
    const frames = await s.closedFrames()
    expect(frames[0]!.type).toBe('H')
    expect(frames.filter((f) => f.type === 'd').length).toBeGreaterThan(2)
    const last = frames[frames.length - 1]!
    expect([last.type, errorCode(last)]).toEqual(['E', '57P01'])
  })

  it('a basebackup waiting for its LSN ends at once with 57P01, not at the close deadline', async () => {
    const r = await start({ waitLsnTimeoutMs: 60_000 })
    const s = await r.raw()
    await s.login()
    s.write(query(`basebackup ${TENANT} ${TIMELINE} 0/20000000`))
    await until(() => r.server.metrics.backupsStarted === 1)
    const t0 = Date.now()
    await r.server.close()
    expect(Date.now() - t0).toBeLessThan(2_000)
    const frames = await s.closedFrames()
    expect(frames.map((f) => [f.type, errorCode(f)])).toEqual([['E', '57P01']])
  })
})
