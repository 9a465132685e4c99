/**
 * B-tree redo through the engine with hand-built records and pages: the byte-level results of the routines
 * whose layouts are easy to get subtly wrong (posting-list split on insert, split left/right halves,
 * rebuilt metapage, deleted and half-dead pages, dedup), and malformed records failing with REDO_FAILED.
 */
import { describe, expect, it } from 'vitest'
import { lsn, type Lsn } from '../../../../src/core/pg/lsn.js'
import { ForkNumber, type BufferTag, type RelFileNode } from '../../../../src/core/pg/reltag.js'
import { RM } from '../../../../src/core/pg/rmgr.js'
import { redoBlock } from '../../../../src/core/redo/engine.js'
import { PageserverError } from '../../../../src/core/lib/errors.js'
import { buildRecord, le, type BlockSpec } from '../heap/record-builder.js'
import { mulberry32, randInt } from '../page/helpers.js'
import { btPage, header, opaque, pageItems, pivotTuple, plainTuple, postingTids, postingTuple, readTid } from './helpers.js'

const REL: RelFileNode = { spcNode: 1663, dbNode: 5, relNode: 16400 }
const TAG = (blkno: number): BufferTag => ({ ...REL, forkNum: ForkNumber.Main, blkno })
const OPTS = { hintBitsLogged: false }
const BLK = (id: number, blkno: number, data?: Buffer, willInit = false): BlockSpec => ({ id, rel: REL, fork: 0, blkno, data, willInit })

const LEAF = 0x1
const ROOT = 0x2
const DELETED = 0x4
const META = 0x8
const HALF_DEAD = 0x10
const INCOMPLETE_SPLIT = 0x80
const HAS_FULLXID = 0x100

let nextLsn = 0x2000000n
function redo(blkno: number, base: Buffer | null, info: number, blocks: BlockSpec[], main: Buffer): { page: Buffer; endLsn: Lsn } {
  nextLsn += 0x100n
  const endLsn = lsn(nextLsn)
  const raw = buildRecord({ rmid: RM.BTREE, info, xid: 0, blocks, main })
  return { page: redoBlock(TAG(blkno), base, [{ endLsn, raw }], OPTS), endLsn }
}

function expectRedoFailed(fn: () => unknown, text: RegExp): void {
  let caught: unknown
  try {
    fn()
  } catch (e) {
    caught = e
  }
  expect(caught).toBeInstanceOf(PageserverError)
  expect((caught as PageserverError).code).toBe('REDO_FAILED')
  expect((caught as PageserverError).message).toMatch(text)
}

function metadata(root: number, level: number, fastroot: number, fastlevel: number, delpages: number): Buffer {
  const b = Buffer.alloc(28)
  b.writeUInt32LE(4, 0)
  b.writeUInt32LE(root, 4)
  b.writeUInt32LE(level, 8)
  b.writeUInt32LE(fastroot, 12)
  b.writeUInt32LE(fastlevel, 16)
  b.writeUInt32LE(delpages, 20)
  b[24] = 1
  return b
}

