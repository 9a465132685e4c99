/**
 * Unit tests of the heap redo with hand-built records and pages: the byte-level effects PostgreSQL's redo
 * has (tuple headers, prefix/suffix reconstruction, SHORTALIGNed multi-insert tuples, freeze plans, line
 * pointer states), the records that change no page (TRUNCATE, NEW_CID, REWRITE), the visibility-map bit
 * rules (implicit clears, VISIBLE, truncation), and malformed records failing with REDO_FAILED.
 */
import { describe, expect, it } from 'vitest'
import { lsn, type Lsn } from '../../../../src/core/pg/lsn.js'
import { ForkNumber, type BufferTag, type RelFileNode } from '../../../../src/core/pg/reltag.js'
import { RM } from '../../../../src/core/pg/rmgr.js'
import { decodeRecord } from '../../../../src/core/pg/wal-record.js'
import { redoBlock } from '../../../../src/core/redo/engine.js'
import { implicitTargets, rmgrRedo } from '../../../../src/core/redo/rmgr-redo.js'
import { PageserverError } from '../../../../src/core/lib/errors.js'
import {
  HEAPBLOCKS_PER_PAGE,
  heapBlkToMapBlock,
  heapBlkToMapByte,
  heapBlkToMapOffset,
  vmClear,
  vmGetStatus,
  vmSet,
  vmTruncatePage,
  vmTruncation,
} from '../../../../src/core/redo/heap/index.js'
import { fixInfomaskFromInfobits } from '../../../../src/core/redo/heap/tuple.js'
import { buildRecord, le, type BlockSpec } from './record-builder.js'

const REL: RelFileNode = { spcNode: 1663, dbNode: 5, relNode: 16384 }
const HEAP = (blkno: number): BufferTag => ({ ...REL, forkNum: ForkNumber.Main, blkno })
const VM = (blkno: number): BufferTag => ({ ...REL, forkNum: ForkNumber.VisibilityMap, blkno })
const OPTS = { hintBitsLogged: false }
const XID = 1000

let nextLsn = 0x1000000n
function at(): Lsn {
  nextLsn += 0x100n
  return lsn(nextLsn)
}

function redo(tag: BufferTag, base: Buffer | null, raw: Buffer, opts = OPTS): { page: Buffer; endLsn: Lsn } {
  const endLsn = at()
  return { page: redoBlock(tag, base, [{ endLsn, raw }], opts), endLsn }
}

function expectRedoFailed(fn: () => unknown, text: RegExp): void {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(PageserverError)
    expect((e as PageserverError).code).toBe('REDO_FAILED')
    expect((e as PageserverError).message).toMatch(text)
    return
  }
  throw new Error('expected REDO_FAILED')
}

/** xl_heap_header + tuple bytes from t_bits on (t_hoff 24: one byte of null bitmap / padding). */
function tupleData(body: string, infomask = 0x0802, infomask2 = 2): Buffer {
  return Buffer.concat([le([infomask2, 2], [infomask, 2], [24, 1]), Buffer.from([0]), Buffer.from(body)])
}

function heapBlock(blkno: number, data?: Buffer, willInit = false, id = 0): BlockSpec {
  return { id, rel: REL, fork: ForkNumber.Main, blkno, data, willInit }
}

/** Line pointer `off` of a page: [lp_off, flags, len]. */
function lp(page: Buffer, off: number): [number, number, number] {
  const raw = page.readUInt32LE(24 + 4 * (off - 1))
  return [raw & 0x7fff, (raw >>> 15) & 3, raw >>> 17]
}

function tupleAtOff(page: Buffer, off: number): Buffer {
  const [o, , len] = lp(page, off)
  return page.subarray(o, o + len)
}

/** A page holding the given tuple bodies at offsets 1..n, built through INSERT+INIT and INSERT redo. */
function pageWith(bodies: string[], blkno = 0): Buffer {
  let page: Buffer | null = null
  bodies.forEach((body, i) => {
    const init = i === 0
    const raw = buildRecord({
      rmid: RM.HEAP,
      info: init ? 0x80 : 0x00,
      xid: XID,
      blocks: [heapBlock(blkno, tupleData(body), init)],
      main: le([i + 1, 2], [0, 1]),
    })
    page = redo(HEAP(blkno), page, raw).page
  })
  return page!
}

