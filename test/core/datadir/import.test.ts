import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { PgCluster } from '../../support/pg-cluster.js'
import { DatadirImporter, classifyPath } from '../../../src/core/datadir/import.js'
import { walkFiles, readFileChunks } from '../../../src/core/storage/tree-walk.js'
import type { Key } from '../../../src/core/model/key.js'
import type { Value } from '../../../src/core/model/value.js'
import {
  dbDirKey,
  decodeBlockCount,
  decodeDbDir,
  decodeRelDir,
  decodeU32Set,
  relBlockKey,
  relDirKey,
  relSizeKey,
  slruDirKey,
  controlFileKey,
} from '../../../src/core/datadir/mapping.js'
import { SlruKind } from '../../../src/core/pg/slru.js'

describe('classifyPath', () => {
  it('recognises PostgreSQL data files and ignores the rest', () => {
    expect(classifyPath('base/5/16384')).toEqual({ kind: 'rel', rel: { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0 }, segment: 0 })
    expect(classifyPath('base/5/16384_vm.3')).toEqual({ kind: 'rel', rel: { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 2 }, segment: 3 })
    expect(classifyPath('global/1262_fsm')).toEqual({ kind: 'rel', rel: { spcNode: 1664, dbNode: 0, relNode: 1262, forkNum: 1 }, segment: 0 })
    expect(classifyPath('global/pg_filenode.map')).toEqual({ kind: 'relmap', spcNode: 1664, dbNode: 0 })
    expect(classifyPath('pg_xact/0000')).toEqual({ kind: 'slru', slru: SlruKind.Clog, segno: 0 })
    expect(classifyPath('pg_multixact/members/1A2B3')).toEqual({ kind: 'slru', slru: SlruKind.MultixactMembers, segno: 0x1a2b3 })
    expect(classifyPath('pg_twophase/000003E8')).toEqual({ kind: 'twophase', xid: 1000 })
    for (const p of ['PG_VERSION', 'postgresql.conf', 'base/5/PG_VERSION', 'pg_wal/000000010000000000000001', 'base/5/pg_internal.init', 'base/5/t3_16384']) {
      expect(classifyPath(p).kind).toBe('skip')
    }
    expect(() => classifyPath('pg_tblspc/16400/PG_15_202209061/5/16401')).toThrow(/tablespace/)
  })
})

describe('DatadirImporter on a real data directory', () => {
  let pg: PgCluster
  const puts = new Map<Key, Value>()
  let tableFile: { db: number; rel: number; blocks: number }
  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'import' })
    await pg.sql("CREATE TABLE t AS SELECT g, repeat('x', 200) AS v FROM generate_series(1, 5000) g; CREATE INDEX ON t(g); VACUUM t;")
    const [db, rel] = (await pg.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'; SELECT pg_relation_filenode('t')")).split('\n').map(Number)
    await pg.stop('fast')
    const size = statSync(join(pg.dataDir, 'base', String(db), String(rel))).size
    tableFile = { db: db!, rel: rel!, blocks: size / 8192 }
    const importer = new DatadirImporter({ put: (k, v) => void puts.set(k, v) })
    for await (const f of walkFiles(pg.dataDir)) {
      if (importer.wants(f.relPath)) await importer.addFile(f.relPath, readFileChunks(f.absPath, 3000))
    }
    importer.finish()
  })
  afterAll(async () => {
    await pg?.destroy()
  })

  it('stores every page of a relation, its size, and the directories that name it', () => {
    const rel = { spcNode: 1663, dbNode: tableFile.db, relNode: tableFile.rel, forkNum: 0 }
    expect(tableFile.blocks).toBeGreaterThan(100)
    const size = puts.get(relSizeKey(rel))!
    expect(size.kind).toBe('image')
    expect(decodeBlockCount((size as { data: Buffer }).data)).toBe(tableFile.blocks)
    for (let b = 0; b < tableFile.blocks; b++) expect(puts.has(relBlockKey(rel, b))).toBe(true)
    expect(puts.has(relBlockKey(rel, tableFile.blocks))).toBe(false)
    const relDir = decodeRelDir((puts.get(relDirKey(1663, tableFile.db)) as { data: Buffer }).data)
    expect(relDir).toContainEqual({ relNode: tableFile.rel, forkNum: 0 })
    expect(relDir).toContainEqual({ relNode: tableFile.rel, forkNum: 2 }) // VM after VACUUM
    const dbs = decodeDbDir((puts.get(dbDirKey()) as { data: Buffer }).data)
    expect(dbs).toContainEqual({ spcNode: 1663, dbNode: tableFile.db, hasRelmap: true })
    expect(dbs).toContainEqual({ spcNode: 1664, dbNode: 0, hasRelmap: true })
    expect(decodeU32Set((puts.get(slruDirKey(SlruKind.Clog)) as { data: Buffer }).data)).toEqual([0])
    expect(puts.has(controlFileKey())).toBe(true)
  })

  it('counts blocks as PostgreSQL does: a zero-length later segment (left by a truncation) adds none', () => {
    // mdtruncate empties the segments past the new end and keeps them; mdnblocks stops at the first segment
    // shorter than RELSEG_SIZE. A relation truncated from 1.5 GiB to 3 blocks: 16384 has 3 pages, 16384.1 none.
    // Before: the empty segment 1 counted as a full segment 0, 131072 blocks.
    const own = new Map<Key, Value>()
    const importer = new DatadirImporter({ put: (k, v) => void own.set(k, v) })
    const control = importer.openFile('global/pg_control')!
    control.write(readFileSync(join(pg.dataDir, 'global', 'pg_control')))
    control.end()
    const seg0 = importer.openFile('base/5/16384')!
    seg0.write(Buffer.alloc(3 * 8192))
    seg0.end()
    importer.openFile('base/5/16384.1')!.end()
    importer.openFile('base/5/16385.1')!.end() // only an empty later segment: the relation exists, with no block
    importer.finish()
    const size = (relNode: number) => decodeBlockCount((own.get(relSizeKey({ spcNode: 1663, dbNode: 5, relNode, forkNum: 0 })) as { data: Buffer }).data)
    expect(size(16384)).toBe(3)
    expect(size(16385)).toBe(0)
  })

  it('leaves out a partial last page of a relation file (an online backup copying a growing file), not of an SLRU file', () => {
    const own = new Map<Key, Value>()
    const importer = new DatadirImporter({ put: (k, v) => void own.set(k, v) })
    const control = importer.openFile('global/pg_control')!
    control.write(readFileSync(join(pg.dataDir, 'global', 'pg_control')))
    control.end()
    const rel = importer.openFile('base/5/16384')!
    rel.write(Buffer.alloc(2 * 8192 + 4096, 7)) // the third page caught half-written by its extension
    rel.end() // before: IMPORT_TORN_FILE, the whole import failed
    const clog = importer.openFile('pg_xact/0000')!
    clog.write(Buffer.alloc(8192 + 100))
    expect(() => clog.end()).toThrow(expect.objectContaining({ code: 'IMPORT_TORN_FILE' }))
    importer.finish()
    const tag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0 }
    expect(decodeBlockCount((own.get(relSizeKey(tag)) as { data: Buffer }).data)).toBe(2)
    expect(own.has(relBlockKey(tag, 2))).toBe(false)
    expect(importer.stats.partialPagesDropped).toBe(1)
  })
})
