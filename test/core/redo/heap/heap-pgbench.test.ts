/**
 * Heap redo under pgbench: initialisation with foreign keys (COPY ... FREEZE multi-inserts that set
 * PD_ALL_VISIBLE, VISIBLE records, VACUUM), then concurrent TPC-B-like transactions from several clients
 * (HOT updates, inserts into pgbench_history, row locks from the foreign keys), then VACUUM. Data checksums
 * on, so VISIBLE stamps heap-page LSNs and hint bits are WAL-logged.
 */
import { describe, expect, it } from 'vitest'
import { verifyWorkload } from '../../../support/wal-verify.js'
import { expectClean, flavours } from './coverage.js'

describe('heap redo, pgbench', () => {
  it('matches every Heap/Heap2 image of pgbench -i --foreign-keys and 4 clients', async () => {
    const { report, records } = await verifyWorkload(
      [
        { name: 'init', pgbench: ['-i', '-s', '1', '--foreign-keys', '-q'] },
        { name: 'run', pgbench: ['-c', '4', '-j', '2', '-t', '250', '-n'] },
        { name: 'vacuum', sql: 'VACUUM pgbench_accounts; VACUUM pgbench_branches, pgbench_tellers, pgbench_history;' },
        { name: 'run-again', pgbench: ['-c', '4', '-j', '2', '-t', '150', '-n'] },
      ],
      { checksums: true },
    )
    expectClean(report, [
      'Heap/INSERT',
      'Heap/HOT_UPDATE',
      'Heap/LOCK',
      'Heap2/MULTI_INSERT+INIT',
      'Heap2/VISIBLE',
      'Heap2/PRUNE',
    ])
    const f = flavours(records)
    expect(f['multi-insert all-frozen-set'] ?? 0, JSON.stringify(f)).toBeGreaterThan(0)
  }, 240_000)
})
