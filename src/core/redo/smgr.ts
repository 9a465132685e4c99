/**
 * Storage (smgr) resource-manager records: CREATE and TRUNCATE, and the two pages a TRUNCATE edits without
 * referencing them.
 *
 * CREATE makes a fork's file and changes no page (ingest records that the fork exists, empty).
 * TRUNCATE (blkno, rnode, flags) cuts the main fork to `blkno` blocks (flag HEAP) and, in smgr_redo, the
 * FSM (flag FSM) and VM (flag VM) forks to what that heap size needs. Besides dropping whole blocks, which
 * ingest does from `fsmTruncation` / `vmTruncation`, it edits two pages when they exist:
 *  - the last kept VM page, unless the cut falls on a VM page boundary: the bits of every heap block at or
 *    past `blkno` are cleared (visibilitymap_prepare_truncate; pd_lsn untouched; a new page is PageInit-ed);
 *  - the FSM leaf page holding `blkno`'s slot, unless that slot is the page's first: the slots from there on
 *    are zeroed and the page's internal tree rebuilt (FreeSpaceMapPrepareTruncateRel, fsm_truncate_avail),
 *    and fp_next_slot is reset to 0 by the FreeSpaceMapVacuumRange pass that follows.
 * Those are this record's implicit targets. A target past the end of its fork (or a fork that does not
 * exist) is left alone by PostgreSQL: ingest must not store the record for such a page.
 *
 * Not reproduced: FreeSpaceMapVacuumRange also rewrites the slots of the upper FSM pages (root and level 1)
 * covering the cut, with the maximum of each child page. That value lives on another page, so a per-page
 * redo cannot compute it; FSM contents are hints that PostgreSQL itself does not WAL-log, fsm_search repairs
 * a stale upper slot the first time it descends into it, and masks never compare FSM pages. The upper pages
 * keep their previous bytes here.
 *
 * Worked example: TRUNCATE to 10,000 heap blocks. VM: block 0 (10000 / 32672), byte 2500, shift 0: bytes
 * 24 + 2500 .. 8191 of VM block 0 become 0. FSM: leaf logical page 2 (10000 / 4069), slot 1862; physical
 * block 4 (root 0, level-1 page 1, leaves 0 and 1 at blocks 2 and 3); fp_nodes[4095 + 1862 ..] := 0, the
 * FSM fork keeps 5 blocks.
 */
import { CorruptionError } from '../lib/errors.js'
import { ForkNumber, type RelFileNode } from '../pg/reltag.js'
import { RM } from '../pg/rmgr.js'
import type { DecodedRecord } from '../pg/wal-record.js'
import { vmTruncatePage, vmTruncation } from './heap/visibilitymap.js'
import { BLCKSZ, PageGetContentsOffset, pageInit, pageIsNew } from './page/page.js'
import { redoFailure, registerRmgrRedo, type ImplicitTarget, type RedoContext } from './rmgr-redo.js'
import { withRecordErrors } from './slru/common.js'

export const XLOG_SMGR_CREATE = 0x10
export const XLOG_SMGR_TRUNCATE = 0x20

export const SMGR_TRUNCATE_HEAP = 0x0001
export const SMGR_TRUNCATE_VM = 0x0002
export const SMGR_TRUNCATE_FSM = 0x0004
export const SMGR_TRUNCATE_ALL = SMGR_TRUNCATE_HEAP | SMGR_TRUNCATE_VM | SMGR_TRUNCATE_FSM

export const SizeOfSmgrCreate = 16
export const SizeOfSmgrTruncate = 20

// --- records -------------------------------------------------------------------------------------------------

export interface ParsedSmgrCreate {
  readonly rnode: RelFileNode
  readonly forkNum: number
}

export interface ParsedSmgrTruncate {
  /** The new size of the main fork, in blocks. */
  readonly blkno: number
  readonly rnode: RelFileNode
  readonly flags: number
}

function bad(what: string): CorruptionError {
  return new CorruptionError('SMGR_BAD_RECORD', `malformed Storage WAL record: ${what}`, {
    hint: 'The WAL is corrupt or was not written by PostgreSQL 15.',
  })
}

function readRelFileNode(data: Buffer, at: number): RelFileNode {
  return { spcNode: data.readUInt32LE(at), dbNode: data.readUInt32LE(at + 4), relNode: data.readUInt32LE(at + 8) }
}

