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
 * `concurrency` (at most VERIFY_CONCURRENCY_MAX) bounds the pages held by checks in flight; `heldBytesMax`
 * bounds what is kept between records, across pages: each page met keeps its last image (8 KiB) and its
 * queued records, so a run over the WAL of a large database would otherwise hold an image of every page it
 * ever touched (gigabytes). Over the budget, the pages used longest ago are forgotten (`basesDropped`): the
 * next image of such a page has no base, and counts in `noBase` as a page first met there would. Queued
 * records are copied out of the reader's chunks, so a queued record holds its own bytes, not a 1 MiB chunk.
 */
import { PageserverError, UsageError } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { ForkNumber, forkName, formatRelFileNode, type BufferTag } from '../pg/reltag.js'
import { rmgrName } from '../pg/rmgr.js'
import { recordTypeName } from '../pg/rmgr-identify.js'
import { isSlruFork } from '../pg/slru.js'
import { ownedCopy } from '../lib/bytes.js'
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

/** Default of `heldBytesMax`: bases of 32,768 pages (or fewer pages with long queued chains). */
export const VERIFY_HELD_BYTES_MAX_DEFAULT = 256 * 1024 * 1024

/** Counted per page state besides its buffers: the map entry, its key string, the state object. */
const PAGE_STATE_OVERHEAD_BYTES = 256

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
  /** pages whose base and queued records were forgotten to stay within the memory budget (heldBytesMax) */
  basesDropped: number
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
  /** Bytes kept between records across all pages (bases, queued records); see the module comment. */
  heldBytesMax?: number
  /** Checks in flight at once (default 1: `addRecord` returns after its checks are done). */
  concurrency?: number
}

interface PageState {
  base: Buffer | null
  pending: RedoRecord[]
  /** the pending chain overflowed or broke: unusable until the next APPLY or will-init */
  broken: boolean
  /** raw bytes of `pending` */
  pendingBytes: number
  /** what this state was last counted for in `heldBytes` */
  bytes: number
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
  private readonly heldBytesMax: number
  private held = 0
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
    basesDropped: 0,
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
    this.heldBytesMax = opts.heldBytesMax ?? VERIFY_HELD_BYTES_MAX_DEFAULT
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

  /** Bytes kept between records (bases, queued records, per-page overhead); within heldBytesMax after each record. */
  get heldBytes(): number {
    return this.held
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

  /** The state of a page, made the most recently used (a Map iterates in insertion order: oldest first). */
  private state(tag: BufferTag): PageState {
    const k = tagKey(tag)
    let s = this.pages.get(k)
    if (s) {
      this.pages.delete(k)
    } else {
      s = { base: null, pending: [], broken: false, pendingBytes: 0, bytes: PAGE_STATE_OVERHEAD_BYTES }
      this.held += s.bytes
    }
    this.pages.set(k, s)
    return s
  }

  /** Counts a state's buffers again after a change. */
  private recount(st: PageState): void {
    const bytes = PAGE_STATE_OVERHEAD_BYTES + (st.base === null ? 0 : st.base.length) + st.pendingBytes
    this.held += bytes - st.bytes
    st.bytes = bytes
  }

  /** Forgets the pages used longest ago until what is held fits in heldBytesMax. */
  private evict(): void {
    for (const [k, st] of this.pages) {
      if (this.held <= this.heldBytesMax) return
      this.pages.delete(k)
      this.held -= st.bytes
      if (st.base !== null || st.pending.length > 0) this.r.basesDropped++
    }
  }

  async addRecord(rec: DecodedRecord): Promise<void> {
    this.r.recordsRead++
    const redoRec: RedoRecord = { endLsn: rec.endLsn, raw: rec.raw }
    // What a page's queue keeps: the record in memory of its own (rec.raw may be a view of a read chunk).
    let queued: RedoRecord | null = null
    const toQueue = (): RedoRecord => (queued ??= { endLsn: rec.endLsn, raw: ownedCopy(rec.raw) })
    const checking = (rec.xl_info & XLR_CHECK_CONSISTENCY) !== 0
    for (const block of rec.blocks) {
      const tag: BufferTag = { ...block.rel, forkNum: block.forkNum, blkno: block.blkno }
      const st = this.state(tag)
      if (!block.hasImage) {
        this.queue(st, block.willInit, toQueue())
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
      this.queue(this.state(tag), willInit, toQueue())
    }
    this.evict()
  }

  private async waitForRoom(): Promise<void> {
    while (this.running >= this.concurrency) await this.nextCompletion()
  }

  private queue(st: PageState, willInit: boolean, r: RedoRecord): void {
    if (willInit) {
      st.base = null
      st.pending = [r]
      st.pendingBytes = r.raw.length
      st.broken = false
    } else if (st.broken) {
      return
    } else if (st.pending.length >= this.pendingRecordsMax) {
      st.broken = true
      st.pending = []
      st.pendingBytes = 0
    } else {
      st.pending.push(r)
      st.pendingBytes += r.raw.length
    }
    this.recount(st)
  }

  private rebase(st: PageState, image: Buffer, endLsn: Lsn): void {
    // The image was taken before PageSetLSN; the page PostgreSQL kept carries the end LSN.
    if (!pageIsNew(image)) pageSetLsn(image, endLsn)
    st.base = image
    st.pending = []
    st.pendingBytes = 0
    st.broken = false
    this.recount(st)
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