describe('insert', () => {
  it('INSERT_LEAF shifts later line pointers and stamps the end LSN', () => {
    const base = btPage({ next: 9, items: [pivotTuple(100, 0), plainTuple(10, [1, 1]), plainTuple(30, [1, 3])] })
    const { page, endLsn } = redo(3, base, 0x00, [BLK(0, 3, plainTuple(20, [1, 2]))], le([3, 2]))
    const items = pageItems(page)
    expect(items.map((i) => i.data.readBigInt64LE(8))).toEqual([100n, 10n, 20n, 30n])
    expect(items[2]!.off).toBe(header(base).upper - 16)
    expect(BigInt(header(page).lsnLo)).toBe(endLsn & 0xffffffffn)
  })

  it('INSERT_POST rewrites the posting list in place and inserts the swapped new item', () => {
    const base = btPage({ items: [postingTuple(8, [[1, 1], [1, 3], [1, 5], [1, 7]]), plainTuple(9, [2, 1])] })
    const data = Buffer.concat([Buffer.from([2, 0]), plainTuple(8, [1, 4])])
    const { page } = redo(4, base, 0x50, [BLK(0, 4, data)], le([2, 2]))
    const items = pageItems(page)
    expect(items).toHaveLength(3)
    expect(items[0]!.off).toBe(pageItems(base)[0]!.off)
    expect(postingTids(items[0]!.data)).toEqual([[1, 1], [1, 3], [1, 4], [1, 5]])
    expect(readTid(items[1]!.data, 0)).toEqual([1, 7])
    expect(readTid(items[2]!.data, 0)).toEqual([2, 1])
  })

  it('INSERT_UPPER clears the incomplete-split flag of the child (block 1)', () => {
    const child = btPage({ flags: LEAF | INCOMPLETE_SPLIT, next: 5, items: [pivotTuple(50, 0)] })
    const { page } = redo(4, child, 0x10, [BLK(0, 2, pivotTuple(50, 5)), BLK(1, 4)], le([2, 2]))
    expect(opaque(page).flags).toBe(LEAF)
    expect(page.subarray(24, 8176)).toEqual(child.subarray(24, 8176))
  })

  it('INSERT_POST with a split point outside the list fails', () => {
    const base = btPage({ items: [postingTuple(8, [[1, 1], [1, 3]])] })
    const data = Buffer.concat([Buffer.from([5, 0]), plainTuple(8, [1, 2])])
    expectRedoFailed(() => redo(4, base, 0x50, [BLK(0, 4, data)], le([2, 2])), /cannot be split at offset 5/)
  })
})

describe('split', () => {
  const main = (level: number, firstright: number, newitemoff: number, postingoff = 0): Buffer =>
    le([level, 4], [firstright, 2], [newitemoff, 2], [postingoff, 2])

  it('SPLIT_L rebuilds the left half in item order with the new item and the new high key', () => {
    const orig = btPage({ prev: 1, next: 8, items: [pivotTuple(100, 0), plainTuple(10, [1, 1]), plainTuple(30, [1, 3]), plainTuple(50, [1, 5]), plainTuple(70, [1, 7])] })
    const data = Buffer.concat([plainTuple(20, [1, 2]), pivotTuple(50, 0)])
    const blocks = [BLK(0, 3, data), BLK(1, 12, Buffer.alloc(0), true), BLK(2, 8)]
    const { page } = redo(3, orig, 0x30, blocks, main(0, 4, 3))
    const items = pageItems(page)
    expect(items.map((i) => i.data.readBigInt64LE(8))).toEqual([50n, 10n, 20n, 30n])
    expect(items.map((i) => i.off)).toEqual([8160, 8144, 8128, 8112])
    expect(opaque(page)).toEqual({ prev: 1, next: 12, level: 0, flags: INCOMPLETE_SPLIT | LEAF, cycleid: 0 })
  })

  it('the new right page is restored from its tuple image, and the old sibling points back to it', () => {
    // pd_upper..pd_special of the right page: highest item number first.
    const image = Buffer.concat([plainTuple(70, [1, 7]), plainTuple(50, [1, 5]), pivotTuple(100, 0)])
    const blocks = [BLK(0, 3, Buffer.alloc(0)), BLK(1, 12, image, true), BLK(2, 8)]
    const { page } = redo(12, null, 0x40, blocks, main(0, 4, 6))
    expect(pageItems(page).map((i) => [i.off, i.len, i.data.readBigInt64LE(8)])).toEqual([
      [8160, 16, 100n],
      [8144, 16, 50n],
      [8128, 16, 70n],
    ])
    expect(opaque(page)).toEqual({ prev: 3, next: 8, level: 0, flags: LEAF, cycleid: 0 })

    const sib = btPage({ prev: 3, next: 0, items: [plainTuple(200, [3, 1])] })
    const r = redo(8, sib, 0x40, blocks, main(0, 4, 6))
    expect(opaque(r.page).prev).toBe(12)
  })

  it('a truncated split record fails', () => {
    const orig = btPage({ items: [pivotTuple(1, 0), plainTuple(1, [1, 1])] })
    expectRedoFailed(() => redo(3, orig, 0x30, [BLK(0, 3, Buffer.alloc(4)), BLK(1, 12, Buffer.alloc(0), true)], main(0, 2, 2).subarray(0, 9)), /xl_btree_split/)
  })
})

