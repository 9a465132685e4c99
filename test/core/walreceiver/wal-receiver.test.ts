/**
 * WalReceiver against real PostgreSQL 15: records in order, exactly once, across a primary restart while a
 * workload writes; pg_waldump as the oracle for the record list; the same records with CRCs checked on a
 * worker thread; system-id mismatch is fatal; an unreachable primary is retried a bounded number of times.
 */
import { rmSync } from 'node:fs'
import { connect, createServer, type Socket } from 'node:net'
import { dirname } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PgCluster, freePort } from '../../support/pg-cluster.js'
import { parseWaldump } from '../pg/waldump-oracle.js'
import { snapshotWal } from '../pg/wal-workload.js'
import { parseConnString } from '../../../src/core/protocol/conn-string.js'
import { WalReceiver, type ReceiverLogEvent } from '../../../src/core/walreceiver/wal-receiver.js'
import { ConflictError, PageserverError, UnavailableError } from '../../../src/core/lib/errors.js'
import { formatLsn, parseLsn, type Lsn } from '../../../src/core/pg/lsn.js'
import type { DecodedRecord } from '../../../src/core/pg/wal-record.js'
import { WalCrcVerifier } from '../../../src/core/pg/wal-crc-verifier.js'
import { crc32c } from '../../../src/core/lib/crc32c.js'

const SEG = 16n * 1024n * 1024n
const PAGE = 8192n

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** A loopback TCP proxy whose target can be switched and whose connections can be cut (a network fault). */
async function startProxy(target: number): Promise<{ port: number; target: number; dropAll(): void; close(): void }> {
  const sockets = new Set<Socket>()
  const state = {
    port: 0,
    target,
    dropAll: () => {
      for (const s of sockets) s.destroy()
      sockets.clear()
    },
    close: () => {
      state.dropAll()
      server.close()
    },
  }
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: state.target })
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => {
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const addr = server.address()
  state.port = typeof addr === 'object' && addr ? addr.port : 0
  return state
}

/** Each record starts where the previous ended, or right after the header of a later page. */
function checkContiguous(recs: DecodedRecord[]): void {
  for (let i = 1; i < recs.length; i++) {
    const prev = recs[i - 1]!
    const rec = recs[i]!
    expect(rec.xl_prev, `prev-link of ${formatLsn(rec.lsn)}`).toBe(prev.lsn)
    if (rec.lsn === prev.endLsn) continue
    const header = rec.lsn % SEG < PAGE ? 40n : 24n
    expect(prev.endLsn % PAGE === 0n && rec.lsn === prev.endLsn + header, `gap between ${formatLsn(prev.endLsn)} and ${formatLsn(rec.lsn)}`).toBe(true)
  }
}

