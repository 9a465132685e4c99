/**
 * Test support for SLRU redo: reads the pages of an SLRU directory (pg_xact, pg_multixact/...) of a real
 * cluster, and replays, page by page, the WAL records whose implicit targets name that page.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { SLRU_PAGES_PER_SEGMENT, type SlruKindFork } from '../../../../src/core/pg/slru.js'
import type { DecodedRecord } from '../../../../src/core/pg/wal-record.js'
import { redoBlock, type RedoRecord } from '../../../../src/core/redo/engine.js'
import { implicitTargets } from '../../../../src/core/redo/rmgr-redo.js'

const PAGE = 8192

/** Every page of every segment file in `dir`, keyed by SLRU page number (copies, safe to keep). */
export function readSlruPages(dir: string): Map<number, Buffer> {
  const out = new Map<number, Buffer>()
  if (!existsSync(dir)) return out
  for (const name of readdirSync(dir)) {
    if (!/^[0-9A-F]{4,6}$/.test(name)) continue
    const segno = parseInt(name, 16)
    const bytes = readFileSync(join(dir, name))
    for (let i = 0; i * PAGE < bytes.length; i++) {
      out.set(segno * SLRU_PAGES_PER_SEGMENT + i, Buffer.from(bytes.subarray(i * PAGE, (i + 1) * PAGE)))
    }
  }
  return out
}

/** For each page of `kind` that some record targets: the records (in WAL order) and whether the first one initialises it. */
export function recordsByPage(records: DecodedRecord[], kind: SlruKindFork): Map<number, RedoRecord[]> {
  const out = new Map<number, RedoRecord[]>()
  for (const r of records) {
    for (const t of implicitTargets(r)) {
      if (t.tag.forkNum !== kind) continue
      let list = out.get(t.tag.blkno)
      if (!list) out.set(t.tag.blkno, (list = []))
      list.push({ endLsn: r.endLsn, raw: r.raw })
    }
  }
  return out
}

export interface SlruComparison {
  pagesChecked: number
  mismatches: Array<{ pageno: number; offset: number; ours: number; theirs: number }>
  /** pages present in the final files that no record touched and that differ from the base */
  changedWithoutRecord: number[]
}

/**
 * Replays, per touched page, base page + its records through the engine and compares with the final page;
 * also checks that every untouched page is unchanged between base and final.
 */
export function compareSlru(kind: SlruKindFork, base: Map<number, Buffer>, final: Map<number, Buffer>, records: DecodedRecord[]): SlruComparison {
  const byPage = recordsByPage(records, kind)
  const res: SlruComparison = { pagesChecked: 0, mismatches: [], changedWithoutRecord: [] }
  for (const [pageno, recs] of [...byPage].sort((a, b) => a[0] - b[0])) {
    const ours = redoBlock({ spcNode: 0, dbNode: 0, relNode: 0, forkNum: kind, blkno: pageno }, base.get(pageno) ?? null, recs, { hintBitsLogged: false })
    const theirs = final.get(pageno) ?? Buffer.alloc(PAGE)
    res.pagesChecked++
    for (let i = 0; i < PAGE; i++) {
      if (ours[i] !== theirs[i]) {
        res.mismatches.push({ pageno, offset: i, ours: ours[i]!, theirs: theirs[i]! })
        break
      }
    }
  }
  for (const [pageno, page] of final) {
    if (byPage.has(pageno)) continue
    const b = base.get(pageno)
    if (!b || !b.equals(page)) res.changedWithoutRecord.push(pageno)
  }
  return res
}
