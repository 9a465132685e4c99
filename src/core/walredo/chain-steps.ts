/**
 * Long chains cut into steps: a page's records beyond CHAIN_STEP_RECORDS (or CHAIN_STEP_BYTES of WAL) are
 * redone as several requests, each one's page the next one's base (WalRedoManager, manager.ts).
 *
 * Why: without compaction a page's chain grows with its history (an audit met a visibility-map page with
 * 158,882 records), and one request is bounded by the engine and the protocol; in steps no chain is too long
 * to serve. Redo depends only on the page and each record in turn, so the result is the same.
 *
 * Invariant: every step holds at least one record and at most `maxRecords`, and at most CHAIN_STEP_BYTES
 * unless it is a single record; the steps, concatenated, are the chain in order. A chain that fits is
 * returned as it is, in one step (the common case: a GetPage chain is often one record).
 */
import type { RedoRequestInput } from './protocol.js'

/** Records per redo request; a longer chain is redone in steps. Below the engine's limit. */
export const CHAIN_STEP_RECORDS = 50_000
/** WAL bytes per redo request, likewise (half of what one request may carry). */
export const CHAIN_STEP_BYTES = 64 * 1024 * 1024

/** `records` cut into steps of at most `maxRecords` records and CHAIN_STEP_BYTES of WAL (one step if it fits). */
export function chainSteps(records: RedoRequestInput['records'], maxRecords: number): Array<RedoRequestInput['records']> {
  if (records.length <= maxRecords) {
    let bytes = 0
    for (const r of records) bytes += r.raw.length
    if (bytes <= CHAIN_STEP_BYTES) return [records]
  }
  const steps: Array<RedoRequestInput['records']> = []
  let start = 0
  let bytes = 0
  for (let i = 0; i < records.length; i++) {
    const len = records[i]!.raw.length
    if (i > start && (i - start === maxRecords || bytes + len > CHAIN_STEP_BYTES)) {
      steps.push(records.slice(start, i))
      start = i
      bytes = 0
    }
    bytes += len
  }
  steps.push(records.slice(start))
  return steps
}
