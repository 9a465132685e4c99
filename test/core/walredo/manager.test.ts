import { describe, expect, it } from 'vitest'
import {
  CorruptionError,
  InterruptedError,
  PageserverError,
  TimeoutError,
  UnavailableError,
  UnsupportedError,
  UsageError,
} from '../../../src/core/lib/errors.js'
import { WalRedoManager, type WalRedoManagerOptions } from '../../../src/core/walredo/manager.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import { RM } from '../../../src/core/pg/rmgr.js'
import { SlruKind } from '../../../src/core/pg/slru.js'
import { redoBlock } from '../../../src/core/redo/engine.js'
import { buildRecord } from '../redo/heap/record-builder.js'
import { expectedEcho, fakeWorker, isAlive, memoryLogger, request, waitGone } from './support.js'

const DEFAULTS = {
  poolSize: 1,
  requestTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxQueued: 100,
  maxInFlightPerWorker: 4,
  stopGraceMs: 500,
}

async function withManager(
  opts: Partial<WalRedoManagerOptions> & { command: string[] },
  fn: (m: WalRedoManager) => Promise<void>,
): Promise<WalRedoManager> {
  const m = new WalRedoManager({ ...DEFAULTS, ...opts })
  try {
    await fn(m)
  } finally {
    const pids = m.stats().pids
    await m.close()
    expect(await waitGone(pids, 2000)).toEqual([])
  }
  return m
}

async function rejection(p: Promise<unknown>): Promise<PageserverError> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(PageserverError)
    return err as PageserverError
  }
  throw new Error('expected a rejection')
}

