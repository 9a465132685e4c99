/**
 * A readable summary of one 8 KiB page: the header, the line pointers, and per page kind what an operator
 * asks first (heap tuples' xmin/xmax/infomask, the btree opaque data, visibility-map bit counts).
 *
 * For `redo replay` ("why does this page look like this"). Never throws on a damaged page: every offset read
 * from the page is checked against the page bounds first, and what cannot be read is left out and noted in
 * `problems`. Pure; no I/O.
 *
 * Page kind, from the page alone (the caller may pass a hint from the records that built it):
 * visibility-map fork -> 'vm'; pd_upper 0 -> 'new'; free-space-map fork -> 'fsm'; no special space -> 'heap'; an 8-byte special space
 * holding the sequence magic 0x1717 -> 'sequence'; a 16-byte special space whose last u16 is a btree cycle
 * id (at most MAX_BT_CYCLE_ID 0xFF7F; hash and GiST put their page ids 0xFF80/0xFF81 there) -> 'btree'.
 */
import { formatLsn } from '../pg/lsn.js'
import { ForkNumber } from '../pg/reltag.js'
import { pageChecksum } from './page/checksum.js'
import {
  BLCKSZ,
  getPdChecksum,
  getPdFlags,
  getPdLower,
  getPdPagesizeVersion,
  getPdPruneXid,
  getPdSpecial,
  getPdUpper,
  PD_ALL_VISIBLE,
  PD_HAS_FREE_LINES,
  PD_PAGE_FULL,
  pageGetLsn,
  SizeOfPageHeaderData,
} from './page/page.js'
import { LP_DEAD, LP_NORMAL, LP_REDIRECT, LP_UNUSED } from './page/itemid.js'
import {
  BTP_DELETED,
  BTP_HALF_DEAD,
  BTP_HAS_FULLXID,
  BTP_HAS_GARBAGE,
  BTP_INCOMPLETE_SPLIT,
  BTP_LEAF,
  BTP_META,
  BTP_ROOT,
  BTP_SPLIT_END,
  MAX_BT_CYCLE_ID,
  SizeOfBTPageOpaqueData,
} from './page/nbtree-page.js'

export type PageKind = 'heap' | 'btree' | 'vm' | 'fsm' | 'sequence' | 'new' | 'other'

/** Line pointers shown at most: MaxOffsetNumber for 8 KiB pages (a sane page has far fewer). */
export const SUMMARY_LINE_POINTERS_MAX = BLCKSZ / 4
const SEQ_MAGIC = 0x1717
/** FSM pages (freespace/fsmpage.c): fp_next_slot (int32), then a binary tree of uint8 free-space categories. */
const FSM_NODES_OFFSET = 24 + 4
const FSM_NON_LEAF_NODES = BLCKSZ / 2 - 1
const FSM_LEAF_NODES = BLCKSZ - FSM_NODES_OFFSET - FSM_NON_LEAF_NODES
const SizeofHeapTupleHeader = 23

export interface HeapTupleSummary {
  t_xmin: number
  t_xmax: number
  t_cid: number
  t_ctid: string
  t_infomask2: number
  t_infomask: number
  t_hoff: number
  natts: number
}

export interface LinePointerSummary {
  offnum: number
  lp_off: number
  lp_flags: 'UNUSED' | 'NORMAL' | 'REDIRECT' | 'DEAD'
  lp_len: number
  tuple?: HeapTupleSummary
}

export interface BtreeOpaqueSummary {
  btpo_prev: number
  btpo_next: number
  btpo_level: number
  btpo_flags: number
  flags: string[]
  btpo_cycleid: number
}