/** xl_smgr_create: rnode (12) | forkNum i32. */
export function parseSmgrCreate(data: Buffer): ParsedSmgrCreate {
  if (data.length < SizeOfSmgrCreate) throw bad(`CREATE has ${data.length} bytes of main data, expected ${SizeOfSmgrCreate}`)
  const forkNum = data.readInt32LE(12)
  if (forkNum < ForkNumber.Main || forkNum > ForkNumber.Init) throw bad(`CREATE names fork ${forkNum}`)
  return { rnode: readRelFileNode(data, 0), forkNum }
}

/** xl_smgr_truncate: blkno u32 | rnode (12) | flags i32. */
export function parseSmgrTruncate(data: Buffer): ParsedSmgrTruncate {
  if (data.length < SizeOfSmgrTruncate) throw bad(`TRUNCATE has ${data.length} bytes of main data, expected ${SizeOfSmgrTruncate}`)
  return { blkno: data.readUInt32LE(0), rnode: readRelFileNode(data, 4), flags: data.readInt32LE(16) }
}

// --- FSM pages (storage/freespace: fsm_internals.h, fsmpage.c, freespace.c) -----------------------------------

/** FSMPageData starts at PageGetContents: fp_next_slot i32, then the fp_nodes byte tree. */
export const FSM_NEXT_SLOT_OFFSET = PageGetContentsOffset
export const FSM_NODES_OFFSET = PageGetContentsOffset + 4
export const FSM_NODES_PER_PAGE = BLCKSZ - PageGetContentsOffset - 4
export const FSM_NON_LEAF_NODES_PER_PAGE = BLCKSZ / 2 - 1
export const FSM_LEAF_NODES_PER_PAGE = FSM_NODES_PER_PAGE - FSM_NON_LEAF_NODES_PER_PAGE
/** Heap blocks per FSM leaf page (and children per upper page): 4,069. */
export const SLOTS_PER_FSM_PAGE = FSM_LEAF_NODES_PER_PAGE
export const FSM_TREE_DEPTH = 3

/**
 * fsm_logical_to_physical: the FSM fork block of the page at (`level`, `logpageno`). The fork is laid out
 * depth first: root, first level-1 page, its leaves, second level-1 page, ...
 */
export function fsmLogicalToPhysical(level: number, logpageno: number): number {
  let leafno = logpageno
  for (let l = 0; l < level; l++) leafno *= SLOTS_PER_FSM_PAGE
  let pages = 0
  for (let l = 0; l < FSM_TREE_DEPTH; l++) {
    pages += leafno + 1
    leafno = Math.floor(leafno / SLOTS_PER_FSM_PAGE)
  }
  pages -= level
  return pages - 1
}

export interface FsmTruncation {
  /** FSM block of the leaf page holding the first removed heap block's slot. */
  readonly leafBlock: number
  /** That slot; 0 means the leaf page goes entirely and no page is edited. */
  readonly firstRemovedSlot: number
  /** FSM blocks to keep (the fork is cut to this many blocks unless already shorter). */
  readonly newFsmBlocks: number
}

/** Where FreeSpaceMapPrepareTruncateRel cuts the FSM for a heap truncated to `nheapblocks` blocks. */
export function fsmTruncation(nheapblocks: number): FsmTruncation {
  const logpageno = Math.floor(nheapblocks / SLOTS_PER_FSM_PAGE)
  const firstRemovedSlot = nheapblocks % SLOTS_PER_FSM_PAGE
  const leafBlock = fsmLogicalToPhysical(0, logpageno)
  return { leafBlock, firstRemovedSlot, newFsmBlocks: firstRemovedSlot > 0 ? leafBlock + 1 : leafBlock }
}

/** fsm_rebuild_page: recompute every non-leaf node from its children, bottom up. Returns whether any changed. */
export function fsmRebuildPage(page: Buffer): boolean {
  let changed = false
  for (let nodeno = FSM_NON_LEAF_NODES_PER_PAGE - 1; nodeno >= 0; nodeno--) {
    const lchild = 2 * nodeno + 1
    const rchild = lchild + 1
    let v = lchild < FSM_NODES_PER_PAGE ? page[FSM_NODES_OFFSET + lchild]! : 0
    if (rchild < FSM_NODES_PER_PAGE) v = Math.max(v, page[FSM_NODES_OFFSET + rchild]!)
    if (page[FSM_NODES_OFFSET + nodeno] !== v) {
      page[FSM_NODES_OFFSET + nodeno] = v
      changed = true
    }
  }
  return changed
}

