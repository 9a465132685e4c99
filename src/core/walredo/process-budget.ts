/**
 * RedoProcessBudget: one cap on the redo worker processes of every pool in a process (the server's
 * `wal_redo_max_processes`).
 *
 * Why: each tenant has its own pools (workers hold no state, but a tenant's requests must never wait behind
 * another tenant's in one pipe), and each worker is a Node process of tens of MiB. Without a cap a server
 * with a few hundred tenants being read at once would fork a few hundred processes.
 *
 * Policy, in one place:
 * - A pool takes a slot before it spawns a worker and the slot comes back when that process has exited, so
 *   live processes never exceed the cap (a worker being stopped still counts).
 * - A pool with no worker at all that finds no free slot waits for one (FIFO, `want`). For it the budget
 *   reclaims a worker from another pool: the one idle the longest, stopped at once; if none is idle, one
 *   worker of the pool with the most workers (at least two), drained first (it takes no new request and is
 *   stopped once it has answered the ones it holds). A pool that has one busy worker is not taken from: it
 *   gives its worker up the moment that worker goes idle while a pool waits (`yieldIdleWorker`).
 * - A pool that has a worker grows only into free slots, and never ahead of a waiting pool.
 * - Its requests meanwhile wait in the pool's own queue, under its own deadline (wal_redo_timeout).
 * - No worker is taken from its pool before it has run there for `quantumMs` (1 s): with more busy tenants than
 *   the cap, giving a worker up the moment it went idle turned every request into a process kill and spawn
 *   (an audit measured 20 times fewer pages served). Waiting pools are reconsidered once a quantum has passed.
 */

/** What the budget needs from a pool (WalRedoManager implements it). */
export interface RedoBudgetMember {
  /** Running workers that take requests (not counting those being drained or stopped). */
  liveWorkers(): number
  /**
   * When the pool's longest-idle worker started before `bornBefore` was last used (Date.now() ms), or null
   * when none such is idle.
   */
  oldestIdleSinceMs(bornBefore: number): number | null
  /** Stops that worker for another pool; false when there is none any more. */
  reclaimIdleWorker(bornBefore: number): boolean
  /** Drains one worker started before `bornBefore` for another pool: it takes no new request and stops once answered; false if none. */
  drainWorker(bornBefore: number): boolean
  /** A slot may be free for this waiting pool: start what its queue holds. */
  onSlotFree(): void
}

export interface RedoProcessBudgetStats {
  max: number
  /** Processes alive (or being stopped) under the budget. */
  used: number
  /** Pools with requests and no worker, waiting for a slot. */
  waiting: number
  /** Workers stopped or drained so that a waiting pool could start one, since the budget was made. */
  reclaimed: number
}

/** Events of every pool of a budget since it was made: monotonic, unlike sums over the pools alive now. */
export interface RedoTotals {
  spawned: number
  /** Every worker that ended, for whatever reason (reaped, reclaimed, crashed, its tenant closed): spawned − exited are alive. */
  exited: number
  reaped: number
  reclaimed: number
  requests: number
  failed: number
}

/** How long a worker serves its pool before another pool may take it (see the header). */
export const REDO_RECLAIM_QUANTUM_MS_DEFAULT = 1000

export class RedoProcessBudget {
  readonly quantumMs: number
  private retryTimer: NodeJS.Timeout | null = null
  /**
   * Counted by the pools (manager.ts, pool-stats.ts), except `reclaimed`, counted here where each is
   * decided; a deleted tenant's pool leaves its counts here.
   */
  readonly totals: RedoTotals = { spawned: 0, exited: 0, reaped: 0, reclaimed: 0, requests: 0, failed: 0 }
  private used = 0
  private readonly members = new Set<RedoBudgetMember>()
  private readonly waiters: RedoBudgetMember[] = []
  /** Slots promised to waiters: workers stopped or draining on their behalf that have not exited yet. */
  private freeing = 0
  /** The waiter being offered a freed slot (it may take it ahead of the others). */
  private offeredTo: RedoBudgetMember | null = null

