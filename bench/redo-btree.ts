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
import { PgCluster } from '../test/support/pg-cluster.js'
import { readWalRecords } from '../test/support/wal-verify.js'
import { btreeSetup, btreeSteps } from '../test/core/redo/nbtree/workload.js'
import { restoreBlockImage, XLR_CHECK_CONSISTENCY } from '../src/core/pg/wal-record.js'
import { RM } from '../src/core/pg/rmgr.js'
import type { BufferTag } from '../src/core/pg/reltag.js'
import { pageSetLsn } from '../src/core/redo/page/page.js'
import { recordLabel } from '../src/core/redo/rmgr-redo.js'
import { redoBlock, type RedoRecord } from '../src/core/redo/engine.js'

const runs = Number(process.env.BTREE_BENCH_RUNS ?? 7)
/** Cases kept per (type, block id): enough for stable medians, bounded memory. */
const casesPerGroupMax = 5000

interface Case {
  tag: BufferTag
  base: Buffer
  rec: RedoRecord
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

async function collect(): Promise<Map<string, Case[]>> {
  const pg = await PgCluster.start({ walConsistencyChecking: 'all', name: 'bench-btree' })
  try {
    const start = await pg.insertLsn()
    await pg.runWorkload([...btreeSetup, ...btreeSteps])
    const end = await pg.insertLsn()
    await pg.switchWal()
    const records = readWalRecords(pg.walDir, pg.walSegments(), start, end)
    const last = new Map<string, Buffer>()
    const groups = new Map<string, Case[]>()
    for (const rec of records) {
      for (const b of rec.blocks) {
        if (!b.hasImage) continue
        const key = `${b.rel.relNode}/${b.forkNum}/${b.blkno}`
        const image = restoreBlockImage(rec, b, Buffer.alloc(8192))
        const prev = last.get(key)
        const checking = (rec.xl_info & XLR_CHECK_CONSISTENCY) !== 0
        if (rec.xl_rmid === RM.BTREE && checking && !b.applyImage && (prev !== undefined || b.willInit)) {
          const label = `${recordLabel(rec)} blk ${b.id}`
          const list = groups.get(label) ?? []
          if (list.length < casesPerGroupMax) {
            list.push({ tag: { ...b.rel, forkNum: b.forkNum, blkno: b.blkno }, base: prev ?? Buffer.alloc(8192), rec: { endLsn: rec.endLsn, raw: rec.raw } })
          }
          groups.set(label, list)
        }
        pageSetLsn(image, rec.endLsn)
        last.set(key, image)
      }
    }
    return groups
  } finally {
    await pg.destroy()
  }
}

function timePerCase(cases: Case[], fn: (c: Case) => void): number {
  for (const c of cases) fn(c) // warm-up
  const samples: number[] = []
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    for (const c of cases) fn(c)
    samples.push(Number(process.hrtime.bigint() - t0) / cases.length)
  }
  return median(samples)
}

const groups = await collect()
const opts = { hintBitsLogged: false }
let sink = 0
const rows: Array<{ type: string; cases: number; copyNs: number; redoNs: number; ratio: number }> = []
for (const [type, cases] of [...groups.entries()].sort()) {
  const copyNs = timePerCase(cases, (c) => {
    sink ^= Buffer.from(c.base)[100]!
  })
  const redoNs = timePerCase(cases, (c) => {
    sink ^= redoBlock(c.tag, c.base, [c.rec], opts)[100]!
  })
  rows.push({ type, cases: cases.length, copyNs: Math.round(copyNs), redoNs: Math.round(redoNs), ratio: Number((redoNs / copyNs).toFixed(2)) })
}
console.log(JSON.stringify({ bench: 'redo-btree', runs, rows, sink: sink & 1 }, null, 1))
console.log('\ntype                                cases   page copy ns   redo ns   redo / copy')
for (const r of rows) {
  console.log(`${r.type.padEnd(35)} ${String(r.cases).padStart(5)} ${String(r.copyNs).padStart(14)} ${String(r.redoNs).padStart(9)} ${String(r.ratio).padStart(13)}`)
}