describe('WalRedoManager with real worker processes', () => {
  it('redoes through an echo worker, pings, and keeps FIFO order over many pipelined requests', async () => {
    await withManager({ command: fakeWorker('echo-worker.mjs'), poolSize: 2, maxInFlightPerWorker: 8, maxQueued: 200 }, async (m) => {
      await m.ping()
      const one = request(3)
      expect((await m.redo(one)).equals(expectedEcho(one))).toBe(true)
      const reqs = Array.from({ length: 150 }, (_, i) => request(i, i % 5))
      const pages = await Promise.all(reqs.map((r) => m.redo(r)))
      pages.forEach((p, i) => expect(p.equals(expectedEcho(reqs[i]!)), `request ${i}`).toBe(true))
      const s = m.stats()
      expect(s.spawned).toBe(2)
      expect(s.succeeded).toBe(151)
      expect(s.retried).toBe(0)
      expect(s.inFlight).toBe(0)
    })
  })

  it('hands each caller its own page, whether its reply came in one read or was split across reads', async () => {
    for (const args of [[], ['--split']]) {
      await withManager({ command: fakeWorker('echo-worker.mjs', args), poolSize: 1, maxInFlightPerWorker: 8, maxQueued: 100 }, async (m) => {
        const reqs = Array.from({ length: 40 }, (_, i) => request(i, 1 + (i % 3)))
        const pages = await Promise.all(reqs.map((r) => m.redo(r)))
        pages.forEach((p, i) => expect(p.equals(expectedEcho(reqs[i]!)), `${args} request ${i}`).toBe(true))
        // Pages answered by one read may be views of it: changing one must change no other.
        pages.forEach((p, i) => p.fill(i + 1))
        pages.forEach((p, i) => expect(p.length === 8192 && p.every((b) => b === i + 1), `${args} request ${i}`).toBe(true))
        const again = await Promise.all(reqs.map((r) => m.redo(r)))
        again.forEach((p, i) => expect(p.equals(expectedEcho(reqs[i]!)), `${args} request ${i}`).toBe(true))
      })
    }
  })

  it('redoes a chain longer than a request may carry in steps, each result the next base', async () => {
    await withManager({ command: fakeWorker('echo-worker.mjs'), chainStepRecords: 3 }, async (m) => {
      for (const blkno of [4, 5]) {
        // Block 4 starts without a base page, block 5 with one.
        const whole = request(blkno, 10)
        let expected = whole.base
        for (let i = 0; i < 10; i += 3) expected = expectedEcho({ tag: whole.tag, base: expected, records: whole.records.slice(i, i + 3) })
        const before = m.stats().requests
        expect((await m.redo(whole)).equals(expected!)).toBe(true)
        expect(m.stats().requests - before).toBe(4) // 3 + 3 + 3 + 1 records
      }
      const short = request(6, 3)
      expect((await m.redo(short)).equals(expectedEcho(short))).toBe(true) // one request, as before
    })
    expect(() => new WalRedoManager({ ...DEFAULTS, command: fakeWorker('echo-worker.mjs'), chainStepRecords: 0 })).toThrow(/chain step/)
  })

  it('gives the worker a clean environment and logs its stderr lines', async () => {
    const { logger, entries } = memoryLogger()
    await withManager({ command: fakeWorker('echo-worker.mjs', ['--print-env']), env: { EXTRA_SETTING: '1' }, logger }, async (m) => {
      await m.ping()
    })
    const line = entries.find((e) => e.message === 'redo worker stderr')
    // PATH, what the config adds, and the mark of in-band error pages (redo-error-page.ts): nothing of ours.
    expect(line?.fields.line).toBe('env: ["EXTRA_SETTING","PAGESERVER_REDO_ERROR_MARK","PATH"]')
  })

  it('respawns after a crash and retries once: the retry succeeds', async () => {
    await withManager({ command: fakeWorker('crash-worker.mjs', ['--on=2']) }, async (m) => {
      const first = request(1)
      expect((await m.redo(first)).equals(expectedEcho(first))).toBe(true)
      const pid1 = m.stats().pids[0]!
      const second = request(2)
      expect((await m.redo(second)).equals(expectedEcho(second))).toBe(true)
      const s = m.stats()
      expect(s.spawned).toBe(2)
      expect(s.retried).toBe(1)
      expect(s.failures.crash).toBe(1)
      expect(s.pids).not.toContain(pid1)
      expect(isAlive(pid1)).toBe(false)
    })
  })

  it('fails with a clear error after exactly one retry when every worker crashes', async () => {
    await withManager({ command: fakeWorker('crash-worker.mjs', ['--on=1']) }, async (m) => {
      const err = await rejection(m.redo(request(4)))
      expect(err).toBeInstanceOf(UnavailableError)
      expect(err.code).toBe('WALREDO_WORKER_CRASHED')
      expect(err.message).toMatch(/failed 2 times \(crash, crash\)/)
      expect(err.message).toMatch(/killed by SIGKILL/)
      expect(err.message).toMatch(/crash-worker: dying on request 1/)
      expect(err.details).toMatchObject({ attempts: 2, signal: 'SIGKILL' })
      expect(m.stats()).toMatchObject({ spawned: 2, retried: 1, failed: 1 })
    })
  })

  it('kills a hung worker at the deadline, retries once, then fails with WALREDO_TIMEOUT', async () => {
    await withManager({ command: fakeWorker('hang-worker.mjs', ['--on=1']), requestTimeoutMs: 300 }, async (m) => {
      const pids: number[] = []
      const p = m.redo(request(5))
      pids.push(...m.stats().pids)
      const err = await rejection(p)
      expect(err).toBeInstanceOf(TimeoutError)
      expect(err.code).toBe('WALREDO_TIMEOUT')
      expect(err.message).toMatch(/did not finish within 300 ms/)
      expect(m.stats()).toMatchObject({ spawned: 2, retried: 1, workers: 0 })
      expect(m.stats().failures.timeout).toBe(2)
      expect(isAlive(pids[0]!)).toBe(false)
    })
  })

  it('recovers from a timeout when the fresh worker answers', async () => {
    // Each worker hangs on its 2nd request: request A ok, B hangs and is retried on a new worker (its 1st).
    // The deadline covers the fresh worker's start-up, hence a generous one.
    await withManager({ command: fakeWorker('hang-worker.mjs', ['--on=2']), requestTimeoutMs: 1500 }, async (m) => {
      const a = request(1)
      const b = request(2)
      expect((await m.redo(a)).equals(expectedEcho(a))).toBe(true)
      expect((await m.redo(b)).equals(expectedEcho(b))).toBe(true)
      expect(m.stats()).toMatchObject({ spawned: 2, retried: 1 })
    })
  })

  it('treats short, long and non-zero ping replies as malformed', async () => {
    await withManager({ command: fakeWorker('malformed-worker.mjs', ['--mode=short']) }, async (m) => {
      const err = await rejection(m.redo(request(6)))
      expect(err).toBeInstanceOf(CorruptionError)
      expect(err.code).toBe('WALREDO_MALFORMED_REPLY')
      expect(err.message).toMatch(/after 100 of 8192 bytes/)
      expect(m.stats()).toMatchObject({ spawned: 2, retried: 1 })
    })
    await withManager({ command: fakeWorker('malformed-worker.mjs', ['--mode=long']) }, async (m) => {
      // The first 8192 bytes are a well-formed answer; the 7 extra bytes answer nothing and condemn the worker.
      const req = request(7)
      expect((await m.redo(req)).equals(expectedEcho(req))).toBe(true)
      await expect.poll(() => m.stats().workers, { timeout: 3000 }).toBe(0)
      expect((await m.redo(req)).equals(expectedEcho(req))).toBe(true)
      expect(m.stats().spawned).toBe(2)
    })
    await withManager({ command: fakeWorker('malformed-worker.mjs', ['--mode=bad-ping']) }, async (m) => {
      const err = await rejection(m.ping())
      expect(err.code).toBe('WALREDO_MALFORMED_REPLY')
      expect(err.message).toMatch(/non-zero page/)
      expect(m.stats().spawned).toBe(1)
    })
  })

  it('passes a deterministic redo error through typed, without retrying', async () => {
    const { logger, entries } = memoryLogger()
    await withManager({ command: fakeWorker('redo-error-worker.mjs', ['--blk=13']), logger }, async (m) => {
      const err = await rejection(m.redo(request(13)))
      expect(err).toBeInstanceOf(UnsupportedError)
      expect(err.code).toBe('REDO_UNSUPPORTED_RECORD')
      expect(err.message).toBe('no redo for Btree/SPLIT_L at 0/16B3748')
      expect(err.hint).toBe('A later full-page image re-bases the page.')
      expect(err.details).toMatchObject({ rmgr: 'Btree', type: 'SPLIT_L', lsn: '0/16B3748', blk: 13 })
      expect(m.stats()).toMatchObject({ spawned: 1, retried: 0, failed: 1 })
      // Other pages still work, on a fresh worker.
      const ok = request(14)
      expect((await m.redo(ok)).equals(expectedEcho(ok))).toBe(true)
    })
    expect(entries.some((e) => e.message === 'redo worker stderr' && e.fields.line === 'some earlier log line')).toBe(true)
  })

  it('retries requests pipelined behind a failing one without charging them, and fails only the culprit', async () => {
    await withManager(
      { command: fakeWorker('redo-error-worker.mjs', ['--blk=13']), maxInFlightPerWorker: 8 },
      async (m) => {
        const reqs = [request(11), request(13), request(15), request(17)]
        const results = await Promise.allSettled(reqs.map((r) => m.redo(r)))
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled'])
        results.forEach((r, i) => {
          if (r.status === 'fulfilled') expect(r.value.equals(expectedEcho(reqs[i]!))).toBe(true)
        })
        expect((results[1] as PromiseRejectedResult).reason.code).toBe('REDO_UNSUPPORTED_RECORD')
      },
    )
  })

  it('with 16 requests in flight, a crash fails only its culprit after one retry; every other caller gets its own page', async () => {
    await withManager({ command: fakeWorker('crash-worker.mjs', ['--blk=5']), maxInFlightPerWorker: 16 }, async (m) => {
      await m.ping()
      const reqs = Array.from({ length: 16 }, (_, i) => request(i + 1))
      const results = await Promise.allSettled(reqs.map((r) => m.redo(r)))
      results.forEach((r, i) => {
        if (i === 4) {
          const e = (r as PromiseRejectedResult).reason as PageserverError
          expect(e.code).toBe('WALREDO_WORKER_CRASHED')
          expect(e.message).toMatch(/blk 5 failed 2 times \(crash, crash\)/)
        } else {
          expect((r as PromiseFulfilledResult<Buffer>).value.equals(expectedEcho(reqs[i]!))).toBe(true)
        }
      })
      expect(m.stats()).toMatchObject({ spawned: 3, failed: 1, succeeded: 15, failures: { crash: 2 } })
    })
  })

  it('contains a memory blow-up in the worker', async () => {
    await withManager({ command: fakeWorker('alloc-worker.mjs', ['--blk=666'], 32), requestTimeoutMs: 30_000 }, async (m) => {
      const err = await rejection(m.redo(request(666)))
      expect(err).toBeInstanceOf(UnavailableError)
      expect(err.code).toBe('WALREDO_WORKER_CRASHED')
      expect(err.message).toMatch(/heap out of memory/)
      expect(err.details).toMatchObject({ signal: 'SIGABRT' })
      const ok = request(1)
      expect((await m.redo(ok)).equals(expectedEcho(ok))).toBe(true)
    })
  })

  it('reaps idle workers and respawns on demand', async () => {
    await withManager({ command: fakeWorker('echo-worker.mjs'), idleTimeoutMs: 150 }, async (m) => {
      await m.ping()
      const pid = m.stats().pids[0]!
      expect(await waitGone([pid], 5000)).toEqual([])
      expect(m.stats()).toMatchObject({ workers: 0, reaped: 1 })
      const req = request(9)
      expect((await m.redo(req)).equals(expectedEcho(req))).toBe(true)
      expect(m.stats().spawned).toBe(2)
      expect(m.stats().pids[0]).not.toBe(pid)
    })
  })

  it('applies back-pressure: a bounded queue, then WALREDO_OVERLOADED at once', async () => {
    await withManager(
      { command: fakeWorker('echo-worker.mjs', ['--delay-ms=200']), maxInFlightPerWorker: 1, maxQueued: 2 },
      async (m) => {
        const reqs = [1, 2, 3, 4, 5].map((b) => request(b))
        const promises = reqs.map((r) => m.redo(r))
        expect(m.stats()).toMatchObject({ inFlight: 1, queued: 2 })
        const results = await Promise.allSettled(promises)
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected'])
        for (const r of results.slice(3)) {
          const reason = (r as PromiseRejectedResult).reason as PageserverError
          expect(reason).toBeInstanceOf(UnavailableError)
          expect(reason.code).toBe('WALREDO_OVERLOADED')
        }
        results.slice(0, 3).forEach((r, i) => expect((r as PromiseFulfilledResult<Buffer>).value.equals(expectedEcho(reqs[i]!))).toBe(true))
        expect(m.stats().overloaded).toBe(2)
      },
    )
  })

  it('bounds the wait for a free worker by the request timeout', async () => {
    await withManager(
      { command: fakeWorker('echo-worker.mjs', ['--delay-ms=700']), maxInFlightPerWorker: 1, requestTimeoutMs: 1000 },
      async (m) => {
        await m.ping() // started, so that start-up time does not count below
        const results = await Promise.allSettled([m.redo(request(1)), m.redo(request(2)), m.redo(request(3))])
        // 1 runs 700 ms; 2 waits 700 ms, then runs; 3 would wait 1400 ms in the queue: more than 1000.
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected'])
        const reason = (results[2] as PromiseRejectedResult).reason as PageserverError
        expect(reason).toBeInstanceOf(TimeoutError)
        expect(reason.code).toBe('WALREDO_TIMEOUT')
        expect(reason.message).toMatch(/waited 1000 ms for a free redo worker/)
      },
    )
  })

  it('cancels queued and in-flight requests on abort without breaking FIFO matching', async () => {
    await withManager({ command: fakeWorker('echo-worker.mjs', ['--delay-ms=100']), maxInFlightPerWorker: 2, maxQueued: 5 }, async (m) => {
      const acs = [0, 1, 2, 3].map(() => new AbortController())
      const reqs = [1, 2, 3, 4].map((b) => request(b))
      const promises = reqs.map((r, i) => m.redo(r, { signal: acs[i]!.signal }))
      expect(m.stats()).toMatchObject({ inFlight: 2, queued: 2 })
      acs[0]!.abort() // in flight
      acs[2]!.abort() // queued
      const results = await Promise.allSettled(promises)
      expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'rejected', 'fulfilled'])
      expect(((results[0] as PromiseRejectedResult).reason as PageserverError)).toBeInstanceOf(InterruptedError)
      expect(((results[2] as PromiseRejectedResult).reason as PageserverError).code).toBe('WALREDO_ABORTED')
      expect((results[1] as PromiseFulfilledResult<Buffer>).value.equals(expectedEcho(reqs[1]!))).toBe(true)
      expect((results[3] as PromiseFulfilledResult<Buffer>).value.equals(expectedEcho(reqs[3]!))).toBe(true)
      const aborted = new AbortController()
      aborted.abort()
      expect((await rejection(m.redo(request(5), { signal: aborted.signal }))).code).toBe('WALREDO_ABORTED')
    })
  })

  it('close() kills and waits for every worker, fails what is left, and refuses new work', async () => {
    const m = new WalRedoManager({ ...DEFAULTS, command: fakeWorker('hang-worker.mjs', ['--on=1']), poolSize: 2, maxInFlightPerWorker: 1, stopGraceMs: 200 })
    const inFlight = [m.redo(request(1)), m.redo(request(2))]
    const queued = m.redo(request(3))
    const errors = [...inFlight, queued].map((p) => rejection(p))
    const pids = m.stats().pids
    expect(pids).toHaveLength(2)
    expect(m.stats().queued).toBe(1)
    await m.close()
    for (const pid of pids) expect(isAlive(pid)).toBe(false)
    for (const err of await Promise.all(errors)) {
      expect(err).toBeInstanceOf(UnavailableError)
      expect(err.code).toBe('WALREDO_CLOSED')
    }
    expect((await rejection(m.redo(request(4)))).code).toBe('WALREDO_CLOSED')
    await m.close()
  })

  it('close() lets workers answer what they already hold', async () => {
    const m = new WalRedoManager({ ...DEFAULTS, command: fakeWorker('echo-worker.mjs', ['--delay-ms=100']), stopGraceMs: 2000 })
    const reqs = [1, 2, 3].map((b) => request(b))
    const promises = reqs.map((r) => m.redo(r))
    const pids = m.stats().pids
    await m.close()
    const pages = await Promise.all(promises)
    pages.forEach((p, i) => expect(p.equals(expectedEcho(reqs[i]!))).toBe(true))
    expect(pids.filter(isAlive)).toEqual([])
  })

  it('reports a worker command that cannot start, without retrying', async () => {
    await withManager({ command: ['/nonexistent/redo-worker'] }, async (m) => {
      const err = await rejection(m.redo(request(1)))
      expect(err).toBeInstanceOf(UnavailableError)
      expect(err.code).toBe('WALREDO_SPAWN_FAILED')
      expect(err.message).toMatch(/\/nonexistent\/redo-worker/)
      expect(m.stats()).toMatchObject({ spawned: 1, retried: 0 })
    })
  })

  it('validates its configuration', () => {
    const ok = { ...DEFAULTS, command: ['x'] }
    expect(() => new WalRedoManager({ ...ok, command: [] })).toThrow(UsageError)
    expect(() => new WalRedoManager({ ...ok, poolSize: 0 })).toThrow(/wal_redo_pool_size/)
    expect(() => new WalRedoManager({ ...ok, maxInFlightPerWorker: 1000 })).toThrow(UsageError)
    expect(() => new WalRedoManager({ ...ok, requestTimeoutMs: 0 })).toThrow(UsageError)
  })
})

