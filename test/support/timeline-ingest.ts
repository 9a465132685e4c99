/**
 * Synthetic ingest for timeline tests: values put by hand (no WAL), and every key's history as plain strings
 * for comparing a timeline before and after a flush, a reload or a failure.
 */
import type { Timeline } from '../../src/core/repository/timeline.js'
import { keyFromFields, type Key } from '../../src/core/model/key.js'
import { lsn } from '../../src/core/pg/lsn.js'

/** Key `n` of the test relation 1663/5/16384 (block n). */
export const testKey = (n: number): Key => keyFromFields({ field1: 0, field2: 1663, field3: 5, field4: 16384, field5: 0, field6: n })

/** A page filled with n's low byte (`len` bytes). */
export const testPage = (n: number, len = 8192): Buffer => Buffer.alloc(len, n & 0xff)

/**
 * Ingests `records` records of `perRecord` values each from `fromLsn` (0x40 apart) over keys 0..keysN-1,
 * every 8th value a page image; returns the last record's LSN.
 */
export function ingestTestRecords(tl: Timeline, fromLsn: number, records: number, perRecord: number, keysN: number): number {
  let at = fromLsn
  for (let r = 0; r < records; r++) {
    at += 0x40
    for (let v = 0; v < perRecord; v++) {
      const key = testKey((r * perRecord + v) % keysN)
      if ((r + v) % 8 === 0) {
        tl.reserveImage(lsn(at), 8192).set(testPage(r + v))
        tl.commitValue(key, lsn(at))
      } else {
        tl.putRecord(key, lsn(at), Buffer.from(`rec ${r}/${v}`), false)
      }
    }
    tl.finishRecords(lsn(at), lsn(at - 0x40))
  }
  return at
}

/** The history of every key at `at`, as plain strings. */
export function keyHistorySnapshot(tl: Timeline, keysN: number, at: number): string[] {
  const out: string[] = []
  for (let i = 0; i < keysN; i++) {
    const h = tl.getKeyHistory(testKey(i), lsn(at))
    out.push(`${h.missing}|${h.image ? `${h.image.lsn}:${h.image.data[0]}:${h.image.data.length}` : '-'}|${h.records.map((r) => `${r.lsn}:${r.raw.toString()}`).join(',')}`)
  }
  return out
}
