import { describe, expect, it } from 'vitest'
import { PageserverError } from '../../../src/core/lib/errors.js'
import { WalRedoManager } from '../../../src/core/walredo/manager.js'
import { RedoProcessBudget, type RedoBudgetMember } from '../../../src/core/walredo/process-budget.js'
import { expectedEcho, fakeWorker, isAlive, request, waitGone } from './support.js'

/** A pool as the budget sees it, with workers described by their idle-since times (null: busy). */
class FakePool implements RedoBudgetMember {
  readonly events: string[] = []
  wantsSlot = false
  constructor(
    readonly name: string,
    readonly budget: RedoProcessBudget,
    public workers: Array<number | null> = [],
  ) {
    budget.join(this)
  }
  liveWorkers(): number {
    return this.workers.length
  }
  oldestIdleSinceMs(): number | null {
    const idle = this.workers.filter((w): w is number => w !== null)
    return idle.length === 0 ? null : Math.min(...idle)
  }
  reclaimIdleWorker(): boolean {
    const since = this.oldestIdleSinceMs()
    if (since === null) return false
    this.workers.splice(this.workers.indexOf(since), 1)
    this.events.push('stopped idle')
    return true
  }
  drainWorker(): boolean {
    if (this.workers.length === 0) return false
    this.workers.pop()
    this.events.push('draining')
    return true
  }
  onSlotFree(): void {
    this.events.push('offered')
    if (this.wantsSlot && this.budget.tryAcquire(this)) {
      this.wantsSlot = false
      this.workers.push(null)
      this.events.push('spawned')
    }
  }
  /** What the manager does when it needs a process: a slot, else wait for one if it has no worker. */
  grow(): boolean {
    if (this.budget.tryAcquire(this)) {
      this.workers.push(null)
      return true
    }
    if (this.workers.length === 0) {
      this.wantsSlot = true
      this.budget.want(this)
    }
    return false
  }
}

describe('RedoProcessBudget policy', () => {
  it('grants slots up to the cap; a pool with no worker takes the longest-idle worker of another pool', () => {
    const budget = new RedoProcessBudget(3)
    const a = new FakePool('a', budget)
    const b = new FakePool('b', budget)
    const c = new FakePool('c', budget)
    expect(a.grow()).toBe(true)
    expect(a.grow()).toBe(true)
    expect(b.grow()).toBe(true)
    expect(b.grow()).toBe(false) // at the cap, and b has a worker: it does not wait
    expect(budget.stats()).toMatchObject({ used: 3, waiting: 0 })
    a.workers = [500, 100] // both idle, one since t=100
    b.workers = [50] // idle longest
    expect(c.grow()).toBe(false)
    expect(b.events).toEqual(['stopped idle'])
    expect(a.events).toEqual([])
    expect(budget.stats()).toMatchObject({ waiting: 1, reclaimed: 1 })
    // A free slot goes to the waiter, not to a pool that merely wants to grow.
    budget.release(true)
    expect(c.events).toEqual(['offered', 'spawned'])
    expect(budget.stats()).toMatchObject({ used: 3, waiting: 0 })
  })

  it('drains a worker of the largest pool when none is idle, and takes nothing from a pool with one busy worker', () => {
    const budget = new RedoProcessBudget(3)
    const a = new FakePool('a', budget, [])
    const b = new FakePool('b', budget, [])
    a.grow()
    a.grow()
    b.grow()
    const c = new FakePool('c', budget)
    expect(c.grow()).toBe(false)
    expect(a.events).toEqual(['draining'])
    expect(b.events).toEqual([])
    // A fourth pool: a now has one busy worker and b one: nobody can spare one until a worker goes idle.
    const d = new FakePool('d', budget)
    expect(d.grow()).toBe(false)
    expect(a.events).toEqual(['draining'])
    expect(b.events).toEqual([])
    expect(budget.stats().waiting).toBe(2)
    // b's worker goes idle: it is given up for d (c was already promised the drained one).
    expect(budget.yieldIdleWorker(b, 0)).toBe(true)
    expect(budget.yieldIdleWorker(a, 0)).toBe(false) // every waiter has its promise now
    budget.release(true) // the drained worker of a exits: c, first in line, gets its slot
    expect(c.events).toEqual(['offered', 'spawned'])
    budget.release(true) // b's worker exits: d's turn
    expect(d.events).toEqual(['offered', 'spawned'])
    expect(budget.stats()).toMatchObject({ used: 3, waiting: 0, reclaimed: 2 })
  })

  it('forgets a waiter whose requests gave up, and a pool that left', () => {
    const budget = new RedoProcessBudget(1)
    const a = new FakePool('a', budget)
    a.grow()
    const b = new FakePool('b', budget)
    b.grow()
    expect(budget.stats().waiting).toBe(1)
    budget.withdraw(b)
    expect(budget.stats().waiting).toBe(0)
    b.grow()
    budget.leave(b)
    expect(budget.stats().waiting).toBe(0)
    budget.release(false)
    expect(b.events).toEqual([])
    expect(a.grow()).toBe(true)
  })
})