  constructor(
    readonly max: number,
    opts: { quantumMs?: number } = {},
  ) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`a redo process budget needs a positive integer, got ${max}`)
    this.quantumMs = opts.quantumMs ?? REDO_RECLAIM_QUANTUM_MS_DEFAULT
  }

  stats(): RedoProcessBudgetStats {
    return { max: this.max, used: this.used, waiting: this.waiters.length, reclaimed: this.totals.reclaimed }
  }

  join(m: RedoBudgetMember): void {
    this.members.add(m)
  }

  /** The pool closed: it waits for nothing any more (its workers' slots come back as they exit). */
  leave(m: RedoBudgetMember): void {
    this.members.delete(m)
    this.dropWaiter(m)
  }

  /** `m` no longer waits (its queued requests gave up). */
  withdraw(m: RedoBudgetMember): void {
    this.dropWaiter(m)
  }

  /** A slot for one new process of `m`, if one is free and no other pool waits ahead of it. */
  tryAcquire(m: RedoBudgetMember): boolean {
    if (this.used >= this.max) return false
    if (this.waiters.length > 0 && this.offeredTo !== m && !this.waiters.includes(m)) return false
    this.used++
    this.dropWaiter(m)
    return true
  }

  /**
   * The process that held a slot has exited. `forWaiter` when it was stopped by `want` or `yieldIdleWorker`
   * (its slot was promised). Offers the slot to the waiting pools in order.
   */
  release(forWaiter: boolean): void {
    this.used--
    if (forWaiter) this.freeing--
    while (this.used < this.max && this.waiters.length > 0) {
      const m = this.waiters.shift()!
      this.offeredTo = m
      try {
        m.onSlotFree()
      } finally {
        this.offeredTo = null
      }
    }
    // A waiter that took no slot (its requests gave up) is gone from the list; the others keep their promise.
    this.reclaimFor()
  }

  /** `m` has queued requests and no worker: wait for a slot, and make one free if another pool can spare it. */
  want(m: RedoBudgetMember): void {
    if (!this.waiters.includes(m)) this.waiters.push(m)
    this.reclaimFor()
  }

  /**
   * A worker of `m` just went idle: true when a waiting pool still lacks a promised slot. The caller then
   * stops that worker and releases its slot with `forWaiter` (counted here).
   */
  yieldIdleWorker(m: RedoBudgetMember, workerStartedAtMs: number): boolean {
    if (this.waiters.length <= this.freeing || this.waiters.includes(m)) return false
    if (workerStartedAtMs > Date.now() - this.quantumMs) return false // its quantum is not over: the retry timer comes back
    this.freeing++
    this.totals.reclaimed++
    return true
  }

  private dropWaiter(m: RedoBudgetMember): void {
    const i = this.waiters.indexOf(m)
    if (i >= 0) this.waiters.splice(i, 1)
  }

  /** Frees one slot per waiter not yet promised one, from the pools that can spare a worker. */
  private reclaimFor(): void {
    const bornBefore = Date.now() - this.quantumMs
    while (this.waiters.length > this.freeing) {
      const donor = this.pickIdleDonor(bornBefore)
      if (donor !== null && donor.reclaimIdleWorker(bornBefore)) {
        this.freeing++
        this.totals.reclaimed++
        continue
      }
      const big = this.pickLargestDonor()
      if (big !== null && big.drainWorker(bornBefore)) {
        this.freeing++
        this.totals.reclaimed++
        continue
      }
      // Nothing to take now (busy, or within its quantum): look again once a quantum has passed.
      if (this.retryTimer === null) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null
          this.reclaimFor()
        }, Math.max(1, this.quantumMs))
        this.retryTimer.unref()
      }
      return
    }
  }

  private pickIdleDonor(bornBefore: number): RedoBudgetMember | null {
    let best: RedoBudgetMember | null = null
    let bestSince = Number.POSITIVE_INFINITY
    for (const m of this.members) {
      if (this.waiters.includes(m)) continue
      const since = m.oldestIdleSinceMs(bornBefore)
      if (since !== null && since < bestSince) {
        best = m
        bestSince = since
      }
    }
    return best
  }

  private pickLargestDonor(): RedoBudgetMember | null {
    let best: RedoBudgetMember | null = null
    for (const m of this.members) {
      if (m.liveWorkers() >= 2 && (best === null || m.liveWorkers() > best.liveWorkers())) best = m
    }
    return best
  }
}
