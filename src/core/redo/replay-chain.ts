/**
 * The chain of WAL records that rebuilds one page at one LSN, as `redo replay` shows and applies it.
 *
 * Records arrive in WAL order (all of them, up to the LSN); the collector keeps those that change the target
 * page: a block reference naming it, or an implicit target (a VM page whose bits a heap record clears, the
 * last VM/FSM page of a storage TRUNCATE). Without a base page the chain starts at the last record that
 * fixes the page's whole content: a real full-page write (BKPIMAGE_APPLY) or a WILL_INIT record; records
 * before it cannot matter. With a base page (taken from a file), the chain is every record that ends after
 * the base's pd_lsn (redo itself skips records at or below the page LSN, except APPLY images).
 *
 * Consistency-check images (wal_consistency_checking, APPLY clear) are not starting points: redo never uses
 * them, so a chain rebuilt from them would prove nothing.
 *
 * Records are copied as they are kept, so a chain does not pin the read buffers of the whole WAL. Limits:
 * the chain's records and bytes are bounded like one walredo request (REQUEST_RECORDS_MAX / _BYTES_MAX);
 * past them the chain is marked overflowed until the next starting point.
 */
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { ForkNumber, type BufferTag } from '../pg/reltag.js'
import { RM } from '../pg/rmgr.js'
import { isSlruFork } from '../pg/slru.js'
import type { DecodedBlock, DecodedRecord } from '../pg/wal-record.js'
import { recordLabel, implicitTargets } from './rmgr-redo.js'
import type { RedoRecord } from './engine.js'
import './all.js'

/** Same bounds as one walredo request (core/walredo/protocol.ts), so a collected chain can always be sent. */
export const REPLAY_CHAIN_RECORDS_MAX = 100_000
export const REPLAY_CHAIN_BYTES_MAX = 128 * 1024 * 1024

export interface ChainEntry {
  lsn: Lsn
  endLsn: Lsn
  /** "Heap/INSERT+INIT" */
  type: string
  rmid: number
  /** What the record does to this page, in words. */
  action: string
  /** The record changes the page without a block reference. */
  implicit: boolean
  record: RedoRecord
}

export type ChainStart =
  | { kind: 'image'; lsn: Lsn }
  | { kind: 'init'; lsn: Lsn }
  | { kind: 'base'; lsn: Lsn }

export interface ReplayChain {
  entries: ChainEntry[]
  /** Where the chain begins; null when records touch the page but none fixes its content. */
  start: ChainStart | null
  /** Records of the page seen before the chain's start (made irrelevant by it). */
  recordsBeforeStart: number
  /** The chain exceeded REPLAY_CHAIN_RECORDS_MAX or REPLAY_CHAIN_BYTES_MAX after its last start. */
  overflowed: boolean
}

function sameBlock(b: DecodedBlock, tag: BufferTag): boolean {
  return b.blkno === tag.blkno && b.forkNum === tag.forkNum && b.rel.relNode === tag.relNode && b.rel.dbNode === tag.dbNode && b.rel.spcNode === tag.spcNode
}

function sameTag(a: BufferTag, b: BufferTag): boolean {
  return a.blkno === b.blkno && a.forkNum === b.forkNum && a.relNode === b.relNode && a.dbNode === b.dbNode && a.spcNode === b.spcNode
}

/** Offsets named in heap main data (heapam_xlog.h), for the action text; null when not a heap record we name. */
function heapDetail(rec: DecodedRecord, block: DecodedBlock): string | null {
  const d = rec.mainData()
  const u16 = (at: number): number | null => (d.length >= at + 2 ? d.readUInt16LE(at) : null)
  if (rec.xl_rmid !== RM.HEAP) return null
  switch (rec.rmgrInfo & 0x70) {
    case 0x00: // INSERT: offnum at 0
      return `inserts the tuple at offset ${u16(0)}`
    case 0x10: // DELETE: xmax(4) offnum(2)
      return `deletes the tuple at offset ${u16(4)} (xmax ${d.length >= 4 ? d.readUInt32LE(0) : '?'})`
    case 0x20: // UPDATE
    case 0x40: // HOT_UPDATE: old_xmax(4) old_offnum(2) infobits(1) flags(1) new_xmax(4) new_offnum(2)
      if (block.id === 0) {
        const both = rec.block(1) === undefined
        return `puts the new tuple version at offset ${u16(12)}` + (both ? `, marks the old one at offset ${u16(4)} updated` : '')
      }
      return `marks the old tuple version at offset ${u16(4)} updated`
    case 0x50: // CONFIRM: offnum at 0
      return `confirms the speculative insertion at offset ${u16(0)}`
    case 0x60: // LOCK: locking_xid(4) offnum(2)
      return `locks the tuple at offset ${u16(4)}`
    case 0x70: // INPLACE: offnum at 0
      return `overwrites the tuple at offset ${u16(0)} in place`
    default:
      return null
  }
}