describe('Heap INSERT', () => {
  it('rebuilds the tuple header: xmin, t_cid 0 without COMBOCID, ctid, xmax 0, infomask from WAL', () => {
    // HEAP_COMBOCID (0x20) in the logged infomask must be cleared by SetCmin.
    const raw = buildRecord({ rmid: RM.HEAP, info: 0x80, xid: 4242, blocks: [heapBlock(7, tupleData('hello', 0x0822, 3), true)], main: le([1, 2], [0, 1]) })
    const { page, endLsn } = redo(HEAP(7), null, raw)
    expect(page.readUInt16LE(12)).toBe(28) // pd_lower: one line pointer
    const len = 23 + 1 + 5
    expect(lp(page, 1)).toEqual([8192 - 32, 1, len])
    const t = tupleAtOff(page, 1)
    expect(t.readUInt32LE(0)).toBe(4242) // xmin
    expect(t.readUInt32LE(4)).toBe(0) // xmax
    expect(t.readUInt32LE(8)).toBe(0) // t_cid
    expect([t.readUInt16LE(12), t.readUInt16LE(14), t.readUInt16LE(16)]).toEqual([0, 7, 1]) // ctid (7,1)
    expect(t.readUInt16LE(18)).toBe(3)
    expect(t.readUInt16LE(20)).toBe(0x0802)
    expect(t[22]).toBe(24)
    expect(t.subarray(24).toString()).toBe('hello')
    const hi = page.readUInt32LE(0)
    const lo = page.readUInt32LE(4)
    expect((BigInt(hi) << 32n) | BigInt(lo)).toBe(endLsn)
  })

  it('clears PD_ALL_VISIBLE with XLH_INSERT_ALL_VISIBLE_CLEARED and lists the VM page as an implicit target', () => {
    const base = pageWith(['one'], 40000)
    base.writeUInt16LE(base.readUInt16LE(10) | 4, 10)
    const raw = buildRecord({ rmid: RM.HEAP, info: 0x00, xid: XID, blocks: [heapBlock(40000, tupleData('two'))], main: le([2, 2], [1, 1]) })
    const { page } = redo(HEAP(40000), base, raw)
    expect(page.readUInt16LE(10) & 4).toBe(0)
    expect(implicitTargets(decodeRecord(raw))).toEqual([{ tag: VM(1), willInit: false }])
  })

  it('fails with REDO_FAILED on a short main data or an offset past the end', () => {
    const base = pageWith(['one'])
    const short = buildRecord({ rmid: RM.HEAP, info: 0, xid: XID, blocks: [heapBlock(0, tupleData('x'))], main: le([2, 2]) })
    expectRedoFailed(() => redo(HEAP(0), base, short), /xl_heap_insert main data has 2 bytes/)
    const gap = buildRecord({ rmid: RM.HEAP, info: 0, xid: XID, blocks: [heapBlock(0, tupleData('x'))], main: le([5, 2], [0, 1]) })
    expectRedoFailed(() => redo(HEAP(0), base, gap), /invalid max offset number/)
  })
})