describe('WalRedoManager under a shared RedoProcessBudget, with real worker processes', () => {
  const OPTS = { requestTimeoutMs: 10_000, idleTimeoutMs: 60_000, maxQueued: 100, maxInFlightPerWorker: 4, stopGraceMs: 500 }

  async function closeAll(...ms: WalRedoManager[]): Promise<void> {
    const pids = ms.flatMap((m) => m.stats().pids)
    await Promise.all(ms.map((m) => m.close()))
    expect(await waitGone(pids, 2000)).toEqual([])
  }

  it('never runs more processes than the cap: a busy pool of two drains one for a tenant with none, and loses no request', async () => {
    const budget = new RedoProcessBudget(2, { quantumMs: 0 })
    const a = new WalRedoManager({ ...OPTS, command: fakeWorker('echo-worker.mjs', ['--delay-ms=20']), poolSize: 2, budget })
    const b = new WalRedoManager({ ...OPTS, command: fakeWorker('echo-worker.mjs'), poolSize: 2, budget })
    const seen = new Set<number>()
    let maxLive = 0
    const sampler = setInterval(() => {
      for (const pid of [...a.stats().pids, ...b.stats().pids]) seen.add(pid)
      maxLive = Math.max(maxLive, [...seen].filter(isAlive).length, budget.stats().used)
    }, 2)
    try {
      const aReqs = Array.from({ length: 40 }, (_, i) => request(i, 2))
      const aPages = aReqs.map((r) => a.redo(r))
      await new Promise((r) => setTimeout(r, 50))
      expect(a.stats().workers).toBe(2)
      const bReq = request(7, 3)
      const bPage = await b.redo(bReq)
      expect(bPage.equals(expectedEcho(bReq))).toBe(true)
      const pages = await Promise.all(aPages)
      pages.forEach((p, i) => expect(p.equals(expectedEcho(aReqs[i]!)), `a request ${i}`).toBe(true))
      expect(a.stats()).toMatchObject({ reclaimed: 1, failed: 0, retried: 0 })
      expect(b.stats()).toMatchObject({ spawned: 1, workers: 1 })
      expect(budget.stats()).toMatchObject({ max: 2, waiting: 0, reclaimed: 1 })
      expect(maxLive).toBeLessThanOrEqual(2)
    } finally {
      clearInterval(sampler)
      await closeAll(a, b)
    }
    expect(budget.stats().used).toBe(0)
  })

  it('at a cap of one, tenants take turns: an idle worker is stopped for the tenant that waits', async () => {
    const budget = new RedoProcessBudget(1, { quantumMs: 0 })
    const a = new WalRedoManager({ ...OPTS, command: fakeWorker('echo-worker.mjs'), poolSize: 2, budget })
    const b = new WalRedoManager({ ...OPTS, command: fakeWorker('echo-worker.mjs'), poolSize: 2, budget })
    try {
      for (let round = 0; round < 3; round++) {
        const ra = request(2 * round + 1)
        expect((await a.redo(ra)).equals(expectedEcho(ra))).toBe(true)
        const aPid = a.stats().pids[0]!
        const rb = request(2 * round + 2)
        expect((await b.redo(rb)).equals(expectedEcho(rb))).toBe(true)
        expect(a.stats().workers).toBe(0)
        expect(await waitGone([aPid], 2000)).toEqual([])
      }
      expect(a.stats()).toMatchObject({ spawned: 3, reclaimed: 3, failed: 0 })
      expect(b.stats()).toMatchObject({ spawned: 3, reclaimed: 2, failed: 0 })
    } finally {
      await closeAll(a, b)
    }
    // The pools are gone; what they did stays counted.
    expect(budget.totals).toEqual({ spawned: 6, exited: 6, reaped: 0, reclaimed: 5, requests: 6, failed: 0 })
  })

  it('a worker serves its tenant for a quantum before another tenant may take it: alternating tenants do not turn every request into a spawn', async () => {
    const budget = new RedoProcessBudget(1, { quantumMs: 300 })
    const a = new WalRedoManager({ ...OPTS, command: fakeWorker('echo-worker.mjs'), poolSize: 1, budget })
    const b = new WalRedoManager({ ...OPTS, command: fakeWorker('echo-worker.mjs'), poolSize: 1, budget })
    try {
      const until = Date.now() + 1_500
      let served = 0
      // Both tenants ask all the time, one request at a time each.
      const loop = async (m: WalRedoManager, seed: number) => {
        for (let i = 0; Date.now() < until; i++) {
          const r = request(seed + 2 * i)
          expect((await m.redo(r)).equals(expectedEcho(r))).toBe(true)
          served++
        }
      }
      await Promise.all([loop(a, 1), loop(b, 2)])
      const spawned = a.stats().spawned + b.stats().spawned
      // Without the quantum each request of one tenant took the worker from the other: a spawn per request.
      expect(served).toBeGreaterThan(4 * spawned)
      expect(spawned).toBeLessThanOrEqual(Math.ceil(1_500 / 300) + 3)
      expect(a.stats().spawned).toBeGreaterThan(0)
      expect(b.stats().spawned).toBeGreaterThan(0)
    } finally {
      await closeAll(a, b)
    }
  })

  it('a tenant that finds every process busy with others times out naming wal_redo_max_processes', async () => {
    const budget = new RedoProcessBudget(1)
    const a = new WalRedoManager({ ...OPTS, command: fakeWorker('echo-worker.mjs', ['--delay-ms=1500']), poolSize: 1, budget })
    const b = new WalRedoManager({ ...OPTS, requestTimeoutMs: 300, command: fakeWorker('echo-worker.mjs'), poolSize: 1, budget })
    try {
      const slow = a.redo(request(1))
      await new Promise((r) => setTimeout(r, 100))
      const err = await b.redo(request(2)).then(
        () => null,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(PageserverError)
      expect((err as PageserverError).code).toBe('WALREDO_TIMEOUT')
      expect((err as PageserverError).message).toContain('wal_redo_max_processes')
      expect(budget.stats().waiting).toBe(0)
      expect((await slow).equals(expectedEcho(request(1)))).toBe(true)
      // a keeps its worker: nobody waits for it any more.
      expect(a.stats()).toMatchObject({ workers: 1, reclaimed: 0 })
    } finally {
      await closeAll(a, b)
    }
  })
})
