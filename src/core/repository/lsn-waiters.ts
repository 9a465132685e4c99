/**
 * Waiting for an LSN: readers of a timeline wait (bounded) until WAL up to the LSN they ask for has been
 * ingested. Waiters sit in a list sorted by LSN; advancing wakes the prefix that is satisfied. Each wait
 * has a deadline and an optional AbortSignal; both remove the waiter.
 */
import { InterruptedError, TimeoutError } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { TIMER_DELAY_MAX_MS } from '../lib/units.js'

/** Bound on concurrent waiters per timeline: each holds a timer and a closure. */
export const LSN_WAITERS_MAX = 100_000

interface Waiter {
  lsn: Lsn
  resolve: () => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
  cleanup: () => void
}

export class LsnWaiters {
  private readonly waiters: Waiter[] = []

  constructor(private readonly describe: () => string) {}

  get size(): number {
    return this.waiters.length
  }

  /** Resolves when `advance` reaches `lsn`. `current` is checked first by the caller. */
  wait(lsn: Lsn, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.waiters.length >= LSN_WAITERS_MAX) {
      return Promise.reject(new TimeoutError('WAIT_LSN_OVERLOADED', `too many readers waiting for WAL (${LSN_WAITERS_MAX})`))
    }
    if (signal?.aborted) return Promise.reject(new InterruptedError('INTERRUPTED', 'wait for WAL was cancelled'))
    return new Promise<void>((resolve, reject) => {
      const timedOut = () => {
        this.remove(w)
        reject(
          new TimeoutError('WAIT_LSN_TIMEOUT', `Timed out while waiting for WAL record at LSN ${formatLsn(lsn)} to arrive, ${this.describe()}`, {
            hint: 'The WAL source is behind or not streaming; check `timeline list` and the WAL receiver, or raise wait_lsn_timeout.',
            details: { lsn: formatLsn(lsn) },
          }),
        )
      }
      let leftMs = timeoutMs
      const arm = (): NodeJS.Timeout => {
        // wait_lsn_timeout may be up to 10 years: a longer wait re-arms its timer until its deadline.
        const delayMs = Math.min(leftMs, TIMER_DELAY_MAX_MS)
        leftMs -= delayMs
        const t = setTimeout(() => {
          if (leftMs > 0) w.timer = arm()
          else timedOut()
        }, delayMs)
        t.unref?.()
        return t
      }
      const w: Waiter = { lsn, resolve, reject, timer: arm(), cleanup: () => {} }
      if (signal) {
        const onAbort = () => {
          this.remove(w)
          reject(new InterruptedError('INTERRUPTED', 'wait for WAL was cancelled'))
        }
        signal.addEventListener('abort', onAbort, { once: true })
        w.cleanup = () => signal.removeEventListener('abort', onAbort)
      }
      // Insert sorted by LSN (binary search).
      let lo = 0
      let hi = this.waiters.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (this.waiters[mid]!.lsn <= lsn) lo = mid + 1
        else hi = mid
      }
      this.waiters.splice(lo, 0, w)
    })
  }

  /** Wakes every waiter whose LSN is at or below `lsn`. */
  advance(lsn: Lsn): void {
    let n = 0
    while (n < this.waiters.length && this.waiters[n]!.lsn <= lsn) n++
    if (n === 0) return
    for (const w of this.waiters.splice(0, n)) {
      clearTimeout(w.timer)
      w.cleanup()
      w.resolve()
    }
  }

  /** Fails every waiter (shutdown). */
  failAll(err: Error): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer)
      w.cleanup()
      w.reject(err)
    }
  }

  private remove(w: Waiter): void {
    const i = this.waiters.indexOf(w)
    if (i >= 0) this.waiters.splice(i, 1)
    clearTimeout(w.timer)
    w.cleanup()
  }
}
