/**
 * basebackup / fullbackup over CopyOut with the fake backend's tar: the bytes, CopyData chunking, gzip
 * round trip, LSN waiting and the GC-cutoff refusal, flags in any order, errors before and during the
 * stream (the connection stays usable), and back-pressure from a slow reader.
 */
import { gunzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { lsn } from '../../../src/core/pg/lsn.js'
import { query } from '../../../src/core/protocol/pg-frontend-messages.js'
import type { TimelineId } from '../../../src/core/model/ids.js'
import { fakeTar, TENANT, TIMELINE } from './fake-backend.js'
import { errorMessage, startServer, type Running } from './support.js'

let r: Running | null = null
afterEach(async () => {
  await r?.stop()
  r = null
})

async function collect(it: AsyncIterable<Buffer>): Promise<{ bytes: Buffer; chunks: number[] }> {
  const parts: Buffer[] = []
  for await (const c of it) parts.push(Buffer.from(c))
  return { bytes: Buffer.concat(parts), chunks: parts.map((p) => p.length) }
}

describe('basebackup', () => {
  it('streams the tar as CopyData of at most copyDataBytesMax bytes, then SELECT 1; the connection stays usable', async () => {
    r = await startServer({ copyDataBytesMax: 4096 })
    const tl = r.backend.main
    const c = await r.client()
    const { bytes, chunks } = await collect(c.basebackup(TENANT, TIMELINE))
    expect(bytes.equals(fakeTar(tl.tarChunkSizes))).toBe(true)
    expect(Math.max(...chunks)).toBe(4096)
    expect(chunks.length).toBeGreaterThan(300_000 / 4096)
    expect(tl.lastBackupOptions).toMatchObject({ lsn: null, prevLsn: null, full: false, replica: false })
    expect((await c.simpleQuery('set x')).commandTag).toBe('SELECT 1')
  })

  it('--gzip round-trips through zlib gunzip', async () => {
    r = await startServer()
    const tl = r.backend.main
    const c = await r.client()
    const { bytes } = await collect(c.basebackup(TENANT, TIMELINE, { gzip: true, lsn: lsn(0x1000), replica: true }))
    expect(bytes.subarray(0, 2).toString('hex')).toBe('1f8b')
    expect(gunzipSync(bytes).equals(fakeTar(tl.tarChunkSizes))).toBe(true)
    expect(bytes.length).toBeLessThan(tl.tarChunkSizes.reduce((a, b) => a + b, 0) / 10)
    expect(tl.lastBackupOptions).toMatchObject({ lsn: 0x1000n, replica: true, full: false })
  })

  it('takes flags in any order (each once) and `latest`; refuses duplicates and unknown flags', async () => {
    r = await startServer()
    const raw = await r.raw()
    await raw.login()
    for (const tail of ['--gzip --replica', '--replica --gzip', 'latest --gzip', '0/1000 --replica']) {
      raw.write(query(`basebackup ${TENANT} ${TIMELINE} ${tail}`))
      const frames = await raw.untilReady()
      expect(frames[0]!.type, tail).toBe('H')
      expect(frames.slice(-3).map((f) => f.type).join('')).toBe('cCZ')
    }
    for (const [tail, msg] of [
      ['--gzip --gzip', 'duplicate parameter for basebackup command: --gzip'],
      ['--fast', 'invalid parameter for basebackup command: --fast'],
      ['0/1000 latest', 'invalid parameter for basebackup command: latest'],
      ['zz/1', 'Failed to parse lsn from zz/1'],
    ]) {
      const frames = await raw.query(`basebackup ${TENANT} ${TIMELINE} ${tail}`)
      expect(frames.map((f) => f.type).join('')).toBe('EZ')
      expect(errorMessage(frames[0]!)).toBe(msg)
    }
  })

  it('waits for its LSN, and refuses one below the GC cutoff or one that does not arrive in time', async () => {
    r = await startServer({ waitLsnTimeoutMs: 150 })
    const tl = r.backend.main
    tl.last = lsn(0x4000)
    tl.gcCutoff = lsn(0x2000)
    const c = await r.client()
    const early = collect(c.basebackup(TENANT, TIMELINE, { lsn: lsn(0x4100) }))
    setTimeout(() => tl.advanceTo(lsn(0x5000)), 30)
    expect((await early).bytes.length).toBe(fakeTar(tl.tarChunkSizes).length)
    await expect(collect(c.basebackup(TENANT, TIMELINE, { lsn: lsn(0x1000) }))).rejects.toThrow(
      'basebackup refused: invalid basebackup lsn: LSN 0/1000 is earlier than latest GC cutoff 0/2000 (we might\'ve already garbage collected needed data)',
    )
    const late = await collect(c.basebackup(TENANT, TIMELINE, { lsn: lsn(0x9000) })).catch((e: unknown) => e)
    expect(late).toMatchObject({ code: 'PAGE_SERVICE_LSN_TIMEOUT', kind: 'timeout' })
    expect((late as Error).message).toMatch(/Timed out while waiting for WAL record at LSN 0\/9000 to arrive, last_record_lsn 0\/5000/)
    expect((await c.simpleQuery('set x')).commandTag).toBe('SELECT 1')
  })

  it('an error in the middle of the tar ends the COPY with an ErrorResponse; the connection stays usable', async () => {
    r = await startServer()
    const tl = r.backend.main
    tl.failBackupsMidway(() => new Error('could not read layer file: simulated'))
    const c = await r.client()
    const got: Buffer[] = []
    const err = await (async () => {
      for await (const ch of c.basebackup(TENANT, TIMELINE)) got.push(ch)
    })().catch((e: unknown) => e)
    expect((err as Error).message).toBe('basebackup failed: could not read layer file: simulated')
    expect(Buffer.concat(got).equals(Buffer.alloc(1000, 7))).toBe(true)
    expect((await c.simpleQuery('set x')).commandTag).toBe('SELECT 1')
  })

  it('a timeline deleted during the backup: the error says so, not which file failed to read', async () => {
    r = await startServer()
    const tl = r.backend.main
    tl.failBackupsMidway(() => {
      tl.isDeleted = true
      return new Error('read from closed file /srv/workdir/tenants/x/timelines/y/000000-FFFFFF__0000-0001')
    })
    const c = await r.client()
    const err = await collect(c.basebackup(TENANT, TIMELINE)).catch((e: unknown) => e)
    expect((err as Error).message).toBe('basebackup failed: Tenant or timeline not found: the timeline was deleted during the backup')
    expect((err as Error).message).not.toContain('/srv/workdir')
  })

  it('an unknown timeline is Not found', async () => {
    r = await startServer()
    const c = await r.client()
    await expect(collect(c.basebackup(TENANT, '44444444444444444444444444444444' as TimelineId))).rejects.toMatchObject({ kind: 'not_found' })
  })

  it('a slow reader holds the producer back (no unbounded buffering on either side)', async () => {
    r = await startServer()
    const tl = r.backend.main
    let produced = 0
    const chunk = Buffer.alloc(1024 * 1024, 1)
    tl.basebackup = async () => ({
      lsn: tl.last,
      tar: (async function* () {
        for (let i = 0; i < 200; i++) {
          produced += chunk.length
          yield chunk
        }
      })(),
    })
    const c = await r.client()
    const it = c.basebackup(TENANT, TIMELINE)[Symbol.asyncIterator]()
    await it.next()
    await new Promise((res) => setTimeout(res, 300))
    // Kernel buffers, the client's inbox bound and one CopyData in flight: far below the 200 MiB tar.
    expect(produced).toBeLessThan(32 * 1024 * 1024)
    let consumed = 0
    for (let x = await it.next(); !x.done; x = await it.next()) consumed += x.value.length
    expect(consumed + 256 * 1024).toBe(200 * 1024 * 1024)
  })
})

describe('fullbackup', () => {
  it('passes full, lsn and prev_lsn to the backend and is never gzipped', async () => {
    r = await startServer()
    const tl = r.backend.main
    const c = await r.client()
    const { bytes } = await collect(c.basebackup(TENANT, TIMELINE, { full: true, lsn: lsn(0x2000), prevLsn: lsn(0x1f00) }))
    expect(bytes.equals(fakeTar(tl.tarChunkSizes))).toBe(true)
    expect(tl.lastBackupOptions).toMatchObject({ full: true, lsn: 0x2000n, prevLsn: 0x1f00n, replica: false })
    const raw = await r.raw()
    await raw.login()
    const frames = await raw.query(`fullbackup ${TENANT} ${TIMELINE} 0/1 0/2 0/3`)
    expect(errorMessage(frames[0]!)).toMatch(/^invalid number of parameters for basebackup command/)
  })
})

describe('the client when the server stops (FATAL, then close)', () => {
  const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms))

  it("a backup cut off by the server's shutdown fails with the server's 57P01, not 'closed unexpectedly'", async () => {
    r = await startServer({ closeDeadlineMs: 200 })
    const tl = r.backend.main
    tl.basebackup = async (opts) => ({
      lsn: opts.lsn ?? tl.last,
      tar: (async function* () {
        for (let i = 0; i < 1000; i++) {
          yield Buffer.alloc(1000, 1)
          await sleep(20)
        }
      })(),
    })
    const c = await r.client()
    const failed = collect(c.basebackup(TENANT, TIMELINE)).then(
      () => null,
      (e: unknown) => e,
    )
    await sleep(100)
    await r.server.close()
    expect(await failed).toMatchObject({ sqlstate: '57P01', kind: 'unavailable', message: expect.stringContaining('terminating connection') })
  })

  it("a query refused with FATAL (the server shutting down while it waits) fails with that error", async () => {
    r = await startServer()
    const c = await r.client()
    const failed = c.simpleQuery(`basebackup ${TENANT} ${TIMELINE} 0/20000000`).then(
      () => null,
      (e: unknown) => e,
    )
    await sleep(100)
    await r.server.close()
    expect(await failed).toMatchObject({ sqlstate: '57P01', message: expect.stringContaining('shutdown') })
  })
})
