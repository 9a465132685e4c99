/**
 * The assertions every B-tree verification variant makes (verify-*.test.ts): run the shared workload
 * (workload.ts) on a fresh cluster, verify every B-tree image, and check coverage.
 */
import { expect } from 'vitest'
import type { ClusterOptions } from '../../../support/pg-cluster.js'
import { summarize, verifyWorkload } from '../../../support/wal-verify.js'
import { BTREE_TYPES, btreeCensus, btreeSetup, btreeSteps } from './workload.js'

/**
 * Runs the workload on a fresh cluster with `opts`, verifies every B-tree image, and asserts: no
 * mismatches or redo errors, every kind produced and checked (REUSE_PAGE changes no page, so it is only
 * counted), and every redo path exercised.
 */
export async function verifyBtreeWorkload(opts: ClusterOptions): Promise<void> {
  const { report, records } = await verifyWorkload(btreeSteps, { ...opts, setup: btreeSetup })
  const census = btreeCensus(records)
  const msg = `${summarize(report)}\ncensus ${JSON.stringify(census)}`
  expect(report.mismatches, msg).toBe(0)
  expect(report.errors, msg).toEqual([])
  expect(report.unsupportedByType, msg).toEqual({})
  for (const type of BTREE_TYPES) {
    expect(census.records[type] ?? 0, `${type} produced\n${msg}`).toBeGreaterThan(0)
    if (type === 'REUSE_PAGE') continue
    const stat = report.byRecordType[`Btree/${type}`]
    expect(stat?.checked ?? 0, `Btree/${type} checked\n${msg}`).toBeGreaterThan(0)
    expect(stat?.mismatches, msg).toBe(0)
  }
  expect(census.splitWithPostingSplit, msg).toBeGreaterThan(0)
  expect(census.vacuumWithUpdates, msg).toBeGreaterThan(0)
  expect(census.deleteWithUpdates, msg).toBeGreaterThan(0)
  expect(census.deleteWithDeletions, msg).toBeGreaterThan(0)
  expect(census.unlinkOfInternalPage, msg).toBeGreaterThan(0)
  expect(census.newrootLevel0, msg).toBeGreaterThan(0)
  expect(census.newrootAbove, msg).toBeGreaterThan(0)
}
