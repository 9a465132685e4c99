/**
 * GetPage latency on the offline path — DatadirReader.getRelPage: relation size lookup, the page's history
 * through the layer map, redo in the worker pool when the newest version is WAL — for a page whose newest
 * version is an image, and for chains of 10 and 100 WAL records above an image. Serial (one request at a
 * time) and with 8 in flight. Image hits come from the page cache once warm (datadir/page-cache.ts), so
 * they are also timed with it and the layer value cache bypassed: the full lookup. The page cache also keeps
 * pages rebuilt by redo, so chains are timed with it bypassed (every request redone), once more as its
 * hits, and, for the chains of 100, with the cache holding each page 10 records earlier: the base redo then
 * starts from (10 records redone instead of 100).
 *
 * Data (generated once, cached; support/ingest-data.ts): after the import, a table `chain_t` with one
 * 500-byte row per page (fillfactor 10) and a CHECKPOINT, then ROUNDS rounds of `UPDATE chain_t SET n = n +
 * 1`: each page gets a full-page image and then, per round, a HOT update (and a prune) record. The WAL is
 * ingested into the cached workdir once (L0 layers on disk, read through the OS page cache).
 * Requests: for each page, `timeline.getKeyHistory` gives its image and records; the request LSN is the
 * image's LSN (image hit) or the end LSN of the k-th record above it (exactly k records to apply).
 *
 * Baseline, measured in the same run: an 8 KiB pread of the same block from the primary's own relation file
 * (OS cache warm): what a page read costs where no reconstruction is needed. Also shown, to split the cost:
 * the history lookup alone (getKeyHistory at the request LSN) and the same chains redone in-process
 * (redoBlock, no IPC). Reported per case: median over RUNS runs of each run's p50 and p99 (µs) and of
 * requests/s, and p50 as a multiple of the pread's p50.
 *
 * Run: npm run bench -- bench/getpage-latency.ts   (env: GETPAGE_LAT_RUNS=3, GETPAGE_LAT_PAGES=400)
 */
import { closeSync, openSync, readSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../src/core/config/index.js'
import { withRepository } from '../src/core/app/context.js'
import { readerFor } from '../src/core/app/pages.js'
import { relBlockKey } from '../src/core/datadir/mapping.js'
import { formatLsn, type Lsn } from '../src/core/pg/lsn.js'
import type { RelTag } from '../src/core/pg/reltag.js'
import { redoBlock } from '../src/core/redo/engine.js'
import { sharedPageCache } from '../src/core/datadir/page-cache.js'
import { sharedValueCache } from '../src/core/layer/value-cache.js'
import { maskForCompare } from '../test/support/page-compare.js'
import { ensureIngestData } from './support/ingest-data.js'
import { formatTable, median, percentile, round, shuffled } from './support/stats.js'

const RUNS = Number(process.env.GETPAGE_LAT_RUNS ?? 3)
const PAGES = Number(process.env.GETPAGE_LAT_PAGES ?? 400)
/** Update rounds: each adds one HOT update record (and usually a prune record) to every page. */
const ROUNDS = 70
const IN_FLIGHT = 8
const CHAIN_LENGTHS = [0, 10, 100] as const
const BLCKSZ = 8192

const data = await ensureIngestData({
  name: 'getpage',
  version: `v1-p${PAGES}`,
  keepPrimary: true,
  ingest: true,
  workload: async (pg, log) => {
    await pg.sql(`CREATE TABLE chain_t (id int PRIMARY KEY, n int NOT NULL, pad text NOT NULL) WITH (fillfactor = 10, autovacuum_enabled = off);
      INSERT INTO chain_t SELECT g, 0, repeat('x', 500) FROM generate_series(1, ${PAGES}) g;
      VACUUM chain_t;
      CHECKPOINT;`)
    log(`${ROUNDS} update rounds`)
    await pg.sql(Array.from({ length: ROUNDS }, () => 'UPDATE chain_t SET n = n + 1;').join('\n'))
    await pg.sql('CHECKPOINT')
    return {
      dbNode: Number(await pg.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'")),
      relNode: Number(await pg.sql("SELECT pg_relation_filenode('chain_t')")),
      relPath: await pg.sql("SELECT pg_relation_filepath('chain_t')"),
      pages: Number(await pg.sql("SELECT pg_relation_size('chain_t') / 8192")),
    }
  },
})

interface Request {
  blkno: number
  lsn: Lsn
  /** For chains longer than BASE_BELOW: the LSN BASE_BELOW records earlier (a version the page cache may hold). */
  earlierLsn: Lsn | null
}

/** Records between a page the page cache holds and the page asked for, in the "cached base" rows. */
const BASE_BELOW = 10

interface RunStats {
  p50Us: number
  p99Us: number
  requestsPerS: number
}

function statsOf(latUs: number[], wallS: number): RunStats {
  return { p50Us: median(latUs), p99Us: percentile(latUs, 0.99), requestsPerS: latUs.length / wallS }
}


/** Runs `job` over `items` with at most `inFlight` at once; per-item latency in µs. */
async function timed<T>(items: readonly T[], inFlight: number, job: (t: T) => Promise<unknown>): Promise<RunStats> {
  const lat: number[] = []
  let next = 0
  const t0 = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: Math.min(inFlight, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++]!
        const s = process.hrtime.bigint()
        await job(item)
        lat.push(Number(process.hrtime.bigint() - s) / 1e3)
      }
    }),
  )
  return statsOf(lat, Number(process.hrtime.bigint() - t0) / 1e9)
}

