/**
 * Heap and Heap2 redo against PostgreSQL's own page images (wal_consistency_checking=all): a workload that
 * writes every record type, with data checksums off and on. Every image must match after masking, and the
 * interesting variants must really occur (prefix/suffix compression, cross-page updates, speculative
 * inserts, multixact locks, implicit VM clears checked through later VISIBLE images).
 */
import { describe, expect, it } from 'vitest'
import { verifyWorkload } from '../../../support/wal-verify.js'
import { HEAP_TYPES_MAIN, heapSetup, heapSteps } from './workloads.js'
import { expectClean, flavours, mismatchesWithoutImplicitVmClears } from './coverage.js'

describe.each([
  { name: 'checksums off', checksums: false },
  { name: 'checksums on', checksums: true },
])('heap redo, $name', ({ checksums }) => {
  it('matches every Heap/Heap2 image of the workload', async () => {
    const { report, records } = await verifyWorkload(heapSteps, { setup: heapSetup, checksums, maxPreparedTransactions: 5 })
    expectClean(report, HEAP_TYPES_MAIN)

    const f = flavours(records)
    const msg = JSON.stringify(f)
    for (const k of [
      'prefix Heap/HOT_UPDATE',
      'suffix Heap/HOT_UPDATE',
      'suffix Heap/UPDATE',
      'crosspage Heap/UPDATE',
      'crosspage Heap/UPDATE+INIT',
      'delete partition-move',
      'insert speculative',
      'lock multixact',
      'vmclear Heap/INSERT',
      'vmclear Heap/UPDATE',
      'vmclear Heap/DELETE',
      'vmclear Heap/LOCK',
      'vmclear Heap2/MULTI_INSERT',
    ]) {
      expect(f[k] ?? 0, `${k} missing from ${msg}`).toBeGreaterThan(0)
    }

    // The VM images of VISIBLE records are a real check of the implicit clears: without them, some differ.
    expect(await mismatchesWithoutImplicitVmClears(records, checksums)).toBeGreaterThan(0)
  }, 240_000)
})
