// SlabPool: freed slabs are reused (no new allocation) within the budget; at the budget the pool spills
// owners' slabs in rank order (frozen waiting, then open, the requester last, largest first; the next one
// when the chosen owner has nothing it can spill), skips owners that must not spill, and allocates over
// budget (counted) only when nothing can be spilled; slabs larger
// than the slab size are never pooled; a prefault source keeps free slabs ahead of need within the budget
// and is dropped when it fails; free slabs unused for a whole trim period are dropped, the least recently
// returned first; bad options are refused.
import { describe, expect, it } from 'vitest'
import { PREFAULT_AHEAD_SLABS, SPILL_RANK, SlabPool, type SlabOwner } from '../../../src/core/layer/value-slabs.js'
import { AssertionFailure } from '../../../src/core/lib/errors.js'

/** An owner holding slabs; spillOne gives its oldest one back. */
class FakeOwner implements SlabOwner {
  readonly slabs: SharedArrayBuffer[] = []
  spills = 0
  indexBytes = 0
  constructor(
    private readonly pool: SlabPool,
    public rank: number,
  ) {
    pool.register(this)
  }
  take(bytes = 1): SharedArrayBuffer {
    const s = this.pool.take(bytes, this)
    this.slabs.push(s)
    return s
  }
  spillRank(): number {
    return this.rank
  }
  residentSlabBytes(): number {
    return this.slabs.reduce((n, s) => n + s.byteLength, 0)
  }
  spillOne(): boolean {
    const s = this.slabs.shift()
    if (s === undefined) return false
    this.spills++
    this.pool.noteSpill(s.byteLength)
    this.pool.give(s)
    return true
  }
  drop(): void {
    for (const s of this.slabs.splice(0)) this.pool.give(s)
  }
}

