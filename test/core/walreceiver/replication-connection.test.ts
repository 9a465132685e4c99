/**
 * ReplicationConnection against a real PostgreSQL 15 primary (wal_sender_timeout = 2 s, so a connection that
 * failed to answer keepalives would be dropped within the test), and against peers that are not PostgreSQL.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer, type Server } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PgCluster, freePort } from '../../support/pg-cluster.js'
import { parseConnString } from '../../../src/core/protocol/conn-string.js'
import { ReplicationConnection, type WalChunk } from '../../../src/core/walreceiver/replication-connection.js'
import { CorruptionError, PageserverError, UnavailableError } from '../../../src/core/lib/errors.js'
import { formatLsn, parseLsn, type Lsn } from '../../../src/core/pg/lsn.js'
import { segmentNumber, walFileName } from '../../../src/core/pg/wal-page.js'
import { createPhysicalSlot, readReplicationSlot } from '../../../src/core/walreceiver/replication-slots.js'

const SEG = 16 * 1024 * 1024

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Reads chunks until `done(bytesSoFar)` says stop. */
async function collect(it: AsyncIterator<WalChunk>, until: (end: Lsn) => boolean): Promise<WalChunk[]> {
  const out: WalChunk[] = []
  for (;;) {
    const r = await it.next()
    if (r.done) return out
    out.push(r.value)
    if (until((r.value.dataStart + BigInt(r.value.data.length)) as Lsn)) return out
  }
}