export interface PageSummary {
  kind: PageKind
  pd_lsn: string
  pd_checksum: number
  /** The checksum PostgreSQL would write for this block now (pages carry stale checksums in WAL and redo). */
  checksumComputed: number
  pd_flags: number
  flags: string[]
  pd_lower: number
  pd_upper: number
  pd_special: number
  pd_pagesize_version: number
  pd_prune_xid: number
  linePointers: LinePointerSummary[]
  btree?: BtreeOpaqueSummary
  /** Visibility-map pages: heap blocks whose bits are set. */
  vm?: { allVisible: number; allFrozen: number }
  /**
   * Free-space-map pages: the root's category (the most free space recorded below it, in BLCKSZ/256-byte
   * steps), how many of the leaf slots record any, and fp_next_slot.
   */
  fsm?: { maxCategory: number; leavesWithSpace: number; leaves: number; nextSlot: number }
  /** What could not be read (pointers out of range, ...). */
  problems: string[]
}

const LP_FLAG_NAMES = { [LP_UNUSED]: 'UNUSED', [LP_NORMAL]: 'NORMAL', [LP_REDIRECT]: 'REDIRECT', [LP_DEAD]: 'DEAD' } as const

function flagNames(v: number, table: ReadonlyArray<readonly [number, string]>): string[] {
  const out: string[] = []
  for (const [bit, name] of table) if (v & bit) out.push(name)
  return out
}

const PD_FLAG_TABLE = [
  [PD_HAS_FREE_LINES, 'HAS_FREE_LINES'],
  [PD_PAGE_FULL, 'PAGE_FULL'],
  [PD_ALL_VISIBLE, 'ALL_VISIBLE'],
] as const

const BTP_FLAG_TABLE = [
  [BTP_LEAF, 'LEAF'],
  [BTP_ROOT, 'ROOT'],
  [BTP_DELETED, 'DELETED'],
  [BTP_META, 'META'],
  [BTP_HALF_DEAD, 'HALF_DEAD'],
  [BTP_SPLIT_END, 'SPLIT_END'],
  [BTP_HAS_GARBAGE, 'HAS_GARBAGE'],
  [BTP_INCOMPLETE_SPLIT, 'INCOMPLETE_SPLIT'],
  [BTP_HAS_FULLXID, 'HAS_FULLXID'],
] as const

/** The page kind from its bytes (see the module header). */
export function classifyPage(page: Buffer, forkNum: number): PageKind {
  if (forkNum === ForkNumber.VisibilityMap) return 'vm'
  if (getPdUpper(page) === 0) return 'new'
  if (forkNum === ForkNumber.Fsm) return 'fsm'
  const special = getPdSpecial(page)
  if (special === BLCKSZ) return 'heap'
  if (special > BLCKSZ || special < SizeOfPageHeaderData) return 'other'
  const size = BLCKSZ - special
  if (size === 8 && page.readUInt32LE(special) === SEQ_MAGIC) return 'sequence'
  if (size === SizeOfBTPageOpaqueData && page.readUInt16LE(BLCKSZ - 2) <= MAX_BT_CYCLE_ID) return 'btree'
  return 'other'
}