describe('slab pool', () => {
  it('asks the next owner when the chosen one has nothing it can spill', () => {
    const pool = new SlabPool({ slabBytes: 1024, residentBytesMax: 4 * 1024 })
    const big = new FakeOwner(pool, SPILL_RANK.open)
    const small = new FakeOwner(pool, SPILL_RANK.open)
    for (let i = 0; i < 3; i++) big.take()
    small.take()
    // The largest owner is picked first, but all it holds is the slab it is filling.
    big.spillOne = () => false
    const requester = new FakeOwner(pool, SPILL_RANK.open)
    requester.take()
    expect(small.spills).toBe(1)
    expect(pool.stats.overBudget).toBe(0)
    expect(pool.residentBytes).toBeLessThanOrEqual(4 * 1024)
  })

  it('reuses freed slabs instead of allocating', () => {
    const pool = new SlabPool({ slabBytes: 1024, residentBytesMax: 8 * 1024 })
    const a = new FakeOwner(pool, SPILL_RANK.open)
    for (let i = 0; i < 4; i++) a.take()
    const held = [...a.slabs]
    expect(pool.residentBytes).toBe(4096)
    a.drop()
    expect(pool.residentBytes).toBe(0)
    expect(pool.pooledBytes).toBe(4096)
    const b = new FakeOwner(pool, SPILL_RANK.open)
    b.take()
    expect(b.slabs[0]).toBe(held[3]) // the last freed comes back first
    expect(pool.stats).toMatchObject({ allocated: 4, reused: 1, spilled: 0 })
    pool.trim()
    expect(pool.pooledBytes).toBe(0)
  })

  it('spills frozen waiting owners first, then open ones, largest first, the requester last', () => {
    const pool = new SlabPool({ slabBytes: 1024, residentBytesMax: 6 * 1024 })
    const open = new FakeOwner(pool, SPILL_RANK.open)
    const frozenSmall = new FakeOwner(pool, SPILL_RANK.frozenWaiting)
    const frozenBig = new FakeOwner(pool, SPILL_RANK.frozenWaiting)
    const flushing = new FakeOwner(pool, SPILL_RANK.none)
    flushing.take()
    frozenSmall.take()
    frozenBig.take()
    frozenBig.take()
    open.take()
    open.take()
    expect(pool.residentBytes).toBe(6 * 1024)
    const requester = new FakeOwner(pool, SPILL_RANK.open)
    requester.take()
    expect(frozenBig.spills).toBe(1)
    requester.take()
    expect(frozenBig.spills).toBe(1)
    expect(frozenSmall.spills).toBe(1) // equal size now: either frozen one, never an open one yet
    requester.take()
    expect(frozenBig.spills + frozenSmall.spills).toBe(3)
    requester.take()
    expect(open.spills).toBe(1) // no frozen slab left: the open owner with most slabs
    requester.take()
    requester.take()
    expect(open.spills).toBe(2)
    expect(requester.spills).toBe(1) // equal to the other open owner: the requester goes last
    expect(flushing.spills).toBe(0)
    expect(pool.residentBytes).toBe(6 * 1024)
    expect(pool.stats.overBudget).toBe(0)
    expect(pool.stats.spilled).toBe(6)
  })

  it('allocates over budget, counted, when nothing can be spilled; large slabs are not pooled', () => {
    const pool = new SlabPool({ slabBytes: 1024, residentBytesMax: 2 * 1024 })
    const flushing = new FakeOwner(pool, SPILL_RANK.none)
    flushing.take()
    flushing.take()
    const open = new FakeOwner(pool, SPILL_RANK.open)
    open.take()
    expect(pool.stats.overBudget).toBe(1)
    expect(pool.residentBytes).toBe(3 * 1024)
    flushing.drop()
    open.drop()
    expect(pool.residentBytes + pool.pooledBytes).toBeLessThanOrEqual(2 * 1024) // back within budget
    const big = open.take(5000)
    expect(big.byteLength).toBe(5000)
    expect(pool.pooledBytes).toBe(0) // pooled slabs made room for it
    open.drop()
    expect(pool.pooledBytes).toBe(0)
    expect(pool.residentBytes).toBe(0)
  })

  it('gives back the free slabs that sat unused for a whole trim period, coldest first', () => {
    const pool = new SlabPool({ slabBytes: 1024, residentBytesMax: 64 * 1024 })
    const held = Array.from({ length: 10 }, () => pool.take(1, null))
    const returned = [...held]
    for (const s of held.splice(0)) pool.give(s)
    expect(pool.pooledBytes).toBe(10 * 1024)
    // The first period starts now: nothing has been seen unused for a whole period yet.
    expect(pool.trimUnused()).toBe(0)
    // A period in which at most 4 slabs were out at once: 6 were never needed and go, the coldest first.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) held.push(pool.take(1, null))
      for (const s of held.splice(0)) pool.give(s)
    }
    const kept = new Set<SharedArrayBuffer>()
    expect(pool.trimUnused()).toBe(6)
    expect(pool.stats.trimmed).toBe(6)
    expect(pool.pooledBytes).toBe(4 * 1024)
    for (let i = 0; i < 4; i++) kept.add(pool.take(1, null))
    // The 4 kept are the ones the period cycled through; the 6 returned first and never taken again went.
    expect([...kept].sort((a, b) => returned.indexOf(a) - returned.indexOf(b))).toEqual(returned.slice(6))
    // Within the period that just began 4 were taken and none are free: the next trim has nothing to drop.
    for (const s of kept) pool.give(s)
    expect(pool.trimUnused()).toBe(0)
    // A quiet period: everything free goes.
    expect(pool.trimUnused()).toBe(4)
    expect(pool.pooledBytes).toBe(0)
    expect(pool.stats.allocated).toBe(10)
  })

  it('refuses bad sizes and unbalanced returns', () => {
    expect(() => new SlabPool({ slabBytes: 10 })).toThrow(AssertionFailure)
    expect(() => new SlabPool({ residentBytesMax: 0 })).toThrow(AssertionFailure)
    const pool = new SlabPool({ slabBytes: 1024 })
    expect(() => pool.give(new SharedArrayBuffer(1024))).toThrow(/more bytes returned/)
  })

  it('keeps prefaulted slabs ahead of need, within the budget; a failing source is dropped', async () => {
    const pool = new SlabPool({ slabBytes: 1024, residentBytesMax: 20 * 1024 })
    const asked: number[] = []
    pool.setPrefaultSource(async (n, bytes) => {
      asked.push(n)
      return Array.from({ length: n }, () => new SharedArrayBuffer(bytes))
    })
    const a = new FakeOwner(pool, SPILL_RANK.open)
    a.take()
    expect(pool.stats.allocated).toBe(1) // the first slab: nothing ready yet
    await new Promise((resolve) => setImmediate(resolve))
    expect(asked.length).toBe(1)
    expect(pool.stats.prefaulted).toBe(asked[0])
    expect(pool.residentBytes + pool.pooledBytes).toBeLessThanOrEqual(20 * 1024)
    for (let i = 0; i < 5; i++) a.take()
    expect(pool.stats.allocated).toBe(1) // the rest came from the prefaulted ones
    // never beyond the budget, whatever is asked
    for (let i = 0; i < 3; i++) {
      a.take()
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(pool.residentBytes + pool.pooledBytes).toBeLessThanOrEqual(20 * 1024)
    expect(PREFAULT_AHEAD_SLABS).toBeGreaterThan(0)

    const failing = new SlabPool({ slabBytes: 1024, residentBytesMax: 1 << 20 })
    let calls = 0
    failing.setPrefaultSource(async () => {
      calls++
      throw new Error('worker gone')
    })
    const b = new FakeOwner(failing, SPILL_RANK.open)
    b.take()
    await new Promise((resolve) => setImmediate(resolve))
    b.take()
    b.take()
    await new Promise((resolve) => setImmediate(resolve))
    expect(calls).toBe(1)
    expect(failing.stats.allocated).toBe(3)
  })

  it('counts the owners index memory in the budget', () => {
    const pool = new SlabPool({ slabBytes: 1024, residentBytesMax: 8 * 1024 })
    const a = new FakeOwner(pool, SPILL_RANK.open)
    for (let i = 0; i < 4; i++) a.take()
    a.indexBytes = 4 * 1024 // the budget is now full
    a.take()
    expect(a.spills).toBe(1) // a slab went to disk to make room
    expect(pool.residentBytes).toBe(4 * 1024)
    expect(pool.takeIfFree(1)).toBeNull()
    a.indexBytes = 0
    expect(pool.takeIfFree(1)).not.toBeNull()
  })
})
