/**
 * Reconnect pacing: exponential backoff with jitter, and a sleep that an AbortSignal cuts short.
 *
 * delay(attempt) = base/2 + random * base/2, base = min(maxDelayMs, initialDelayMs * multiplier^(attempt-1))
 * ("equal jitter"): never less than half the base, so a flapping primary is not hammered, and spread out so
 * several receivers do not reconnect in lock step. Worked example with the defaults (200 ms, x2, 10 s):
 * attempt 1 -> 100..200 ms, attempt 4 -> 800..1600 ms, attempt 7 and later -> 5..10 s.
 */
import { UsageError } from '../lib/errors.js'

export interface BackoffOptions {
  initialDelayMs: number
  maxDelayMs: number
  multiplier: number
}

export const backoffDefaults: Readonly<BackoffOptions> = Object.freeze({ initialDelayMs: 200, maxDelayMs: 10_000, multiplier: 2 })

export function validateBackoff(b: BackoffOptions): void {
  if (!(b.initialDelayMs >= 0) || !(b.maxDelayMs >= b.initialDelayMs) || !(b.multiplier >= 1)) {
    throw new UsageError('BAD_BACKOFF', `backoff ${JSON.stringify(b)} is not valid`, {
      hint: 'Use initialDelayMs >= 0, maxDelayMs >= initialDelayMs and multiplier >= 1.',
    })
  }
}

/** Delay before reconnect attempt `attempt` (1-based), in ms. `random` returns [0, 1). */
export function backoffDelayMs(attempt: number, b: BackoffOptions, random: () => number = Math.random): number {
  const exp = Math.min(Math.max(attempt - 1, 0), 60)
  const base = Math.min(b.maxDelayMs, b.initialDelayMs * b.multiplier ** exp)
  return Math.round(base / 2 + random() * (base / 2))
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}