describe('dedup', () => {
  it('merges the logged intervals into posting tuples and keeps the high key', () => {
    const base = btPage({
      next: 7,
      items: [pivotTuple(9, 0), plainTuple(1, [1, 1]), plainTuple(1, [1, 2]), plainTuple(1, [1, 3]), plainTuple(2, [1, 4]), plainTuple(3, [1, 5]), plainTuple(3, [1, 6])],
    })
    const intervals = Buffer.from([2, 0, 3, 0, 6, 0, 2, 0])
    const { page } = redo(5, base, 0x60, [BLK(0, 5, intervals)], le([2, 2]))
    const items = pageItems(page)
    expect(items).toHaveLength(4)
    expect(items[0]!.data.readBigInt64LE(8)).toBe(9n)
    expect(postingTids(items[1]!.data)).toEqual([[1, 1], [1, 2], [1, 3]])
    expect(items[1]!.len).toBe(40)
    expect(readTid(items[2]!.data, 0)).toEqual([1, 4])
    expect(items[2]!.len).toBe(16)
    expect(postingTids(items[3]!.data)).toEqual([[1, 5], [1, 6]])
  })

  it('an interval the page cannot satisfy fails', () => {
    const base = btPage({ items: [plainTuple(1, [1, 1]), plainTuple(2, [1, 2])] })
    expectRedoFailed(() => redo(5, base, 0x60, [BLK(0, 5, Buffer.from([2, 0, 2, 0]))], le([1, 2])), /formed 0 posting lists/)
  })
})

describe('vacuum', () => {
  it('updates posting lists before deleting items, and clears BTP_HAS_GARBAGE', () => {
    const base = btPage({
      flags: LEAF | 0x40,
      items: [plainTuple(1, [1, 1]), postingTuple(2, [[1, 2], [1, 3], [1, 4]]), plainTuple(3, [1, 5]), plainTuple(4, [1, 6])],
    })
    // delete offsets 1 and 4; update offset 2, removing position 1.
    const data = Buffer.from([1, 0, 4, 0, 2, 0, 1, 0, 1, 0])
    const { page } = redo(6, base, 0xc0, [BLK(0, 6, data)], le([2, 2], [1, 2]))
    const items = pageItems(page)
    expect(items).toHaveLength(2)
    expect(postingTids(items[0]!.data)).toEqual([[1, 2], [1, 4]])
    expect(readTid(items[1]!.data, 0)).toEqual([1, 5])
    expect(opaque(page).flags).toBe(LEAF)
    expect(header(page).upper).toBe(8176 - 32 - 16)
  })
})