describe('Heap UPDATE / HOT_UPDATE', () => {
  it('rebuilds a same-page new tuple from a prefix and suffix of the old one', () => {
    const base = pageWith(['AAAAABBBBBCCCCC'])
    // prefix 5 ('AAAAA'), suffix 5 ('CCCCC'); WAL carries the bitmap byte and the changed middle.
    const data = Buffer.concat([le([5, 2], [5, 2]), tupleData('XXXXX')])
    const main = le([XID, 4], [1, 2], [0, 1], [0x20 | 0x40, 1], [0, 4], [2, 2])
    const raw = buildRecord({ rmid: RM.HEAP, info: 0x40, xid: XID + 1, blocks: [heapBlock(0, data)], main })
    const { page } = redo(HEAP(0), base, raw)
    const t = tupleAtOff(page, 2)
    expect(t.length).toBe(23 + 1 + 15)
    expect(t.subarray(24).toString()).toBe('AAAAAXXXXXCCCCC')
    expect(t.readUInt32LE(0)).toBe(XID + 1)
    const old = tupleAtOff(page, 1)
    expect(old.readUInt32LE(4)).toBe(XID) // old xmax
    expect(old.readUInt16LE(16)).toBe(2) // t_ctid -> (0, 2)
    expect(old.readUInt16LE(18) & 0x4000).toBe(0x4000) // HEAP_HOT_UPDATED
    expect(page.readUInt32LE(20)).toBe(XID + 1) // pd_prune_xid
  })

  it('redoes the two halves of a cross-page update on their own pages, +INIT for the new one', () => {
    const oldPage = pageWith(['old-row'], 3)
    const main = le([XID + 2, 4], [1, 2], [0, 1], [0x01 | 0x02, 1], [0, 4], [1, 2])
    const blocks = [heapBlock(9, tupleData('new-row'), true, 0), heapBlock(3, undefined, false, 1)]
    const raw = buildRecord({ rmid: RM.HEAP, info: 0xa0, xid: XID + 2, blocks, main })

    const { page: newPage } = redo(HEAP(9), null, raw)
    expect(tupleAtOff(newPage, 1).subarray(24).toString()).toBe('new-row')
    const o = redo(HEAP(3), oldPage, raw).page
    const old = tupleAtOff(o, 1)
    expect([old.readUInt16LE(14), old.readUInt16LE(16)]).toEqual([9, 1]) // t_ctid -> (9, 1)
    expect(old.readUInt16LE(18) & 0x4000).toBe(0) // not HOT
    // OLD and NEW all-visible cleared: both heap blocks' VM page (the same VM page 0) is one target.
    expect(implicitTargets(decodeRecord(raw))).toEqual([{ tag: VM(0), willInit: false }])
  })

  it('refuses prefix compression across pages', () => {
    const main = le([XID, 4], [1, 2], [0, 1], [0x20, 1], [0, 4], [1, 2])
    const blocks = [heapBlock(9, Buffer.concat([le([3, 2]), tupleData('abc')]), true, 0), heapBlock(3, undefined, false, 1)]
    const raw = buildRecord({ rmid: RM.HEAP, info: 0xa0, xid: XID, blocks, main })
    expectRedoFailed(() => redo(HEAP(9), null, raw), /prefix\/suffix compression across pages/)
  })
})

