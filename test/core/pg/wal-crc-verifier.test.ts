/**
 * WalCrcVerifier: CRCs checked on a worker thread over shared memory give exactly the answers of the
 * calling thread (every length around the worker's JS/native threshold, every position of a damaged byte),
 * in posting order; records in ordinary memory are checked locally; the worker's start, crash and shutdown
 * never change an answer; one thread serves every verifier and lingers briefly, and none is left once idle
 * workers are stopped.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { recordCrc, decodeRecordAt, type DecodedRecord } from '../../../src/core/pg/wal-record.js'
import { WalCrcVerifier, type CrcMismatch } from '../../../src/core/pg/wal-crc-verifier.js'
import { CRC_WORKER_LINGER_MS } from '../../../src/core/pg/wal-crc-worker.js'
import { buildRecord } from './wal-record-builder.js'
import { mulberry32 } from '../../support/prng.js'

/** Records with main data of the given lengths, laid out one after another in `mem` (8-aligned). */
function layOut(lengths: number[], mem: Buffer, seed = 1): DecodedRecord[] {
  const rand = mulberry32(seed)
  const out: DecodedRecord[] = []
  let off = 0
  for (const n of lengths) {
    const main = Buffer.alloc(n)
    for (let i = 0; i < n; i++) main[i] = Math.floor(rand() * 256)
    const rec = buildRecord({ xid: 1000 + out.length, mainData: main, rmid: 10 })
    if (off + rec.length > mem.length) throw new Error('test memory too small')
    rec.copy(mem, off)
    out.push(decodeRecordAt(mem, off, rec.length, 0x1000000 + off, 0x1000000 + off + rec.length))
    off += (rec.length + 7) & ~7
  }
  return out
}

function shared(bytes: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(bytes))
}

const verifiers: WalCrcVerifier[] = []
function verifier(opts?: ConstructorParameters<typeof WalCrcVerifier>[0]): WalCrcVerifier {
  const v = new WalCrcVerifier(opts)
  verifiers.push(v)
  return v
}

afterEach(async () => {
  for (const v of verifiers.splice(0)) await v.close()
  // The worker lingers for the next user; stopped now, no thread is left.
  await WalCrcVerifier.stopIdleWorker()
  expect(WalCrcVerifier.live).toBe(0)
})