describe('WalReceiver against a PostgreSQL 15 primary', () => {
  let pg: PgCluster
  beforeAll(async () => {
    // A short wal_sender_timeout bounds how long a fast shutdown waits for a receiver's confirmation.
    pg = await PgCluster.start({ name: 'walrx', settings: { wal_sender_timeout: '5s' } })
    await pg.sql('CREATE TABLE w (id serial primary key, v text)')
  })
  afterAll(async () => {
    await pg?.destroy()
  })

  it('delivers every record once, in order, across a primary restart during a workload (pg_waldump agrees)', async () => {
    const events: ReceiverLogEvent[] = []
    const startLsn = (((await pg.insertLsn()) / SEG) * SEG) as Lsn
    const rx = new WalReceiver({
      conn: parseConnString(pg.connString()),
      slotName: 'rx_restart',
      startLsn,
      backoff: { initialDelayMs: 50, maxDelayMs: 500 },
      logger: (e) => events.push(e),
    })
    const recs: DecodedRecord[] = []
    const consumer = (async () => {
      for await (const rec of rx.records()) {
        recs.push(rec)
        rx.markDurable(rec.endLsn)
      }
    })()

    let writing = true
    let written = 0
    const writer = (async () => {
      while (writing) {
        try {
          await pg.sql(`INSERT INTO w (v) SELECT repeat('r', 150) FROM generate_series(1, 200)`, { timeoutMs: 30_000 })
          written++
        } catch {
          await new Promise((r) => setTimeout(r, 100)) // the primary is restarting
        }
      }
    })()
    await waitFor('some records', () => recs.length > 1000)
    await waitFor('writes before the restart', () => written >= 5)
    const sessionsBeforeRestart = rx.stats.sessions
    const restartStarted = Date.now()
    await pg.restart('fast')
    const restartMs = Date.now() - restartStarted
    const writtenAtRestart = written
    await waitFor('writes after the restart', () => written >= writtenAtRestart + 5)
    // The receiver reconnects after its backoff: the crash below must find it streaming again, or its
    // reconnection would count for both restarts.
    await waitFor('a new session after the restart', () => rx.stats.sessions > sessionsBeforeRestart)
    // And a crash: the walsender dies without a goodbye; recovery replays and the stream resumes.
    const sessionsBeforeCrash = rx.stats.sessions
    await pg.restart('immediate')
    const writtenAtCrash = written
    await waitFor('writes after the crash', () => written >= writtenAtCrash + 5)
    await waitFor('a new session after the crash', () => rx.stats.sessions > sessionsBeforeCrash)
    writing = false
    await writer
    const target = await pg.flushLsn()
    await waitFor('the receiver to catch up', () => rx.stats.lastRecordEnd >= target)
    await rx.close()
    await consumer

    expect(rx.stats.sessions).toBeGreaterThanOrEqual(3)
    expect(events.some((e) => e.event === 'stream-ended' && e.message.includes('server-shutdown'))).toBe(true)
    expect(events.some((e) => e.event === 'retry' && e.error?.code === 'PG_CONNECTION_LOST')).toBe(true)
    expect(recs[0]!.lsn >= startLsn).toBe(true)
    checkContiguous(recs)
    const lsns = recs.map((r) => formatLsn(r.lsn))
    expect(new Set(lsns).size).toBe(lsns.length)

    // The slot followed the declared durable LSN.
    const slotLsn = parseLsn(await pg.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'rx_restart'"))
    expect(slotLsn).toBe(rx.stats.durable)

    // Oracle: pg_waldump over the same range lists exactly the same records.
    const walCopy = snapshotWal(pg)
    try {
      const last = recs[recs.length - 1]!
      const dump = parseWaldump(await pg.waldump(['-p', walCopy, '-s', formatLsn(recs[0]!.lsn), '-e', formatLsn(last.endLsn)]))
      expect(dump.map((d) => d.lsn)).toEqual(lsns)
      expect(dump.map((d) => d.totalLength)).toEqual(recs.map((r) => r.xl_tot_len))
    } finally {
      rmSync(dirname(walCopy), { recursive: true, force: true })
      await pg.sql("SELECT pg_drop_replication_slot('rx_restart')")
    }
    expect(restartMs).toBeGreaterThan(0) // reported below, not asserted as a speed
    console.log(`restart took ${restartMs} ms; ${recs.length} records over ${rx.stats.sessions} sessions`)
    if (process.env.PS_DEBUG_RECEIVER) console.log(events.map((e) => `${e.event}: ${e.message}`).join('\n'))
  })

  it('resumes at a record boundary given by the caller, with the prev-link checked', async () => {
    await pg.sql(`INSERT INTO w (v) SELECT repeat('s', 50) FROM generate_series(1, 300)`)
    const startLsn = (((await pg.insertLsn()) / SEG) * SEG) as Lsn
    const target = await pg.flushLsn()
    const first: DecodedRecord[] = []
    const rx1 = new WalReceiver({ conn: parseConnString(pg.connString()), startLsn })
    for await (const rec of rx1.records()) {
      first.push(rec)
      if (rec.endLsn >= target) break
    }
    expect(rx1.stats.sessions).toBe(1)
    // Resume in the middle of the list, at record k's end, knowing record k's start.
    const k = Math.floor(first.length / 2)
    const rx2 = new WalReceiver({ conn: parseConnString(pg.connString()), startLsn: first[k]!.endLsn, prevRecordLsn: first[k]!.lsn })
    const second: DecodedRecord[] = []
    for await (const rec of rx2.records()) {
      second.push(rec)
      if (rec.endLsn >= target) break
    }
    expect(second.map((r) => formatLsn(r.lsn))).toEqual(first.slice(k + 1).map((r) => formatLsn(r.lsn)))
    // A wrong prev-link is caught: claim the record before the resume point started elsewhere.
    const rx3 = new WalReceiver({ conn: parseConnString(pg.connString()), startLsn: first[k]!.endLsn, prevRecordLsn: first[k - 1]!.lsn })
    await expect(
      (async () => {
        for await (const _ of rx3.records()) break
      })(),
    ).rejects.toMatchObject({ code: 'WAL_BAD_PREV_LINK' })
    expect(rx3.stats.attempts).toBe(1)
  })

  it('a start inside the zero-filled rest of a switched segment is a usage error, not corrupt WAL', async () => {
    await pg.sql(`INSERT INTO w (v) SELECT repeat('z', 50) FROM generate_series(1, 10)`)
    const switched = parseLsn(await pg.sql('SELECT pg_switch_wal()')) // the switch record's end, in the old segment
    await pg.sql(`INSERT INTO w (v) SELECT repeat('z', 50) FROM generate_series(1, 10)`) // WAL in the next segment
    const page = ((switched + 8191n) / 8192n + 1n) * 8192n
    expect(page % SEG).not.toBe(0n) // still inside the switched segment
    const rx = new WalReceiver({ conn: parseConnString(pg.connString()), startLsn: page as Lsn })
    await expect(
      (async () => {
        for await (const _ of rx.records()) break
      })(),
    ).rejects.toMatchObject({ code: 'WAL_STREAM_NO_RECORD_AT_START', kind: 'usage', message: expect.stringContaining(`no WAL at ${formatLsn(page)}`) })
    expect(rx.stats.attempts).toBe(1)
    // Where a timeline's ingest resumes the primary had WAL: zeros there are a fault of the stream, not a start
    // a user picked badly.
    const resumed = new WalReceiver({ conn: parseConnString(pg.connString()), startLsn: page as Lsn, resumesIngest: true, reconnectAttemptsMax: 0 })
    await expect(
      (async () => {
        for await (const _ of resumed.records()) break
      })(),
    ).rejects.toMatchObject({ code: 'WAL_BAD_MAGIC', kind: 'corruption' })
  })

  it('hands out the same records with CRCs checked on a worker thread, and leaves no thread behind', async () => {
    const startLsn = (((await pg.insertLsn()) / SEG) * SEG) as Lsn
    await pg.sql(`INSERT INTO w (v) SELECT repeat(md5(g::text), 12) FROM generate_series(1, 15000) g`)
    const target = await pg.flushLsn()
    const read = async (crcWorker: 'always' | 'never' | 'auto') => {
      const rx = new WalReceiver({ conn: parseConnString(pg.connString()), startLsn, crcWorker })
      const keys: string[] = []
      let first = true
      outer: for await (const batch of rx.batches()) {
        // A slow start: the worker comes up and chunks queue up behind this batch.
        if (first) await new Promise((r) => setTimeout(r, 300))
        first = false
        for (const r of batch) {
          keys.push(`${formatLsn(r.lsn)}:${r.xl_tot_len}:${crc32c(r.raw)}`)
          if (r.endLsn >= target) break outer
        }
      }
      await rx.close()
      return { keys, stats: rx.stats }
    }
    const here = await read('never')
    const worker = await read('always')
    const auto = await read('auto')
    expect(here.keys.length).toBeGreaterThan(10_000)
    expect(worker.keys).toEqual(here.keys)
    expect(auto.keys).toEqual(here.keys)
    expect(here.stats.crcWorkerRecords).toBe(0)
    expect(worker.stats.crcWorkerRecords).toBeGreaterThan(0)
    await WalCrcVerifier.stopIdleWorker() // no receiver uses it any more
    expect(WalCrcVerifier.live).toBe(0)
  })

  it('refuses a primary with another system id, without retrying', async () => {
    const other = await PgCluster.start({ name: 'walrx-other' })
    const proxy = await startProxy(pg.port)
    try {
      // The first connection's system id is the expected one from then on: switch the proxy to another
      // cluster and drop the connection; the reconnect must fail for good, not stream the other WAL.
      const switched: ReceiverLogEvent[] = []
      const rx0 = new WalReceiver({
        conn: parseConnString(`host=127.0.0.1 port=${proxy.port} user=postgres`),
        startLsn: (((await pg.insertLsn()) / SEG) * SEG) as Lsn,
        backoff: { initialDelayMs: 20, maxDelayMs: 50 },
        logger: (e) => switched.push(e),
      })
      let err0: unknown
      try {
        for await (const _ of rx0.records()) {
          if (proxy.target !== other.port) {
            proxy.target = other.port
            proxy.dropAll()
          }
        }
      } catch (e) {
        err0 = e
      }
      expect((err0 as PageserverError).code).toBe('WAL_SYSTEM_ID_MISMATCH')
      expect(rx0.stats.sessions).toBe(1)
      expect(rx0.stats.attempts).toBe(2)
      expect(switched.filter((e) => e.event === 'retry').map((e) => e.error?.code)).toEqual(['PG_CONNECTION_LOST'])


      const events: ReceiverLogEvent[] = []
      const rx = new WalReceiver({
        conn: parseConnString(other.connString()),
        startLsn: (((await other.insertLsn()) / SEG) * SEG) as Lsn,
        expectedSystemId: BigInt(await pg.systemId()),
        logger: (e) => events.push(e),
      })
      let err: unknown
      try {
        for await (const _ of rx.records()) break
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(ConflictError)
      expect((err as PageserverError).code).toBe('WAL_SYSTEM_ID_MISMATCH')
      expect((err as PageserverError).message).toContain(await other.systemId())
      expect(rx.stats.attempts).toBe(1)
      expect(events.filter((e) => e.event === 'retry')).toEqual([])
    } finally {
      proxy.close()
      await other.destroy()
    }
  })
})

describe('WalReceiver without a primary', () => {
  it('retries an unreachable primary with backoff, logs every attempt, then gives up', async () => {
    const events: ReceiverLogEvent[] = []
    const rx = new WalReceiver({
      conn: parseConnString(`host=127.0.0.1 port=${await freePort()}`),
      startLsn: 0x1000000n as Lsn,
      reconnectAttemptsMax: 3,
      backoff: { initialDelayMs: 10, maxDelayMs: 40 },
      logger: (e) => events.push(e),
    })
    let err: unknown
    try {
      for await (const _ of rx.records()) break
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(UnavailableError)
    expect((err as PageserverError).code).toBe('WAL_RECEIVER_GAVE_UP')
    expect((err as PageserverError).message).toMatch(/ECONNREFUSED/)
    expect(rx.stats.attempts).toBe(4)
    expect(events.filter((e) => e.event === 'connecting')).toHaveLength(4)
    const retries = events.filter((e) => e.event === 'retry')
    expect(retries.map((e) => e.attempt)).toEqual([1, 2, 3])
    expect(retries.every((e) => e.error?.code === 'PG_UNREACHABLE')).toBe(true)
    expect(retries.every((e) => (e.delayMs ?? -1) >= 5 && (e.delayMs ?? 99) <= 40)).toBe(true)
  })

  it('close() ends records() normally while it waits to reconnect', async () => {
    const rx = new WalReceiver({
      conn: parseConnString(`host=127.0.0.1 port=${await freePort()}`),
      startLsn: 0x1000000n as Lsn,
      backoff: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
    })
    const done = (async () => {
      for await (const _ of rx.records()) break
    })()
    await waitFor('the first attempt', () => rx.stats.attempts >= 1)
    await new Promise((r) => setTimeout(r, 50))
    await rx.close()
    await done
  })
})
