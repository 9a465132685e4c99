// What `layer dump` names each key as: every kind of key the mapping makes, in PostgreSQL's terms.
import { describe, expect, it } from 'vitest'
import {
  checkpointKey,
  controlFileKey,
  dbDirKey,
  describeKey,
  relBlockKey,
  relDirKey,
  relmapFileKey,
  relSizeKey,
  slruBlockKey,
  slruDirKey,
  slruSegmentSizeKey,
  twoPhaseDirKey,
  twoPhaseFileKey,
} from '../../../src/core/datadir/mapping.js'
import { SlruKind } from '../../../src/core/pg/slru.js'
import { keyFromFields } from '../../../src/core/model/key.js'

describe('describeKey', () => {
  it('names relation blocks and sizes, directories, SLRU pages, two-phase state and control keys', () => {
    const rel = { spcNode: 1663, dbNode: 5, relNode: 16397, forkNum: 0 }
    expect(describeKey(relBlockKey(rel, 1))).toBe('rel 1663/5/16397 main blk 1')
    expect(describeKey(relBlockKey({ ...rel, forkNum: 2 }, 0))).toBe('rel 1663/5/16397 vm blk 0')
    expect(describeKey(relSizeKey({ ...rel, forkNum: 1 }))).toBe('rel 1663/5/16397 fsm size')
    expect(describeKey(relDirKey(1663, 5))).toBe('relation directory of 1663/5')
    expect(describeKey(relmapFileKey(1663, 5))).toBe('relmap of 1663/5')
    expect(describeKey(dbDirKey())).toBe('database directory')
    expect(describeKey(slruBlockKey(SlruKind.Clog, 0x1a, 3))).toBe('pg_xact 001A page 3')
    expect(describeKey(slruSegmentSizeKey(SlruKind.MultixactMembers, 0))).toBe('pg_multixact/members 0000 size')
    expect(describeKey(slruDirKey(SlruKind.MultixactOffsets))).toBe('pg_multixact/offsets segments')
    expect(describeKey(twoPhaseDirKey())).toBe('two-phase directory')
    expect(describeKey(twoPhaseFileKey(1234))).toBe('two-phase state of xid 1234')
    expect(describeKey(controlFileKey())).toBe('pg_control')
    expect(describeKey(checkpointKey())).toBe('checkpoint')
    // No rule makes it: the key itself.
    const odd = keyFromFields({ field1: 9, field2: 1, field3: 2, field4: 3, field5: 4, field6: 5 })
    expect(describeKey(odd)).toBe(odd)
  })
})
