/**
 * The synthetic WAL of a fullbackup: one XLOG_CHECKPOINT_SHUTDOWN record at the backup LSN.
 *
 * Oracles: pg_waldump (it must find exactly one CHECKPOINT_SHUTDOWN at the expected position, with our
 * values, starting from the segment's start and from the record's page, so the declared continued tail is
 * right), our own decoder, and
 * header bytes read at their C offsets (not through the encoder). Edge positions: a segment start, the
 * first usable byte of a segment, a page boundary, the middle of a page, the last bytes of a page (the
 * record split across pages, even its 24-byte header) and of a segment (split across two files).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findPostgres, runPgTool } from '../../../src/core/postgres/install.js'
import { formatLsn, lsn, parseLsn, type Lsn } from '../../../src/core/pg/lsn.js'
import { decodeCheckPoint, type CheckPoint } from '../../../src/core/pg/controlfile.js'
import { recordCrcIsValid } from '../../../src/core/pg/wal-record.js'
import { WalStreamDecoder } from '../../../src/core/pg/wal-decoder.js'
import {
  backupLsnOfCheckpoint,
  CHECKPOINT_RECORD_BYTES,
  checkpointRecordLsn,
  lsnOutsidePageHeader,
  neonBootstrapWalSegment,
  segmentBytes,
  segmentChunks,
  shutdownCheckpointWal,
  type SyntheticWal,
} from '../../../src/core/pg/synthetic-wal.js'
import { pgAvailable } from '../../support/pg-cluster.js'
import { testCheckPoint } from '../../support/checkpoint-fixture.js'

const SEG = 16 * 1024 * 1024
const PAGE = 8192
const SYSID = 7400000000000000123n

const storedCheckpoint: CheckPoint = testCheckPoint(parseLsn('0/1000028'))

const segStart = 3n * BigInt(SEG)
/** name, backup LSN, expected record start */
const POSITIONS: Array<[string, bigint, bigint]> = [
  ['segment start', segStart, segStart + 40n],
  ['first usable byte of a segment', segStart + 40n, segStart + 40n],
  ['inside the first page', segStart + 0x100n, segStart + 0x100n],
  ['page boundary', segStart + 2n * BigInt(PAGE), segStart + 2n * BigInt(PAGE) + 24n],
  ['first byte after a short header', segStart + 5n * BigInt(PAGE) + 24n, segStart + 5n * BigInt(PAGE) + 24n],
  ['middle of a page', segStart + 0x51a8n, segStart + 0x51a8n],
  ['record ends exactly at the page end', segStart + 0x6000n - 120n, segStart + 0x6000n - 120n],
  ['record header split (8 bytes left)', segStart + 0x8000n - 8n, segStart + 0x8000n - 8n],
  ['main data split (32 bytes left)', segStart + 0xa000n - 32n, segStart + 0xa000n - 32n],
  ['record split (112 bytes left)', segStart + 0xc000n - 112n, segStart + 0xc000n - 112n],
  ['last bytes of the first page of a segment', segStart + 0x2000n - 16n, segStart + 0x2000n - 16n],
  ['last bytes of a segment', segStart + BigInt(SEG) - 8n, segStart + BigInt(SEG) - 8n],
  ['last 64 bytes of a segment', segStart + BigInt(SEG) - 64n, segStart + BigInt(SEG) - 64n],
]

function build(lsnValue: bigint, prev: bigint = segStart - 0x200n, cp: CheckPoint = storedCheckpoint): SyntheticWal {
  return shutdownCheckpointWal({ lsn: lsnValue as Lsn, systemId: SYSID, checkpoint: cp, prevLsn: prev as Lsn, segSizeBytes: SEG })
}

