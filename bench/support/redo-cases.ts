/**
 * Redo speed per group of records, against copying one 8 KiB page (the baseline, same run): the shared body
 * of redo-heap.ts and redo-btree.ts.
 *
 * A PostgreSQL 15 cluster with wal_consistency_checking=all runs the caller's workload, so every block
 * reference carries its page's post-image. Each (previous image of the page, record) pair whose block the
 * caller puts in a group is one redo case, what a GetPage@LSN with one record to apply costs: redoBlock =
 * CRC check + decode + per-block rules + the rmgr body, on a copy of the base. Each group is timed `runs`
 * times; the median per-case time is reported, and its ratio to the page copy (how many page copies one
 * redo costs). Prints JSON, then a table.
 */
import { PgCluster } from '../../test/support/pg-cluster.js'
import { readWalRecords } from '../../test/support/wal-verify.js'
import { restoreBlockImage, XLR_CHECK_CONSISTENCY, type DecodedBlock, type DecodedRecord } from '../../src/core/pg/wal-record.js'
import type { BufferTag } from '../../src/core/pg/reltag.js'
import { pageSetLsn } from '../../src/core/redo/page/page.js'
import { redoBlock, type RedoRecord } from '../../src/core/redo/engine.js'
import { median } from './stats.js'

/** Cases kept per group: enough for stable medians, bounded memory. */
const CASES_PER_GROUP_MAX = 5000

export interface RedoCaseBench {
  /** Benchmark name, in the JSON and the cluster's name. */
  readonly name: string
  readonly runs: number
  /** Writes the WAL to time (the cluster is fresh). */
  workload(pg: PgCluster): Promise<void>
  /** The group a block reference of a consistency-checked record is timed in, or null to leave it out. */
  groupOf(rec: DecodedRecord, b: DecodedBlock): string | null
  /** Only these groups, when given. */
  readonly only?: readonly string[]
  /** Width of the group column. */
  readonly labelWidth: number
}

interface Case {
  tag: BufferTag
  base: Buffer
  rec: RedoRecord
}

async function collect(o: RedoCaseBench): Promise<Map<string, Case[]>> {
  const pg = await PgCluster.start({ walConsistencyChecking: 'all', name: `bench-${o.name}` })
  try {
    const start = await pg.insertLsn()
    await o.workload(pg)
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
        const group = checking && !b.applyImage && (prev !== undefined || b.willInit) ? o.groupOf(rec, b) : null
        if (group !== null) {
          const list = groups.get(group) ?? []
          if (list.length < CASES_PER_GROUP_MAX) {
            list.push({ tag: { ...b.rel, forkNum: b.forkNum, blkno: b.blkno }, base: prev ?? Buffer.alloc(8192), rec: { endLsn: rec.endLsn, raw: rec.raw } })
          }
          groups.set(group, list)
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

function timePerCase(runs: number, cases: Case[], fn: (c: Case) => void): number {
  for (const c of cases) fn(c) // warm-up
  const samples: number[] = []
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    for (const c of cases) fn(c)
    samples.push(Number(process.hrtime.bigint() - t0) / cases.length)
  }
  return median(samples)
}

export async function runRedoCaseBench(o: RedoCaseBench): Promise<void> {
  const groups = await collect(o)
  const opts = { hintBitsLogged: false }
  let sink = 0
  const rows: Array<{ type: string; cases: number; copyNs: number; redoNs: number; ratio: number }> = []
  for (const [type, cases] of [...groups.entries()].sort()) {
    if (o.only && !o.only.includes(type)) continue
    const copyNs = timePerCase(o.runs, cases, (c) => {
      sink ^= Buffer.from(c.base)[100]!
    })
    const redoNs = timePerCase(o.runs, cases, (c) => {
      sink ^= redoBlock(c.tag, c.base, [c.rec], opts)[100]!
    })
    rows.push({ type, cases: cases.length, copyNs: Math.round(copyNs), redoNs: Math.round(redoNs), ratio: Number((redoNs / copyNs).toFixed(2)) })
  }
  console.log(JSON.stringify({ bench: o.name, runs: o.runs, rows, sink: sink & 1 }, null, 1))
  console.log(`\n${'type'.padEnd(o.labelWidth)} cases   page copy ns   redo ns   redo / copy`)
  for (const r of rows) {
    console.log(`${r.type.padEnd(o.labelWidth)} ${String(r.cases).padStart(5)} ${String(r.copyNs).padStart(14)} ${String(r.redoNs).padStart(9)} ${String(r.ratio).padStart(13)}`)
  }
}
