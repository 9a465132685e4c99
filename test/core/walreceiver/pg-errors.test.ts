// errorFromServer: a primary's ErrorResponse becomes a typed error by SQLSTATE. "All replication slots are in
// use" (53400) says what to do (orphan slots, max_replication_slots) instead of "retry in a moment"; the other
// 53xxx (too many connections) stay a plain retryable unavailability.
import { describe, expect, it } from 'vitest'
import { errorFromServer, isRetryable } from '../../../src/core/walreceiver/pg-errors.js'

describe('errorFromServer', () => {
  it('slots exhausted: PG_LIMIT_REACHED pointing at the orphan slots; too many connections: PG_UNAVAILABLE', () => {
    const slots = errorFromServer({ code: '53400', message: 'all replication slots are in use', hint: 'Free one or increase max_replication_slots.' }, 'CREATE_REPLICATION_SLOT')
    expect([slots.code, slots.kind, slots.message]).toEqual(['PG_LIMIT_REACHED', 'unavailable', 'PostgreSQL: all replication slots are in use'])
    expect(slots.hint).toContain('slot drop --orphans')
    expect(slots.hint).toContain('max_replication_slots')
    expect(isRetryable(slots)).toBe(true)
    const busy = errorFromServer({ code: '53300', message: 'sorry, too many clients already' }, 'startup')
    expect([busy.code, busy.hint]).toEqual(['PG_UNAVAILABLE', 'The server is starting, stopping or overloaded; retry in a moment.'])
  })

  it('max_wal_senders reached: replication off (0) is a usage error that says so; all senders busy names them', () => {
    const off = errorFromServer({ code: '53300', message: 'number of requested standby connections exceeds max_wal_senders (currently 0)' }, 'startup')
    expect([off.code, off.kind]).toEqual(['PG_REPLICATION_OFF', 'usage'])
    expect(off.hint).toContain('max_wal_senders = 0')
    expect(isRetryable(off)).toBe(false)
    const full = errorFromServer({ code: '53300', message: 'number of requested standby connections exceeds max_wal_senders (currently 10)' }, 'startup')
    expect([full.code, full.kind]).toEqual(['PG_UNAVAILABLE', 'unavailable'])
    expect(full.hint).toContain('max_wal_senders = 10')
    expect(isRetryable(full)).toBe(true)
  })
})