describe('metapage, new root and page deletion', () => {
  it('META_CLEANUP rebuilds the metapage from scratch', () => {
    const { page } = redo(0, null, 0xe0, [BLK(0, 0, metadata(3, 1, 3, 1, 7), true)], Buffer.alloc(0))
    expect(header(page)).toMatchObject({ lower: 72, upper: 8176, special: 8176 })
    expect(page.readUInt32LE(24)).toBe(0x053162)
    expect([4, 3, 1, 3, 1, 7].map((v, i) => page.readUInt32LE(28 + 4 * i) === v)).toEqual(Array(6).fill(true))
    expect(page.readDoubleLE(56)).toBe(-1)
    expect(page[64]).toBe(1)
    expect(opaque(page).flags).toBe(META)
  })

  it('NEWROOT at level 0 makes an empty root leaf; above it restores the downlinks', () => {
    const r0 = redo(1, null, 0xa0, [BLK(0, 1, undefined, true), BLK(2, 0, metadata(1, 0, 1, 0, 0), true)], le([1, 4], [0, 4]))
    expect(opaque(r0.page)).toEqual({ prev: 0, next: 0, level: 0, flags: ROOT | LEAF, cycleid: 0 })
    expect(pageItems(r0.page)).toHaveLength(0)

    // The leftmost downlink is a key-less 8-byte pivot ("minus infinity"): t_tid (1, 0), t_info 8 | 0x2000.
    const minusInfinity = Buffer.from([0, 0, 1, 0, 0, 0, 8, 0x20])
    const image = Buffer.concat([pivotTuple(40, 5), minusInfinity])
    const r1 = redo(6, null, 0xa0, [BLK(0, 6, image, true), BLK(1, 1), BLK(2, 0, metadata(6, 1, 6, 1, 0), true)], le([6, 4], [1, 4]))
    expect(opaque(r1.page)).toEqual({ prev: 0, next: 0, level: 1, flags: ROOT, cycleid: 0 })
    expect(pageItems(r1.page).map((i) => [i.len, readTid(i.data, 0)[0]])).toEqual([
      [8, 1],
      [16, 5],
    ])
  })

  it('UNLINK_PAGE leaves an empty deleted page holding safexid', () => {
    const main = Buffer.alloc(36)
    main.writeUInt32LE(4, 0)
    main.writeUInt32LE(9, 4)
    main.writeBigUInt64LE(0x2_0000_1234n, 16)
    main.writeUInt32LE(0xffffffff, 32)
    const { page } = redo(7, null, 0x80, [BLK(0, 7, undefined, true), BLK(1, 4), BLK(2, 9)], main)
    expect(header(page)).toMatchObject({ lower: 32, upper: 8176, special: 8176 })
    expect(page.readBigUInt64LE(24)).toBe(0x2_0000_1234n)
    expect(opaque(page)).toEqual({ prev: 4, next: 9, level: 0, flags: DELETED | HAS_FULLXID | LEAF, cycleid: 0 })

    const left = btPage({ next: 7, items: [plainTuple(1, [1, 1])] })
    expect(opaque(redo(4, left, 0x80, [BLK(0, 7, undefined, true), BLK(1, 4), BLK(2, 9)], main).page).next).toBe(9)
  })

  it('MARK_PAGE_HALFDEAD moves the parent downlink and leaves a dummy high key on the leaf', () => {
    const main = Buffer.alloc(20)
    main.writeUInt16LE(2, 0)
    main.writeUInt32LE(7, 4)
    main.writeUInt32LE(4, 8)
    main.writeUInt32LE(9, 12)
    main.writeUInt32LE(0xffffffff, 16)
    const blocks = [BLK(0, 7, undefined, true), BLK(1, 2)]
    const leaf = redo(7, null, 0xb0, blocks, main).page
    expect(opaque(leaf)).toEqual({ prev: 4, next: 9, level: 0, flags: HALF_DEAD | LEAF, cycleid: 0 })
    const [hikey] = pageItems(leaf)
    expect(hikey!.data).toEqual(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 8, 0x20]))

    const parent = btPage({ level: 1, next: 0, items: [pivotTuple(0, 4), pivotTuple(10, 7), pivotTuple(20, 9)], flags: 0 })
    const p = redo(2, parent, 0xb0, blocks, main).page
    expect(pageItems(p).map((i) => [readTid(i.data, 0)[0], i.data.readBigInt64LE(8)])).toEqual([
      [4, 0n],
      [9, 10n],
    ])
  })

  it('records that change no page, and unknown kinds, fail for a page', () => {
    const base = btPage({ items: [] })
    expectRedoFailed(() => redo(1, base, 0xd0, [BLK(0, 1)], Buffer.alloc(24)), /REUSE_PAGE records change no page/)
    expectRedoFailed(() => redo(1, base, 0xf0, [BLK(0, 1)], Buffer.alloc(0)), /unknown btree record kind 0xf0/)
  })
})

