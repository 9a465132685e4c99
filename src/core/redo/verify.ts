/**
 * Record-by-record verification of our redo against PostgreSQL's own page images.
 *
 * With `wal_consistency_checking` on the primary, every record of a maskable resource manager carries the
 * post-image of every block it touches (APPLY clear unless it was also a real full-page write). For each
 * such image we take the previous image of the same page as the base, redo the record (through whatever
 * `redo` function the caller gives: in-process, or the worker pool), mask both pages as PostgreSQL's check
 * does, and compare. The image then becomes the base of the next record on that page, so one bug does not
 * cascade.
 *
 * Pages a record changes without an image (visibility-map bits that heap records clear, SLRU pages, pages of
 * records from resource managers without masks) are chained: their records queue up until the next image of
 * that page, and are redone together with it. That is how implicit VM clears are checked (through the next
 * Heap2/VISIBLE record's VM image). VM pages are compared with LSN and checksum masked only, since
 * PostgreSQL's heap_mask would blank the whole bitmap.
 *
 * Concurrency: a check's inputs (base = the previous image, chain, PostgreSQL's image) are fixed when the
 * record is added; the next check of the same page starts from the next *image*, never from our result. So
 * checks are independent and `concurrency` of them may be in flight at once (a worker pool pipelines them);
 * per-page order is kept because the chaining state advances synchronously in `addRecord`. `addRecord`
 * returns once fewer than `concurrency` checks are in flight; `drain()` waits for all of them. With the
 * default concurrency of 1 every check has finished when `addRecord` returns, as in a serial loop.
 * The report is the same whatever the concurrency: counters are sums, and `firstMismatches` / `errors` keep
 * the first ones in WAL order (each check carries its position), not in completion order.
 *
 * Limits: `pendingRecordsMax` per page bounds memory when a page's records never meet an image;
 * `concurrency` (at most VERIFY_CONCURRENCY_MAX) bounds the pages held by checks in flight.
 */
import { PageserverError, UsageError } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { ForkNumber, forkName, formatRelFileNode, type BufferTag } from '../pg/reltag.js'
import { rmgrName } from '../pg/rmgr.js'
import { recordTypeName } from '../pg/rmgr-identify.js'
import { isSlruFork } from '../pg/slru.js'
import { BLCKSZ, restoreBlockImage, XLR_CHECK_CONSISTENCY, type DecodedRecord } from '../pg/wal-record.js'
import { maskPage, maskVmPage } from './mask/index.js'
import { pageIsNew, pageSetLsn } from './page/page.js'
import { implicitTargets } from './rmgr-redo.js'
import type { RedoRecord } from './engine.js'
// implicitTargets() answers from the rmgr registry: make sure every rmgr has registered, even when the redo
// itself runs in worker processes and the engine is never imported here.
import './all.js'

export type RedoFn = (tag: BufferTag, base: Buffer | null, records: RedoRecord[]) => Promise<Buffer> | Buffer

/** Checks in flight at most: each holds a base, PostgreSQL's masked image and a chain of records. */
export const VERIFY_CONCURRENCY_MAX = 1024

export interface VerifyMismatch {
  lsn: string
  type: string
  rel: string
  fork: string
  blk: number
  /** first differing byte after masking */
  offset: number
}

export interface VerifyError {
  lsn: string
  type: string
  rel: string
  fork: string
  blk: number
  code: string
  message: string
}

export interface VerifyReport {
  recordsRead: number
  blocksChecked: number
  mismatches: number
  /** records skipped because no redo exists for them (per block) */
  unsupported: number
  /** verification images with no earlier image of the page to start from */
  noBase: number
  byRecordType: Record<string, { checked: number; mismatches: number }>
  unsupportedByType: Record<string, number>
  firstMismatches: VerifyMismatch[]
  /** other redo failures (not mismatches, not unsupported): first few messages */
  errors: VerifyError[]
}

export interface VerifierOptions {
  redo: RedoFn
  firstMismatchesMax?: number
  pendingRecordsMax?: number
  errorsMax?: number
  /** Checks in flight at once (default 1: `addRecord` returns after its checks are done). */
  concurrency?: number
}

interface PageState {
  base: Buffer | null
  pending: RedoRecord[]
  /** the pending chain overflowed or broke: unusable until the next APPLY or will-init */
  broken: boolean
}

function tagKey(t: BufferTag): string {
  return `${t.spcNode}/${t.dbNode}/${t.relNode}/${t.forkNum}/${t.blkno}`
}

