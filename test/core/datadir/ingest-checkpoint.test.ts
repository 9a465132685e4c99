// How checkpoint records move the counters a new primary starts from (the CheckPoint kept for pg_control),
// as PostgreSQL's xlog_redo does: a shutdown checkpoint's counters are exact; an online checkpoint's were
// read when it began, so its multixact counters, oldestXid and oldestMulti only move forward and its
// nextOid is ignored (XLOG_NEXTOID tracks OIDs). An audit saw an export taken after a slow online
// checkpoint refuse its own rows' multixacts ("MultiXactId 12 has not been created yet").
import { describe, expect, it } from 'vitest'
import { WalIngest, type IngestSink } from '../../../src/core/datadir/ingest.js'
import { checkpointKey } from '../../../src/core/datadir/mapping.js'
import { encodeCheckPoint, type CheckPoint } from '../../../src/core/pg/controlfile.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import { RM } from '../../../src/core/pg/rmgr.js'
import { decodeRecord } from '../../../src/core/pg/wal-record.js'
import { XLOG_MULTIXACT_CREATE_ID } from '../../../src/core/redo/slru/multixact.js'
import { testCheckPoint } from '../../support/checkpoint-fixture.js'
import { buildRecord, le } from '../redo/heap/record-builder.js'

const XLOG_CHECKPOINT_SHUTDOWN = 0x00
const XLOG_CHECKPOINT_ONLINE = 0x10
const XLOG_NEXTOID = 0x30

function ingestWith(start: CheckPoint): WalIngest {
  const image = encodeCheckPoint(start)
  const sink: IngestSink = {
    put: () => undefined,
    putRecord: () => undefined,
    reserveImage: (_, n) => Buffer.alloc(n),
    commitValue: () => undefined,
    putRecordAt: () => undefined,
    commitValueAt: () => undefined,
    readLatestImage: (key) => (key === checkpointKey() ? image : null),
    readPage: () => Promise.reject(new Error('no pages here')),
  }
  return new WalIngest(sink)
}

let at = 0x100_0000n
function feed(w: WalIngest, rmid: number, info: number, main: Buffer, xid = 0): void {
  const raw = buildRecord({ rmid, info, xid, main })
  at += 0x100n
  void w.ingest(decodeRecord(raw, lsn(at), lsn(at + BigInt(raw.length))))
}

const checkpoint = (c: Partial<CheckPoint>): Buffer => encodeCheckPoint({ ...testCheckPoint(lsn(at)), ...c })

describe('checkpoint records and the counters', () => {
  it('an online checkpoint older than the multixacts and OIDs handed out since it began moves nothing back', () => {
    const w = ingestWith({ ...testCheckPoint(lsn(0x100_0000n)), nextMulti: 7, nextMultiOffset: 13, nextOid: 24576, oldestXid: 716, oldestMulti: 1 })
    // multixact 20 with two members at offset 40, then an OID counter record
    feed(w, RM.MULTIXACT, XLOG_MULTIXACT_CREATE_ID, Buffer.concat([le([20, 4], [40, 4], [2, 4]), le([1300, 4], [1, 4], [1301, 4], [1, 4])]), 1301)
    feed(w, RM.XLOG, XLOG_NEXTOID, le([50_000, 4]))
    expect(w.state.checkpoint).toMatchObject({ nextMulti: 21, nextMultiOffset: 42, nextOid: 50_000 })

    // The online checkpoint's values were read before all that.
    feed(w, RM.XLOG, XLOG_CHECKPOINT_ONLINE, checkpoint({ nextMulti: 10, nextMultiOffset: 20, nextOid: 40_960, oldestXid: 700, oldestXidDB: 9, oldestMulti: 0xffff_fff0, oldestMultiDB: 9 }))
    expect(w.state.checkpoint).toMatchObject({ nextMulti: 21, nextMultiOffset: 42, nextOid: 50_000, oldestXid: 716, oldestMulti: 1 })
    expect(w.state.checkpoint.oldestXidDB).not.toBe(9)
    expect(w.state.checkpoint.oldestMultiDB).not.toBe(9)

    // A later online checkpoint past them moves them forward (oldest* with their databases); nextOid stays.
    feed(w, RM.XLOG, XLOG_CHECKPOINT_ONLINE, checkpoint({ nextMulti: 30, nextMultiOffset: 60, nextOid: 90_000, oldestXid: 800, oldestXidDB: 4, oldestMulti: 5, oldestMultiDB: 4 }))
    expect(w.state.checkpoint).toMatchObject({ nextMulti: 30, nextMultiOffset: 60, nextOid: 50_000, oldestXid: 800, oldestXidDB: 4, oldestMulti: 5, oldestMultiDB: 4 })
  })

  it('across wraparound: a counter just past 2^32 is ahead of one just below it', () => {
    const w = ingestWith({ ...testCheckPoint(lsn(0x100_0000n)), nextMulti: 0xffff_fffe, nextMultiOffset: 0xffff_ff00, oldestXid: 0xffff_fff0 })
    feed(w, RM.XLOG, XLOG_CHECKPOINT_ONLINE, checkpoint({ nextMulti: 3, nextMultiOffset: 0x10, oldestXid: 5 }))
    expect(w.state.checkpoint).toMatchObject({ nextMulti: 3, nextMultiOffset: 0x10, oldestXid: 5 })
    feed(w, RM.XLOG, XLOG_CHECKPOINT_ONLINE, checkpoint({ nextMulti: 0xffff_fffe, nextMultiOffset: 0xffff_ff00, oldestXid: 0xffff_fff0 }))
    expect(w.state.checkpoint).toMatchObject({ nextMulti: 3, nextMultiOffset: 0x10, oldestXid: 5 })
  })

  it('a shutdown checkpoint is believed exactly', () => {
    const w = ingestWith({ ...testCheckPoint(lsn(0x100_0000n)), nextMulti: 21, nextMultiOffset: 42, nextOid: 50_000, oldestXid: 716 })
    feed(w, RM.XLOG, XLOG_CHECKPOINT_SHUTDOWN, checkpoint({ nextMulti: 19, nextMultiOffset: 40, nextOid: 45_000, oldestXid: 710, oldestXidDB: 3 }))
    expect(w.state.checkpoint).toMatchObject({ nextMulti: 19, nextMultiOffset: 40, nextOid: 45_000, oldestXid: 710, oldestXidDB: 3 })
  })
})
