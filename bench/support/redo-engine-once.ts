/**
 * The redo engine alone, in this thread, over the per-page chains of the cached benchmark WAL
 * (`redo-chains.ts`): for profiling and for comparing engine changes without PostgreSQL or a worker pool
 * (`bench/redo.ts` builds its chains from a fresh pgbench run, minutes per run, and times the engine in a
 * process that also holds that run's data). `redo-pool-once.ts` sends the same chains through the pool.
 *
 * Every chain is redone `REDO_ONCE_PASSES` times (default 7): its records are first copied into one reused
 * arena (the worker process reads a request into its arena, so the engine finds them in its cache), then
 * redone into one reused page (as the worker builds its reply). Prints one JSON line: each pass's
 * milliseconds, the median of the passes after the first two, their CPU time, and records per second.
 *
 *   node --import tsx bench/support/redo-engine-once.ts [pg_wal dir]   (add --cpu-prof to profile)
 * Default WAL: $TMPDIR/pageserver-bench-wal-v1-off/pg_wal. env: REDO_ONCE_PASSES, REDO_ONCE_HINT_BITS (0/1,
 * default 1: the cached WAL comes from a cluster with data checksums).
 */
import { ArenaRedo, DEFAULT_WAL_DIR, loadRedoChains } from './redo-chains.js'
import { median } from './stats.js'

const PASSES = Number(process.env.REDO_ONCE_PASSES ?? 7)
const opts = { hintBitsLogged: process.env.REDO_ONCE_HINT_BITS !== '0', checkRecordCrc: false }

const chains = loadRedoChains(process.argv[2] ?? DEFAULT_WAL_DIR)
const recordCount = chains.reduce((s, c) => s + c.records.length, 0)
const engine = new ArenaRedo(chains)
const passesMs: number[] = []
let cpuMs = 0
for (let p = 0; p < PASSES; p++) {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  engine.pass(opts)
  passesMs.push(performance.now() - t0)
  if (p >= 2) {
    const c = process.cpuUsage(c0)
    cpuMs += (c.user + c.system) / 1000
  }
}
const steady = median(passesMs.slice(2))
console.log(
  JSON.stringify({
    pages: chains.length,
    records: recordCount,
    passesMs: passesMs.map((m) => Math.round(m)),
    medianMs: Math.round(steady),
    cpuMsPerPass: Math.round(cpuMs / Math.max(1, PASSES - 2)),
    recordsPerS: Math.round(recordCount / (steady / 1000)),
  }),
)