describe('Heap DELETE, LOCK, CONFIRM, INPLACE', () => {
  it('super-delete clears xmin; a partition move points t_ctid at (InvalidBlockNumber, 0xFFFD)', () => {
    const base = pageWith(['a', 'b'])
    const superDel = buildRecord({ rmid: RM.HEAP, info: 0x10, xid: XID, blocks: [heapBlock(0)], main: le([XID, 4], [1, 2], [0, 1], [0x08, 1]) })
    const p1 = redo(HEAP(0), base, superDel).page
    expect(tupleAtOff(p1, 1).readUInt32LE(0)).toBe(0)
    expect(tupleAtOff(p1, 1).readUInt32LE(4)).toBe(0)
    const move = buildRecord({ rmid: RM.HEAP, info: 0x10, xid: XID, blocks: [heapBlock(0)], main: le([XID, 4], [2, 2], [0, 1], [0x10, 1]) })
    const t = tupleAtOff(redo(HEAP(0), p1, move).page, 2)
    expect(t.readUInt32LE(4)).toBe(XID)
    expect([t.readUInt16LE(12), t.readUInt16LE(14), t.readUInt16LE(16)]).toEqual([0xffff, 0xffff, 0xfffd])
  })

  it('a delete naming a missing tuple fails', () => {
    const raw = buildRecord({ rmid: RM.HEAP, info: 0x10, xid: XID, blocks: [heapBlock(0)], main: le([XID, 4], [9, 2], [0, 1], [0, 1]) })
    expectRedoFailed(() => redo(HEAP(0), pageWith(['a']), raw), /invalid lp/)
  })

  it('a pure lock resets t_ctid and HOT_UPDATED; a lock keeping an updater does not', () => {
    const base = pageWith(['a'])
    const t0 = tupleAtOff(base, 1)
    t0.writeUInt16LE(5, 16) // pretend a forward link (0, 5)
    t0.writeUInt16LE(t0.readUInt16LE(18) | 0x4000, 18)
    const keepUpdater = buildRecord({ rmid: RM.HEAP, info: 0x60, xid: XID, blocks: [heapBlock(0)], main: le([77, 4], [1, 2], [0x08, 1], [0, 1]) })
    const p1 = redo(HEAP(0), base, keepUpdater).page
    expect(tupleAtOff(p1, 1).readUInt16LE(16)).toBe(5)
    expect(tupleAtOff(p1, 1).readUInt16LE(18) & 0x4000).toBe(0x4000)
    expect(tupleAtOff(p1, 1).readUInt32LE(4)).toBe(77)
    const pure = buildRecord({ rmid: RM.HEAP, info: 0x60, xid: XID, blocks: [heapBlock(0)], main: le([78, 4], [1, 2], [0x02 | 0x08, 1], [0x01, 1]) })
    const p2 = redo(HEAP(0), p1, pure).page
    expect(tupleAtOff(p2, 1).readUInt16LE(16)).toBe(1)
    expect(tupleAtOff(p2, 1).readUInt16LE(18) & 0x4000).toBe(0)
    expect(tupleAtOff(p2, 1).readUInt16LE(20) & 0x00d0).toBe(0x0090) // LOCK_ONLY | KEYSHR
    expect(implicitTargets(decodeRecord(pure))).toEqual([{ tag: VM(0), willInit: false }])
  })

  it('confirm sets t_ctid to the tuple itself; inplace overwrites the body and checks its length', () => {
    const base = pageWith(['abcdef'])
    tupleAtOff(base, 1).writeUInt16LE(0xfffe, 16) // speculative token
    const confirm = buildRecord({ rmid: RM.HEAP, info: 0x50, xid: XID, blocks: [heapBlock(0)], main: le([1, 2]) })
    const p1 = redo(HEAP(0), base, confirm).page
    expect(tupleAtOff(p1, 1).readUInt16LE(16)).toBe(1)
    const inplace = buildRecord({ rmid: RM.HEAP, info: 0x70, xid: XID, blocks: [heapBlock(0, Buffer.from('zyxwvu'))], main: le([1, 2]) })
    expect(tupleAtOff(redo(HEAP(0), p1, inplace).page, 1).subarray(24).toString()).toBe('zyxwvu')
    const wrong = buildRecord({ rmid: RM.HEAP, info: 0x70, xid: XID, blocks: [heapBlock(0, Buffer.from('zyx'))], main: le([1, 2]) })
    expectRedoFailed(() => redo(HEAP(0), p1, wrong), /wrong tuple length/)
  })
})

describe('records that change no page', () => {
  it.each([
    ['Heap/TRUNCATE', RM.HEAP, 0x30, le([5, 4], [1, 4], [0, 1], [16384, 4])],
    ['Heap2/NEW_CID', RM.HEAP2, 0x70, Buffer.alloc(34)],
    ['Heap2/REWRITE', RM.HEAP2, 0x00, Buffer.alloc(40)],
  ])('%s: no implicit target, no page change even if a body were asked', (_name, rmid, info, main) => {
    const raw = buildRecord({ rmid, info, xid: XID, main })
    const rec = decodeRecord(raw, lsn(0x100n), lsn(0x200n))
    expect(rec.blocks).toEqual([])
    expect(implicitTargets(rec)).toEqual([])
    const page = pageWith(['x'])
    const before = Buffer.from(page)
    rmgrRedo(rmid)!.redoBlock!({ rec, endLsn: rec.endLsn, tag: HEAP(0), block: null, opts: OPTS }, page)
    expect(page.equals(before)).toBe(true)
    // Asking the engine for any page with this record is an error: the record does not touch it.
    expectRedoFailed(() => redo(HEAP(0), page, raw), /does not reference this page/)
  })
})