/** Expected end: one page -> start + MAXALIGN(114); split -> next page + header + MAXALIGN(rest). */
function expectedEnd(start: bigint): bigint {
  const left = Number(BigInt(PAGE) - (start % BigInt(PAGE)))
  if (left >= CHECKPOINT_RECORD_BYTES) return start + 120n
  const next = start + BigInt(left)
  const hdr = next % BigInt(SEG) === 0n ? 40n : 24n
  return next + hdr + BigInt((CHECKPOINT_RECORD_BYTES - left + 7) & ~7)
}

/** The record's bytes reassembled from the segment buffers, page headers removed (independent of the builder). */
function reassemble(wal: SyntheticWal): Buffer {
  const files = new Map(wal.segments.map((s) => [s.segno, segmentBytes(s)]))
  const out = Buffer.alloc(CHECKPOINT_RECORD_BYTES)
  let pos = wal.checkpointLsn as bigint
  for (let i = 0; i < CHECKPOINT_RECORD_BYTES; ) {
    if (pos % BigInt(PAGE) === 0n) pos += pos % BigInt(SEG) === 0n ? 40n : 24n
    const file = files.get(pos / BigInt(SEG))!
    out[i++] = file[Number(pos % BigInt(SEG))]!
    pos++
  }
  return out
}

