/**
 * B-tree redo against PostgreSQL's own post-images (wal_consistency_checking=all), data checksums off.
 * The workload is in workload.ts, the assertions in verify-workload.ts; each cluster variant has its own file so they run
 * in parallel.
 */
import { describe, it } from 'vitest'
import { pgAvailable } from '../../../support/pg-cluster.js'
import { verifyBtreeWorkload } from './verify-workload.js'

describe.skipIf(!pgAvailable())('btree redo, data checksums off', () => {
  it('matches every image of all 15 record kinds', async () => {
    await verifyBtreeWorkload({})
  }, 300_000)
})
