/**
 * Heap redo with wal_level=logical and lz4-compressed images: the logical-only records appear
 * (Heap/TRUNCATE, Heap2/NEW_CID, Heap2/REWRITE from VACUUM FULL of a catalog with a logical slot, and UPDATE/DELETE records carrying whole new tuples and old keys, with no
 * prefix/suffix compression), the images are lz4-compressed, and every Heap/Heap2 image still matches.
 * TRUNCATE, REWRITE and NEW_CID name no block: they change no page, which the verifier confirms by never being
 * asked to redo them.
 */
import { describe, expect, it } from 'vitest'
import { verifyWorkload } from '../../../support/wal-verify.js'
import { HEAP_TYPES_MAIN, heapSetup, heapSteps, logicalSteps } from './workloads.js'
import { expectClean, flavours } from './coverage.js'

describe('heap redo, wal_level=logical, wal_compression=lz4', () => {
  it('matches every Heap/Heap2 image and sees the logical-only records', async () => {
    const { report, records } = await verifyWorkload([...heapSteps, ...logicalSteps], {
      setup: heapSetup,
      walCompression: 'lz4',
      maxPreparedTransactions: 5,
      settings: { wal_level: 'logical' },
    })
    expectClean(report, HEAP_TYPES_MAIN)

    const f = flavours(records)
    const msg = JSON.stringify(f)
    expect(f['Heap/TRUNCATE'] ?? 0, msg).toBeGreaterThan(0)
    expect(f['Heap2/NEW_CID'] ?? 0, msg).toBeGreaterThan(0)
    expect(f['Heap2/REWRITE'] ?? 0, msg).toBeGreaterThan(0)
    // Logical decoding needs whole new tuples of user tables (XLH_UPDATE_CONTAINS_NEW_TUPLE, no prefix/suffix
    // compression); catalog tables still compress.
    const updates = records.filter((r) => r.xl_rmid === 10 && ((r.rmgrInfo & 0x70) === 0x20 || (r.rmgrInfo & 0x70) === 0x40))
    expect(updates.some((r) => (r.mainData()[7]! & 0x10) !== 0)).toBe(true)
    // TRUNCATE (Heap 0x30), REWRITE (Heap2 0x00) and NEW_CID (Heap2 0x70) name no page
    for (const r of records) {
      const noPage = (r.xl_rmid === 10 && r.rmgrInfo === 0x30) || (r.xl_rmid === 9 && (r.rmgrInfo === 0x00 || r.rmgrInfo === 0x70))
      if (noPage) expect(r.blocks.length).toBe(0)
    }
    expect(records.some((r) => r.blocks.some((b) => b.hasImage && b.compression === 'lz4'))).toBe(true)
  }, 240_000)
})
