// withEitherSignal: the wait sees either source's abort, with its reason, and leaves no listener on the
// long-lived sources once it settles (AbortSignal.any on Node 20 kept one entry per call for the life of the
// source: a soak audit found 12,512 after 20,000 waits for WAL on one timeline).
import { getEventListeners } from 'node:events'
import { describe, expect, it } from 'vitest'
import { withEitherSignal } from '../../../src/core/lib/abort.js'

const waitForAbort = (s: AbortSignal): Promise<never> =>
  new Promise((_, reject) => {
    if (s.aborted) reject(s.reason)
    s.addEventListener('abort', () => reject(s.reason), { once: true })
  })

describe('withEitherSignal', () => {
  it('passes on the abort of either source, with its reason', async () => {
    for (const which of ['a', 'b'] as const) {
      const a = new AbortController()
      const b = new AbortController()
      const p = withEitherSignal(a.signal, b.signal, waitForAbort)
      const reason = new Error(`from ${which}`)
      ;(which === 'a' ? a : b).abort(reason)
      await expect(p).rejects.toBe(reason)
      expect(getEventListeners(a.signal, 'abort')).toHaveLength(0)
      expect(getEventListeners(b.signal, 'abort')).toHaveLength(0)
    }
    const done = new AbortController()
    done.abort(new Error('already'))
    await expect(withEitherSignal(new AbortController().signal, done.signal, waitForAbort)).rejects.toThrow('already')
  })

  it('leaves no listener on the sources after many waits that ended on their own', async () => {
    const timeline = new AbortController()
    const connection = new AbortController()
    for (let i = 0; i < 1000; i++) {
      expect(await withEitherSignal(timeline.signal, connection.signal, async (s) => (s.aborted ? -1 : i))).toBe(i)
    }
    await expect(withEitherSignal(timeline.signal, connection.signal, async () => Promise.reject(new Error('failed')))).rejects.toThrow('failed')
    expect(getEventListeners(timeline.signal, 'abort')).toHaveLength(0)
    expect(getEventListeners(connection.signal, 'abort')).toHaveLength(0)
  })
})
