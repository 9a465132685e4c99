import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PgCluster } from '../../support/pg-cluster.js'
import { runPgTool } from '../../../src/core/postgres/install.js'
import { decodeControlFile, encodeControlFile, decodeCheckPoint, encodeCheckPoint, controlFileCrcIsValid, DBState } from '../../../src/core/pg/controlfile.js'
import { formatLsn } from '../../../src/core/pg/lsn.js'

describe('pg_control codec against pg_controldata', () => {
  let pg: PgCluster
  let fields: Map<string, string>
  let raw: Buffer
  beforeAll(async () => {
    pg = await PgCluster.start({ checksums: true, maxPreparedTransactions: 7, name: 'controlfile' })
    await pg.sql('CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g; CHECKPOINT;')
    await pg.stop('fast')
    const out = await runPgTool(pg.inst, 'pg_controldata', [pg.dataDir], { env: { LC_ALL: 'C' } })
    fields = new Map(out.stdout.split('\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()]))
    raw = readFileSync(join(pg.dataDir, 'global', 'pg_control'))
  })
  afterAll(async () => {
    await pg?.destroy()
  })

  it('decodes every field pg_controldata prints', () => {
    const c = decodeControlFile(raw)
    const cp = c.checkPointCopy
    expect(String(c.system_identifier)).toBe(fields.get('Database system identifier'))
    expect(String(c.pg_control_version)).toBe(fields.get('pg_control version number'))
    expect(String(c.catalog_version_no)).toBe(fields.get('Catalog version number'))
    expect(c.state).toBe(DBState.SHUTDOWNED)
    expect(fields.get('Database cluster state')).toBe('shut down')
    expect(formatLsn(c.checkPoint)).toBe(fields.get('Latest checkpoint location'))
    expect(formatLsn(cp.redo)).toBe(fields.get("Latest checkpoint's REDO location"))
    expect(String(cp.ThisTimeLineID)).toBe(fields.get("Latest checkpoint's TimeLineID"))
    expect(String(cp.PrevTimeLineID)).toBe(fields.get("Latest checkpoint's PrevTimeLineID"))
    expect(cp.fullPageWrites ? 'on' : 'off').toBe(fields.get("Latest checkpoint's full_page_writes"))
    const [epoch, xid] = fields.get("Latest checkpoint's NextXID")!.split(':').map(Number)
    expect(cp.nextXid).toBe((BigInt(epoch!) << 32n) | BigInt(xid!))
    expect(String(cp.nextOid)).toBe(fields.get("Latest checkpoint's NextOID"))
    expect(String(cp.nextMulti)).toBe(fields.get("Latest checkpoint's NextMultiXactId"))
    expect(String(cp.nextMultiOffset)).toBe(fields.get("Latest checkpoint's NextMultiOffset"))
    expect(String(cp.oldestXid)).toBe(fields.get("Latest checkpoint's oldestXID"))
    expect(String(cp.oldestXidDB)).toBe(fields.get("Latest checkpoint's oldestXID's DB"))
    expect(String(cp.oldestActiveXid)).toBe(fields.get("Latest checkpoint's oldestActiveXID"))
    expect(String(cp.oldestMulti)).toBe(fields.get("Latest checkpoint's oldestMultiXid"))
    expect(String(cp.oldestMultiDB)).toBe(fields.get("Latest checkpoint's oldestMulti's DB"))
    expect(String(c.max_prepared_xacts)).toBe(fields.get('max_prepared_xacts setting'))
    expect(String(c.max_wal_senders)).toBe(fields.get('max_wal_senders setting'))
    expect(String(c.MaxConnections)).toBe(fields.get('max_connections setting'))
    expect(c.wal_log_hints ? 'on' : 'off').toBe(fields.get('wal_log_hints setting'))
    expect(fields.get('wal_level setting')).toBe(c.wal_level === 1 ? 'replica' : c.wal_level === 2 ? 'logical' : 'minimal')
    expect(String(c.maxAlign)).toBe(fields.get('Maximum data alignment'))
    expect(String(c.blcksz)).toBe(fields.get('Database block size'))
    expect(String(c.relseg_size)).toBe(fields.get('Blocks per segment of large relation'))
    expect(String(c.xlog_blcksz)).toBe(fields.get('WAL block size'))
    expect(String(c.xlog_seg_size)).toBe(fields.get('Bytes per WAL segment'))
    expect(String(c.nameDataLen)).toBe(fields.get('Maximum length of identifiers'))
    expect(String(c.indexMaxKeys)).toBe(fields.get('Maximum columns in an index'))
    expect(String(c.toast_max_chunk_size)).toBe(fields.get('Maximum size of a TOAST chunk'))
    expect(String(c.loblksize)).toBe(fields.get('Size of a large-object chunk'))
    expect(String(c.data_checksum_version)).toBe(fields.get('Data page checksum version'))
    expect(c.floatFormat).toBe(1234567.0)
  })

  it('round-trips byte for byte, and re-encoding after a change yields a valid CRC that pg_controldata accepts', async () => {
    const c = decodeControlFile(raw)
    expect(encodeControlFile(c).equals(raw)).toBe(true)
    const changed = encodeControlFile({ ...c, checkPointCopy: { ...c.checkPointCopy, nextOid: 424242 } })
    expect(controlFileCrcIsValid(changed)).toBe(true)
    expect(decodeControlFile(changed).checkPointCopy.nextOid).toBe(424242)
    const cp = decodeCheckPoint(encodeCheckPoint(c.checkPointCopy))
    expect(cp).toEqual(c.checkPointCopy)
  })

  it('rejects a flipped byte', () => {
    const bad = Buffer.from(raw)
    bad[50]! ^= 0x01
    expect(() => decodeControlFile(bad)).toThrow(/CRC/)
  })
})
