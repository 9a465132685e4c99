/**
 * B-tree redo speed per record type, against copying one 8 KiB page (the baseline, same run).
 *
 * Generates real WAL once per run with the B-tree verification workload (test/core/redo/nbtree/workload.ts:
 * index builds, ascending and random inserts, deduplication and posting-list splits, VACUUM with posting
 * updates, page deletion and reuse, simple and bottom-up deletion) on a PostgreSQL 15 cluster with
 * wal_consistency_checking=all, so every B-tree block reference carries its post-image. Each (previous image
 * of the page, record) pair is one redo case, what a GetPage@LSN with one record to apply costs: redoBlock =
 * CRC check + decode + per-block rules + the B-tree body, on a copy of the base. Cases are grouped by record
 * type and by block reference (a split's left page, its new right page and its right sibling are very
 * different work). Timed `runs` times; the median per-case time is reported, and its ratio to the page copy.
 *
 * Run: npm run bench -- bench/redo-btree.ts   (env: BTREE_BENCH_RUNS=7)
 */
import { btreeSetup, btreeSteps } from '../test/core/redo/nbtree/workload.js'
import { RM } from '../src/core/pg/rmgr.js'
import { recordLabel } from '../src/core/redo/rmgr-redo.js'
import { runRedoCaseBench } from './support/redo-cases.js'

await runRedoCaseBench({
  name: 'redo-btree',
  runs: Number(process.env.BTREE_BENCH_RUNS ?? 7),
  async workload(pg) {
    await pg.runWorkload([...btreeSetup, ...btreeSteps])
  },
  groupOf: (rec, b) => (rec.xl_rmid === RM.BTREE ? `${recordLabel(rec)} blk ${b.id}` : null),
  labelWidth: 35,
})
