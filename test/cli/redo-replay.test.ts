/**
 * `pageserver redo replay` end to end (built CLI): a real PostgreSQL 15 writes WAL for a heap table and its
 * btree index; the pages replayed at the final LSN must equal, after masking, the pages PostgreSQL wrote to
 * disk at a checkpoint; from a base page file taken at an earlier checkpoint as well. Also the summary, the
 * --out file, a corrupted --verify page (exit 5) and the error exits (3 not found, 2 bad input).
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, cpSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../support/cli.js'
import { PgCluster } from '../support/pg-cluster.js'
import { formatLsn, type Lsn } from '../../src/core/pg/lsn.js'

let pg: PgCluster
let dir: string
let wal: string
let lsn: Lsn
let heapRel: string
let indexRel: string
let heapFile: string
let indexFile: string
/** A table changed while full_page_writes was on. */
let fpwRel: string
let fpwFile: string
/** Heap block 0 as it was on disk after the first checkpoint (a base for --base). */
let earlyPage: Buffer

function pageOf(file: string, blk: number): Buffer {
  return readFileSync(file).subarray(blk * 8192, (blk + 1) * 8192)
}

function replay(args: string[]): Promise<Awaited<ReturnType<typeof runCli>>> {
  return runCli(['redo', 'replay', '--wal', wal, '--lsn', formatLsn(lsn), '-D', join(dir, 'wd'), ...args], { timeoutMs: 60_000 })
}

