/**
 * RelMap UPDATE records against the primary's pg_filenode.map files: VACUUM FULL of a local mapped catalog
 * (pg_class: base/<db>/pg_filenode.map), of a shared one (pg_database: global/pg_filenode.map), and CREATE
 * DATABASE (WAL_LOG strategy writes the new database's map). The last record of each map must carry exactly the
 * file's 512 bytes, pass validation, and map pg_class to its current file node. Plus hand-built maps.
 */
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PgCluster } from '../../support/pg-cluster.js'
import { readWalRecords } from '../../support/wal-verify.js'
import { crc32c } from '../../../src/core/lib/crc32c.js'
import { RM } from '../../../src/core/pg/rmgr.js'
import {
  RELMAPPER_FILEMAGIC,
  RELMAP_CRC_OFFSET,
  parseRelmapUpdate,
  relmapFilePath,
  validateRelMapFile,
  type ParsedRelmapUpdate,
} from '../../../src/core/redo/relmap.js'

describe('RelMap UPDATE against the primary map files', () => {
  it('carries the exact bytes of every map PostgreSQL writes', async () => {
    const pg = await PgCluster.start({ name: 'relmap' })
    try {
      const start = await pg.insertLsn()
      await pg.sql('VACUUM FULL pg_class')
      await pg.sql('VACUUM FULL pg_database')
      await pg.sql('CREATE DATABASE relmapdb')
      await pg.sql('VACUUM FULL pg_class', { db: 'relmapdb' })
      const end = await pg.insertLsn()
      await pg.sql('SELECT pg_switch_wal()')
      const records = readWalRecords(pg.walDir, pg.walSegments(), start, end).filter((r) => r.xl_rmid === RM.RELMAP)
      const last = new Map<string, ParsedRelmapUpdate>()
      for (const r of records) {
        expect(r.rmgrInfo).toBe(0x00)
        const u = parseRelmapUpdate(r.mainData())
        last.set(relmapFilePath(u.dbid, u.tsid), u)
      }
      const postgresOid = Number(await pg.sql(`SELECT oid FROM pg_database WHERE datname = 'postgres'`))
      const newOid = Number(await pg.sql(`SELECT oid FROM pg_database WHERE datname = 'relmapdb'`))
      expect([...last.keys()].sort()).toEqual([`base/${newOid}/pg_filenode.map`, `base/${postgresOid}/pg_filenode.map`, 'global/pg_filenode.map'].sort())
      for (const [path, u] of last) {
        const file = readFileSync(join(pg.dataDir, path))
        expect(u.map, path).toEqual(file)
        validateRelMapFile(u.map)
      }
      for (const [db, oid] of [
        ['postgres', postgresOid],
        ['relmapdb', newOid],
      ] as const) {
        const map = validateRelMapFile(last.get(`base/${oid}/pg_filenode.map`)!.map)
        const filenode = Number(await pg.sql(`SELECT pg_relation_filenode('pg_class')`, { db }))
        expect(map.mappings.find((m) => m.mapoid === 1259)?.mapfilenode).toBe(filenode)
      }
      const shared = validateRelMapFile(last.get('global/pg_filenode.map')!.map)
      expect(shared.mappings.find((m) => m.mapoid === 1262)?.mapfilenode).toBe(Number(await pg.sql(`SELECT pg_relation_filenode('pg_database')`)))
    } finally {
      await pg.destroy()
    }
  })
})

describe('RelMap records and map files (hand-built)', () => {
  function map(mappings: Array<[number, number]>): Buffer {
    const m = Buffer.alloc(512)
    m.writeInt32LE(RELMAPPER_FILEMAGIC, 0)
    m.writeInt32LE(mappings.length, 4)
    mappings.forEach(([o, f], i) => {
      m.writeUInt32LE(o, 8 + 8 * i)
      m.writeUInt32LE(f, 12 + 8 * i)
    })
    m.writeUInt32LE(crc32c(m.subarray(0, 504)), 504)
    m.writeInt32LE(0x5a5a, 508) // pad: carried along, not checked
    return m
  }
  function record(dbid: number, tsid: number, body: Buffer, nbytes = body.length): Buffer {
    const h = Buffer.alloc(12)
    h.writeUInt32LE(dbid, 0)
    h.writeUInt32LE(tsid, 4)
    h.writeInt32LE(nbytes, 8)
    return Buffer.concat([h, body])
  }

  it('parses the record and validates the map', () => {
    expect(RELMAP_CRC_OFFSET).toBe(504)
    const m = map([
      [1259, 16500],
      [1249, 1249],
    ])
    const u = parseRelmapUpdate(record(5, 1663, m))
    expect(u).toMatchObject({ dbid: 5, tsid: 1663, nbytes: 512 })
    expect(u.map).toEqual(m)
    expect(validateRelMapFile(u.map)).toEqual({
      magic: RELMAPPER_FILEMAGIC,
      num_mappings: 2,
      mappings: [
        { mapoid: 1259, mapfilenode: 16500 },
        { mapoid: 1249, mapfilenode: 1249 },
      ],
      crc: m.readUInt32LE(504),
    })
  })

  it('refuses wrong sizes, a bad magic, too many mappings and a bad CRC', () => {
    const m = map([[1259, 1]])
    expect(() => parseRelmapUpdate(record(5, 1663, m.subarray(0, 500), 500))).toThrow(/500 bytes, expected 512/)
    expect(() => parseRelmapUpdate(record(5, 1663, m.subarray(0, 500), 512))).toThrow(/announces 512/)
    expect(() => parseRelmapUpdate(Buffer.alloc(8))).toThrow(/less than 12/)
    const badMagic = Buffer.from(m)
    badMagic.writeInt32LE(0x592718, 0)
    expect(() => validateRelMapFile(badMagic)).toThrow(/magic 0x592718/)
    const tooMany = Buffer.from(m)
    tooMany.writeInt32LE(63, 4)
    expect(() => validateRelMapFile(tooMany)).toThrow(/63 mappings/)
    const badCrc = Buffer.from(m)
    badCrc[20] ^= 1
    expect(() => validateRelMapFile(badCrc)).toThrow(expect.objectContaining({ code: 'RELMAP_BAD_CRC' }))
    expect(() => validateRelMapFile(m.subarray(0, 511))).toThrow(/511 bytes/)
  })

  it('names the file like GetDatabasePath', () => {
    expect(relmapFilePath(0, 1664)).toBe('global/pg_filenode.map')
    expect(relmapFilePath(16384, 1663)).toBe('base/16384/pg_filenode.map')
    expect(relmapFilePath(16384, 16390)).toBe('pg_tblspc/16390/PG_15_202209061/16384/pg_filenode.map')
  })
})
