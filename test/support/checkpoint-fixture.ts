/** A plausible CheckPoint (pg_control's copy of the last checkpoint record) for tests that synthesize WAL. */
import type { CheckPoint } from '../../src/core/pg/controlfile.js'
import type { Lsn } from '../../src/core/pg/lsn.js'

export function testCheckPoint(redo: Lsn): CheckPoint {
  return {
    redo,
    ThisTimeLineID: 1,
    PrevTimeLineID: 1,
    fullPageWrites: true,
    nextXid: (1n << 32n) | 1234n,
    nextOid: 24576,
    nextMulti: 7,
    nextMultiOffset: 13,
    oldestXid: 716,
    oldestXidDB: 1,
    oldestMulti: 1,
    oldestMultiDB: 5,
    time: 1700000000n,
    oldestCommitTsXid: 0,
    newestCommitTsXid: 0,
    oldestActiveXid: 999,
  }
}
