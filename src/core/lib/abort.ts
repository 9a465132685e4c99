/**
 * Waiting on either of two abort signals without `AbortSignal.any`.
 *
 * On Node 20 `AbortSignal.any([a, b])` registers the combined signal with each source for as long as the
 * source lives, and never unregisters it: a timeline's or a connection's long-lived signal, combined once
 * per request that waits for WAL, kept one entry per request for the life of the timeline (≈ 50-100 bytes
 * each; a soak audit found 12,512 after 20,000 waits). Here the combined controller listens on both
 * sources only while `fn` runs, and removes its listeners when it settles.
 */
export async function withEitherSignal<T>(a: AbortSignal, b: AbortSignal, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  if (a.aborted) return fn(a)
  if (b.aborted) return fn(b)
  const combined = new AbortController()
  const fromA = (): void => combined.abort(a.reason)
  const fromB = (): void => combined.abort(b.reason)
  a.addEventListener('abort', fromA, { once: true })
  b.addEventListener('abort', fromB, { once: true })
  try {
    return await fn(combined.signal)
  } finally {
    a.removeEventListener('abort', fromA)
    b.removeEventListener('abort', fromB)
  }
}