describe('WalRedoManager with a custom worker command (slruInProcess)', () => {
  // A MultiXact CREATE_ID: multixact 5 at member offset 10 with two members (offsets page 0, members page 0).
  const main = Buffer.alloc(12 + 16)
  main.writeUInt32LE(5, 0)
  main.writeUInt32LE(10, 4)
  main.writeInt32LE(2, 8)
  main.writeUInt32LE(700, 12)
  main.writeInt32LE(1, 16)
  main.writeUInt32LE(701, 20)
  main.writeInt32LE(5, 24)
  const createRaw = buildRecord({ rmid: RM.MULTIXACT, info: 0x20, xid: 0, main })
  const offsetsPage = { spcNode: 0, dbNode: 0, relNode: 0, forkNum: SlruKind.MultixactOffsets, blkno: 0 }
  const slruReq = { tag: offsetsPage, base: Buffer.alloc(8192), records: [{ endLsn: lsn(0x1000n), raw: createRaw }] }

  it('redoes SLRU pages in the parent with the built-in engine and sends relation pages to the worker', async () => {
    const expected = redoBlock(offsetsPage, slruReq.base, slruReq.records, { hintBitsLogged: false })
    expect(expected.readUInt32LE(5 * 4)).toBe(10) // the engine did write the entry
    await withManager({ command: fakeWorker('echo-worker.mjs'), slruInProcess: true }, async (m) => {
      expect((await m.redo(slruReq)).equals(expected)).toBe(true)
      expect(m.stats()).toMatchObject({ spawned: 0, requests: 1, succeeded: 1 })
      const rel = request(3)
      expect((await m.redo(rel)).equals(expectedEcho(rel))).toBe(true)
      expect(m.stats()).toMatchObject({ spawned: 1, requests: 2, succeeded: 2 })
    })
  })

  it("fails an SLRU page's bad record with the engine's typed error, counted as failed", async () => {
    const bad = Buffer.from(createRaw)
    bad[bad.length - 1]! ^= 0xff // the CRC no longer matches
    await withManager({ command: fakeWorker('echo-worker.mjs'), slruInProcess: true }, async (m) => {
      const err = await rejection(m.redo({ ...slruReq, records: [{ endLsn: lsn(0x1000n), raw: bad }] }))
      expect(err).toBeInstanceOf(CorruptionError)
      expect(err.code).toBe('REDO_BAD_RECORD_CRC')
      expect(m.stats()).toMatchObject({ spawned: 0, requests: 1, failed: 1 })
    })
  })

  it('sends SLRU pages to the worker by default (the built-in worker knows the pseudo-forks)', async () => {
    await withManager({ command: fakeWorker('echo-worker.mjs') }, async (m) => {
      expect((await m.redo(slruReq)).equals(expectedEcho(slruReq))).toBe(true)
      expect(m.stats().spawned).toBe(1)
    })
  })
})
