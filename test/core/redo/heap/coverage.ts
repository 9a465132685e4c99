/**
 * Assertions shared by the heap redo integration tests: zero mismatches, every expected record type
 * checked, and counts of the record flavours (flags) a workload produced, so a test can insist that the
 * interesting variants (prefix/suffix compression, implicit VM clears, ...) really occurred.
 */
import { expect } from 'vitest'
import type { DecodedRecord } from '../../../../src/core/pg/wal-record.js'
import { RM } from '../../../../src/core/pg/rmgr.js'
import { recordLabel } from '../../../../src/core/redo/rmgr-redo.js'
import { redoBlock } from '../../../../src/core/redo/engine.js'
import { RedoVerifier, type VerifyReport } from '../../../../src/core/redo/verify.js'
import { ForkNumber } from '../../../../src/core/pg/reltag.js'
import { vmImplicitTargets } from '../../../../src/core/redo/heap/index.js'
import { summarize } from '../../../support/wal-verify.js'

export function expectClean(report: VerifyReport, types: readonly string[]): void {
  const msg = summarize(report)
  expect(report.mismatches, msg).toBe(0)
  expect(report.errors, msg).toEqual([])
  const heapUnsupported = Object.keys(report.unsupportedByType).filter((k) => k.startsWith('Heap'))
  expect(heapUnsupported, msg).toEqual([])
  for (const t of types) expect(report.byRecordType[t]?.checked ?? 0, `${t} was never checked\n${msg}`).toBeGreaterThan(0)
}

/** Counts of record flavours, keyed like "prefix Heap/HOT_UPDATE" or "vmclear Heap/LOCK". */
export function flavours(records: DecodedRecord[]): Record<string, number> {
  const out: Record<string, number> = {}
  const inc = (k: string): void => {
    out[k] = (out[k] ?? 0) + 1
  }
  for (const r of records) {
    if (r.xl_rmid !== RM.HEAP && r.xl_rmid !== RM.HEAP2) continue
    const label = recordLabel(r)
    inc(label)
    const d = r.mainData()
    if (vmImplicitTargets(r).length > 0) inc(`vmclear ${label}`)
    if (r.xl_rmid === RM.HEAP && /UPDATE/.test(label)) {
      if (d[7]! & 0x20) inc(`prefix ${label}`)
      if (d[7]! & 0x40) inc(`suffix ${label}`)
      if (r.block(1) !== undefined) inc(`crosspage ${label}`)
    }
    if (label === 'Heap/DELETE' && d[7]! & 0x10) inc('delete partition-move')
    if (label.startsWith('Heap/INSERT') && d[2]! & 0x04) inc('insert speculative')
    if (label === 'Heap/LOCK' && d[6]! & 0x01) inc('lock multixact')
    if (label.startsWith('Heap2/MULTI_INSERT') && d[0]! & 0x20) inc('multi-insert all-frozen-set')
  }
  return out
}

/**
 * Re-verifies `records` with a redo that ignores the records a VM page gets only implicitly (the heap
 * records that clear its bits): the VM images of later VISIBLE records must then disagree somewhere, which
 * shows the workload really exercises the implicit clears.
 */
export async function mismatchesWithoutImplicitVmClears(records: DecodedRecord[], hintBitsLogged: boolean): Promise<number> {
  const explicit = (tagRel: number, rec: DecodedRecord): boolean => rec.blocks.some((b) => b.forkNum === ForkNumber.VisibilityMap && b.rel.relNode === tagRel)
  const byRaw = new Map<Buffer, DecodedRecord>(records.map((r) => [r.raw, r]))
  const v = new RedoVerifier({
    redo: (tag, base, recs) =>
      redoBlock(
        tag,
        base,
        recs.filter((x) => tag.forkNum !== ForkNumber.VisibilityMap || explicit(tag.relNode, byRaw.get(x.raw)!)),
        { hintBitsLogged },
      ),
  })
  for (const r of records) await v.addRecord(r)
  return v.report().byRecordType['Heap2/VISIBLE']?.mismatches ?? 0
}