describe('synthetic WAL: record position and bytes', () => {
  it('places the record where PostgreSQL inserts it', () => {
    for (const [, l, start] of POSITIONS) {
      expect(checkpointRecordLsn(l as Lsn, SEG)).toBe(start)
      // Round trip up to equivalence: a backup at a page boundary and one right after its header are the same.
      const back = backupLsnOfCheckpoint(start as Lsn, SEG)
      expect(checkpointRecordLsn(back, SEG)).toBe(start)
      if (l % BigInt(PAGE) === 0n) expect(back).toBe(l)
    }
  })

  it('writes a valid record with our values, at C offsets', () => {
    for (const [name, l, start] of POSITIONS) {
      const wal = build(l)
      expect(wal.checkpointLsn, name).toBe(start)
      expect(wal.endLsn, name).toBe(expectedEnd(start))
      const raw = reassemble(wal)
      expect(raw.readUInt32LE(0)).toBe(114) // xl_tot_len
      expect(raw.readUInt32LE(4)).toBe(0) // xl_xid
      expect(raw.readBigUInt64LE(8)).toBe(segStart - 0x200n) // xl_prev
      expect(raw[16]).toBe(0x00) // XLOG_CHECKPOINT_SHUTDOWN
      expect(raw[17]).toBe(0) // RM_XLOG_ID
      expect(raw[24]).toBe(255) // XLR_BLOCK_ID_DATA_SHORT
      expect(raw[25]).toBe(88) // sizeof(CheckPoint)
      expect(recordCrcIsValid(raw), name).toBe(true)
      const cp = decodeCheckPoint(raw, 26)
      expect(cp).toEqual({ ...storedCheckpoint, redo: start, oldestActiveXid: 0 })
    }
  })

  it('writes page headers: long on segment starts, continuation flags and remaining lengths right', () => {
    // Record in the middle of page 2 of the segment: every page from the segment's first to the record's
    // declares the rest of the gap before the record as a continued tail (page headers not counted).
    let wal = build(segStart + 2n * BigInt(PAGE) + 0x1a8n)
    let seg = segmentBytes(wal.segments[0]!)
    expect(seg.readUInt16LE(0)).toBe(0xd110)
    expect(seg.readUInt16LE(2)).toBe(0x0003) // XLP_LONG_HEADER | XLP_FIRST_IS_CONTRECORD
    expect(seg.readUInt32LE(4)).toBe(1)
    expect(seg.readBigUInt64LE(8)).toBe(segStart)
    expect(seg.readUInt32LE(16)).toBe(PAGE - 40 + (PAGE - 24) + (0x1a8 - 24))
    expect(seg.readBigUInt64LE(24)).toBe(SYSID)
    expect(seg.readUInt32LE(32)).toBe(SEG)
    expect(seg.readUInt32LE(36)).toBe(PAGE)
    expect(seg.readUInt16LE(PAGE)).toBe(0xd110)
    expect(seg.readUInt16LE(PAGE + 2)).toBe(0x0001)
    expect(seg.readBigUInt64LE(PAGE + 8)).toBe(segStart + BigInt(PAGE))
    expect(seg.readUInt32LE(PAGE + 16)).toBe(PAGE - 24 + (0x1a8 - 24))
    const p2 = 2 * PAGE
    expect(seg.readUInt16LE(p2 + 2)).toBe(0x0001) // XLP_FIRST_IS_CONTRECORD
    expect(seg.readBigUInt64LE(p2 + 8)).toBe(segStart + BigInt(p2))
    expect(seg.readUInt32LE(p2 + 16)).toBe(0x1a8 - 24)
    // Between the headers, zeros.
    expect(seg.subarray(40, PAGE).every((b) => b === 0)).toBe(true)
    expect(seg.subarray(PAGE + 24, p2).every((b) => b === 0)).toBe(true)
    // Record right after a header: no continuation claimed.
    wal = build(segStart + 2n * BigInt(PAGE))
    seg = segmentBytes(wal.segments[0]!)
    expect(seg.readUInt16LE(p2 + 2)).toBe(0)
    expect(seg.readUInt32LE(p2 + 16)).toBe(0)
    // Split across segments: the next file starts with a long header continuing the record.
    wal = build(segStart + BigInt(SEG) - 8n)
    expect(wal.segments.map((s) => s.fileName)).toEqual(['000000010000000000000003', '000000010000000000000004'])
    const next = segmentBytes(wal.segments[1]!)
    expect(next.readUInt16LE(2)).toBe(0x0003)
    expect(next.readUInt32LE(16)).toBe(114 - 8)
    expect(next.readBigUInt64LE(24)).toBe(SYSID)
    // Everything past the record is zero.
    const end = Number(wal.endLsn % BigInt(SEG))
    expect(next.subarray(end).every((b) => b === 0)).toBe(true)
  })

  it('names the file by the PostgreSQL timeline of the checkpoint', () => {
    const wal = build(segStart + 0x100n, segStart, { ...storedCheckpoint, ThisTimeLineID: 3, PrevTimeLineID: 2 })
    expect(wal.segments[0]!.fileName).toBe('000000030000000000000003')
    expect(segmentBytes(wal.segments[0]!).readUInt32LE(4)).toBe(3)
    expect(wal.checkpoint.PrevTimeLineID).toBe(3) // a shutdown checkpoint does not switch timelines
  })

  it('streams the same bytes in chunks of 256 KiB, the page headers of a window in one chunk', () => {
    // The record at the end of its segment: a page header every 8 KiB before it (2,048 pieces), and a record
    // split across the two segment files.
    const wal = build(segStart + BigInt(SEG) - 64n)
    expect(wal.segments[0]!.pieces.length).toBeGreaterThan(2000)
    for (const s of wal.segments) {
      const chunks = [...segmentChunks(s)]
      expect(chunks.every((c) => c.length <= 256 * 1024)).toBe(true)
      expect(chunks.length).toBe(SEG / (256 * 1024))
      expect(Buffer.concat(chunks).equals(segmentBytes(s))).toBe(true)
    }
  })

  it('refuses unaligned LSNs and a prev LSN that is not before the record', () => {
    expect(() => build(segStart + 0x101n)).toThrow(expect.objectContaining({ code: 'BACKUP_LSN_UNALIGNED' }))
    expect(() => build(segStart + 0x100n, segStart + 0x100n)).toThrow(expect.objectContaining({ code: 'BAD_PREV_LSN' }))
    // On a page boundary the record starts after the header, so a prev LSN equal to the boundary is fine.
    expect(build(segStart + BigInt(PAGE), segStart + BigInt(PAGE)).checkpointLsn).toBe(segStart + BigInt(PAGE) + 24n)
    expect(() => build(0n)).toThrow(expect.objectContaining({ code: 'BACKUP_LSN_UNALIGNED' }))
  })

  it("builds Neon's bootstrap segment: headers only", () => {
    const s = segmentBytes(neonBootstrapWalSegment({ lsn: (segStart + 3n * BigInt(PAGE) + 0x40n) as Lsn, systemId: SYSID, pgTimeline: 1, segSizeBytes: SEG }))
    expect(s.readUInt16LE(2)).toBe(0x0003)
    expect(s.readUInt32LE(16)).toBe(PAGE - 40 + 2 * (PAGE - 24) + (0x40 - 24))
    expect(s.readUInt16LE(3 * PAGE + 2)).toBe(0x0001)
    expect(s.readUInt32LE(3 * PAGE + 16)).toBe(0x40 - 24)
    const boundary = segStart + 3n * BigInt(PAGE)
    const atBoundary = segmentBytes(neonBootstrapWalSegment({ lsn: boundary as Lsn, systemId: SYSID, pgTimeline: 1, segSizeBytes: SEG }))
    expect(atBoundary.readUInt16LE(3 * PAGE + 2)).toBe(0)
    expect(atBoundary.readBigUInt64LE(3 * PAGE + 8)).toBe(boundary)
    // The pages before it declare the gap, so a reader from the segment's start finds the WAL's end right
    // after that page's header, where the compute's first record will go.
    expect(atBoundary.readUInt16LE(2)).toBe(0x0003)
    expect(atBoundary.readUInt32LE(16)).toBe(PAGE - 40 + 2 * (PAGE - 24))
    for (const [bytes, at] of [[s, segStart + 3n * BigInt(PAGE) + 0x40n], [atBoundary, boundary + 24n]] as const) {
      const dec = new WalStreamDecoder({ startLsn: segStart as Lsn, systemId: SYSID, segmentSizeBytes: SEG })
      dec.feed(bytes)
      expect(dec.next()).toBeNull()
      expect(dec.end?.lsn).toBe(at)
    }
  })
})