function typeLabel(rec: DecodedRecord): string {
  return `${rmgrName(rec.xl_rmid)}/${recordTypeName(rec.xl_rmid, rec.xl_info)}`
}

/** The first offset at which two pages differ, or -1. */
export function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length)
  if (a.equals(b)) return -1
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return n
}

/** Inserts `item` at its place by `seq` into a bounded list kept sorted by seq; drops the largest beyond `max`. */
function insertBounded<T>(items: T[], seqs: number[], item: T, seq: number, max: number): void {
  if (items.length >= max && seq > seqs[seqs.length - 1]!) return
  let i = seqs.length
  while (i > 0 && seqs[i - 1]! > seq) i--
  items.splice(i, 0, item)
  seqs.splice(i, 0, seq)
  if (items.length > max) {
    items.pop()
    seqs.pop()
  }
}

interface Where {
  lsn: string
  type: string
  rel: string
  fork: string
  blk: number
}

export class RedoVerifier {
  private readonly pages = new Map<string, PageState>()
  private readonly redo: RedoFn
  private readonly firstMismatchesMax: number
  private readonly pendingRecordsMax: number
  private readonly errorsMax: number
  private readonly concurrency: number
  private readonly mismatchSeqs: number[] = []
  private readonly errorSeqs: number[] = []
  private checkSeq = 0
  private running = 0
  private waiters: Array<() => void> = []
  private readonly r: VerifyReport = {
    recordsRead: 0,
    blocksChecked: 0,
    mismatches: 0,
    unsupported: 0,
    noBase: 0,
    byRecordType: {},
    unsupportedByType: {},
    firstMismatches: [],
    errors: [],
  }

  constructor(opts: VerifierOptions) {
    this.redo = opts.redo
    this.firstMismatchesMax = opts.firstMismatchesMax ?? 20
    this.pendingRecordsMax = opts.pendingRecordsMax ?? 10_000
    this.errorsMax = opts.errorsMax ?? 20
    const c = opts.concurrency ?? 1
    if (!Number.isInteger(c) || c < 1 || c > VERIFY_CONCURRENCY_MAX) {
      throw new UsageError('VERIFY_BAD_CONCURRENCY', `verification concurrency ${c} is not an integer from 1 to ${VERIFY_CONCURRENCY_MAX}`, {
        hint: 'Give a small number of checks in flight, e.g. the redo pool size times its in-flight limit.',
      })
    }
    this.concurrency = c
  }

  /** Checks started but not finished. */
  get inFlight(): number {
    return this.running
  }

  /** The report so far. Complete once `drain()` has resolved (or at once with concurrency 1). */
  report(): VerifyReport {
    return this.r
  }

  /** Waits for every check in flight; returns the complete report. */
  async drain(): Promise<VerifyReport> {
    while (this.running > 0) await this.nextCompletion()
    return this.r
  }