describe('Heap2 MULTI_INSERT, PRUNE, VACUUM, FREEZE_PAGE', () => {
  function multiTuple(body: string): Buffer {
    const rest = Buffer.concat([Buffer.from([0]), Buffer.from(body)])
    return Buffer.concat([le([rest.length, 2], [2, 2], [0x0802, 2], [24, 1]), rest])
  }

  it('reads SHORTALIGNed tuple headers and places tuples at the listed offsets', () => {
    const base = pageWith(['first'])
    // First tuple: 7 + 1 + 2 = 10 bytes; second header then starts at 10 (even). Use odd total to force a pad byte.
    const t1 = multiTuple('ab') // 7 + 3 = 10
    const t2 = multiTuple('odd') // 7 + 4 = 11 -> next header at 22
    const t3 = multiTuple('last')
    const data = Buffer.concat([t1, t2, Buffer.from([0xee]), t3])
    const main = le([0x01, 1], [0, 1], [3, 2], [2, 2], [3, 2], [4, 2])
    const raw = buildRecord({ rmid: RM.HEAP2, info: 0x50, xid: XID, blocks: [heapBlock(0, data)], main })
    const { page } = redo(HEAP(0), base, raw)
    expect([2, 3, 4].map((o) => tupleAtOff(page, o).subarray(24).toString())).toEqual(['ab', 'odd', 'last'])
    expect(tupleAtOff(page, 3).readUInt16LE(16)).toBe(3)
    expect(implicitTargets(decodeRecord(raw))).toEqual([{ tag: VM(0), willInit: false }])

    const extra = Buffer.concat([data, Buffer.from([0])])
    const bad = buildRecord({ rmid: RM.HEAP2, info: 0x50, xid: XID, blocks: [heapBlock(0, extra)], main })
    expectRedoFailed(() => redo(HEAP(0), base, bad), /total tuple length mismatch/)
  })

  it('+INIT puts tuples at 1..n on a fresh page; ALL_FROZEN_SET sets PD_ALL_VISIBLE', () => {
    const data = Buffer.concat([multiTuple('x1'), multiTuple('y2')])
    const raw = buildRecord({ rmid: RM.HEAP2, info: 0xd0, xid: XID, blocks: [heapBlock(4, data, true)], main: le([0x20, 1], [0, 1], [2, 2]) })
    const { page } = redo(HEAP(4), null, raw)
    expect([1, 2].map((o) => tupleAtOff(page, o).subarray(24).toString())).toEqual(['x1', 'y2'])
    expect(page.readUInt16LE(10) & 4).toBe(4)
  })

  it('prune redirects, kills and frees line pointers, then compacts; vacuum frees dead pointers and truncates', () => {
    const base = pageWith(['t1', 't2', 't3', 't4', 't5'])
    // redirect 1 -> 3, dead 2, unused 4 and 5
    const prune = buildRecord({ rmid: RM.HEAP2, info: 0x10, xid: XID, blocks: [heapBlock(0, le([1, 2], [3, 2], [2, 2], [4, 2], [5, 2]))], main: le([XID, 4], [1, 2], [1, 2]) })
    const p1 = redo(HEAP(0), base, prune).page
    // trailing unused 4 and 5 are dropped by PageRepairFragmentation
    expect(p1.readUInt16LE(12)).toBe(24 + 3 * 4)
    expect(lp(p1, 1)).toEqual([3, 2, 0])
    expect(lp(p1, 2)).toEqual([0, 3, 0])
    expect(lp(p1, 3)[0]).toBe(8192 - 32) // the only tuple left, moved to the end
    expect(tupleAtOff(p1, 3).subarray(24).toString()).toBe('t3')

    const vacuum = buildRecord({ rmid: RM.HEAP2, info: 0x20, xid: 0, blocks: [heapBlock(0, le([2, 2]))], main: le([1, 2]) })
    const p2 = redo(HEAP(0), p1, vacuum).page
    expect(lp(p2, 2)).toEqual([0, 0, 0])
    expect(p2.readUInt16LE(10) & 1).toBe(1) // PD_HAS_FREE_LINES: pointer 2 unused before 3

    const badPrune = buildRecord({ rmid: RM.HEAP2, info: 0x10, xid: XID, blocks: [heapBlock(0, le([9, 2]))], main: le([XID, 4], [0, 2], [1, 2]) })
    expectRedoFailed(() => redo(HEAP(0), base, badPrune), /offset 9 outside the line pointer array/)
  })

  it('freeze plans replace xmax and infomasks and rewrite xvac', () => {
    const base = pageWith(['a', 'b'])
    const plan = (xmax: number, off: number, im2: number, im: number, frz: number): Buffer => Buffer.concat([le([xmax, 4], [off, 2], [im2, 2], [im, 2], [frz, 1]), Buffer.alloc(1)])
    const data = Buffer.concat([plan(0, 1, 2, 0x0b02, 0), plan(0, 2, 2, 0x0b02, 0x02)])
    const raw = buildRecord({ rmid: RM.HEAP2, info: 0x30, xid: 0, blocks: [heapBlock(0, data)], main: le([XID, 4], [2, 2]) })
    const p = redo(HEAP(0), base, raw).page
    expect(tupleAtOff(p, 1).readUInt16LE(20)).toBe(0x0b02)
    expect(tupleAtOff(p, 2).readUInt32LE(8)).toBe(2) // FrozenTransactionId in t_xvac
    const short = buildRecord({ rmid: RM.HEAP2, info: 0x30, xid: 0, blocks: [heapBlock(0, data.subarray(0, 20))], main: le([XID, 4], [2, 2]) })
    expectRedoFailed(() => redo(HEAP(0), base, short), /2 freeze plans need 24 bytes/)
  })
})

