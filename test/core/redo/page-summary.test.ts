// summarizePage: the page kind from the fork and the page, and the per-kind summary an operator reads in
// `getpage` and `redo replay`: a free-space-map page is told apart from a heap page (both have no special
// space) by its fork, with its root category and the leaf slots that record space.
import { describe, expect, it } from 'vitest'
import { ForkNumber } from '../../../src/core/pg/reltag.js'
import { pageInit } from '../../../src/core/redo/page/page.js'
import { classifyPage, summarizePage } from '../../../src/core/redo/page-summary.js'

const BLCKSZ = 8192
/** fsmpage.c: the header (24 bytes), fp_next_slot (4), then 4,095 non-leaf nodes and 4,069 leaves. */
const NODES = 28
const LEAVES_AT = NODES + 4095

function freshPage(): Buffer {
  const p = Buffer.alloc(BLCKSZ)
  pageInit(p, 0)
  return p
}

describe('summarizePage', () => {
  it('a free-space-map page is "fsm", with its root category, slots with space and next slot', () => {
    const p = freshPage()
    p.writeInt32LE(17, 24) // fp_next_slot
    p[NODES] = 200 // the root: the most free space below it
    p[LEAVES_AT] = 200
    p[LEAVES_AT + 5] = 3
    p[BLCKSZ - 1] = 1 // the last leaf
    expect(classifyPage(p, ForkNumber.Fsm)).toBe('fsm')
    const s = summarizePage(p, 0, ForkNumber.Fsm)
    expect(s.kind).toBe('fsm')
    expect(s.fsm).toEqual({ maxCategory: 200, leavesWithSpace: 3, leaves: 4069, nextSlot: 17 })
    expect(s.linePointers).toEqual([])
  })

  it('the same bytes in the main fork are a heap page; a zeroed FSM page is "new"; a VM fork page is "vm"', () => {
    expect(classifyPage(freshPage(), ForkNumber.Main)).toBe('heap')
    expect(summarizePage(freshPage(), 0, ForkNumber.Main).fsm).toBeUndefined()
    expect(classifyPage(Buffer.alloc(BLCKSZ), ForkNumber.Fsm)).toBe('new')
    expect(classifyPage(freshPage(), ForkNumber.VisibilityMap)).toBe('vm')
  })
})
