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
 * Limits: `pendingRecordsMax` per page bounds memory when a page's records never meet an image.
 */
import { PageserverError } from '../lib/errors.js'
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

export type RedoFn = (tag: BufferTag, base: Buffer | null, records: RedoRecord[]) => Promise<Buffer> | Buffer

export interface VerifyMismatch {
  lsn: string
  type: string
  rel: string
  fork: string
  blk: number
  /** first differing byte after masking */
  offset: number
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
  errors: Array<{ lsn: string; type: string; rel: string; fork: string; blk: number; code: string; message: string }>
}

export interface VerifierOptions {
  redo: RedoFn
  firstMismatchesMax?: number
  pendingRecordsMax?: number
  errorsMax?: number
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

function firstDifference(a: Buffer, b: Buffer): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i
  return -1
}

export class RedoVerifier {
  private readonly pages = new Map<string, PageState>()
  private readonly redo: RedoFn
  private readonly firstMismatchesMax: number
  private readonly pendingRecordsMax: number
  private readonly errorsMax: number
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
  }

  report(): VerifyReport {
    return this.r
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
      await this.check(rec, tag, base, chain, image)
      this.rebase(st, image, rec.endLsn)
    }
    for (const { tag, willInit } of implicitTargets(rec)) {
      // SLRU pages have no image to compare against here (they are checked against pg_xact files elsewhere);
      // keep no chain for them.
      if (isSlruFork(tag.forkNum)) continue
      this.queue(this.state(tag), willInit, redoRec)
    }
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

  private async check(rec: DecodedRecord, tag: BufferTag, base: Buffer | null, chain: RedoRecord[], image: Buffer): Promise<void> {
    const type = typeLabel(rec)
    const where = { lsn: formatLsn(rec.lsn), type, rel: formatRelFileNode(tag), fork: forkName(tag.forkNum), blk: tag.blkno }
    let ours: Buffer
    try {
      ours = await this.redo(tag, base, chain)
    } catch (e) {
      if (e instanceof PageserverError && e.code === 'REDO_UNSUPPORTED_RECORD') {
        this.r.unsupported++
        this.r.unsupportedByType[type] = (this.r.unsupportedByType[type] ?? 0) + 1
        return
      }
      const stat = (this.r.byRecordType[type] ??= { checked: 0, mismatches: 0 })
      stat.checked++
      stat.mismatches++
      this.r.blocksChecked++
      this.r.mismatches++
      if (this.r.errors.length < this.errorsMax) {
        this.r.errors.push({ ...where, code: e instanceof PageserverError ? e.code : 'INTERNAL', message: e instanceof Error ? e.message : String(e) })
      }
      return
    }
    let mine: Buffer
    let theirs: Buffer
    if (tag.forkNum === ForkNumber.VisibilityMap) {
      mine = Buffer.from(ours)
      theirs = Buffer.from(image)
      maskVmPage(mine)
      maskVmPage(theirs)
    } else {
      mine = maskPage(rec.xl_rmid, ours, tag.blkno)
      theirs = maskPage(rec.xl_rmid, image, tag.blkno)
    }
    const stat = (this.r.byRecordType[type] ??= { checked: 0, mismatches: 0 })
    stat.checked++
    this.r.blocksChecked++
    const offset = firstDifference(mine, theirs)
    if (offset >= 0) {
      stat.mismatches++
      this.r.mismatches++
      if (this.r.firstMismatches.length < this.firstMismatchesMax) this.r.firstMismatches.push({ ...where, offset })
    }
  }
}