describe('pageserver redo replay', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ps-redo-replay-'))
    pg = await PgCluster.start({ name: 'replay' })
    await pg.sql(`
      CREATE TABLE r (id int PRIMARY KEY, v text);
      INSERT INTO r SELECT g, md5(g::text) FROM generate_series(1, 400) g;
      CREATE TABLE s (id int, v text);
      INSERT INTO s SELECT g, md5(g::text) FROM generate_series(1, 100) g;`)
    await pg.checkpoint()
    const db = await pg.sql(`SELECT oid FROM pg_database WHERE datname = 'postgres'`)
    heapRel = `1663/${db}/${await pg.sql(`SELECT pg_relation_filenode('r')`)}`
    fpwRel = `1663/${db}/${await pg.sql(`SELECT pg_relation_filenode('s')`)}`
    indexRel = `1663/${db}/${await pg.sql(`SELECT pg_relation_filenode('r_pkey')`)}`
    heapFile = join(pg.dataDir, await pg.sql(`SELECT pg_relation_filepath('r')`))
    fpwFile = join(pg.dataDir, await pg.sql(`SELECT pg_relation_filepath('s')`))
    indexFile = join(pg.dataDir, await pg.sql(`SELECT pg_relation_filepath('r_pkey')`))
    earlyPage = Buffer.from(pageOf(heapFile, 0))
    // s changes first after the checkpoint: its block 0 gets a full-page write. Then full_page_writes goes off,
    // so r's pages are rebuilt from their initialisation (or from the early page) through ordinary records.
    // No reads of r or s afterwards (a read could prune).
    await pg.sql(`UPDATE s SET v = 'fpw' WHERE id % 2 = 0; DELETE FROM s WHERE id % 5 = 0;`)
    await pg.sql(`ALTER SYSTEM SET full_page_writes = off; SELECT pg_reload_conf();`)
    await pg.sql(`
      UPDATE r SET v = v || '!' WHERE id % 3 = 0;
      DELETE FROM r WHERE id % 7 = 0;
      INSERT INTO r SELECT g, 'late' FROM generate_series(401, 450) g;
      VACUUM r;
      UPDATE r SET v = 'x' WHERE id = 2;`)
    lsn = await pg.insertLsn()
    await pg.checkpoint()
    wal = join(dir, 'pg_wal')
    cpSync(pg.walDir, wal, { recursive: true })
  })

  afterAll(async () => {
    await pg?.destroy()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('rebuilds a heap page equal to the one PostgreSQL wrote, and summarises it', async () => {
    const disk = join(dir, 'heap0.bin')
    writeFileSync(disk, pageOf(heapFile, 0))
    const r = await replay(['--rel', heapRel, '--blk', '0', '--verify', disk, '--json'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const j = r.json()
    expect(j.verify).toEqual({ file: disk, mask: 'heap', equal: true, offset: -1 })
    expect(j.start.kind).toBe('init') // full_page_writes was off: the chain starts at Heap/INSERT+INIT
    expect(j.chain[0].type).toBe('Heap/INSERT+INIT')
    expect(j.chain.map((c: { type: string }) => c.type)).toEqual(expect.arrayContaining(['Heap/UPDATE', 'Heap/DELETE', 'Heap2/PRUNE']))
    expect(j.recordsBeforeStart).toBe(0)
    expect(j.page.kind).toBe('heap')
    expect(j.page.pd_lsn).toBe(j.chain[j.chain.length - 1].endLsn)
    const normal = j.page.linePointers.filter((lp: { lp_flags: string }) => lp.lp_flags === 'NORMAL')
    expect(normal.length).toBeGreaterThan(10)
    expect(normal[0].tuple.t_xmin).toBeGreaterThan(2)
    expect(normal[0].tuple.t_ctid).toMatch(/^\(0,\d+\)$/)
  })

  it('starts from the last full-page image when there is one', async () => {
    const disk = join(dir, 'fpw0.bin')
    writeFileSync(disk, pageOf(fpwFile, 0))
    const r = await replay(['--rel', fpwRel, '--blk', '0', '--verify', disk, '--json'])
    expect(r.code).toBe(0)
    const j = r.json()
    expect(j.verify.equal).toBe(true)
    expect(j.start.kind).toBe('image')
    expect(j.chain[0].action).toMatch(/full-page image/)
    expect(j.recordsBeforeStart).toBeGreaterThan(0) // the inserts before the checkpoint no longer matter
  })

  it('writes exactly the page with --out, and prints the chain and summary as text', async () => {
    const out = join(dir, 'out.bin')
    const r = await replay(['--rel', heapRel, '--blk', '0', '--out', out])
    expect(r.code).toBe(0)
    expect(statSync(out).size).toBe(8192)
    expect(r.stdout).toContain(`page ${heapRel} main blk 0 at ${formatLsn(lsn)}`)
    expect(r.stdout).toMatch(/chain: \d+ records from the page initialisation at /)
    expect(r.stdout).toContain('wrote the page (8192 bytes)')

    const text = await replay(['--rel', heapRel, '--blk', '0'])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/kind heap {2}pd_lsn \d+\/[0-9A-F]+/)
    expect(text.stdout).toMatch(/OFF +LP_OFF +FLAGS +LP_LEN +XMIN +XMAX +INFOMASK/)
    expect(text.stdout).toContain('deletes the tuple at offset')
  })

  it('rebuilds a btree leaf page and shows its opaque data', async () => {
    const disk = join(dir, 'idx1.bin')
    writeFileSync(disk, pageOf(indexFile, 1))
    const r = await replay(['--rel', indexRel, '--blk', '1', '--verify', disk, '--json'])
    expect(r.code).toBe(0)
    const j = r.json()
    expect(j.verify).toMatchObject({ mask: 'btree', equal: true })
    expect(j.page.kind).toBe('btree')
    expect(j.page.btree.flags).toContain('LEAF')
  })

  it('starts from a --base page file and keeps only the records after its LSN', async () => {
    const base = join(dir, 'early.bin')
    writeFileSync(base, earlyPage)
    const disk = join(dir, 'heap0-again.bin')
    writeFileSync(disk, pageOf(heapFile, 0))
    const r = await replay(['--rel', heapRel, '--blk', '0', '--base', base, '--verify', disk, '--json'])
    expect(r.code).toBe(0)
    const j = r.json()
    expect(j.start).toEqual({ kind: 'base', lsn: expect.stringMatching(/^\d+\/[0-9A-F]+$/) })
    expect(j.recordsBeforeStart).toBe(0)
    expect(j.chain[0].type).not.toBe('Heap/INSERT+INIT') // only what came after the base page
    expect(j.chain.length).toBeGreaterThan(2)
    expect(j.verify.equal).toBe(true)
    // The base is really used: a base with a damaged tuple gives a different page.
    const damaged = Buffer.from(earlyPage)
    const lpOff = damaged.readUInt32LE(24 + 4) & 0x7fff // line pointer 2 (tuple id 2 is updated later, 1 is not)
    damaged[lpOff + 30] = damaged[lpOff + 30]! ^ 0x55
    const lp1 = damaged.readUInt32LE(24) & 0x7fff
    damaged[lp1 + 30] = damaged[lp1 + 30]! ^ 0x55
    writeFileSync(base, damaged)
    const bad = await replay(['--rel', heapRel, '--blk', '0', '--base', base, '--verify', disk, '--json'])
    expect(bad.code).toBe(5)
  })

  it('exits 5 and names the offset when the --verify page differs', async () => {
    const page = Buffer.from(pageOf(heapFile, 0))
    const lpOff = page.readUInt32LE(24) & 0x7fff // line pointer 1
    page[lpOff + 30] = page[lpOff + 30]! ^ 0x55 // a byte of the tuple's data
    const bad = join(dir, 'bad.bin')
    writeFileSync(bad, page)
    const r = await replay(['--rel', heapRel, '--blk', '0', '--verify', bad, '--json'])
    expect(r.code).toBe(5)
    expect(r.json().verify).toEqual({ file: bad, mask: 'heap', equal: false, offset: lpOff + 30 })
    const text = await replay(['--rel', heapRel, '--blk', '0', '--verify', bad])
    expect(text.code).toBe(5)
    expect(text.stderr).toContain(`differs from ${bad} at offset ${lpOff + 30}`)
  })

  it('exits 3 when nothing is found and 2 on bad input', async () => {
    const untouched = await replay(['--rel', heapRel, '--blk', '999', '--json'])
    expect(untouched.code).toBe(3)
    expect(untouched.json().error.code).toBe('REPLAY_NO_RECORDS')
    const noWal = await runCli(['redo', 'replay', '--wal', join(dir, 'nope'), '--rel', heapRel, '--blk', '0', '--lsn', '0/1', '-D', join(dir, 'wd'), '--json'])
    expect(noWal.code).toBe(3)
    expect(noWal.json().error.code).toBe('WAL_PATH_NOT_FOUND')
    const short = join(dir, 'short.bin')
    writeFileSync(short, Buffer.alloc(100))
    const badBase = await replay(['--rel', heapRel, '--blk', '0', '--base', short, '--json'])
    expect(badBase.code).toBe(2)
    expect(badBase.json().error.code).toBe('REPLAY_BAD_PAGE_FILE')
    expect((await replay(['--rel', heapRel, '--blk', 'x'])).code).toBe(2)
    expect((await replay(['--rel', 'nope', '--blk', '0'])).code).toBe(2)
    const beyond = await runCli(['redo', 'replay', '--wal', wal, '--rel', heapRel, '--blk', '0', '--lsn', 'FF/0', '-D', join(dir, 'wd'), '--json'])
    expect(beyond.code).toBe(3)
    expect(beyond.json().error.code).toBe('REPLAY_LSN_BEYOND_WAL')
  })

  it('refuses a --base from after --lsn, or one that is not a page (exit 2)', async () => {
    const later = Buffer.from(earlyPage)
    const laterLsn = lsn + 0x100n
    later.writeUInt32LE(Number(laterLsn >> 32n), 0) // pd_lsn: xlogid, then xrecoff
    later.writeUInt32LE(Number(laterLsn & 0xffffffffn), 4)
    const base = join(dir, 'later.bin')
    writeFileSync(base, later)
    const r = await replay(['--rel', heapRel, '--blk', '0', '--base', base, '--json'])
    expect(r.code).toBe(2)
    expect(r.json().error).toMatchObject({ code: 'REPLAY_BASE_AFTER_LSN', message: `base file ${base} has pd_lsn ${formatLsn(laterLsn as Lsn)}, after the requested LSN ${formatLsn(lsn)}` })
    const junk = join(dir, 'junk.bin')
    writeFileSync(junk, Buffer.alloc(8192, 0xa5))
    const j = await replay(['--rel', heapRel, '--blk', '0', '--base', junk, '--json'])
    expect(j.code).toBe(2)
    expect(j.json().error).toMatchObject({ code: 'REPLAY_BAD_BASE_PAGE', message: expect.stringContaining(junk) })
  })

  it('refuses a directory as --base or --verify (exit 2) naming the flag and the path', async () => {
    for (const flag of ['--base', '--verify']) {
      const r = await replay(['--rel', heapRel, '--blk', '0', flag, dir, '--json'])
      expect(r.code, flag).toBe(2)
      expect(r.json().error).toMatchObject({ code: 'NOT_A_REGULAR_FILE', message: `${flag} page file ${dir} is not a regular file: it is a directory` })
    }
  })

  it('an --lsn before the first segment: the hint names no flag the command lacks', async () => {
    const r = await runCli(['redo', 'replay', '--wal', wal, '--rel', heapRel, '--blk', '0', '--lsn', '0/1', '-D', join(dir, 'wd'), '--json'])
    expect(r.code).toBe(2)
    const e = r.json().error
    expect(e.code).toBe('WAL_BAD_RANGE')
    expect(e.message).toMatch(/^LSN 0\/1 is before the first WAL segment given, which starts at \d+\/[0-9A-F]+$/)
    expect(e.hint).not.toMatch(/--end|--start/)
  })

  it('an --out that cannot be written is OUTPUT_NOT_WRITABLE (exit 2), not a bug', async () => {
    const missing = join(dir, 'no-such-dir', 'out.bin')
    const r = await replay(['--rel', heapRel, '--blk', '0', '--out', missing, '--json'])
    expect(r.code).toBe(2)
    expect(r.json().error).toMatchObject({ code: 'OUTPUT_NOT_WRITABLE', message: `cannot write ${missing}: no such file or directory (ENOENT)` })
    const isDir = await replay(['--rel', heapRel, '--blk', '0', '--out', dir])
    expect(isDir.code).toBe(2)
    expect(isDir.stderr).toContain(`Error: cannot write ${dir}: illegal operation on a directory (EISDIR)\nHint: `)
  })
})
