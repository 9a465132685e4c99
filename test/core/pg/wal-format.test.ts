import { describe, expect, it } from 'vitest'
import { lsn } from '../../../src/core/pg/lsn.js'
import { decodeRecord } from '../../../src/core/pg/wal-record.js'
import { formatLsnPadded, formatRecordLine, recordImageBytes, recordToJson } from '../../../src/core/pg/wal-format.js'
import { buildRecord } from './wal-record-builder.js'

const REL = { spcNode: 1663, dbNode: 5, relNode: 16384 }

function sample() {
  const raw = buildRecord({
    xid: 735,
    prev: 0x153a090n,
    info: 0x80, // Heap INSERT+INIT
    rmid: 10,
    blocks: [
      { id: 0, rel: REL, blkno: 0, willInit: true, data: Buffer.from('tuple') },
      { id: 1, sameRel: true, fork: 2, blkno: 3, image: { stored: Buffer.alloc(100, 1), holeOffset: 40, holeLength: 5000, bimgInfo: 0x01 | 0x08 } },
      { id: 2, sameRel: true, blkno: 9, image: { stored: Buffer.alloc(8192 - 3524), holeOffset: 212, bimgInfo: 0x01 | 0x02 } },
    ],
    mainData: Buffer.from([1, 0, 0]),
  })
  return decodeRecord(raw, lsn(0x153a0c8), lsn(0x153a0c8 + raw.length + 7 - ((raw.length + 7) % 8)))
}

describe('recordToJson', () => {
  it('has exactly the documented fields, LSNs as X/X', () => {
    const rec = sample()
    const j = recordToJson(rec)
    expect(Object.keys(j)).toEqual(['lsn', 'endLsn', 'prevLsn', 'rmgr', 'type', 'xid', 'totalLength', 'mainDataLength', 'blocks'])
    expect(j).toMatchObject({ lsn: '0/153A0C8', prevLsn: '0/153A090', rmgr: 'Heap', type: 'INSERT+INIT', xid: 735, totalLength: rec.xl_tot_len, mainDataLength: 3 })
    expect(j.endLsn).toBe(`0/${rec.endLsn.toString(16).toUpperCase()}`)
    expect(j.blocks).toEqual([
      { id: 0, rel: '1663/5/16384', fork: 'main', blk: 0, image: false, apply: false, willInit: true, holeOffset: 0, holeLength: 0, compression: 'none' },
      { id: 1, rel: '1663/5/16384', fork: 'vm', blk: 3, image: true, apply: false, willInit: false, holeOffset: 40, holeLength: 5000, compression: 'lz4' },
      { id: 2, rel: '1663/5/16384', fork: 'main', blk: 9, image: true, apply: true, willInit: false, holeOffset: 212, holeLength: 3524, compression: 'none' },
    ])
    expect(JSON.parse(JSON.stringify(j))).toEqual(j) // plain JSON, no bigints
  })
})

describe('formatRecordLine', () => {
  it("reads like pg_waldump's line, with end LSN, main-data length and the block details", () => {
    const rec = sample()
    const fpi = 100 + 8192 - 3524
    expect(recordImageBytes(rec)).toBe(fpi)
    const line = formatRecordLine(rec)
    expect(line).toBe(
      `rmgr: Heap        len (rec/tot): ${String(rec.xl_tot_len - fpi).padStart(6)}/${String(rec.xl_tot_len).padStart(6)}, ` +
        `tx:        735, lsn: 0/0153A0C8, prev 0/0153A090, end: ${formatLsnPadded(rec.endLsn)}, desc: INSERT+INIT, main: 3, ` +
        'blkref #0: rel 1663/5/16384 fork main blk 0 will-init, ' +
        'blkref #1: rel 1663/5/16384 fork vm blk 3 (FPW for WAL verification); hole: offset: 40, length: 5000, compression saved: 3092, method: lz4, ' +
        'blkref #2: rel 1663/5/16384 fork main blk 9 (FPW); hole: offset: 212, length: 3524',
    )
    expect(line).not.toContain('\n')
  })

  it('pads LSNs as pg_waldump does', () => {
    expect(formatLsnPadded(0x1000028n)).toBe('0/01000028')
    expect(formatLsnPadded(0x16b374d848n)).toBe('16/B374D848')
  })
})