describe('damaged records and pages', () => {
  /** Seeded cases: a record kind, the target, its base page, blocks and main data, as in the tests above. */
  function cases(): Array<{ info: number; blkno: number; base: Buffer | null; blocks: BlockSpec[]; main: Buffer }> {
    const leaf = btPage({ next: 9, items: [pivotTuple(100, 0), postingTuple(8, [[1, 1], [1, 3], [1, 5]]), plainTuple(9, [1, 6]), plainTuple(10, [1, 7])] })
    const splitMain = le([0, 4], [3, 2], [2, 2], [0, 2])
    return [
      { info: 0x00, blkno: 3, base: leaf, blocks: [BLK(0, 3, plainTuple(20, [1, 2]))], main: le([3, 2]) },
      { info: 0x50, blkno: 3, base: leaf, blocks: [BLK(0, 3, Buffer.concat([Buffer.from([1, 0]), plainTuple(8, [1, 2])]))], main: le([3, 2]) },
      { info: 0x30, blkno: 3, base: leaf, blocks: [BLK(0, 3, Buffer.concat([plainTuple(8, [1, 0]), pivotTuple(9, 0)])), BLK(1, 12, undefined, true)], main: splitMain },
      { info: 0x40, blkno: 12, base: null, blocks: [BLK(0, 3), BLK(1, 12, Buffer.concat([plainTuple(10, [1, 7]), plainTuple(9, [1, 6])]), true)], main: splitMain },
      { info: 0x60, blkno: 3, base: leaf, blocks: [BLK(0, 3, Buffer.from([2, 0, 2, 0]))], main: le([1, 2]) },
      { info: 0xc0, blkno: 3, base: leaf, blocks: [BLK(0, 3, Buffer.from([4, 0, 2, 0, 1, 0, 0, 0]))], main: le([1, 2], [1, 2]) },
      { info: 0xb0, blkno: 3, base: leaf, blocks: [BLK(0, 7, undefined, true), BLK(1, 3)], main: Buffer.alloc(20).fill(1, 0, 1) },
      { info: 0xa0, blkno: 6, base: null, blocks: [BLK(0, 6, Buffer.concat([pivotTuple(40, 5), Buffer.from([0, 0, 1, 0, 0, 0, 8, 0x20])]), true)], main: le([6, 4], [1, 4]) },
    ]
  }

  it('never throw anything but a PageserverError, and never hang', () => {
    const rnd = mulberry32(20251123)
    let failed = 0
    let redone = 0
    for (let round = 0; round < 300; round++) {
      for (const c of cases()) {
        // Flip a few random bytes of the main data, one block's data, or the base page's item area.
        const main = Buffer.from(c.main)
        const blocks = c.blocks.map((b) => ({ ...b, data: b.data === undefined ? undefined : Buffer.from(b.data) }))
        const base = c.base === null ? null : Buffer.from(c.base)
        const targets = [main, ...blocks.flatMap((b) => (b.data && b.data.length > 0 ? [b.data] : [])), ...(base ? [base.subarray(12, 24 + 4 * 4), base.subarray(8000)] : [])]
        for (let k = 0; k < 3; k++) {
          const t = targets[randInt(rnd, 0, targets.length - 1)]!
          if (t.length > 0) t[randInt(rnd, 0, t.length - 1)] = randInt(rnd, 0, 255)
        }
        try {
          redo(c.blkno, base, c.info, blocks, main)
          redone++
        } catch (e) {
          expect(e).toBeInstanceOf(PageserverError)
          expect((e as PageserverError).code, (e as Error).stack).not.toBe('ASSERTION_FAILED')
          failed++
        }
      }
    }
    expect(failed).toBeGreaterThan(0)
    expect(redone).toBeGreaterThan(0)
  })
})
