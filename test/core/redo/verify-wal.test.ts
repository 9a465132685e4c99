/**
 * verifyWalRecords: hint-bit evidence in the WAL (XLOG/FPI_FOR_HINT, PARAMETER_CHANGE with wal_log_hints),
 * the switch of the redo backend at the first evidence (never for an explicit setting), progress reports,
 * and draining of checks still in flight when reading fails. Hand-built records, fake redo.
 */
import { describe, expect, it } from 'vitest'
import { RM } from '../../../src/core/pg/rmgr.js'
import type { DecodedRecord } from '../../../src/core/pg/wal-record.js'
import { hintBitsEvidence, verifyWalRecords, type WalVerifyProgress } from '../../../src/core/redo/verify-wal.js'
import type { RedoFn } from '../../../src/core/redo/verify.js'
import { buildImageRecord, decodedAt, heapPage } from './verify-builder.js'

const INSERT_MAIN = Buffer.from([1, 0, 0])

function parameterChange(walLogHints: boolean): Buffer {
  const d = Buffer.alloc(26)
  d.writeInt32LE(100, 0) // MaxConnections
  d.writeInt32LE(1, 20) // wal_level replica
  d[24] = walLogHints ? 1 : 0
  return d
}

function heapRecord(n: number, blkno: number, apply = false): DecodedRecord {
  return decodedAt(n, buildImageRecord({ rmid: RM.HEAP, info: 0x00, blocks: [{ id: 0, blkno, image: heapPage(n), apply }], main: INSERT_MAIN }))
}

function fpiForHint(n: number, blkno: number): DecodedRecord {
  return decodedAt(n, buildImageRecord({ rmid: RM.XLOG, info: 0xa0, blocks: [{ id: 0, blkno, image: heapPage(n), apply: true }], checking: false }))
}

async function* batchesOf(records: DecodedRecord[], size: number, failAfter?: number): AsyncGenerator<DecodedRecord[]> {
  for (let i = 0; i < records.length; i += size) {
    if (failAfter !== undefined && i >= failAfter) throw new Error('read failed')
    yield records.slice(i, i + size)
  }
}

describe('hintBitsEvidence', () => {
  it('names FPI_FOR_HINT and PARAMETER_CHANGE with wal_log_hints on, and nothing else', () => {
    expect(hintBitsEvidence(fpiForHint(3, 1))).toBe('XLOG/FPI_FOR_HINT at 0/1030000')
    const on = decodedAt(4, buildImageRecord({ rmid: RM.XLOG, info: 0x60, blocks: [], main: parameterChange(true), checking: false }))
    const off = decodedAt(5, buildImageRecord({ rmid: RM.XLOG, info: 0x60, blocks: [], main: parameterChange(false), checking: false }))
    expect(hintBitsEvidence(on)).toBe('XLOG/PARAMETER_CHANGE (wal_log_hints on) at 0/1040000')
    expect(hintBitsEvidence(off)).toBeNull()
    expect(hintBitsEvidence(heapRecord(6, 1))).toBeNull()
  })
})

describe('verifyWalRecords', () => {
  const records = [heapRecord(0, 1, true), heapRecord(1, 1), heapRecord(2, 1), fpiForHint(3, 2), heapRecord(4, 1), heapRecord(5, 1)]
  const answer = (byEnd: Map<bigint, number>): RedoFn => (_t, _b, chain) => heapPage(byEnd.get(chain[chain.length - 1]!.endLsn)!)
  const byEnd = new Map(records.map((r, i) => [r.endLsn, i]))

  it('switches to hintBitsLogged at the first evidence, once', async () => {
    const asked: boolean[] = []
    const used: boolean[] = []
    const progress: WalVerifyProgress[] = []
    const res = await verifyWalRecords(batchesOf(records, 2), {
      redoFor: (hint) => {
        asked.push(hint)
        const inner = answer(byEnd)
        return (t, b, c) => {
          used.push(hint)
          return inner(t, b, c)
        }
      },
      hintBits: { value: false, source: 'default', explicit: false },
      concurrency: 3,
      onProgress: (p) => progress.push(p),
      progressEveryRecords: 2,
    })
    expect(res.report.mismatches).toBe(0)
    expect(res.report.blocksChecked).toBe(4)
    expect(asked).toEqual([false, true])
    expect(used).toEqual([false, false, true, true])
    expect(res.hintBits).toEqual({ value: true, source: 'XLOG/FPI_FOR_HINT at 0/1030000', explicit: false })
    expect(progress.length).toBe(4) // every 2 records, and once at the end
    expect(progress[progress.length - 1]).toMatchObject({ recordsRead: 6, blocksChecked: 4, mismatches: 0, inFlight: 0 })
  })

  it('keeps an explicit setting whatever the WAL says', async () => {
    const asked: boolean[] = []
    const res = await verifyWalRecords(batchesOf(records, 4), {
      redoFor: (hint) => {
        asked.push(hint)
        return answer(byEnd)
      },
      hintBits: { value: false, source: '--data-checksums flag', explicit: true },
      concurrency: 8,
    })
    expect(asked).toEqual([false])
    expect(res.hintBits.value).toBe(false)
  })

  it('waits for the checks in flight before passing on a read error', async () => {
    let finished = 0
    const slow: RedoFn = async (t, b, c) => {
      await new Promise((r) => setTimeout(r, 20))
      finished++
      return answer(byEnd)(t, b, c)
    }
    await expect(
      verifyWalRecords(batchesOf(records, 3, 3), { redoFor: () => slow, hintBits: { value: false, source: 'x', explicit: true }, concurrency: 8 }),
    ).rejects.toThrow('read failed')
    expect(finished).toBe(2) // records 1 and 2 were checked; their checks ended before the error surfaced
  })
})