describe('ReplicationConnection against PostgreSQL 15', () => {
  let pg: PgCluster
  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'replconn', settings: { wal_sender_timeout: '2s' } })
    await pg.sql('CREATE TABLE t (id int, v text)')
  })
  afterAll(async () => {
    await pg?.destroy()
  })

  const connect = () => ReplicationConnection.connect(parseConnString(pg.connString()))

  it('IDENTIFY_SYSTEM matches the cluster; slots are created once, then reused; a missing slot reads as null', async () => {
    const conn = await connect()
    try {
      const sys = await conn.identifySystem()
      expect(String(sys.systemId)).toBe(await pg.systemId())
      expect(sys.timeline).toBe(1)
      expect(sys.xlogPos <= (await pg.flushLsn())).toBe(true)
      expect(sys.dbname).toBeNull()
      expect(conn.parameter('server_version')).toMatch(/^15\./)
      expect(await conn.show('wal_segment_size')).toBe('16MB')
      expect(await readReplicationSlot(conn, 'rc_slot')).toBeNull()
      expect(await createPhysicalSlot(conn, 'rc_slot')).toEqual({ created: true })
      expect(await createPhysicalSlot(conn, 'rc_slot')).toEqual({ created: false })
      const slot = await readReplicationSlot(conn, 'rc_slot')
      expect(slot?.slotType).toBe('physical')
      expect(formatLsn(slot!.restartLsn!)).toBe(await pg.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'rc_slot'"))
      await expect(createPhysicalSlot(conn, 'Bad-Name')).rejects.toMatchObject({ code: 'BAD_SLOT_NAME' })
    } finally {
      await conn.close()
      await pg.sql("SELECT pg_drop_replication_slot('rc_slot')")
    }
  })

  it('streams a whole segment byte-identical to the file in pg_wal', async () => {
    await pg.sql("INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
    const switchLsn = await pg.switchWal()
    const segStart = ((switchLsn / BigInt(SEG)) * BigInt(SEG)) as Lsn
    const conn = await connect()
    try {
      const sys = await conn.identifySystem()
      const stream = await conn.startReplication({ startLsn: segStart, timeline: sys.timeline })
      const chunks = await collect(stream[Symbol.asyncIterator](), (end) => end >= segStart + BigInt(SEG))
      const streamed = Buffer.concat(chunks.map((c) => c.data)).subarray(0, SEG)
      expect(chunks[0]!.dataStart).toBe(segStart)
      expect(chunks.every((c) => c.data.length <= 128 * 1024)).toBe(true)
      const file = readFileSync(join(pg.walDir, walFileName(1, segmentNumber(segStart))))
      expect(streamed.length).toBe(SEG)
      expect(streamed.equals(file)).toBe(true)
      expect(conn.written >= segStart + BigInt(SEG)).toBe(true)
      await conn.stopStreaming()
      expect(conn.lastStreamEnd?.reason).toBe('client-stopped')
      // Back in command mode after CopyDone.
      expect((await conn.identifySystem()).systemId).toBe(sys.systemId)
    } finally {
      await conn.close()
    }
  })

  it("moves the slot's restart_lsn only to what was declared durable", async () => {
    const conn = await connect()
    try {
      await createPhysicalSlot(conn, 'rc_durable')
      const r0 = (await readReplicationSlot(conn, 'rc_durable'))!.restartLsn!
      const before = await pg.insertLsn()
      await pg.sql("INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(1, 5000) g")
      const after = await pg.flushLsn()
      const sys = await conn.identifySystem()
      const stream = await conn.startReplication({ slot: 'rc_durable', startLsn: r0, timeline: sys.timeline })
      const it = stream[Symbol.asyncIterator]()
      await collect(it, (end) => end >= after)
      conn.sendStatus({ replyRequested: true })
      await new Promise((r) => setTimeout(r, 500))
      const slotLsn = async () => parseLsn(await pg.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'rc_durable'"))
      // Received everything, declared nothing: the slot has not moved.
      expect(await slotLsn()).toBe(r0)
      conn.setDurable(before)
      await waitFor('restart_lsn = declared', async () => ((await slotLsn()) === before ? true : undefined))
      // Exactly the declared LSN, not what was received.
      expect(conn.written >= after).toBe(true)
      expect(await slotLsn()).toBe(before)
      expect(Number(await pg.sql("SELECT count(*) FROM pg_stat_replication WHERE flush_lsn = '" + formatLsn(before) + "'"))).toBe(1)
    } finally {
      await conn.close()
      await pg.sql("SELECT pg_drop_replication_slot('rc_durable')")
    }
  })

  it('answers keepalives: the connection outlives wal_sender_timeout while idle, with no status interval of its own', async () => {
    const conn = await ReplicationConnection.connect(parseConnString(pg.connString()), { statusIntervalMs: 600_000, silenceTimeoutMs: 600_000 })
    try {
      const sys = await conn.identifySystem()
      const stream = await conn.startReplication({ startLsn: sys.xlogPos, timeline: sys.timeline })
      const it = stream[Symbol.asyncIterator]()
      await new Promise((r) => setTimeout(r, 5_000)) // 2.5 x wal_sender_timeout, idle
      expect(conn.isClosed).toBe(false)
      expect(conn.stats!.repliesRequested).toBeGreaterThanOrEqual(2)
      expect(conn.stats!.statusUpdatesSent).toBeGreaterThanOrEqual(conn.stats!.repliesRequested)
      await pg.sql('INSERT INTO t VALUES (1, $$after idle$$)')
      const target = await pg.flushLsn()
      const chunks = await collect(it, (end) => end >= target)
      expect(chunks.length).toBeGreaterThan(0)
      expect(chunks[0]!.dataStart).toBe(sys.xlogPos)
    } finally {
      await conn.close()
    }
  })

  it('detects a walsender that stopped answering (silence) and fails the stream as retryable', async () => {
    const conn = await ReplicationConnection.connect(parseConnString(pg.connString()), {
      statusIntervalMs: 300,
      silenceTimeoutMs: 1_500,
      applicationName: 'silence_test',
    })
    let pid = 0
    try {
      const sys = await conn.identifySystem()
      const stream = await conn.startReplication({ startLsn: sys.xlogPos, timeline: sys.timeline })
      pid = await waitFor('the walsender', async () => {
        const v = await pg.sql("SELECT pid FROM pg_stat_replication WHERE application_name = 'silence_test'")
        return v === '' ? undefined : Number(v)
      })
      process.kill(pid, 'SIGSTOP') // as a network partition would: no FIN, no RST, just nothing
      let err: unknown
      try {
        for await (const _ of stream) {
          // idle: nothing is written meanwhile
        }
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(UnavailableError)
      expect((err as PageserverError).code).toBe('WAL_STREAM_SILENT')
      expect(conn.isClosed).toBe(true)
    } finally {
      if (pid) process.kill(pid, 'SIGCONT')
      await conn.close()
    }
  })

  it('reports a server-side error at START_REPLICATION as a typed error and stays usable', async () => {
    const conn = await connect()
    try {
      const sys = await conn.identifySystem()
      await expect(conn.startReplication({ slot: 'no_such_slot', startLsn: sys.xlogPos, timeline: sys.timeline })).rejects.toMatchObject({ code: 'PG_SLOT_NOT_FOUND' })
      expect((await conn.identifySystem()).systemId).toBe(sys.systemId)
    } finally {
      await conn.close()
    }
  })
})

describe('ReplicationConnection against peers that are not PostgreSQL', () => {
  let server: Server | undefined
  afterAll(() => server?.close())

  async function fakeServer(reply: Buffer): Promise<number> {
    server?.close()
    server = createServer((sock) => {
      sock.on('error', () => {})
      sock.once('data', () => sock.write(reply))
    })
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
    const addr = server.address()
    return typeof addr === 'object' && addr ? addr.port : 0
  }

  async function failure(port: number, opts = {}): Promise<PageserverError> {
    try {
      const c = await ReplicationConnection.connect(parseConnString(`host=127.0.0.1 port=${port}`), opts)
      await c.close()
    } catch (e) {
      expect(e).toBeInstanceOf(PageserverError)
      return e as PageserverError
    }
    throw new Error('expected failure')
  }

  it('an unreachable port is UnavailableError PG_UNREACHABLE', async () => {
    const e = await failure(await freePort())
    expect(e).toBeInstanceOf(UnavailableError)
    expect(e.code).toBe('PG_UNREACHABLE')
    expect(e.message).toMatch(/ECONNREFUSED/)
  })

  it('an HTTP server answering garbage is a protocol violation, a huge length is refused before buffering', async () => {
    const e1 = await failure(await fakeServer(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')))
    expect(e1).toBeInstanceOf(CorruptionError)
    expect(['PG_MESSAGE_TOO_LARGE', 'PG_PROTOCOL_VIOLATION']).toContain(e1.code)
    const huge = Buffer.from([0x52, 0x7f, 0xff, 0xff, 0xff])
    const e2 = await failure(await fakeServer(huge))
    expect(e2.code).toBe('PG_MESSAGE_TOO_LARGE')
  })

  it('a server that never answers hits the connect timeout', async () => {
    server?.close()
    server = createServer((sock) => sock.on('error', () => {}))
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
    const addr = server.address()
    const e = await failure(typeof addr === 'object' && addr ? addr.port : 0, { connectTimeoutMs: 300 })
    expect(e.code).toBe('PG_TIMEOUT')
    expect(e.exitCode).toBe(7)
    expect(e.message).toMatch(/^connecting to \S+ timed out after 300 ms$/)
  })

  it('a port that accepts and closes at once: closed during startup, retryable, not "the connection was lost"', async () => {
    server?.close()
    server = createServer((sock) => sock.end())
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
    const addr = server.address()
    const e = await failure(typeof addr === 'object' && addr ? addr.port : 0)
    expect(e.code).toBe('PG_CLOSED_AT_STARTUP')
    expect(e.kind).toBe('unavailable')
    expect(e.message).toMatch(/closed the connection during startup, before authentication/)
  })

  /** A backend message: type, length, body. */
  const msg = (type: string, body: Buffer = Buffer.alloc(0)) => {
    const b = Buffer.alloc(5 + body.length)
    b.write(type, 0, 'latin1')
    b.writeUInt32BE(4 + body.length, 1)
    body.copy(b, 5)
    return b
  }

  /**
   * A walsender that authenticates anyone, answers START_REPLICATION with CopyBoth and then sends `then`
   * (and nothing more): the stream that follows, and the error it ends with.
   */
  async function streamFromFake(then: Buffer, opts: { silenceTimeoutMs: number }): Promise<{ error: PageserverError | null; ms: number }> {
    server?.close()
    server = createServer((sock) => {
      sock.on('error', () => {})
      let startup = true
      sock.on('data', (d: Buffer) => {
        if (startup) {
          startup = false
          sock.write(Buffer.concat([msg('R', Buffer.alloc(4)), msg('Z', Buffer.from('I'))]))
        } else if (d[0] === 0x51 && d.includes('START_REPLICATION')) {
          sock.write(Buffer.concat([msg('W', Buffer.from([0, 0, 0])), then]))
        }
      })
    })
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
    const addr = server.address()
    const port = typeof addr === 'object' && addr ? addr.port : 0
    const conn = await ReplicationConnection.connect(parseConnString(`host=127.0.0.1 port=${port} user=postgres`), { ...opts, statusIntervalMs: 100 })
    const t0 = Date.now()
    try {
      const stream = await conn.startReplication({ startLsn: 0x1000000n as Lsn, timeline: 1 })
      for await (const _ of stream) {
        // nothing is sent
      }
      return { error: null, ms: Date.now() - t0 }
    } catch (e) {
      expect(e).toBeInstanceOf(PageserverError)
      return { error: e as PageserverError, ms: Date.now() - t0 }
    } finally {
      await conn.close()
    }
  }

  it('CopyDone (end of a timeline) and then nothing: the stream still ends, within the silence timeout', async () => {
    const r = await streamFromFake(msg('c'), { silenceTimeoutMs: 500 })
    expect(r.error?.code).toBe('PG_TIMEOUT')
    expect(r.error?.message).toMatch(/waiting for the end of the timeline on \S+ timed out after 500 ms/)
    expect(r.ms).toBeLessThan(5_000)
  })

  it('a message that never completes: too slow, naming how much of it arrived', async () => {
    // The header of a 128 KiB XLogData CopyData and its first 100 bytes.
    const partial = Buffer.concat([Buffer.from([0x64]), Buffer.from([0, 2, 0, 29]), Buffer.alloc(100, 0x77)])
    const r = await streamFromFake(partial, { silenceTimeoutMs: 500 })
    expect(r.error?.code).toBe('WAL_STREAM_TOO_SLOW')
    expect(r.error?.message).toMatch(/no complete message from \S+ for 0\.5 s: 105 of 131102 bytes of one arrived meanwhile/)
    expect(r.error?.kind).toBe('unavailable')
  })
})
