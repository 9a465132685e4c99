import { describe, expect, it } from 'vitest'
import { lsn } from '../../../src/core/pg/lsn.js'
import { LsnWaiters } from '../../../src/core/repository/lsn-waiters.js'

describe('LsnWaiters', () => {
  it('keeps waiting when the timeout is longer than setTimeout can hold (wait_lsn_timeout up to 10 years)', async () => {
    const waiters = new LsnWaiters(() => 'test')
    let outcome = 'pending'
    const waiting = waiters.wait(lsn(0x200), 30 * 86_400_000).then(
      () => (outcome = 'resolved'),
      (e: Error) => (outcome = `rejected: ${e.message}`),
    )
    // Node clamps a delay above 2^31 - 1 ms to 1 ms: the wait used to time out at once.
    await new Promise((r) => setTimeout(r, 50))
    expect(outcome).toBe('pending')
    waiters.advance(lsn(0x200))
    await waiting
    expect(outcome).toBe('resolved')
    expect(waiters.size).toBe(0)
  })

  it('still times out after a short timeout', async () => {
    const waiters = new LsnWaiters(() => 'test')
    await expect(waiters.wait(lsn(0x200), 20)).rejects.toThrow(/Timed out while waiting for WAL record at LSN 0\/200/)
    expect(waiters.size).toBe(0)
  })
})