describe('synthetic WAL: our decoder reads it', () => {
  it('finds exactly one CHECKPOINT_SHUTDOWN, from the segment start, the record page start and the record itself', () => {
    for (const [name, l] of POSITIONS) {
      const wal = build(l)
      const pageStart = (wal.checkpointLsn - (wal.checkpointLsn % BigInt(PAGE))) as Lsn
      const walSegStart = (wal.checkpointLsn - (wal.checkpointLsn % BigInt(SEG))) as Lsn
      for (const startLsn of [walSegStart, pageStart, wal.checkpointLsn]) {
        const dec = new WalStreamDecoder({ startLsn, systemId: SYSID, segmentSizeBytes: SEG })
        const first = wal.segments[0]!
        dec.feed(segmentBytes(first).subarray(Number(startLsn % BigInt(SEG))))
        for (const s of wal.segments.slice(1)) dec.feed(segmentBytes(s))
        const rec = dec.next()
        expect(rec, `${name} from ${formatLsn(startLsn)}`).not.toBeNull()
        expect(rec!.lsn).toBe(wal.checkpointLsn)
        expect(rec!.endLsn).toBe(wal.endLsn)
        expect(rec!.xl_rmid).toBe(0)
        expect(rec!.rmgrInfo).toBe(0x00)
        expect(decodeCheckPoint(rec!.mainData())).toEqual(wal.checkpoint)
        if (wal.endLsn % BigInt(PAGE) === 0n) {
          // The record fills its page: the next page is zeros, which is where the WAL ends (as PostgreSQL
          // reports it: an invalid page magic at the end LSN).
          expect(() => dec.next()).toThrow(new RegExp(`magic number 0000 .* at ${formatLsn(wal.endLsn)}`))
        } else {
          expect(dec.next()).toBeNull()
          expect(dec.end?.lsn, name).toBe(wal.endLsn)
        }
      }
    }
  })
})