/** fsm_truncate_avail: zero the leaf slots from `nslots` on; rebuild the tree if any was nonzero. */
export function fsmTruncateAvail(page: Buffer, nslots: number): boolean {
  if (nslots < 0 || nslots >= FSM_LEAF_NODES_PER_PAGE) throw new RangeError(`FSM slot ${nslots} is out of range`)
  const from = FSM_NODES_OFFSET + FSM_NON_LEAF_NODES_PER_PAGE + nslots
  const to = FSM_NODES_OFFSET + FSM_NODES_PER_PAGE
  let changed = false
  for (let i = from; i < to; i++) {
    if (page[i] !== 0) {
      changed = true
      break
    }
  }
  page.fill(0, from, to)
  if (changed) fsmRebuildPage(page)
  return changed
}

/** The FSM category stored in `slot` of a leaf page. */
export function fsmGetAvail(page: Buffer, slot: number): number {
  return page[FSM_NODES_OFFSET + FSM_NON_LEAF_NODES_PER_PAGE + slot]!
}

// --- implicit targets and redo ----------------------------------------------------------------------------------

/** The pages a TRUNCATE edits in place (see the header): last VM page, FSM leaf page, when partial. */
export function smgrImplicitTargets(rec: DecodedRecord): ImplicitTarget[] {
  if (rec.rmgrInfo !== XLOG_SMGR_TRUNCATE) return []
  const t = parseSmgrTruncate(rec.mainData())
  const out: ImplicitTarget[] = []
  if (t.flags & SMGR_TRUNCATE_FSM) {
    const f = fsmTruncation(t.blkno)
    if (f.firstRemovedSlot > 0) out.push({ tag: { ...t.rnode, forkNum: ForkNumber.Fsm, blkno: f.leafBlock }, willInit: false })
  }
  if (t.flags & SMGR_TRUNCATE_VM) {
    const v = vmTruncation(t.blkno)
    if (v.partialPage) out.push({ tag: { ...t.rnode, forkNum: ForkNumber.VisibilityMap, blkno: v.truncBlock }, willInit: false })
  }
  return out
}

function sameRel(a: RelFileNode, b: RelFileNode): boolean {
  return a.spcNode === b.spcNode && a.dbNode === b.dbNode && a.relNode === b.relNode
}

function smgrRedoImplicit(ctx: RedoContext, page: Buffer): void {
  if (ctx.rec.rmgrInfo !== XLOG_SMGR_TRUNCATE) throw redoFailure(ctx, 'Storage CREATE changes no page')
  const t = withRecordErrors(ctx, () => parseSmgrTruncate(ctx.rec.mainData()))
  if (!sameRel(t.rnode, ctx.tag)) throw redoFailure(ctx, 'the record truncates another relation')
  if (ctx.tag.forkNum === ForkNumber.VisibilityMap && t.flags & SMGR_TRUNCATE_VM) {
    const v = vmTruncation(t.blkno)
    if (v.partialPage && ctx.tag.blkno === v.truncBlock) {
      vmTruncatePage(page, t.blkno)
      return
    }
  }
  if (ctx.tag.forkNum === ForkNumber.Fsm && t.flags & SMGR_TRUNCATE_FSM) {
    const f = fsmTruncation(t.blkno)
    if (f.firstRemovedSlot > 0 && ctx.tag.blkno === f.leafBlock) {
      // fsm_readbuf PageInit-s a page that reads as new.
      if (pageIsNew(page)) pageInit(page, 0)
      fsmTruncateAvail(page, f.firstRemovedSlot)
      page.writeInt32LE(0, FSM_NEXT_SLOT_OFFSET)
      return
    }
  }
  throw redoFailure(ctx, `truncation to ${t.blkno} blocks does not edit this page`)
}

registerRmgrRedo(RM.SMGR, { implicitTargets: smgrImplicitTargets, redoImplicit: smgrRedoImplicit })