describe('WalCrcVerifier', () => {
  it('agrees with the calling thread on every length around the JS/native threshold, and on big records', async () => {
    const lengths = [...Array.from({ length: 600 }, (_, i) => i), 8000, 8150, 70_000, 300_000]
    const mem = shared(2 * 1024 * 1024)
    const recs = layOut(lengths, mem)
    const v = verifier()
    expect(await v.whenReady()).toBe(true)
    const c = v.check(recs)
    expect(await c.result).toBeNull()
    expect(c.done).toBe(true)
    expect(v.stats.workerRecords).toBe(recs.length)
    // A damaged byte is found wherever it is: in the body (both paths) or in the header before xl_crc.
    for (const i of [0, 5, 100, 231, 232, 233, 255, 256, 257, 300, 599, 600, 601, 602]) {
      const r = recs[i]!
      for (const at of [4, 16, r.xl_tot_len - 1, 24 + Math.floor((r.xl_tot_len - 24) / 2)]) {
        if (at >= r.xl_tot_len) continue
        const pos = r.rawOffset + at
        mem[pos] ^= 0x20
        const want: CrcMismatch = { index: i, stored: r.xl_crc, computed: recordCrc(r.raw) }
        expect(await v.check(recs).result, `record ${i} byte ${at}`).toEqual(want)
        expect(await verifier({ worker: 'never' }).check(recs).result).toEqual(want)
        mem[pos] ^= 0x20
      }
    }
    expect(v.usingWorker).toBe(true)
    expect(v.stats.localRecords).toBe(0)
  })

  it('answers many batches posted at once, each with its own first mismatch, in order', async () => {
    const mem = shared(1024 * 1024)
    const recs = layOut(Array.from({ length: 400 }, (_, i) => (i * 37) % 900), mem, 2)
    const batches = Array.from({ length: 20 }, (_, k) => recs.slice(k * 20, k * 20 + 20))
    // Damage the 7th record of every third batch.
    const bad = new Set([0, 3, 6, 9, 12, 15, 18])
    for (const k of bad) mem[batches[k]![7]!.rawOffset + 30] ^= 1
    const v = verifier()
    await v.whenReady()
    const order: number[] = []
    const checks = batches.map((b, k) => v.check(b))
    checks.forEach((c, k) => void c.result.then(() => order.push(k)))
    const results = await Promise.all(checks.map((c) => c.result))
    expect(results.map((r) => r?.index ?? null)).toEqual(batches.map((_, k) => (bad.has(k) ? 7 : null)))
    expect(order).toEqual(batches.map((_, k) => k))
  })

  it('checks records in ordinary memory on the calling thread, and a mismatch there is ordered with the others', async () => {
    const sharedMem = shared(256 * 1024)
    const plainMem = Buffer.alloc(256 * 1024)
    const a = layOut(Array.from({ length: 30 }, (_, i) => 10 + i * 40), sharedMem, 3)
    const b = layOut(Array.from({ length: 30 }, (_, i) => 20 + i * 30), plainMem, 4)
    const mixed = a.flatMap((r, i) => [r, b[i]!])
    const v = verifier()
    await v.whenReady()
    expect(await v.check(mixed).result).toBeNull()
    expect(v.stats.workerRecords).toBe(30)
    expect(v.stats.localRecords).toBe(30)
    // A bad local record at 21 and a bad shared one at 30: the local one comes first.
    plainMem[mixed[21]!.rawOffset + 26] ^= 4
    sharedMem[mixed[30]!.rawOffset + 26] ^= 4
    expect((await v.check(mixed).result)?.index).toBe(21)
    // A bad shared record before a bad local one: the shared one comes first.
    sharedMem[mixed[10]!.rawOffset + 26] ^= 4
    expect((await v.check(mixed).result)?.index).toBe(10)
  })

  it('checks on the calling thread before the worker is up, when expedited, and with worker "later" or "never"', async () => {
    const mem = shared(128 * 1024)
    const recs = layOut(Array.from({ length: 50 }, (_, i) => i * 20), mem, 5)
    mem[recs[33]!.rawOffset + 40] ^= 8
    const v = verifier()
    const c = v.check(recs)
    v.expedite(c) // the worker has not answered yet (nothing has let its ready message in)
    expect(c.done).toBe(true)
    expect((await c.result)?.index).toBe(33)
    expect(v.stats.localRecords).toBe(50)

    const later = verifier({ worker: 'later' })
    expect(later.workerStarted).toBe(false)
    expect((await later.check(recs).result)?.index).toBe(33)
    later.startWorker()
    expect(later.workerStarted).toBe(true)
    expect(await later.whenReady()).toBe(true)
    expect((await later.check(recs).result)?.index).toBe(33)
    expect(later.stats.workerRecords).toBe(50)

    const never = verifier({ worker: 'never' })
    never.startWorker()
    expect(await never.whenReady()).toBe(false)
    expect((await never.check(recs).result)?.index).toBe(33)
    expect(WalCrcVerifier.live).toBe(1) // one thread for everyone
  })

  it('survives a worker crash: pending and later checks are answered on the calling thread', async () => {
    const mem = shared(256 * 1024)
    const recs = layOut(Array.from({ length: 200 }, (_, i) => (i * 13) % 500), mem, 6)
    mem[recs[150]!.rawOffset + 24] ^= 2
    const v = verifier()
    await v.whenReady()
    v.crashWorkerForTest()
    const pending = [v.check(recs), v.check(recs.slice(0, 100)), v.check(recs.slice(100))]
    const results = await Promise.all(pending.map((c) => c.result))
    expect(results.map((r) => r?.index ?? null)).toEqual([150, null, 50])
    expect(v.workerFailure).toMatch(/stopped/)
    expect(v.usingWorker).toBe(false)
    expect((await v.check(recs).result)?.index).toBe(150)
    await v.close()
    // A new verifier gets a fresh thread.
    const next = verifier()
    expect(await next.whenReady()).toBe(true)
    expect((await next.check(recs).result)?.index).toBe(150)
    expect(next.stats.workerRecords).toBe(200)
  })

  it('close() settles pending checks and lets go of the shared thread, which stops once idle; close() is idempotent', async () => {
    const mem = shared(1024 * 1024)
    const recs = layOut(Array.from({ length: 100 }, () => 8000), mem, 7)
    mem[recs[60]!.rawOffset + 5000] ^= 1
    const v = verifier()
    const other = verifier()
    await v.whenReady()
    expect(WalCrcVerifier.live).toBe(1)
    const checks = Array.from({ length: 5 }, () => v.check(recs))
    const others = other.check(recs)
    await Promise.all([v.close(), v.close()])
    expect(checks.every((c) => c.done)).toBe(true)
    expect((await Promise.all(checks.map((c) => c.result))).map((r) => r?.index)).toEqual([60, 60, 60, 60, 60])
    expect((await others.result)?.index).toBe(60) // the other verifier's batch is still answered by the worker
    expect(other.usingWorker).toBe(true)
    await other.close()
    expect(WalCrcVerifier.live).toBe(1) // lingering for the next reader
    await WalCrcVerifier.stopIdleWorker()
    expect(WalCrcVerifier.live).toBe(0)
    expect(await v.whenReady()).toBe(false)
    // Still usable after close: on the calling thread.
    expect((await v.check(recs).result)?.index).toBe(60)
  })

  it('reuses the lingering thread for the next verifier, and stops it by itself after the linger', async () => {
    const mem = shared(64 * 1024)
    const recs = layOut([10, 300, 5000], mem, 8)
    const a = verifier()
    expect(await a.whenReady()).toBe(true)
    await a.close()
    const b = verifier()
    expect(b.usingWorker).toBe(true) // the same thread, already up
    expect(await b.check(recs).result).toBeNull()
    await b.close()
    expect(WalCrcVerifier.live).toBe(1)
    await new Promise((r) => setTimeout(r, CRC_WORKER_LINGER_MS + 500))
    expect(WalCrcVerifier.live).toBe(0)
  })
})
