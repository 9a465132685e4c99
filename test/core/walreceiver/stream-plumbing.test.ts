import { describe, expect, it, vi } from 'vitest'
import { getEventListeners } from 'node:events'
import { Parser } from 'pg-protocol/dist/parser.js'
import type { BackendMessage } from 'pg-protocol/dist/messages.js'
import { FrameGuard } from '../../../src/core/walreceiver/frame-guard.js'
import { WalReceiver } from '../../../src/core/walreceiver/wal-receiver.js'
import { ChunkQueue } from '../../../src/core/walreceiver/chunk-queue.js'
import { backoffDelayMs, sleep } from '../../../src/core/walreceiver/backoff.js'
import { parseSegmentSizeSetting } from '../../../src/core/walreceiver/segment-size.js'
import { decodeServerMessage, decodeStatusUpdate, encodeKeepalive, encodeXLogData } from '../../../src/core/protocol/replication-messages.js'
import { CorruptionError } from '../../../src/core/lib/errors.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'

/** A backend message: type byte, u32 length (counting itself), body. Built by hand. */
function frame(type: string, body: Buffer): Buffer {
  const h = Buffer.alloc(5)
  h[0] = type.charCodeAt(0)
  h.writeUInt32BE(body.length + 4, 1)
  return Buffer.concat([h, body])
}

const WAL = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff))
const STREAM = Buffer.concat([
  frame('W', Buffer.from([0, 0, 0])),
  frame('d', encodeXLogData({ dataStart: 0x1000000n as Lsn, walEnd: 0x2000000n as Lsn, sendTime: 1n, data: WAL.subarray(0, 200) })),
  frame('d', encodeKeepalive({ walEnd: 0x2000000n as Lsn, sendTime: 2n, replyRequested: true })),
  frame('d', encodeXLogData({ dataStart: 0x10000c8n as Lsn, walEnd: 0x2000000n as Lsn, sendTime: 3n, data: WAL.subarray(200) })),
  frame('c', Buffer.alloc(0)),
])

/** Feeds the stream in two parts through guard + pg-protocol parser; copies WAL out in the callback. */
function parseSplit(at: number): Array<{ name: string; wal?: Buffer; reply?: boolean }> {
  const guard = new FrameGuard(1024)
  const parser = new Parser()
  const out: Array<{ name: string; wal?: Buffer; reply?: boolean }> = []
  const cb = (msg: BackendMessage): void => {
    if (msg.name !== 'copyData') return void out.push({ name: msg.name })
    const m = decodeServerMessage((msg as unknown as { chunk: Buffer }).chunk)
    if (m.type === 'xlogData') out.push({ name: 'w', wal: Buffer.from(m.data) })
    else out.push({ name: 'k', reply: m.replyRequested })
  }
  for (const part of [STREAM.subarray(0, at), STREAM.subarray(at)]) {
    guard.feed(part)
    parser.parse(Buffer.from(part), cb)
  }
  expect(guard.atBoundary).toBe(true)
  return out
}

describe('backend framing (FrameGuard + pg-protocol parser)', () => {
  it('yields the same messages and WAL bytes however the stream is split', () => {
    const whole = parseSplit(STREAM.length)
    expect(whole.map((m) => m.name)).toEqual(['replicationStart', 'w', 'k', 'w', 'copyDone'])
    expect(Buffer.concat([whole[1]!.wal!, whole[3]!.wal!])).toEqual(WAL)
    for (let at = 0; at <= STREAM.length; at++) expect(parseSplit(at), `split at ${at}`).toEqual(whole)
  })

  it('refuses a frame longer than the limit, or shorter than its length field, at any split', () => {
    const tooLong = frame('d', Buffer.alloc(1025))
    const impossible = Buffer.from([0x64, 0, 0, 0, 3])
    for (const [bytes, code] of [
      [tooLong, 'PG_MESSAGE_TOO_LARGE'],
      [impossible, 'PG_PROTOCOL_VIOLATION'],
    ] as const) {
      for (let at = 0; at <= 5; at++) {
        const g = new FrameGuard(1024)
        let err: unknown
        try {
          g.feed(bytes.subarray(0, at))
          g.feed(bytes.subarray(at, 5))
        } catch (e) {
          err = e
        }
        expect(err).toBeInstanceOf(CorruptionError)
        expect((err as CorruptionError).code).toBe(code)
      }
    }
    // Exactly at the limit is fine.
    new FrameGuard(1024).feed(frame('d', Buffer.alloc(1024)))
  })
})

