import { describe, expect, it } from 'vitest'
import { recordTypeName, rmIdentify } from '../../../src/core/pg/rmgr-identify.js'
import { RM } from '../../../src/core/pg/rmgr.js'

describe('rmIdentify', () => {
  it('names record types as pg_waldump does, +INIT variants included', () => {
    const cases: Array<[number, number, string]> = [
      [RM.XLOG, 0x00, 'CHECKPOINT_SHUTDOWN'],
      [RM.XLOG, 0xa0, 'FPI_FOR_HINT'],
      [RM.XLOG, 0xb0, 'FPI'],
      [RM.XLOG, 0xd0, 'OVERWRITE_CONTRECORD'],
      [RM.XACT, 0x00, 'COMMIT'],
      [RM.XACT, 0x80, 'COMMIT'], // HAS_INFO does not change the name
      [RM.XACT, 0xa0, 'ABORT'],
      [RM.XACT, 0x60, 'INVALIDATION'],
      [RM.STANDBY, 0x20, 'INVALIDATIONS'],
      [RM.HEAP, 0x00, 'INSERT'],
      [RM.HEAP, 0x80, 'INSERT+INIT'],
      [RM.HEAP, 0xa0, 'UPDATE+INIT'],
      [RM.HEAP, 0xc0, 'HOT_UPDATE+INIT'],
      [RM.HEAP, 0x50, 'HEAP_CONFIRM'],
      [RM.HEAP2, 0xd0, 'MULTI_INSERT+INIT'],
      [RM.HEAP2, 0x00, 'REWRITE'],
      [RM.BTREE, 0xe0, 'META_CLEANUP'],
      [RM.HASH, 0xc0, 'VACUUM_ONE_PAGE'],
      [RM.GIN, 0x90, 'VACUUM_DATA_LEAF_PAGE'],
      [RM.GIST, 0x70, 'ASSIGN_LSN'],
      [RM.SPGIST, 0x80, 'VACUUM_REDIRECT'],
      [RM.BRIN, 0x90, 'INSERT+INIT'],
      [RM.DBASE, 0x10, 'CREATE_WAL_LOG'],
      [RM.SEQ, 0x00, 'LOG'],
      [RM.COMMIT_TS, 0x10, 'TRUNCATE'],
      [RM.REPLORIGIN, 0x00, 'SET'],
      [RM.LOGICALMSG, 0x00, 'MESSAGE'],
      [RM.GENERIC, 0x00, 'Generic'],
      [RM.GENERIC, 0xf3, 'Generic'],
      [RM.MULTIXACT, 0x20, 'CREATE_ID'],
      [RM.RELMAP, 0x00, 'UPDATE'],
      [RM.CLOG, 0x10, 'TRUNCATE'],
      [RM.SMGR, 0x20, 'TRUNCATE'],
      [RM.TBLSPC, 0x10, 'DROP'],
    ]
    for (const [rmid, info, name] of cases) expect(rmIdentify(rmid, info), `${rmid}/${info.toString(16)}`).toBe(name)
  })

  it('ignores the low nibble flags (XLR_CHECK_CONSISTENCY) except where PostgreSQL compares the raw info', () => {
    expect(rmIdentify(RM.HEAP, 0x02)).toBe('INSERT')
    expect(rmIdentify(RM.XLOG, 0xb2)).toBe('FPI')
    // commit_ts_identify and replorigin_identify switch on the whole info byte.
    expect(rmIdentify(RM.COMMIT_TS, 0x02)).toBeNull()
    expect(rmIdentify(RM.REPLORIGIN, 0x12)).toBeNull()
  })

  it('has no name for unknown types and custom rmgrs; pg_waldump prints UNKNOWN (%x)', () => {
    expect(rmIdentify(RM.XLOG, 0xc0)).toBeNull()
    expect(rmIdentify(RM.HEAP2, 0x80)).toBeNull() // only MULTI_INSERT has an +INIT variant
    expect(rmIdentify(RM.BRIN, 0x80)).toBeNull()
    expect(rmIdentify(200, 0x00)).toBeNull()
    expect(recordTypeName(RM.XLOG, 0xc0)).toBe('UNKNOWN (c0)')
    expect(recordTypeName(RM.BTREE, 0xf2)).toBe('UNKNOWN (f0)')
    expect(recordTypeName(130, 0x10)).toBe('UNKNOWN (10)')
    expect(recordTypeName(RM.HEAP, 0x40)).toBe('HOT_UPDATE')
  })
})
