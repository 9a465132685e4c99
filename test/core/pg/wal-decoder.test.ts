/**
 * WalStreamDecoder on real PostgreSQL 15 WAL (wal_consistency_checking=all, so most images are
 * verification-only): records crossing pages and segments, XLOG_SWITCH, a 100 kB logical message and a
 * commit with thousands of subtransactions; start positions (page boundary inside a record, record
 * boundary mid-page, segment start); input split at every offset and byte by byte; truncated, corrupted
 * and random input; an overwrite-contrecord page crafted from real WAL and checked with pg_waldump.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PgCluster, pgAvailable } from '../../support/pg-cluster.js'
import { asOracle, parseWaldump } from './waldump-oracle.js'
import { PageserverError } from '../../../src/core/lib/errors.js'
import { crc32c } from '../../../src/core/lib/crc32c.js'
import { formatLsn, lsn } from '../../../src/core/pg/lsn.js'
import { RM } from '../../../src/core/pg/rmgr.js'
import { WalStreamDecoder } from '../../../src/core/pg/wal-decoder.js'
import {
  SizeOfXLogLongPHD,
  SizeOfXLogShortPHD,
  XLOG_BLCKSZ,
  XLP_FIRST_IS_CONTRECORD,
  XLP_FIRST_IS_OVERWRITE_CONTRECORD,
} from '../../../src/core/pg/wal-page.js'
import { recordCrcIsValid, type DecodedRecord } from '../../../src/core/pg/wal-record.js'
import { mulberry32 } from '../../support/prng.js'

const SEG = 16 * 1024 * 1024
const XLOG_SWITCH = 0x40

interface Wal {
  /** Bytes of the segments, contiguous from `base`. */
  bytes: Buffer
  base: number
  sysid: bigint
  records: DecodedRecord[]
  endLsn: number
}

/** Decodes `bytes` (which start at `startLsn`) fed in chunks of `chunk` bytes; returns records and the end. */
function decodeAll(bytes: Buffer, startLsn: number, chunk = bytes.length, opts: { prev?: number } = {}) {
  const d = new WalStreamDecoder({ startLsn: lsn(startLsn), prevRecordLsn: opts.prev === undefined ? null : lsn(opts.prev) })
  const out: DecodedRecord[] = []
  for (let off = 0; off < bytes.length && d.end === null; off += chunk) {
    d.feed(bytes.subarray(off, Math.min(off + chunk, bytes.length)))
    for (let r = d.next(); r !== null; r = d.next()) out.push(r)
  }
  return { records: out, decoder: d }
}

/** Decodes, expecting a failure; returns the records before it and the error. */
function decodeUntilError(bytes: Buffer, startLsn: number, opts: { deferCrc?: boolean } = {}): { records: DecodedRecord[]; error: unknown } {
  const d = new WalStreamDecoder({ startLsn: lsn(startLsn), ...opts })
  const out: DecodedRecord[] = []
  d.feed(bytes)
  try {
    for (let r = d.next(); r !== null; r = d.next()) out.push(r)
  } catch (e) {
    return { records: out, error: e }
  }
  return { records: out, error: null }
}

const key = (r: DecodedRecord): string => `${formatLsn(r.lsn)}-${formatLsn(r.endLsn)}`

function expectSameRecords(actual: DecodedRecord[], expected: DecodedRecord[], label: string): void {
  expect(actual.map(key), label).toEqual(expected.map(key))
  for (let i = 0; i < expected.length; i++) {
    if (!actual[i]!.raw.equals(expected[i]!.raw)) throw new Error(`${label}: record ${key(expected[i]!)} differs in its bytes`)
  }
}

function pageHeaderSizeAt(pageLsn: number): number {
  return pageLsn % SEG === 0 ? SizeOfXLogLongPHD : SizeOfXLogShortPHD
}

