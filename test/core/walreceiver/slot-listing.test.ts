// The rows of the slot listing query, parsed: text booleans, LSNs, the numeric byte difference; a slot
// without restart_lsn retains nothing (null), a standby's negative difference counts as 0, and anything
// else the server might send is a PG_BAD_REPLY, not a silently wrong number.
import { describe, expect, it } from 'vitest'
import { parsePhysicalSlotRows } from '../../../src/core/walreceiver/slot-listing.js'
import { lsn } from '../../../src/core/pg/lsn.js'

const fields = ['slot_name', 'active', 'active_pid', 'restart_lsn', 'pg_wal_lsn_diff']
const rows = (...r: Array<Array<string | null>>) => ({ fields, rows: r, tags: ['SELECT 1'] })

describe('parsePhysicalSlotRows', () => {
  it('parses active and inactive slots, with and without restart_lsn', () => {
    expect(
      parsePhysicalSlotRows(rows(['pageserver_a', 't', '4242', '0/3000028', '33554392'], ['pageserver_b', 'f', null, null, null], ['standby', 'f', null, '1/0', '-40'])),
    ).toEqual([
      { slotName: 'pageserver_a', active: true, activePid: 4242, restartLsn: lsn(0x3000028), retainedBytes: 33554392n },
      { slotName: 'pageserver_b', active: false, activePid: null, restartLsn: null, retainedBytes: null },
      { slotName: 'standby', active: false, activePid: null, restartLsn: lsn(0x1_0000_0000), retainedBytes: 0n },
    ])
    expect(parsePhysicalSlotRows(rows())).toEqual([])
  })

  it('refuses what PostgreSQL would not send', () => {
    const bad = [
      { fields: fields.slice(0, 4), rows: [], tags: [] },
      rows([null, 'f', null, null, null]),
      rows(['s', 'yes', null, null, null]),
      rows(['s', 't', '-1', null, null]),
      rows(['s', 'f', null, '0/10', '1.5']),
      rows(['s', 'f', null, 'nonsense', '1']),
    ]
    for (const r of bad) expect(() => parsePhysicalSlotRows(r)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^(PG_BAD_REPLY|BAD_LSN)$/) }))
  })
})