export function summarizePage(page: Buffer, blkno: number, forkNum: number, kindHint?: PageKind): PageSummary {
  const problems: string[] = []
  if (page.length !== BLCKSZ) throw new RangeError(`a page is ${BLCKSZ} bytes, got ${page.length}`)
  const kind = kindHint ?? classifyPage(page, forkNum)
  const lower = getPdLower(page)
  const upper = getPdUpper(page)
  const special = getPdSpecial(page)
  const s: PageSummary = {
    kind,
    pd_lsn: formatLsn(pageGetLsn(page)),
    pd_checksum: getPdChecksum(page),
    checksumComputed: pageChecksum(page, blkno),
    pd_flags: getPdFlags(page),
    flags: flagNames(getPdFlags(page), PD_FLAG_TABLE),
    pd_lower: lower,
    pd_upper: upper,
    pd_special: special,
    pd_pagesize_version: getPdPagesizeVersion(page),
    pd_prune_xid: getPdPruneXid(page),
    linePointers: [],
    problems,
  }
  if (kind === 'new') return s
  if (kind === 'vm') {
    let allVisible = 0
    let allFrozen = 0
    for (let i = SizeOfPageHeaderData; i < BLCKSZ; i++) {
      const b = page[i]!
      for (let sh = 0; sh < 8; sh += 2) {
        if ((b >> sh) & 1) allVisible++
        if ((b >> sh) & 2) allFrozen++
      }
    }
    s.vm = { allVisible, allFrozen }
    return s
  }
  if (kind === 'fsm') {
    let leavesWithSpace = 0
    for (let i = FSM_NODES_OFFSET + FSM_NON_LEAF_NODES; i < BLCKSZ; i++) if (page[i] !== 0) leavesWithSpace++
    s.fsm = { maxCategory: page[FSM_NODES_OFFSET]!, leavesWithSpace, leaves: FSM_LEAF_NODES, nextSlot: page.readInt32LE(24) }
    return s
  }
  if (lower < SizeOfPageHeaderData || lower > upper || upper > special || special > BLCKSZ) {
    problems.push(`insane page pointers: pd_lower ${lower}, pd_upper ${upper}, pd_special ${special}`)
  }
  const nlp = Math.min(Math.max(0, Math.floor((Math.min(lower, BLCKSZ) - SizeOfPageHeaderData) / 4)), SUMMARY_LINE_POINTERS_MAX)
  for (let off = 1; off <= nlp; off++) {
    const raw = page.readUInt32LE(SizeOfPageHeaderData + (off - 1) * 4)
    const lp_off = raw & 0x7fff
    const flags = (raw >>> 15) & 0x3
    const lp_len = raw >>> 17
    const lp: LinePointerSummary = { offnum: off, lp_off, lp_flags: LP_FLAG_NAMES[flags as 0 | 1 | 2 | 3], lp_len }
    if (kind === 'heap' && flags === LP_NORMAL) {
      if (lp_off + SizeofHeapTupleHeader <= BLCKSZ && lp_len >= SizeofHeapTupleHeader && lp_off >= SizeOfPageHeaderData) {
        lp.tuple = {
          t_xmin: page.readUInt32LE(lp_off),
          t_xmax: page.readUInt32LE(lp_off + 4),
          t_cid: page.readUInt32LE(lp_off + 8),
          t_ctid: `(${page.readUInt16LE(lp_off + 12) * 65536 + page.readUInt16LE(lp_off + 14)},${page.readUInt16LE(lp_off + 16)})`,
          t_infomask2: page.readUInt16LE(lp_off + 18),
          t_infomask: page.readUInt16LE(lp_off + 20),
          t_hoff: page[lp_off + 22]!,
          natts: page.readUInt16LE(lp_off + 18) & 0x07ff,
        }
      } else {
        problems.push(`line pointer ${off} points outside the page (lp_off ${lp_off}, lp_len ${lp_len})`)
      }
    }
    s.linePointers.push(lp)
  }
  if (kind === 'btree') {
    const at = BLCKSZ - SizeOfBTPageOpaqueData
    const btpo_flags = page.readUInt16LE(at + 12)
    s.btree = {
      btpo_prev: page.readUInt32LE(at),
      btpo_next: page.readUInt32LE(at + 4),
      btpo_level: page.readUInt32LE(at + 8),
      btpo_flags,
      flags: flagNames(btpo_flags, BTP_FLAG_TABLE),
      btpo_cycleid: page.readUInt16LE(at + 14),
    }
  }
  return s
}

/** Text lines of a summary for a terminal (tables are drawn by the command). */
export function summaryHeaderLine(s: PageSummary): string {
  const hex = (v: number, w: number): string => '0x' + v.toString(16).toUpperCase().padStart(w, '0')
  return (
    `kind ${s.kind}  pd_lsn ${s.pd_lsn}  pd_checksum ${hex(s.pd_checksum, 4)} (computed now ${hex(s.checksumComputed, 4)})  ` +
    `pd_flags ${hex(s.pd_flags, 4)}${s.flags.length > 0 ? ' ' + s.flags.join('|') : ''}  ` +
    `lower ${s.pd_lower}  upper ${s.pd_upper}  special ${s.pd_special}  version ${hex(s.pd_pagesize_version, 4)}  prune_xid ${s.pd_prune_xid}`
  )
}