describe.skipIf(!pgAvailable())('WalStreamDecoder on real WAL', () => {
  let pg: PgCluster
  let wal: Wal
  let waldumpText: string
  let scratch: string

  beforeAll(async () => {
    pg = await PgCluster.start({ walConsistencyChecking: 'all', settings: { wal_level: 'logical' } })
    await pg.runWorkload([
      {
        name: 'rows',
        sql: `CREATE TABLE t (id int PRIMARY KEY, v text);
          INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 3000) g;
          UPDATE t SET v = v || 'x' WHERE id % 7 = 0; DELETE FROM t WHERE id % 11 = 0; VACUUM t;`,
      },
      {
        name: 'subxacts',
        sql: `CREATE TABLE subx (i int);
          DO $$ BEGIN FOR i IN 1..3000 LOOP BEGIN INSERT INTO subx VALUES (i); EXCEPTION WHEN others THEN NULL; END; END LOOP; END $$;`,
      },
      { name: 'message', sql: "SELECT pg_logical_emit_message(false, 'big', repeat('m', 100000));" },
      { name: 'fill', sql: 'INSERT INTO t SELECT g, repeat(md5(g::text), 4) FROM generate_series(10001, 40000) g;' },
      { name: 'switch', sql: 'SELECT pg_switch_wal();' },
      { name: 'after', sql: "INSERT INTO t VALUES (100000, 'after switch');" },
    ])
    await pg.stop()
    const segs = pg.walSegments()
    const bytes = Buffer.concat(segs.map((s) => readFileSync(join(pg.walDir, s))))
    const base = parseInt(segs[0]!.slice(8, 16), 16) * 0x1_0000_0000 + parseInt(segs[0]!.slice(16), 16) * SEG
    const { records, decoder } = decodeAll(bytes, base, 1 << 20)
    expect(decoder.end).not.toBeNull()
    wal = { bytes, base, sysid: decoder.systemId!, records, endLsn: Number(decoder.end!.lsn) }
    waldumpText = await pg.waldump(['--bkp-details', join(pg.walDir, segs[0]!), join(pg.walDir, segs[segs.length - 1]!)])
    scratch = mkdtempSync(join(tmpdir(), 'ps-wal-decoder-'))
  })

  afterAll(async () => {
    await pg?.destroy()
    if (scratch) rmSync(scratch, { recursive: true, force: true })
  })

  /** The bytes of [fromLsn, toLsn). */
  const slice = (fromLsn: number, toLsn: number): Buffer => wal.bytes.subarray(fromLsn - wal.base, toLsn - wal.base)
  const firstAtOrAfter = (l: number): number => wal.records.findIndex((r) => Number(r.lsn) >= l)

  it('matches pg_waldump, verification-only images included', () => {
    const oracle = parseWaldump(waldumpText)
    expect(wal.records.map(asOracle)).toEqual(oracle)
    const images = wal.records.flatMap((r) => r.blocks.filter((b) => b.hasImage))
    expect(images.filter((b) => !b.applyImage).length).toBeGreaterThan(1000)
    expect(images.filter((b) => b.applyImage).length).toBeGreaterThan(0)
  })

  it('decodes records crossing pages and segments, a 100 kB message, a huge commit and XLOG_SWITCH', () => {
    const crossing = wal.records.filter((r) => Math.floor(Number(r.lsn) / XLOG_BLCKSZ) !== Math.floor((Number(r.endLsn) - 1) / XLOG_BLCKSZ))
    expect(crossing.length).toBeGreaterThan(50)
    const message = wal.records.find((r) => r.xl_rmid === RM.LOGICALMSG)!
    expect(message.xl_tot_len).toBeGreaterThan(100_000)
    expect(message.mainData().subarray(-100_000).every((c) => c === 'm'.charCodeAt(0))).toBe(true)
    const commits = wal.records.filter((r) => r.xl_rmid === RM.XACT && (r.xl_info & 0x70) === 0)
    expect(Math.max(...commits.map((r) => r.xl_tot_len))).toBeGreaterThan(XLOG_BLCKSZ)
    expect(wal.records.some((r) => Math.floor(Number(r.lsn) / SEG) !== Math.floor((Number(r.endLsn) - 1) / SEG))).toBe(true)

    const sw = wal.records.findIndex((r) => r.xl_rmid === RM.XLOG && (r.xl_info & 0xf0) === XLOG_SWITCH)
    expect(sw).toBeGreaterThan(0)
    const switchRec = wal.records[sw]!
    expect(Number(switchRec.endLsn) % SEG).toBe(0) // the rest of the segment is skipped
    expect(Number(wal.records[sw + 1]!.lsn)).toBe(Number(switchRec.endLsn) + SizeOfXLogLongPHD)
    expect(wal.records[sw + 1]!.xl_prev).toBe(switchRec.lsn)
  })

  it('gives the same records whatever the chunk size', () => {
    for (const chunk of [1 << 16, 8192, 8191, 4099, 24]) {
      const { records } = decodeAll(wal.bytes.subarray(0, 6 * 1024 * 1024), wal.base, chunk)
      const n = records.length
      expectSameRecords(records, wal.records.slice(0, n), `chunk ${chunk}`)
      expect(n).toBeGreaterThan(1000)
    }
  })

  describe('start positions', () => {
    it('at a page boundary inside a record: skips its tail', () => {
      const message = wal.records.find((r) => r.xl_rmid === RM.LOGICALMSG)!
      // A page in the middle of the 100 kB message: its tail continues for several more pages.
      const page = (Math.floor(Number(message.lsn) / XLOG_BLCKSZ) + 3) * XLOG_BLCKSZ
      const hdr = slice(page, page + SizeOfXLogShortPHD)
      expect(hdr.readUInt16LE(2) & XLP_FIRST_IS_CONTRECORD).toBeTruthy()
      expect(hdr.readUInt32LE(16)).toBeGreaterThan(XLOG_BLCKSZ)
      const { records } = decodeAll(slice(page, wal.endLsn), page, 1 << 20)
      const i = firstAtOrAfter(page)
      expect(Number(wal.records[i]!.lsn)).toBe(Number(message.endLsn))
      expectSameRecords(records, wal.records.slice(i), 'from a continuation page')
    })

    it('at a record boundary in the middle of a page', () => {
      const i = wal.records.findIndex((r, k) => k > 100 && Number(r.lsn) % XLOG_BLCKSZ > 1000)
      const start = Number(wal.records[i]!.lsn)
      const { records } = decodeAll(slice(start, wal.endLsn), start, 1 << 20, { prev: Number(wal.records[i - 1]!.lsn) })
      expectSameRecords(records, wal.records.slice(i), 'from a record boundary')
    })

    it('at a segment start', () => {
      const segStart = Math.floor(wal.base / SEG) * SEG + SEG
      const { records, decoder } = decodeAll(slice(segStart, wal.endLsn), segStart, 1 << 20)
      expectSameRecords(records, wal.records.slice(firstAtOrAfter(segStart)), 'from a segment start')
      expect(decoder.systemId).toBe(wal.sysid)
    })

    it('rejects a start that is neither a page nor a record boundary', () => {
      expect(() => new WalStreamDecoder({ startLsn: lsn(wal.base + 8) })).toThrow(expect.objectContaining({ code: 'WAL_BAD_START' }))
      expect(() => new WalStreamDecoder({ startLsn: lsn(wal.base + 8192 + 100 + 3) })).toThrow(expect.objectContaining({ code: 'WAL_BAD_START' }))
      // Inside a segment's 40-byte long header (before, read as a record: a misleading corruption error).
      for (const off of [24, 32]) {
        expect(() => new WalStreamDecoder({ startLsn: lsn(wal.base + off) })).toThrow(expect.objectContaining({ code: 'WAL_BAD_START' }))
      }
      expect(() => new WalStreamDecoder({ startLsn: lsn(wal.base + 8192 + 24) })).not.toThrow()
    })
  })

  describe('input split anywhere', () => {
    /** Page-aligned windows of two pages around interesting places. */
    function windows(): Array<{ label: string; from: number }> {
      const out: Array<{ label: string; from: number }> = []
      // A record whose 24-byte header is itself split by the page boundary.
      const split = wal.records.find((r) => Number(r.lsn) % XLOG_BLCKSZ > XLOG_BLCKSZ - 24)
      if (split) out.push({ label: 'header split across pages', from: Math.floor(Number(split.lsn) / XLOG_BLCKSZ) * XLOG_BLCKSZ })
      // A record crossing a segment boundary (long header on the second page).
      const seg = wal.records.find((r) => Math.floor(Number(r.lsn) / SEG) !== Math.floor((Number(r.endLsn) - 1) / SEG))!
      out.push({ label: 'segment boundary', from: Math.floor(Number(seg.lsn) / XLOG_BLCKSZ) * XLOG_BLCKSZ })
      // Small records, one crossing the page boundary.
      const small = wal.records.find(
        (r, k) => k > 50 && r.xl_tot_len < 200 && Math.floor(Number(r.lsn) / XLOG_BLCKSZ) !== Math.floor((Number(r.endLsn) - 1) / XLOG_BLCKSZ),
      )!
      out.push({ label: 'small record across a page', from: Math.floor(Number(small.lsn) / XLOG_BLCKSZ) * XLOG_BLCKSZ })
      return out
    }

    it('finds a record whose header is split across pages', () => {
      expect(windows().map((w) => w.label)).toContain('header split across pages')
    })

    it('decodes the same records at every split offset, and byte by byte', () => {
      for (const w of windows()) {
        const bytes = slice(w.from, w.from + 2 * XLOG_BLCKSZ)
        const reference = decodeAll(bytes, w.from).records
        expect(reference.length, w.label).toBeGreaterThan(0)
        expectSameRecords(reference, wal.records.slice(firstAtOrAfter(w.from), firstAtOrAfter(w.from) + reference.length), w.label)
        for (let k = 1; k < bytes.length; k++) {
          const d = new WalStreamDecoder({ startLsn: lsn(w.from) })
          const got: DecodedRecord[] = []
          d.feed(bytes.subarray(0, k))
          for (let r = d.next(); r !== null; r = d.next()) got.push(r)
          d.feed(bytes.subarray(k))
          for (let r = d.next(); r !== null; r = d.next()) got.push(r)
          if (got.length !== reference.length || got.some((r, i) => key(r) !== key(reference[i]!) || !r.raw.equals(reference[i]!.raw))) {
            throw new Error(`${w.label}: split at ${k} decoded ${got.map(key).join(',')}`)
          }
        }
        expectSameRecords(decodeAll(bytes, w.from, 1).records, reference, `${w.label}, byte by byte`)
      }
    })

    it('joins page-spanning records inside the fed buffer with inPlace, whatever the split', () => {
      const message = wal.records.find((r) => r.xl_rmid === RM.LOGICALMSG)!
      const from = Math.floor(Number(message.lsn) / XLOG_BLCKSZ) * XLOG_BLCKSZ - 4 * XLOG_BLCKSZ
      const original = slice(from, from + 24 * XLOG_BLCKSZ)
      const reference = decodeAll(original, from).records
      expect(reference.filter((r) => Number(r.endLsn) - Number(r.lsn) > XLOG_BLCKSZ).length).toBeGreaterThan(0)
      const rand = mulberry32(5)
      for (let t = 0; t < 60; t++) {
        const bytes = Buffer.from(original) // inPlace rewrites what it is fed
        const cuts = t === 0 ? [] : [Math.floor(rand() * bytes.length), Math.floor(rand() * bytes.length)].sort((a, b) => a - b)
        const d = new WalStreamDecoder({ startLsn: lsn(from), inPlace: true })
        const got: DecodedRecord[] = []
        let prev = 0
        for (const c of [...cuts, bytes.length]) {
          d.feed(bytes.subarray(prev, c))
          prev = c
          for (let r = d.next(); r !== null; r = d.next()) got.push(r)
        }
        expectSameRecords(got, reference, `inPlace, cuts ${cuts.join(',')}`)
        if (t === 0) {
          // Unsplit, every record is a view into the fed bytes: nothing was copied.
          expect(got.every((r) => r.raw.buffer === bytes.buffer)).toBe(true)
        }
      }
    })

    it('joins records in place at every third split offset and every one near the page boundary, a header split across pages included', () => {
      for (const w of windows()) {
        const original = slice(w.from, w.from + 2 * XLOG_BLCKSZ)
        const reference = decodeAll(original, w.from).records
        const bytes = Buffer.alloc(original.length)
        for (let k = 1; k < original.length; k += Math.abs(k - XLOG_BLCKSZ) < 64 ? 1 : 3) {
          bytes.set(original) // inPlace rewrites what it is fed
          const d = new WalStreamDecoder({ startLsn: lsn(w.from), inPlace: true })
          const got: DecodedRecord[] = []
          d.feed(bytes.subarray(0, k))
          for (let r = d.next(); r !== null; r = d.next()) got.push(r)
          d.feed(bytes.subarray(k))
          for (let r = d.next(); r !== null; r = d.next()) got.push(r)
          if (got.length !== reference.length || got.some((r, i) => key(r) !== key(reference[i]!) || !r.raw.equals(reference[i]!.raw))) {
            throw new Error(`${w.label}: in place, split at ${k} decoded ${got.map(key).join(',')}`)
          }
        }
      }
    })

    it('decodes the same records for random three-way splits of 64 KiB around the big message', () => {
      const message = wal.records.find((r) => r.xl_rmid === RM.LOGICALMSG)!
      const from = Math.floor(Number(message.lsn) / XLOG_BLCKSZ) * XLOG_BLCKSZ - XLOG_BLCKSZ
      const bytes = slice(from, from + 16 * XLOG_BLCKSZ)
      const reference = decodeAll(bytes, from).records
      expect(reference.some((r) => r.xl_rmid === RM.LOGICALMSG)).toBe(true)
      const rand = mulberry32(7)
      for (let t = 0; t < 300; t++) {
        const a = Math.floor(rand() * bytes.length)
        const b = a + Math.floor(rand() * (bytes.length - a))
        const d = new WalStreamDecoder({ startLsn: lsn(from) })
        const got: DecodedRecord[] = []
        for (const part of [bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)]) {
          d.feed(part)
          for (let r = d.next(); r !== null; r = d.next()) got.push(r)
        }
        expectSameRecords(got, reference, `split at ${a}, ${b}`)
      }
    })
  })

  describe('truncated and corrupt input', () => {
    it('waits for more bytes on a truncated stream, without error', () => {
      const message = wal.records.find((r) => r.xl_rmid === RM.LOGICALMSG)!
      const from = Math.floor(Number(message.lsn) / SEG) * SEG
      const cut = Number(message.lsn) + 50_000 // inside the message
      const d = new WalStreamDecoder({ startLsn: lsn(from) })
      d.feed(slice(from, cut))
      const before: DecodedRecord[] = []
      for (let r = d.next(); r !== null; r = d.next()) before.push(r)
      const m = wal.records.indexOf(message)
      expect(before.map(key)).toEqual(wal.records.slice(firstAtOrAfter(from), m).map(key))
      expect(d.next()).toBeNull()
      expect(d.end).toBeNull()
      expect(Number(d.position)).toBe(cut)
      d.feed(slice(cut, Number(message.endLsn) + 8))
      expect(key(d.next()!)).toBe(key(message))
    })

    it('ends at a zero record length, where pg_waldump ends', () => {
      const last = wal.records[wal.records.length - 1]!
      expect(wal.endLsn).toBe(Number(last.endLsn))
      const d = decodeAll(slice(Number(last.lsn), wal.endLsn + 64), Number(last.lsn)).decoder
      expect(d.end).toMatchObject({ lsn: last.endLsn })
      expect(d.end!.reason).toContain('wanted 24, got 0')
      expect(d.next()).toBeNull()
    })

    function corrupted(mutate: (b: Buffer) => void, fromLsn: number, toLsn: number): Buffer {
      const b = Buffer.from(slice(fromLsn, toLsn))
      mutate(b)
      return b
    }

    it('reports a flipped byte in a record body as WAL_BAD_CRC with the record LSN, after the good records', () => {
      const i = 200
      const target = wal.records[i]!
      const from = Math.floor(Number(wal.records[150]!.lsn) / XLOG_BLCKSZ) * XLOG_BLCKSZ
      const b = corrupted((x) => (x[Number(target.lsn) - from + target.xl_tot_len - 1]! ^= 0x01), from, Number(target.endLsn) + XLOG_BLCKSZ)
      const { records, error } = decodeUntilError(b, from)
      expect(error).toBeInstanceOf(PageserverError)
      expect(error).toMatchObject({ code: 'WAL_BAD_CRC', kind: 'corruption' })
      expect((error as Error).message).toContain(formatLsn(target.lsn))
      expect(records.length).toBe(i - firstAtOrAfter(from))
    })

    it('with deferCrc hands out the same records and leaves the CRC to the caller, but reports a record it cannot decode as WAL_BAD_CRC', () => {
      const from = Math.floor(Number(wal.records[150]!.lsn) / XLOG_BLCKSZ) * XLOG_BLCKSZ
      const to = Number(wal.records[400]!.endLsn)
      const reference = decodeAll(slice(from, to), from).records
      const deferred = (bytes: Buffer) => decodeUntilError(bytes, from, { deferCrc: true })
      const clean = deferred(slice(from, to))
      expect(clean.error).toBeNull()
      expectSameRecords(clean.records, reference, 'deferCrc')
      // A damaged last byte: the structure still decodes, so the record is handed out, its CRC wrong.
      const onOnePage = (r: DecodedRecord): boolean => Math.floor(Number(r.lsn) / XLOG_BLCKSZ) === Math.floor((Number(r.lsn) + r.xl_tot_len - 1) / XLOG_BLCKSZ)
      const target = wal.records.find((r, k) => k >= 200 && onOnePage(r))!
      const at = Number(target.lsn) - from
      const b1 = corrupted((x) => (x[at + target.xl_tot_len - 1]! ^= 0x01), from, to)
      const r1 = deferred(b1)
      expect(r1.error).toBeNull()
      const handed = r1.records.find((r) => r.lsn === target.lsn)!
      expect(recordCrcIsValid(handed.raw)).toBe(false)
      expect(decodeUntilError(b1, from).error).toMatchObject({ code: 'WAL_BAD_CRC' })
      // A damaged fragment header (block id 200 is invalid): the same WAL_BAD_CRC as without deferral.
      const withBlocks = wal.records.findIndex((r, k) => k > 160 && r.blocks.length > 0 && onOnePage(r) && Number(r.endLsn) < to)
      const t2 = wal.records[withBlocks]!
      const b2 = corrupted((x) => (x[Number(t2.lsn) - from + 24] = 200), from, to)
      const r2 = deferred(b2)
      expect(r2.error).toMatchObject({ code: 'WAL_BAD_CRC', details: { lsn: formatLsn(t2.lsn) } })
      expect(r2.records.length).toBe(withBlocks - firstAtOrAfter(from))
      expect(decodeUntilError(b2, from).error).toMatchObject({ code: 'WAL_BAD_CRC', details: { lsn: formatLsn(t2.lsn) } })
    })

    it('reports a bad page magic, a wrong page address, a missing continuation flag and a wrong continuation length', () => {
      const crossing = wal.records.find((r, k) => k > 100 && Math.floor(Number(r.lsn) / XLOG_BLCKSZ) !== Math.floor((Number(r.endLsn) - 1) / XLOG_BLCKSZ))!
      const page = (Math.floor(Number(crossing.lsn) / XLOG_BLCKSZ) + 1) * XLOG_BLCKSZ
      const from = page - 2 * XLOG_BLCKSZ
      const to = page + 2 * XLOG_BLCKSZ
      const at = (x: Buffer, lsnAt: number) => lsnAt - from
      const cases: Array<[string, (x: Buffer) => void]> = [
        ['WAL_BAD_MAGIC', (x) => x.writeUInt16LE(0xd10d, at(x, page))],
        ['WAL_BAD_PAGE_ADDRESS', (x) => x.writeBigUInt64LE(BigInt(page + XLOG_BLCKSZ), at(x, page) + 8)],
        ['WAL_MISSING_CONTRECORD', (x) => x.writeUInt16LE(x.readUInt16LE(at(x, page) + 2) & ~XLP_FIRST_IS_CONTRECORD, at(x, page) + 2)],
        ['WAL_BAD_CONTRECORD_LENGTH', (x) => x.writeUInt32LE(x.readUInt32LE(at(x, page) + 16) + 8, at(x, page) + 16)],
        ['WAL_BAD_PAGE_HEADER', (x) => x.writeUInt16LE(0x0100, at(x, page) + 2)],
      ]
      for (const [code, mutate] of cases) {
        const { records, error } = decodeUntilError(corrupted(mutate, from, to), from)
        expect(error, code).toMatchObject({ code, kind: 'corruption' })
        expect((error as Error).message, code).toContain(formatLsn(BigInt(page)))
        expect(records.every((r) => Number(r.endLsn) <= page)).toBe(true)
      }
    })

    it('stays failed after an error', () => {
      const from = Math.floor(wal.base / XLOG_BLCKSZ) * XLOG_BLCKSZ
      const d = new WalStreamDecoder({ startLsn: lsn(from) })
      const b = Buffer.from(slice(from, from + XLOG_BLCKSZ))
      b.writeUInt16LE(0, 0)
      d.feed(b)
      let first: unknown
      try {
        d.next()
      } catch (e) {
        first = e
      }
      expect(first).toMatchObject({ code: 'WAL_BAD_MAGIC' })
      expect(() => d.next()).toThrow(first as Error)
    })

    it('rejects records longer than the configured limit before collecting them', () => {
      const message = wal.records.find((r) => r.xl_rmid === RM.LOGICALMSG)!
      const from = Math.floor(Number(message.lsn) / XLOG_BLCKSZ) * XLOG_BLCKSZ
      const d = new WalStreamDecoder({ startLsn: lsn(from), recordMaxBytes: 64 * 1024 })
      d.feed(slice(from, Number(message.endLsn)))
      expect(() => {
        for (let r = d.next(); r !== null; r = d.next());
      }).toThrow(expect.objectContaining({ code: 'WAL_RECORD_TOO_LARGE', message: expect.stringContaining(formatLsn(message.lsn)) }))
    })

    it('fails cleanly on random bytes: only PageserverErrors, never a hang', () => {
      const rand = mulberry32(42)
      const realPage = slice(wal.base + 3 * XLOG_BLCKSZ, wal.base + 4 * XLOG_BLCKSZ)
      let errors = 0
      for (let t = 0; t < 400; t++) {
        const n = 1 + Math.floor(rand() * 3 * XLOG_BLCKSZ)
        const garbage = Buffer.alloc(n)
        for (let i = 0; i < n; i++) garbage[i] = Math.floor(rand() * 256)
        // Half the trials keep a valid page header, so the garbage reaches the record parser.
        const keepHeader = t % 2 === 1
        if (keepHeader) realPage.copy(garbage, 0, 0, Math.min(n, SizeOfXLogShortPHD + (t % 4 === 1 ? 8 : 0)))
        const startLsn = wal.base + 3 * XLOG_BLCKSZ
        const d = new WalStreamDecoder({ startLsn: lsn(startLsn) })
        let steps = 0
        try {
          for (let off = 0; off < n; off += 977) {
            d.feed(garbage.subarray(off, Math.min(n, off + 977)))
            for (let r = d.next(); r !== null; r = d.next()) {
              if (++steps > 10_000) throw new Error('decoder loops on garbage')
            }
          }
        } catch (e) {
          if (!(e instanceof PageserverError)) throw e
          expect(e.kind).toBe('corruption')
          errors++
        }
      }
      expect(errors).toBeGreaterThan(300)
    })

    it('fails cleanly on garbage after valid records, naming the LSN', () => {
      const rand = mulberry32(3)
      const i = 300
      const target = wal.records[i]!
      const from = Math.floor(Number(wal.records[i - 20]!.lsn) / XLOG_BLCKSZ) * XLOG_BLCKSZ
      const b = Buffer.from(slice(from, Number(target.lsn) + 3 * XLOG_BLCKSZ))
      const off = Number(target.lsn) - from
      for (let k = off; k < b.length; k++) {
        if ((from + k) % XLOG_BLCKSZ >= SizeOfXLogShortPHD) b[k] = Math.floor(rand() * 256)
      }
      b.writeUInt32LE(200, off) // a plausible length, so the header checks and then the CRC must catch it
      const { records, error } = decodeUntilError(b, from)
      expect(error).toBeInstanceOf(PageserverError)
      expect((error as Error).message).toContain(formatLsn(target.lsn))
      expect(records.map(key)).toEqual(wal.records.slice(firstAtOrAfter(from), i).map(key))
    })
  })

  describe('overwrite contrecord', () => {
    it('drops a record abandoned at a page with XLP_FIRST_IS_OVERWRITE_CONTRECORD, as pg_waldump does', async () => {
      // A record R crossing into page P+1 (not a segment start), inside the first segment.
      const k = wal.records.findIndex((r, j) => {
        const s = Number(r.lsn)
        const e = Number(r.endLsn)
        const next = (Math.floor(s / XLOG_BLCKSZ) + 1) * XLOG_BLCKSZ
        return j > 100 && e > next && next % SEG !== 0 && Math.floor(s / SEG) === Math.floor(wal.base / SEG)
      })
      const aborted = wal.records[k]!
      const before = wal.records[k - 1]!
      const page = (Math.floor(Number(aborted.lsn) / XLOG_BLCKSZ) + 1) * XLOG_BLCKSZ
      const segStart = Math.floor(wal.base / SEG) * SEG
      const seg = Buffer.alloc(SEG)
      slice(segStart, page).copy(seg, 0)

      // Page P+1: the same header, continuation flag replaced by the overwrite flag, then the record
      // PostgreSQL writes there after crash recovery: XLOG_OVERWRITE_CONTRECORD naming the aborted record.
      const p = page - segStart
      slice(page, page + SizeOfXLogShortPHD).copy(seg, p)
      const info = (seg.readUInt16LE(p + 2) & ~XLP_FIRST_IS_CONTRECORD) | XLP_FIRST_IS_OVERWRITE_CONTRECORD
      seg.writeUInt16LE(info, p + 2)
      seg.writeUInt32LE(0, p + 16)
      const rec = Buffer.alloc(24 + 2 + 16)
      rec.writeUInt32LE(rec.length, 0)
      rec.writeUInt32LE(0, 4)
      rec.writeBigUInt64LE(before.lsn, 8)
      rec[16] = 0xd0 // XLOG_OVERWRITE_CONTRECORD
      rec[17] = RM.XLOG
      rec[24] = 255 // XLR_BLOCK_ID_DATA_SHORT
      rec[25] = 16
      rec.writeBigUInt64LE(aborted.lsn, 26) // overwritten_lsn
      rec.writeBigInt64LE(800_000_000_000_000n, 34) // overwrite_time
      rec.writeUInt32LE(crc32c(rec.subarray(0, 20), crc32c(rec.subarray(24))), 20)
      rec.copy(seg, p + SizeOfXLogShortPHD)

      const { records, decoder } = decodeAll(seg, segStart, 4096)
      const expectedBefore = wal.records.slice(firstAtOrAfter(segStart), k)
      expectSameRecords(records.slice(0, -1), expectedBefore, 'records before the aborted one')
      const ow = records[records.length - 1]!
      expect(Number(ow.lsn)).toBe(page + SizeOfXLogShortPHD)
      expect(asOracle(ow).type).toBe('OVERWRITE_CONTRECORD')
      expect(ow.mainData().readBigUInt64LE(0)).toBe(aborted.lsn)
      expect(decoder.end).not.toBeNull()

      // PostgreSQL's reader agrees.
      const name = pg.walSegments()[0]!
      writeFileSync(join(scratch, name), seg)
      const oracle = parseWaldump(await pg.waldump(['--bkp-details', join(scratch, name)]))
      expect(records.map(asOracle)).toEqual(oracle)
    })

    it('also skips into an overwrite page when started inside the abandoned record', () => {
      const k = wal.records.findIndex((r, j) => j > 100 && Number(r.endLsn) - Number(r.lsn) > 3 * XLOG_BLCKSZ)
      const rec = wal.records[k]!
      const p1 = (Math.floor(Number(rec.lsn) / XLOG_BLCKSZ) + 1) * XLOG_BLCKSZ
      const p2 = p1 + XLOG_BLCKSZ
      // Start at p1 (a continuation), and make p2 an overwrite page followed by zeros: no records, then end.
      const b = Buffer.alloc(3 * XLOG_BLCKSZ)
      slice(p1, p2 + SizeOfXLogShortPHD).copy(b, 0)
      b.writeUInt16LE((b.readUInt16LE(XLOG_BLCKSZ + 2) & ~XLP_FIRST_IS_CONTRECORD) | XLP_FIRST_IS_OVERWRITE_CONTRECORD, XLOG_BLCKSZ + 2)
      b.writeUInt32LE(0, XLOG_BLCKSZ + 16)
      const { records, decoder } = decodeAll(b, p1)
      expect(records).toEqual([])
      expect(Number(decoder.end!.lsn)).toBe(p2 + pageHeaderSizeAt(p2))
    })
  })
})