describe('ChunkQueue', () => {
  const item = (n: number) => ({ data: Buffer.alloc(n) })

  it('delivers in order, then the end; a waiting consumer is woken', async () => {
    const q = new ChunkQueue<{ data: Buffer }>(100)
    const pending = q.next()
    q.push(item(1))
    q.push(item(2))
    q.end()
    q.push(item(3)) // ignored after end
    expect((await pending).value!.data.length).toBe(1)
    expect((await q.next()).value!.data.length).toBe(2)
    expect((await q.next()).done).toBe(true)
    expect((await q.next()).done).toBe(true)
  })

  it('delivers queued items before a failure, and reports high water and drain', async () => {
    let drains = 0
    const q = new ChunkQueue<{ data: Buffer }>(100, () => drains++)
    q.push(item(60))
    expect(q.overHighWater).toBe(false)
    q.push(item(60))
    expect(q.overHighWater).toBe(true)
    q.fail(new Error('boom'))
    await q.next()
    expect(drains).toBe(0) // 60 bytes still queued: above the low-water mark (50)
    await q.next()
    expect(drains).toBe(1) // empty: the producer may resume
    await expect(q.next()).rejects.toThrow('boom')
  })
})

describe('backoff and segment size', () => {
  const b = { initialDelayMs: 200, maxDelayMs: 10_000, multiplier: 2 }
  it('grows exponentially, stays within [base/2, base], and is capped', () => {
    expect(backoffDelayMs(1, b, () => 0)).toBe(100)
    expect(backoffDelayMs(1, b, () => 0.999999)).toBe(200)
    expect(backoffDelayMs(4, b, () => 0)).toBe(800)
    expect(backoffDelayMs(4, b, () => 0.5)).toBe(1200)
    expect(backoffDelayMs(50, b, () => 0.999999)).toBe(10_000)
    expect(backoffDelayMs(5000, b, () => 0)).toBe(5_000)
  })

  it('sleep ends early on abort', async () => {
    const ac = new AbortController()
    const p = sleep(60_000, ac.signal)
    ac.abort()
    await p
    await sleep(1)
  })

  it('parses wal_segment_size as SHOW prints it', () => {
    expect(parseSegmentSizeSetting('16MB')).toBe(16 * 1024 * 1024)
    expect(parseSegmentSizeSetting('1GB')).toBe(1024 ** 3)
    expect(parseSegmentSizeSetting('1024kB')).toBe(1024 ** 2)
    for (const bad of ['15MB', '2GB', '512kB', 'abc', '']) expect(() => parseSegmentSizeSetting(bad)).toThrow(CorruptionError)
  })
})