describe('visibility map', () => {
  it('maps heap blocks to VM block, byte and shift (worked example of the module header)', () => {
    expect(HEAPBLOCKS_PER_PAGE).toBe(32672)
    expect([heapBlkToMapBlock(70000), heapBlkToMapByte(70000), heapBlkToMapOffset(70000)]).toEqual([2, 1164, 0])
    expect([heapBlkToMapBlock(32671), heapBlkToMapByte(32671), heapBlkToMapOffset(32671)]).toEqual([0, 8167, 6])
  })

  it('vmSet stamps the LSN only when the bits differ from the flags; vmClear never does', () => {
    const page = Buffer.alloc(8192)
    page.writeUInt16LE(24, 12)
    page.writeUInt16LE(8192, 14)
    page.writeUInt16LE(8192, 16)
    expect(vmSet(page, 5, 0x3, lsn(0x500n))).toBe(true)
    expect(page[24 + 1]).toBe(0x3 << 2)
    expect(page.readUInt32LE(4)).toBe(0x500)
    expect(vmSet(page, 5, 0x3, lsn(0x600n))).toBe(false)
    expect(page.readUInt32LE(4)).toBe(0x500)
    // 0x3 present, 0x1 asked: "different", so the LSN moves though no bit changes
    expect(vmSet(page, 5, 0x1, lsn(0x700n))).toBe(true)
    expect(page.readUInt32LE(4)).toBe(0x700)
    expect(vmClear(page, 5, 0x2)).toBe(true)
    expect(vmGetStatus(page, 5)).toBe(0x1)
    expect(page.readUInt32LE(4)).toBe(0x700)
  })

  it('implicit clears PageInit a new VM page; a lock clears only ALL_FROZEN', () => {
    // UPDATE across pages: old heap block 5 (VM page 0), new heap block 40000 (VM page 1)
    const main = le([XID, 4], [1, 2], [0, 1], [0x03, 1], [0, 4], [1, 2])
    const raw = buildRecord({ rmid: RM.HEAP, info: 0xa0, xid: XID, blocks: [heapBlock(40000, tupleData('n'), true, 0), heapBlock(5, undefined, false, 1)], main })
    expect(implicitTargets(decodeRecord(raw))).toEqual([
      { tag: VM(0), willInit: false },
      { tag: VM(1), willInit: false },
    ])
    const fresh = redo(VM(1), null, raw).page
    expect([fresh.readUInt16LE(12), fresh.readUInt16LE(14), fresh.readUInt16LE(16), fresh.readUInt16LE(18)]).toEqual([24, 8192, 8192, 0x2004])
    expect(fresh.readUInt32LE(4)).toBe(0) // no LSN stamped

    const vm0 = Buffer.from(fresh)
    vmSet(vm0, 5, 0x3, lsn(0x10n))
    vmSet(vm0, 6, 0x3, lsn(0x10n))
    const after = redo(VM(0), vm0, raw).page
    expect([vmGetStatus(after, 5), vmGetStatus(after, 6)]).toEqual([0, 3])
    expect(after.readUInt32LE(4)).toBe(0x10)

    const lock = buildRecord({ rmid: RM.HEAP2, info: 0x60, xid: XID, blocks: [heapBlock(6)], main: le([XID, 4], [1, 2], [0, 1], [0x01, 1]) })
    expect(vmGetStatus(redo(VM(0), after, lock).page, 6)).toBe(0x1)
    // A record that clears nothing on a VM page is not a record for that page.
    expectRedoFailed(() => redo(VM(3), after, raw), /clears no visibility-map bit on this page/)
  })

  it('VISIBLE sets VM bits (PageInit of a zero page) and PD_ALL_VISIBLE; heap LSN only when hint bits are logged', () => {
    const blocks: BlockSpec[] = [
      { id: 0, rel: REL, fork: ForkNumber.VisibilityMap, blkno: 0 },
      { id: 1, rel: REL, fork: ForkNumber.Main, blkno: 9 },
    ]
    const raw = buildRecord({ rmid: RM.HEAP2, info: 0x40, xid: 0, blocks, main: le([XID, 4], [0x3, 1]) })
    const { page: vm, endLsn } = redo(VM(0), Buffer.alloc(8192), raw)
    expect(vm.readUInt16LE(14)).toBe(8192)
    expect(vmGetStatus(vm, 9)).toBe(3)
    expect(vm.readUInt32LE(4)).toBe(Number(endLsn))

    const heap = pageWith(['h'], 9)
    const before = heap.readUInt32LE(4)
    const off = redo(HEAP(9), heap, raw, { hintBitsLogged: false }).page
    expect(off.readUInt16LE(10) & 4).toBe(4)
    expect(off.readUInt32LE(4)).toBe(before)
    const on = redo(HEAP(9), heap, raw, { hintBitsLogged: true })
    expect(on.page.readUInt32LE(4)).toBe(Number(on.endLsn))
  })

  it('truncation clears the bits of cut heap blocks on the last kept VM page', () => {
    expect(vmTruncation(HEAPBLOCKS_PER_PAGE * 2)).toMatchObject({ truncBlock: 2, partialPage: false, newVmBlocks: 2 })
    expect(vmTruncation(HEAPBLOCKS_PER_PAGE + 5)).toMatchObject({ truncBlock: 1, truncByte: 1, truncOffset: 2, partialPage: true, newVmBlocks: 2 })
    const page = Buffer.alloc(8192)
    vmTruncatePage(page, 5) // a zero page is PageInit-ed first
    expect(page.readUInt16LE(14)).toBe(8192)
    page.fill(0xff, 24)
    vmTruncatePage(page, 5)
    expect(page[24]).toBe(0xff) // heap blocks 0..3 kept
    expect(page[25]).toBe(0x03) // block 4 kept, 5..7 cleared
    expect(page.subarray(26).every((b) => b === 0)).toBe(true)
  })
})

describe('fixInfomaskFromInfobits', () => {
  it('maps each infobit and clears stale lock bits and KEYS_UPDATED', () => {
    expect(fixInfomaskFromInfobits(0, 0xffff, 0xffff)).toEqual([0xffff & ~(0x1000 | 0x0080 | 0x0010 | 0x0040), 0xffff & ~0x2000])
    expect(fixInfomaskFromInfobits(0x01, 0, 0)).toEqual([0x1000, 0])
    expect(fixInfomaskFromInfobits(0x02, 0, 0)).toEqual([0x0080, 0])
    expect(fixInfomaskFromInfobits(0x04, 0, 0)).toEqual([0x0040, 0])
    expect(fixInfomaskFromInfobits(0x08, 0, 0)).toEqual([0x0010, 0])
    expect(fixInfomaskFromInfobits(0x10, 0, 0)).toEqual([0, 0x2000])
  })
})