describe.skipIf(!pgAvailable())('synthetic WAL: pg_waldump reads it', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ps-synthwal-'))
  })
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('shows exactly one CHECKPOINT_SHUTDOWN at the expected LSN with our values', async () => {
    const inst = findPostgres(undefined, process.env)
    for (const [name, l] of POSITIONS) {
      const caseDir = mkdtempSync(join(dir, 'case-'))
      const wal = build(l)
      for (const s of wal.segments) writeFileSync(join(caseDir, s.fileName), segmentBytes(s))
      // Start at the segment's start and at the record's page: pg_waldump skips the declared continued tail
      // and must land on the record.
      const pageStart = wal.checkpointLsn - (wal.checkpointLsn % BigInt(PAGE))
      for (const from of [wal.checkpointLsn - (wal.checkpointLsn % BigInt(SEG)), pageStart]) {
        const r = await runPgTool(inst, 'pg_waldump', ['-p', caseDir, '-t', '1', '-s', formatLsn(from)], { okCodes: [1] })
        const lines = r.stdout.trim().split('\n').filter((x) => x.startsWith('rmgr:'))
        expect(lines, `${name}: ${r.stdout}${r.stderr}`).toHaveLength(1)
        const m = /^rmgr: XLOG\s+len \(rec\/tot\):\s*(\d+)\/\s*(\d+), tx:\s*0, lsn: ([0-9A-F/]+), prev ([0-9A-F/]+), desc: CHECKPOINT_SHUTDOWN (.*)$/.exec(lines[0]!)
        expect(m, lines[0]).not.toBeNull()
        expect(Number(m![2])).toBe(114)
        expect(parseLsn(m![3]!)).toBe(wal.checkpointLsn)
        expect(parseLsn(m![4]!)).toBe(segStart - 0x200n)
        const cp = wal.checkpoint
        expect(m![5]).toBe(
          `redo ${formatLsn(cp.redo)}; tli 1; prev tli 1; fpw true; xid 1:1234; oid 24576; multi 7; offset 13; ` +
            'oldest xid 716 in DB 1; oldest multi 1 in DB 5; oldest/newest commit timestamp xid: 0/0; oldest running xid 0; shutdown',
        )
        // The WAL ends right after the record (a zero length is where pg_waldump stops).
        if (wal.endLsn % BigInt(PAGE) === 0n) {
          expect(r.stderr).toContain('invalid magic number 0000 in log segment')
          expect(r.stderr).toContain(`offset ${Number(wal.endLsn % BigInt(SEG))}`)
        } else {
          const endMatch = /invalid record length at ([0-9A-F]+\/[0-9A-F]+)/.exec(r.stderr)
          expect(endMatch, r.stderr).not.toBeNull()
          expect(parseLsn(endMatch![1]!), r.stderr).toBe(wal.endLsn)
        }
      }
    }
  })
})

describe('lsnOutsidePageHeader', () => {
  it('moves an LSN inside a page header to the page boundary and leaves every other LSN', () => {
    const seg = 16 * 1024 * 1024
    const at = (n: bigint) => lsnOutsidePageHeader(lsn(n), seg)
    const page = 0x3000000n + 5n * 8192n // a short (24-byte) header
    expect([at(page), at(page + 8n), at(page + 16n), at(page + 24n), at(page + 32n)]).toEqual([page, page, page, page + 24n, page + 32n].map((n) => lsn(n)))
    const segStart = 0x3000000n // a long (40-byte) header
    expect([at(segStart + 8n), at(segStart + 32n), at(segStart + 40n), at(segStart - 8n)]).toEqual([segStart, segStart, segStart + 40n, segStart - 8n].map((n) => lsn(n)))
    // With 1 MiB segments, the page at 1 MiB starts a segment: a long header there.
    expect(lsnOutsidePageHeader(lsn(0x100000n + 32n), 1024 * 1024)).toBe(lsn(0x100000n))
  })
})