describe('WalStream chunk copies', () => {
  it('copies WAL out of the parse buffer into ordinary or shared memory, never sharing bytes between chunks', async () => {
    const { WalStream, WAL_STREAM_SLAB_BYTES } = await import('../../../src/core/walreceiver/wal-stream.js')
    const io = { send: () => {}, pause: () => {}, resume: () => {}, fail: () => {}, where: 'test' }
    const timing = { statusIntervalMs: 10_000, silenceTimeoutMs: 60_000, durableReportDelayMs: 100, queuedBytesMax: 64 << 20 }
    const stream = new WalStream(io, timing, 0x1000000n as Lsn, 0n as Lsn)
    const parse = Buffer.alloc(WAL_STREAM_SLAB_BYTES) // stands for pg-protocol's reused buffer
    const MiB = 1024 * 1024 // the largest XLogData accepted
    const sizes = [200, 8192, 128 * 1024, MiB, MiB, MiB, MiB, 300 * 1024, 128 * 1024] // the 7th starts a new slab
    let lsn = 0x1000000n
    const sent: Buffer[] = []
    for (const [i, n] of sizes.entries()) {
      if (i === 2) stream.useSharedMemory()
      const data = Buffer.alloc(n, i + 1)
      const msg = encodeXLogData({ dataStart: lsn as Lsn, walEnd: 0x9000000n as Lsn, sendTime: 1n, data })
      msg.copy(parse)
      stream.onCopyData(parse.subarray(0, msg.length))
      parse.fill(0xee) // the parser reuses its buffer
      sent.push(data)
      lsn += BigInt(n)
    }
    expect(stream.queuedBytes).toBe(sizes.reduce((a, b) => a + b, 0))
    const got = []
    for (let i = 0; i < sizes.length; i++) got.push((await stream.queue.next()).value!.data as Buffer)
    expect(got.map((b) => b.buffer instanceof SharedArrayBuffer)).toEqual([false, false, true, true, true, true, true, true, true])
    expect(got[6]!.buffer).not.toBe(got[5]!.buffer)
    expect(got[7]!.buffer).toBe(got[6]!.buffer)
    for (const [i, b] of got.entries()) expect(b.equals(sent[i]!), `chunk ${i}`).toBe(true)
    // Writing one chunk leaves its neighbours in the same slab untouched.
    got[4]!.fill(0)
    for (const i of [2, 3, 5]) expect(got[i]!.equals(sent[i]!), `chunk ${i}`).toBe(true)
    stream.finish()
  })
})

describe('WalStream status at the start', () => {
  it('reports a known durable position as soon as streaming begins (a freshly created slot holds too little until then), nothing when none is known', async () => {
    const { WalStream } = await import('../../../src/core/walreceiver/wal-stream.js')
    const timing = { statusIntervalMs: 10_000, silenceTimeoutMs: 60_000, durableReportDelayMs: 1_000, queuedBytesMax: 64 << 20 }
    for (const durable of [0x2000000n, 0n]) {
      const sent: Buffer[] = []
      const io = { send: (b: Buffer) => void sent.push(b), pause: () => {}, resume: () => {}, fail: () => {}, where: 'test' }
      const stream = new WalStream(io, timing, 0x3000000n as Lsn, durable as Lsn)
      stream.begin()
      try {
        if (durable === 0n) {
          expect(sent).toEqual([])
          continue
        }
        expect(sent).toHaveLength(1)
        // CopyData ('d', length) around the status update ('r', written, flushed, applied, clock, reply)
        const update = decodeStatusUpdate(sent[0]!.subarray(5))
        expect(update).toMatchObject({ written: 0x3000000n, flushed: durable, applied: durable, replyRequested: false })
      } finally {
        stream.finish()
      }
    }
  })
})

describe('WalReceiver and its caller\'s signal', () => {
  it('stops listening on the signal when closed: a long-lived signal keeps no closed receiver alive', async () => {
    const service = new AbortController()
    for (let i = 0; i < 20; i++) {
      // Never started: a receiver the service made and closed after its source refused it.
      const r = new WalReceiver({ conn: { host: '127.0.0.1', port: 1, user: 'postgres' } as never, startLsn: 0x1000000n as Lsn, signal: service.signal })
      await r.close()
    }
    expect(getEventListeners(service.signal, 'abort')).toHaveLength(0)
    // A receiver still open is closed by the signal.
    const open = new WalReceiver({ conn: { host: '127.0.0.1', port: 1, user: 'postgres' } as never, startLsn: 0x1000000n as Lsn, signal: service.signal })
    expect(getEventListeners(service.signal, 'abort')).toHaveLength(1)
    const closing = vi.spyOn(open, 'close')
    service.abort()
    expect(closing).toHaveBeenCalledTimes(1)
  })
})