function medianStats(runs: RunStats[]): RunStats {
  return { p50Us: median(runs.map((r) => r.p50Us)), p99Us: median(runs.map((r) => r.p99Us)), requestsPerS: median(runs.map((r) => r.requestsPerS)) }
}

const facts = data.info.facts as { dbNode: number; relNode: number; relPath: string; pages: number }
const rel: RelTag = { spcNode: 1663, dbNode: facts.dbNode, relNode: facts.relNode, forkNum: 0 }
const ctx = { config: await loadConfig({ workdir: data.workdir, overrides: [], env: {} }), env: process.env }

await withRepository(ctx, async (repo) => {
  const tenant = await repo.tenant(data.tenantId)
  const tl = await tenant.timeline(data.timelineId)
  const reader = readerFor(tenant, tl)
  const hint = tl.metadata.hintBitsLogged
  const end = tl.lastRecordLsn

  // Requests per case, from each page's history at the end.
  const requests = new Map<number, Request[]>(CHAIN_LENGTHS.map((k) => [k, []]))
  let withImage = 0
  for (let blk = 0; blk < facts.pages; blk++) {
    const h = tl.getKeyHistory(relBlockKey(rel, blk), end)
    if (h.image === null) continue
    withImage++
    for (const k of CHAIN_LENGTHS) {
      if (h.records.length < k) continue
      requests.get(k)!.push({ blkno: blk, lsn: k === 0 ? h.image.lsn : h.records[k - 1]!.lsn, earlierLsn: k > BASE_BELOW ? h.records[k - 1 - BASE_BELOW]!.lsn : null })
    }
  }
  for (const k of CHAIN_LENGTHS) if (requests.get(k)!.length === 0) throw new Error(`no page has an image and ${k} records above it`)

  // Baseline: pread of the same blocks from the primary's file.
  const fd = openSync(join(data.primaryDir!, facts.relPath), 'r')
  const buf = Buffer.allocUnsafe(BLCKSZ)
  const pread = async (r: Request) => void readSync(fd, buf, 0, BLCKSZ, r.blkno * BLCKSZ)

  // Warm-up: workers spawned and JIT-compiled, OS cache filled.
  for (const k of CHAIN_LENGTHS) {
    await timed(requests.get(k)!, IN_FLIGHT, (r) => reader.getRelPage(rel, r.blkno, r.lsn))
    await timed(requests.get(k)!, 1, pread)
  }

  const rows: Array<Record<string, string | number>> = []
  try {
    for (const k of CHAIN_LENGTHS) {
      const reqs = requests.get(k)!
      const name = k === 0 ? 'image hit' : `chain of ${k} records`
      const base: RunStats[] = []
      const serial: RunStats[] = []
      const parallel: RunStats[] = []
      const lookup: RunStats[] = []
      const inProc: RunStats[] = []
      const bypassed: RunStats[] = []
      const cachedHit: RunStats[] = []
      const cachedBase: RunStats[] = []
      // The page cache keeps one version per page, the newest read: the other cases' (a longer chain's,
      // from the warm-up) would stand in front of this case's. Emptied, then two passes admit this case's.
      const cacheBytes = sharedPageCache.capacityBytes
      sharedPageCache.resize(0)
      sharedPageCache.resize(cacheBytes)
      for (let i = 0; i < 2; i++) await timed(reqs, 1, (r) => reader.getRelPage(rel, r.blkno, r.lsn))
      for (let run = 0; run < RUNS; run++) {
        const order = shuffled(reqs, run + 1)
        base.push(await timed(order, 1, pread))
        // Chains: every request redone (the page cache, which keeps pages rebuilt by redo, bypassed).
        sharedPageCache.bypass = k > 0
        try {
          serial.push(await timed(order, 1, (r) => reader.getRelPage(rel, r.blkno, r.lsn)))
          parallel.push(await timed(order, IN_FLIGHT, (r) => reader.getRelPage(rel, r.blkno, r.lsn)))
        } finally {
          sharedPageCache.bypass = false
        }
        if (k > 0) {
          // The same requests answered by the page cache.
          cachedHit.push(await timed(order, 1, (r) => reader.getRelPage(rel, r.blkno, r.lsn)))
        }
        if (k > BASE_BELOW) {
          // The page cache holding each page BASE_BELOW records earlier (read there, twice to be admitted,
          // after emptying it): redo starts from that page instead of the image.
          const bytes = sharedPageCache.capacityBytes
          sharedPageCache.resize(0)
          sharedPageCache.resize(bytes)
          for (let i = 0; i < 2; i++) await timed(order, 1, (r) => reader.getRelPage(rel, r.blkno, r.earlierLsn!))
          cachedBase.push(await timed(order, 1, (r) => reader.getRelPage(rel, r.blkno, r.lsn)))
        }
        if (k === 0) {
          sharedPageCache.bypass = sharedValueCache.bypass = true
          try {
            bypassed.push(await timed(order, 1, (r) => reader.getRelPage(rel, r.blkno, r.lsn)))
          } finally {
            sharedPageCache.bypass = sharedValueCache.bypass = false
          }
        }
        lookup.push(await timed(order, 1, async (r) => tl.getKeyHistory(relBlockKey(rel, r.blkno), r.lsn)))
        if (k > 0) {
          const hist = order.map((r) => ({ tag: { ...rel, blkno: r.blkno }, h: tl.getKeyHistory(relBlockKey(rel, r.blkno), r.lsn) }))
          inProc.push(await timed(hist, 1, async ({ tag, h }) => redoBlock(tag, h.image!.data, h.records.map((x) => ({ endLsn: x.lsn, raw: x.raw })), { hintBitsLogged: hint })))
        }
      }
      const b = medianStats(base)
      const add = (what: string, s: RunStats) =>
        rows.push({ case: name, what, requests: reqs.length, p50Us: round(s.p50Us, 1), p99Us: round(s.p99Us, 1), requestsPerS: Math.round(s.requestsPerS), xPread: round(s.p50Us / b.p50Us, 1) })
      add('pread of the page (baseline)', b)
      add('getRelPage, serial', medianStats(serial))
      add(`getRelPage, ${IN_FLIGHT} in flight`, medianStats(parallel))
      if (k === 0) add('getRelPage, serial, caches bypassed', medianStats(bypassed))
      if (k > 0) add('getRelPage, serial, page cache hit', medianStats(cachedHit))
      if (k > BASE_BELOW) add(`getRelPage, serial, page cached ${BASE_BELOW} records earlier`, medianStats(cachedBase))
      add('  history lookup only', medianStats(lookup))
      if (k > 0) add('  redo in-process only', medianStats(inProc))
    }
  } finally {
    closeSync(fd)
  }

  // The work timed is the right work: every page at the end LSN equals the primary's (masked as
  // PostgreSQL's consistency check masks).
  let mismatches = 0
  const theirs = Buffer.allocUnsafe(BLCKSZ)
  const fd2 = openSync(join(data.primaryDir!, facts.relPath), 'r')
  try {
    for (let blk = 0; blk < facts.pages; blk++) {
      readSync(fd2, theirs, 0, BLCKSZ, blk * BLCKSZ)
      const ours = await reader.getRelPage(rel, blk, end)
      if (!maskForCompare(ours, blk, 0).equals(maskForCompare(theirs, blk, 0))) mismatches++
    }
  } finally {
    closeSync(fd2)
  }

  const out = {
    bench: 'getpage-latency',
    node: process.version,
    runs: RUNS,
    data: { dir: data.dir, ...data.info },
    timeline: { lastRecordLsn: formatLsn(end), layers: tl.layerFiles().length, walRedoWorkers: ctx.config.walRedoWorkers },
    pagesWithImage: withImage,
    correctness: { pagesCompared: facts.pages, mismatches },
    rows,
  }
  console.log(JSON.stringify(out, null, 2))
  console.log()
  console.log(
    formatTable(
      ['case', 'path', 'requests', 'p50 µs', 'p99 µs', 'req/s', 'p50 x pread'],
      rows.map((r) => [r.case!, r.what!, r.requests!, r.p50Us!, r.p99Us!, r.requestsPerS!, r.xPread!]),
    ),
  )
  console.log(`\ncorrectness: ${facts.pages} pages at the end LSN compared with the primary's (masked), ${mismatches} differ`)
  console.log(`median of ${RUNS} runs (each run's p50/p99); ${out.timeline.layers} layer files, ${ctx.config.walRedoWorkers} redo workers; pread from the primary's file in the OS cache`)
})