/** What `rec` does to the page named by `block` (or implicitly, when `block` is null). */
export function describeAction(rec: DecodedRecord, block: DecodedBlock | null, tag: BufferTag): string {
  if (block === null) {
    if (tag.forkNum === ForkNumber.VisibilityMap) {
      return rec.xl_rmid === RM.SMGR ? 'truncation clears the bits past the new end (no block reference)' : 'clears visibility-map bits (no block reference)'
    }
    return 'changes the page without a block reference'
  }
  const parts: string[] = []
  if (block.hasImage && block.applyImage) return 'restores a full-page image (the page is fully given; redo body skipped)'
  if (block.willInit) parts.push('initialises the page from zeros')
  const detail = heapDetail(rec, block)
  if (detail !== null) parts.push(detail)
  else if (block.hasData) parts.push(`applies ${block.dataLength} bytes of block data`)
  else parts.push('changes the page (no block data)')
  if (block.hasImage) parts.push('(+ consistency-check image)')
  return parts.join('; ')
}

export class ReplayChainCollector {
  private entries: ChainEntry[] = []
  private bytes = 0
  private start: ChainStart | null
  private before = 0
  private overflowed = false

  /** `baseLsn`: pd_lsn of a caller-given base page, or null to start from the last image / init. */
  constructor(
    private readonly tag: BufferTag,
    private readonly baseLsn: Lsn | null,
  ) {
    this.start = baseLsn === null ? null : { kind: 'base', lsn: baseLsn }
  }

  add(rec: DecodedRecord): void {
    if (isSlruFork(this.tag.forkNum)) return
    let block: DecodedBlock | null = null
    for (const b of rec.blocks) {
      if (sameBlock(b, this.tag)) {
        block = b
        break
      }
    }
    let implicitInit: boolean | null = null
    if (block === null) {
      for (const t of implicitTargets(rec)) {
        if (sameTag(t.tag, this.tag)) {
          implicitInit = t.willInit
          break
        }
      }
      if (implicitInit === null) return
    }
    if (this.baseLsn !== null) {
      if (rec.endLsn <= this.baseLsn) return
    } else {
      const fixes = block !== null ? (block.hasImage && block.applyImage) || block.willInit : implicitInit === true
      if (fixes) {
        this.before += this.entries.length
        this.entries = []
        this.bytes = 0
        this.overflowed = false
        const isImage = block !== null && block.hasImage && block.applyImage
        this.start = { kind: isImage ? 'image' : 'init', lsn: rec.lsn }
      } else if (this.start === null) {
        this.before++
        return
      }
    }
    if (this.overflowed) return
    if (this.entries.length >= REPLAY_CHAIN_RECORDS_MAX || this.bytes + rec.raw.length > REPLAY_CHAIN_BYTES_MAX) {
      this.overflowed = true
      this.entries = []
      this.bytes = 0
      return
    }
    this.bytes += rec.raw.length
    this.entries.push({
      lsn: rec.lsn,
      endLsn: rec.endLsn,
      type: recordLabel(rec),
      rmid: rec.xl_rmid,
      action: describeAction(rec, block, this.tag),
      implicit: block === null,
      record: { endLsn: rec.endLsn, raw: Buffer.from(rec.raw) },
    })
  }

  result(): ReplayChain {
    return { entries: this.entries, start: this.start, recordsBeforeStart: this.before, overflowed: this.overflowed }
  }
}

/** "full-page image at 0/1A2B3C8" */
export function describeStart(s: ChainStart | null): string {
  if (s === null) return 'no starting point'
  if (s.kind === 'image') return `full-page image at ${formatLsn(s.lsn)}`
  if (s.kind === 'init') return `page initialisation at ${formatLsn(s.lsn)}`
  return `base page with pd_lsn ${formatLsn(s.lsn)}`
}
