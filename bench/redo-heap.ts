/**
 * Heap / Heap2 redo speed per record type, against copying one 8 KiB page (the baseline, same run).
 *
 * Generates real WAL once per run: a PostgreSQL 15 cluster with wal_consistency_checking=all runs pgbench
 * (init with foreign keys, then 2 clients) and a VACUUM, so every heap record carries its page's post-image.
 * Each (previous image of the page, record) pair becomes one redo case, exactly what a GetPage@LSN with one
 * record to apply costs: redoBlock = CRC check + decode + per-block rules + the rmgr body, on a copy of the
 * base. Timed `runs` times over all cases of a type; the median per-record time is reported, and the ratio
 * to the page copy (how many page copies one redo costs).
 *
 * Run: npm run bench -- bench/redo-heap.ts   (env: HEAP_BENCH_RUNS=7, HEAP_BENCH_TYPES=Heap/INSERT,...)
 */
import { RM } from '../src/core/pg/rmgr.js'
import { recordLabel } from '../src/core/redo/rmgr-redo.js'
import { runRedoCaseBench } from './support/redo-cases.js'

await runRedoCaseBench({
  name: 'redo-heap',
  runs: Number(process.env.HEAP_BENCH_RUNS ?? 7),
  async workload(pg) {
    await pg.pgbench(['-i', '-s', '2', '--foreign-keys', '-q'])
    await pg.pgbench(['-c', '2', '-j', '2', '-t', '2000', '-n'])
    await pg.sql('VACUUM pgbench_accounts, pgbench_history, pgbench_tellers, pgbench_branches')
  },
  groupOf: (rec) => (rec.xl_rmid === RM.HEAP || rec.xl_rmid === RM.HEAP2 ? recordLabel(rec) : null),
  // Optional comma-separated record types to time, e.g. "Heap2/MULTI_INSERT+INIT".
  only: process.env.HEAP_BENCH_TYPES?.split(','),
  labelWidth: 28,
})
