/**
 * Parses `pg_waldump --bkp-details` output into plain objects, to compare with our decoder record by record.
 *
 * A record line: "rmgr: Heap        len (rec/tot):     54/   162, tx:        735, lsn: 0/0153A0C8,
 * prev 0/0153A090, desc: INSERT+INIT off 1 flags 0x00", followed by one tab-indented line per block:
 * "\tblkref #0: rel 1663/5/16384 fork main blk 0 (FPW); hole: offset: 212, length: 3524, compression saved:
 * 2100, method: lz4". The type is desc's first word (two for "UNKNOWN (f0)"). Unknown line shapes throw, so
 * a format surprise fails the test instead of being skipped.
 */
import { formatLsn, parseLsn } from '../../../src/core/pg/lsn.js'
import { recordImageBytes, recordToJson } from '../../../src/core/pg/wal-format.js'
import type { DecodedRecord } from '../../../src/core/pg/wal-record.js'

export interface OracleBlock {
  id: number
  rel: string
  fork: string
  blk: number
  image: boolean
  apply: boolean
  holeOffset: number
  holeLength: number
  compression: string
}

export interface OracleRecord {
  rmgr: string
  recLen: number
  totalLength: number
  xid: number
  lsn: string
  prevLsn: string
  type: string
  blocks: OracleBlock[]
}

const RECORD_RE =
  /^rmgr: (\S+)\s+len \(rec\/tot\):\s*(\d+)\/\s*(\d+), tx:\s*(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+), prev ([0-9A-F]+\/[0-9A-F]+), desc: (UNKNOWN \([0-9a-f]+\)|\S+)/
const BLOCK_RE =
  /^\tblkref #(\d+): rel (\d+\/\d+\/\d+) fork (\w+) blk (\d+)(?: \(FPW( for WAL verification)?\); hole: offset: (\d+), length: (\d+)(?:, compression saved: \d+, method: (\w+))?)?$/

/** "0/0153A0C8" -> "0/153A0C8" (our JSON form). */
const normLsn = (s: string): string => formatLsn(parseLsn(s))

export function parseWaldump(text: string): OracleRecord[] {
  const out: OracleRecord[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('first record is after ')) continue // pg_waldump's note for a --start inside a record
    const m = RECORD_RE.exec(line)
    if (m) {
      out.push({
        rmgr: m[1]!,
        recLen: Number(m[2]),
        totalLength: Number(m[3]),
        xid: Number(m[4]),
        lsn: normLsn(m[5]!),
        prevLsn: normLsn(m[6]!),
        type: m[7]!,
        blocks: [],
      })
      continue
    }
    const b = BLOCK_RE.exec(line)
    if (b && out.length > 0) {
      const image = b[6] !== undefined
      out[out.length - 1]!.blocks.push({
        id: Number(b[1]),
        rel: b[2]!,
        fork: b[3]!,
        blk: Number(b[4]),
        image,
        apply: image && b[5] === undefined,
        holeOffset: image ? Number(b[6]) : 0,
        holeLength: image ? Number(b[7]) : 0,
        compression: b[8] ?? 'none',
      })
      continue
    }
    throw new Error(`unexpected pg_waldump line: ${JSON.stringify(line.slice(0, 200))}`)
  }
  return out
}

/** Our decoded record in the oracle's shape (willInit dropped: pg_waldump does not print it). */
export function asOracle(rec: DecodedRecord): OracleRecord {
  const j = recordToJson(rec)
  return {
    rmgr: j.rmgr,
    recLen: j.totalLength - recordImageBytes(rec),
    totalLength: j.totalLength,
    xid: j.xid,
    lsn: j.lsn,
    prevLsn: j.prevLsn,
    type: j.type,
    blocks: j.blocks.map((b) => ({
      id: b.id,
      rel: b.rel,
      fork: b.fork,
      blk: b.blk,
      image: b.image,
      apply: b.apply,
      holeOffset: b.holeOffset,
      holeLength: b.holeLength,
      compression: b.compression,
    })),
  }
}