  private nextCompletion(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  private state(tag: BufferTag): PageState {
    const k = tagKey(tag)
    let s = this.pages.get(k)
    if (!s) {
      s = { base: null, pending: [], broken: false }
      this.pages.set(k, s)
    }
    return s
  }

  async addRecord(rec: DecodedRecord): Promise<void> {
    this.r.recordsRead++
    const redoRec: RedoRecord = { endLsn: rec.endLsn, raw: rec.raw }
    const checking = (rec.xl_info & XLR_CHECK_CONSISTENCY) !== 0
    for (const block of rec.blocks) {
      const tag: BufferTag = { ...block.rel, forkNum: block.forkNum, blkno: block.blkno }
      const st = this.state(tag)
      if (!block.hasImage) {
        this.queue(st, block.willInit, redoRec)
        continue
      }
      const image = restoreBlockImage(rec, block, Buffer.allocUnsafe(BLCKSZ))
      if (block.applyImage || !checking) {
        // A real full-page write: the new base, nothing to check.
        this.rebase(st, image, rec.endLsn)
        continue
      }
      if (st.broken || (st.base === null && !block.willInit)) {
        this.r.noBase++
        this.rebase(st, image, rec.endLsn)
        continue
      }
      const base = block.willInit ? null : st.base
      const chain = block.willInit ? [redoRec] : [...st.pending, redoRec]
      // PostgreSQL's side is masked now, before rebase() stamps the LSN into the image it keeps as the base.
      const theirs = this.maskTheirs(rec, tag, image)
      this.launch(rec, tag, base, chain, theirs)
      this.rebase(st, image, rec.endLsn)
      await this.waitForRoom()
    }
    for (const { tag, willInit } of implicitTargets(rec)) {
      // SLRU pages have no image to compare against here (they are checked against pg_xact files elsewhere);
      // keep no chain for them.
      if (isSlruFork(tag.forkNum)) continue
      this.queue(this.state(tag), willInit, redoRec)
    }
  }

  private async waitForRoom(): Promise<void> {
    while (this.running >= this.concurrency) await this.nextCompletion()
  }

  private queue(st: PageState, willInit: boolean, r: RedoRecord): void {
    if (willInit) {
      st.base = null
      st.pending = [r]
      st.broken = false
      return
    }
    if (st.broken) return
    if (st.pending.length >= this.pendingRecordsMax) {
      st.broken = true
      st.pending = []
      return
    }
    st.pending.push(r)
  }

  private rebase(st: PageState, image: Buffer, endLsn: Lsn): void {
    // The image was taken before PageSetLSN; the page PostgreSQL kept carries the end LSN.
    if (!pageIsNew(image)) pageSetLsn(image, endLsn)
    st.base = image
    st.pending = []
    st.broken = false
  }

  private maskTheirs(rec: DecodedRecord, tag: BufferTag, image: Buffer): Buffer | Error {
    try {
      return maskFor(rec, tag, image)
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e))
    }
  }

  private launch(rec: DecodedRecord, tag: BufferTag, base: Buffer | null, chain: RedoRecord[], theirs: Buffer | Error): void {
    const seq = this.checkSeq++
    const type = typeLabel(rec)
    const where: Where = { lsn: formatLsn(rec.lsn), type, rel: formatRelFileNode(tag), fork: forkName(tag.forkNum), blk: tag.blkno }
    this.running++
    const done = (): void => {
      this.running--
      const ws = this.waiters
      this.waiters = []
      for (const w of ws) w()
    }
    let result: Promise<Buffer>
    try {
      result = Promise.resolve(this.redo(tag, base, chain))
    } catch (e) {
      result = Promise.reject(e)
    }
    result.then(
      (ours) => {
        this.compare(rec, tag, where, seq, ours, theirs)
        done()
      },
      (e: unknown) => {
        this.redoFailed(where, seq, e)
        done()
      },
    )
  }

  private redoFailed(where: Where, seq: number, e: unknown): void {
    if (e instanceof PageserverError && e.code === 'REDO_UNSUPPORTED_RECORD') {
      this.r.unsupported++
      this.r.unsupportedByType[where.type] = (this.r.unsupportedByType[where.type] ?? 0) + 1
      return
    }
    this.countError(where, seq, e)
  }

  /** A check that ended in an error other than "unsupported": counted as checked and mismatched. */
  private countError(where: Where, seq: number, e: unknown): void {
    const stat = (this.r.byRecordType[where.type] ??= { checked: 0, mismatches: 0 })
    stat.checked++
    stat.mismatches++
    this.r.blocksChecked++
    this.r.mismatches++
    const entry: VerifyError = {
      ...where,
      code: e instanceof PageserverError ? e.code : 'INTERNAL',
      message: e instanceof Error ? e.message : String(e),
    }
    insertBounded(this.r.errors, this.errorSeqs, entry, seq, this.errorsMax)
  }

  private compare(rec: DecodedRecord, tag: BufferTag, where: Where, seq: number, ours: Buffer, theirs: Buffer | Error): void {
    if (theirs instanceof Error) {
      this.countError(where, seq, theirs)
      return
    }
    let mine: Buffer
    try {
      mine = maskFor(rec, tag, ours)
    } catch (e) {
      // Our page is too broken to mask (pointers out of range): a mismatch with a reason.
      this.countError(where, seq, e)
      return
    }
    const stat = (this.r.byRecordType[where.type] ??= { checked: 0, mismatches: 0 })
    stat.checked++
    this.r.blocksChecked++
    const offset = firstDifference(mine, theirs)
    if (offset >= 0) {
      stat.mismatches++
      this.r.mismatches++
      insertBounded(this.r.firstMismatches, this.mismatchSeqs, { ...where, offset }, seq, this.firstMismatchesMax)
    }
  }
}

/** A masked copy of `page` as the check compares it: VM pages by LSN and checksum only, others by rm_mask. */
function maskFor(rec: DecodedRecord, tag: BufferTag, page: Buffer): Buffer {
  if (tag.forkNum === ForkNumber.VisibilityMap) {
    const copy = Buffer.from(page)
    maskVmPage(copy)
    return copy
  }
  return maskPage(rec.xl_rmid, page, tag.blkno)
}
