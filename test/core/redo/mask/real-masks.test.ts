/**
 * Masks against real PostgreSQL 15 pages: unlogged changes (hint bits set by a scan, LP_DEAD set by an
 * index scan, VACUUM's all-visible flag) mask away; logged content changes do not; every access method's
 * mask accepts every page of a real index of that kind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PgCluster } from '../../../support/pg-cluster.js'
import {
  MASKABLE_RMGR,
  brinMask,
  btreeMask,
  ginMask,
  gistMask,
  hashMask,
  heapMask,
  maskPage,
  maskVmPage,
  seqMask,
  spgMask,
} from '../../../../src/core/redo/mask/index.js'
import { BLCKSZ, getPdSpecial, pageIsNew } from '../../../../src/core/redo/page/page.js'
import { fromHex, readItems } from '../page/helpers.js'

let pg: PgCluster

beforeAll(async () => {
  pg = await PgCluster.start({ name: 'redo-mask' })
  await pg.sql('CREATE EXTENSION pageinspect')
})
afterAll(async () => {
  await pg?.destroy()
})

async function rawPage(rel: string, blkno: number, fork = 'main'): Promise<Buffer> {
  const p = fromHex(await pg.sql(`SELECT encode(get_raw_page('${rel}', '${fork}', ${blkno}), 'hex')`))
  expect(p.length).toBe(BLCKSZ)
  return p
}

function masked(fn: (p: Buffer, blkno: number) => void, p: Buffer, blkno: number): Buffer {
  const c = Buffer.from(p)
  fn(c, blkno)
  return c
}

describe('masks on real pages', () => {
  it('hint bits set by a scan are masked, an UPDATE is not', async () => {
    await pg.sql(`
      CREATE TABLE mh (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
      INSERT INTO mh SELECT g, 'value ' || g FROM generate_series(1, 100) g;`)
    const before = await rawPage('mh', 0)
    await pg.sql('SELECT count(*) FROM mh')
    const hinted = await rawPage('mh', 0)
    expect(hinted.equals(before)).toBe(false)
    const firstTuple = readItems(hinted)[0]!
    expect(hinted.readUInt16LE(firstTuple.off + 20) & 0x0100).toBe(0x0100) // HEAP_XMIN_COMMITTED now set
    expect(masked(heapMask, hinted, 0).equals(masked(heapMask, before, 0))).toBe(true)

    await pg.sql("UPDATE mh SET v = 'changed' WHERE id = 50")
    const updated = await rawPage('mh', 0)
    expect(masked(heapMask, updated, 0).equals(masked(heapMask, hinted, 0))).toBe(false)
  })

  it('LP_DEAD hints and BTP_HAS_GARBAGE set by an index scan are masked on a btree leaf', async () => {
    await pg.sql(`
      CREATE TABLE mb (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = off);
      INSERT INTO mb SELECT g, g FROM generate_series(1, 200) g;
      DELETE FROM mb WHERE id BETWEEN 50 AND 80;`)
    const before = await rawPage('mb_pkey', 1)
    await pg.sql('SET enable_seqscan = off; SET enable_bitmapscan = off; SELECT count(*) FROM mb WHERE id BETWEEN 40 AND 90;')
    const after = await rawPage('mb_pkey', 1)
    const deadBefore = readItems(before).filter((it) => it.flags === 3).length
    const deadAfter = readItems(after).filter((it) => it.flags === 3).length
    expect(deadBefore).toBe(0)
    expect(deadAfter).toBeGreaterThan(0)
    expect(masked(btreeMask, after, 1).equals(masked(btreeMask, before, 1))).toBe(true)
    expect(maskPage(MASKABLE_RMGR.BTREE, after, 1).equals(maskPage(MASKABLE_RMGR.BTREE, before, 1))).toBe(true)
  })

  it('VM pages: maskVmPage sees VACUUM setting bits, heap_mask would not', async () => {
    await pg.sql(`
      CREATE TABLE mv (id int) WITH (autovacuum_enabled = off);
      INSERT INTO mv SELECT generate_series(1, 5000);
      VACUUM mv;`)
    const vm1 = await rawPage('mv', 0, 'vm')
    await pg.sql('DELETE FROM mv WHERE id < 200')
    const vm2 = await rawPage('mv', 0, 'vm') // the DELETE cleared the all-visible bit of block 0
    const a = Buffer.from(vm1)
    const b = Buffer.from(vm2)
    maskVmPage(a)
    maskVmPage(b)
    expect(a.equals(b)).toBe(false)
    expect(masked(heapMask, vm1, 0).equals(masked(heapMask, vm2, 0))).toBe(true)
  })

  it('sequence pages: seq_mask keeps the sequence state', async () => {
    await pg.sql('CREATE SEQUENCE ms; SELECT nextval(\'ms\');')
    const s1 = await rawPage('ms', 0)
    expect(s1.readUInt32LE(getPdSpecial(s1))).toBe(0x1717)
    await pg.sql("SELECT nextval('ms') FROM generate_series(1, 40)")
    const s2 = await rawPage('ms', 0)
    expect(masked(seqMask, s1, 0).equals(masked(seqMask, s2, 0))).toBe(false)
    expect(masked(seqMask, s1, 0).equals(masked(seqMask, s1, 0))).toBe(true)
  })

  it('every access method mask accepts every page of a real index, is idempotent and keeps content', async () => {
    await pg.sql(`
      CREATE TABLE mi (id int, a int[], p point, t text) WITH (autovacuum_enabled = off);
      INSERT INTO mi SELECT g, ARRAY[g % 50, g % 7], point(g % 100, g / 100), md5(g::text) FROM generate_series(1, 3000) g;
      CREATE INDEX mi_hash ON mi USING hash (id);
      CREATE INDEX mi_gin ON mi USING gin (a);
      CREATE INDEX mi_gist ON mi USING gist (p);
      CREATE INDEX mi_spg ON mi USING spgist (t);
      CREATE INDEX mi_brin ON mi USING brin (id) WITH (pages_per_range = 2);
      CREATE INDEX mi_bt ON mi (t);`)
    const cases: Array<[string, (p: Buffer, b: number) => void]> = [
      ['mi_hash', hashMask],
      ['mi_gin', ginMask],
      ['mi_gist', gistMask],
      ['mi_spg', spgMask],
      ['mi_brin', brinMask],
      ['mi_bt', btreeMask],
    ]
    for (const [rel, fn] of cases) {
      // One psql call per relation: every block, hex, one per line.
      const pages = (
        await pg.sql(`SELECT encode(get_raw_page('${rel}', b::int), 'hex') FROM generate_series(0, pg_relation_size('${rel}') / 8192 - 1) b ORDER BY b`)
      )
        .split('\n')
        .map(fromHex)
      expect(pages.length).toBeGreaterThan(1)
      let kept = 0
      for (let blk = 0; blk < pages.length; blk++) {
        const page = pages[blk]!
        expect(page.length).toBe(BLCKSZ)
        if (pageIsNew(page)) continue
        const once = masked(fn, page, blk)
        expect(masked(fn, once, blk).equals(once), `${rel} block ${blk}`).toBe(true)
        if (!once.subarray(24).equals(Buffer.alloc(BLCKSZ - 24))) kept++
      }
      expect(kept, rel).toBeGreaterThan(0)
    }
  })
})
