/**
 * Page primitives of the redo engine: how each costs against copying one 8 KiB page (the baseline,
 * measured in the same run). Prints JSON, then a table. Run: npm run bench -- bench/redo-page.ts
 *
 * Each case is timed as `batch` calls, `runs` times; the median per-call time is reported. Cases that
 * mutate their page start each call with a page copy, so their ratio includes one baseline copy.
 */
import { pageChecksum } from '../src/core/redo/page/checksum.js'
import { pageInit } from '../src/core/redo/page/page.js'
import {
  PAI_IS_HEAP,
  PAI_OVERWRITE,
  pageAddItemExtended,
  pageIndexMultiDelete,
  pageRepairFragmentation,
} from '../src/core/redo/page/bufpage.js'
import { itemIdSetDead, itemIdSetUnused } from '../src/core/redo/page/itemid.js'
import { maskPageInto } from '../src/core/redo/mask/index.js'
import { median } from './support/stats.js'

const runs = 15
const batch = 2000

function time(fn: () => void): number {
  for (let i = 0; i < batch; i++) fn() // warm-up
  const samples: number[] = []
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < batch; i++) fn()
    samples.push(Number(process.hrtime.bigint() - t0) / batch)
  }
  return median(samples)
}

/** A heap page of 150 tuples of 25..60 bytes, filled in order, like INSERTs do. */
function heapPage(): Buffer {
  const p = Buffer.alloc(8192)
  pageInit(p, 0)
  const t = Buffer.alloc(64, 0x61)
  for (let i = 1; i <= 150; i++) {
    t.writeUInt16LE(2, 18)
    t.writeUInt16LE(0x0902, 20)
    t[22] = 24
    if (pageAddItemExtended(p, t, 25 + (i % 36), i, PAI_OVERWRITE | PAI_IS_HEAP) === 0) break
  }
  return p
}

/** A btree-like leaf: 300 items of 16 bytes, 16-byte special space. */
function indexPage(): Buffer {
  const p = Buffer.alloc(8192)
  pageInit(p, 16)
  const t = Buffer.alloc(16, 0x11)
  t.writeUInt16LE(16, 6)
  for (let i = 1; i <= 300; i++) pageAddItemExtended(p, t, 16, i, 0)
  p.writeUInt16LE(1, 8176 + 12) // BTP_LEAF
  return p
}

const heap = heapPage()
const pruned = Buffer.from(heap)
for (let i = 1; i <= 150; i++) {
  if (i % 3 === 0) itemIdSetDead(pruned, i)
  else if (i % 7 === 0) itemIdSetUnused(pruned, i)
}
const leaf = indexPage()
const dels = Array.from({ length: 300 }, (_, i) => i + 1).filter((i) => i % 6 === 0)
const work = Buffer.alloc(8192)
const unalignedBacking = Buffer.alloc(8192 + 1)
heap.copy(unalignedBacking, 1)
const unaligned = unalignedBacking.subarray(1)

let sink = 0
const baselineNs = time(() => {
  heap.copy(work)
  sink ^= work[100]!
})

const cases: Array<[string, () => void]> = [
  ['pageChecksum (aligned)', () => (sink ^= pageChecksum(heap, 7))],
  ['pageChecksum (unaligned view)', () => (sink ^= pageChecksum(unaligned, 7))],
  ['copy + pageAddItemExtended x1 (heap insert)', () => {
    pruned.copy(work)
    sink ^= pageAddItemExtended(work, heap, 40, 1, PAI_OVERWRITE | PAI_IS_HEAP)
  }],
  ['copy + pageRepairFragmentation (150 lp, 1/3 pruned)', () => {
    pruned.copy(work)
    pageRepairFragmentation(work)
  }],
  ['copy + pageIndexMultiDelete (50 of 300)', () => {
    leaf.copy(work)
    pageIndexMultiDelete(work, dels)
  }],
  ['copy + pageIndexMultiDelete (2 of 300, retail)', () => {
    leaf.copy(work)
    pageIndexMultiDelete(work, [10, 250])
  }],
  ['maskPageInto heap (150 tuples)', () => maskPageInto(10, heap, 0, work)],
  ['maskPageInto btree leaf (300 items)', () => maskPageInto(11, leaf, 1, work)],
]

const results = cases.map(([name, fn]) => {
  const ns = time(fn)
  return { name, medianNs: Math.round(ns), ratioToPageCopy: Number((ns / baselineNs).toFixed(2)) }
})

console.log(JSON.stringify({ bench: 'redo-page', runs, batch, baseline: { name: 'copy one 8 KiB page', medianNs: Math.round(baselineNs) }, results, sink }, null, 2))
console.log('')
console.log('case'.padEnd(52) + 'median ns'.padStart(12) + 'x page copy'.padStart(14))
console.log('copy one 8 KiB page (baseline)'.padEnd(52) + String(Math.round(baselineNs)).padStart(12) + '1.00'.padStart(14))
for (const r of results) console.log(r.name.padEnd(52) + String(r.medianNs).padStart(12) + r.ratioToPageCopy.toFixed(2).padStart(14))
