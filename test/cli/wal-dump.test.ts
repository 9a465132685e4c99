// End to end: `pageserver wal dump` through the built CLI (npm run build first) on a real pg_wal.
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_BIN, runCli } from '../support/cli.js'
import { PgCluster, pgAvailable } from '../support/pg-cluster.js'
import { parseWaldump, type OracleRecord } from '../core/pg/waldump-oracle.js'
import { formatLsn, parseLsn } from '../../src/core/pg/lsn.js'

describe.skipIf(!pgAvailable())('pageserver wal dump', () => {
  let pg: PgCluster
  let scratch: string
  let walDir: string
  let oracle: OracleRecord[]

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'cli-waldump' })
    await pg.runWorkload([
      { name: 'rows', sql: 'CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g;' },
      { name: 'update', sql: "UPDATE t SET v = 'u' WHERE id % 10 = 0; VACUUM t;" },
      { name: 'switch', sql: 'SELECT pg_switch_wal();' },
      { name: 'after', sql: "INSERT INTO t VALUES (0, 'after');" },
    ])
    await pg.stop()
    scratch = mkdtempSync(join(tmpdir(), 'ps-cli-waldump-'))
    walDir = join(scratch, 'pg_wal')
    mkdirSync(walDir)
    const segs = pg.walSegments()
    for (const s of segs) copyFileSync(join(pg.walDir, s), join(walDir, s))
    oracle = parseWaldump(await pg.waldump(['--bkp-details', join(walDir, segs[0]!), join(walDir, segs[segs.length - 1]!)]))
  })

  afterAll(async () => {
    await pg?.destroy()
    if (scratch) rmSync(scratch, { recursive: true, force: true })
  })

  it('prints one pg_waldump-like line per record and where the WAL ends', async () => {
    const r = await runCli(['wal', 'dump', walDir])
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(oracle.length)
    expect(lines[0]).toMatch(/^rmgr: XLOG {8}len \(rec\/tot\): +\d+\/ +\d+, tx: +0, lsn: 0\/[0-9A-F]{8}, prev 0\/00000000, end: 0\/[0-9A-F]{8}, desc: CHECKPOINT_SHUTDOWN, main: \d+$/)
    for (let i = 0; i < lines.length; i += 97) {
      const o = oracle[i]!
      expect(lines[i]).toContain(`rmgr: ${o.rmgr.padEnd(11)} len (rec/tot): ${String(o.recLen).padStart(6)}/${String(o.totalLength).padStart(6)}`)
      expect(lines[i]).toContain(`desc: ${o.type},`)
    }
    expect(lines.some((l) => /blkref #0: rel 1663\/5\/\d+ fork main blk \d+/.test(l))).toBe(true)
    expect(r.stderr).toMatch(new RegExp(`^pageserver: ${oracle.length} records; WAL ends at [0-9A-F]+/[0-9A-F]+ \\(end-of-wal\\): invalid record length`))
  })

  it('prints one JSON object per line with the documented fields, then the end', async () => {
    const r = await runCli(['wal', 'dump', walDir, '--json'])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    const objs = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l))
    expect(objs).toHaveLength(oracle.length + 1)
    for (let i = 0; i < oracle.length; i++) {
      const o = oracle[i]!
      expect(objs[i]).toMatchObject({ lsn: o.lsn, prevLsn: o.prevLsn, rmgr: o.rmgr, type: o.type, xid: o.xid, totalLength: o.totalLength })
      expect(objs[i].blocks.map((b: { rel: string; blk: number; image: boolean }) => [b.rel, b.blk, b.image])).toEqual(o.blocks.map((b) => [b.rel, b.blk, b.image]))
    }
    expect(Object.keys(objs[1])).toEqual(['lsn', 'endLsn', 'prevLsn', 'rmgr', 'type', 'xid', 'totalLength', 'mainDataLength', 'blocks'])
    const end = objs[objs.length - 1].end
    expect(end).toMatchObject({ records: oracle.length, reason: 'end-of-wal', lastRecordLsn: oracle[oracle.length - 1]!.lsn })
    expect(end.endLsn).toBe(objs[objs.length - 2].endLsn)
  })

  it('honours --start, --end, --rmgr and --limit', async () => {
    const a = oracle[Math.floor(oracle.length / 4)]!
    const b = oracle[Math.floor(oracle.length / 2)]!
    const r = await runCli(['wal', 'dump', walDir, '--start', a.lsn, '--end', b.lsn, '--json'])
    expect(r.code).toBe(0)
    const objs = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l))
    const recs = objs.slice(0, -1)
    expect(recs[0].lsn).toBe(a.lsn)
    expect(recs.map((o: { lsn: string }) => o.lsn)).toEqual(oracle.slice(oracle.indexOf(a), oracle.indexOf(b)).map((o) => o.lsn))
    expect(objs[objs.length - 1].end).toMatchObject({ reason: 'end-lsn' })
    expect(parseLsn(recs[recs.length - 1].endLsn) <= parseLsn(b.lsn)).toBe(true)

    const heap = await runCli(['wal', 'dump', walDir, '--rmgr', 'heap', '--rmgr', 'Btree', '--limit', '7'])
    expect(heap.code).toBe(0)
    const lines = heap.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(7)
    expect(lines.every((l) => /^rmgr: (Heap|Btree) /.test(l))).toBe(true)
    expect(heap.stderr).toContain('stopped after 7 records')

    const bad = await runCli(['wal', 'dump', walDir, '--rmgr', 'Heapish'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('"Heapish" is not a resource manager')
    const badLsn = await runCli(['wal', 'dump', walDir, '--start', 'zz'])
    expect(badLsn.code).toBe(2)
  })

  it('exits 3 for a missing path, with a one-line JSON error under --json', async () => {
    const r = await runCli(['wal', 'dump', join(scratch, 'missing')])
    expect(r.code).toBe(3)
    expect(r.stderr).toContain('does not exist')
    const j = await runCli(['wal', 'dump', join(scratch, 'missing'), '--json'])
    expect(j.code).toBe(3)
    expect(j.stdout.trimEnd().split('\n')).toHaveLength(1)
    expect(j.json().error).toMatchObject({ code: 'WAL_PATH_NOT_FOUND' })
    // A bad flag value, refused before the command runs, is one line as well (the output is JSON Lines).
    for (const args of [['wal', 'dump', scratch, '--limit', '0', '--json'], ['layer', 'dump', join(scratch, 'x'), '--json'], ['wal', 'receive', '--from', 'host=127.0.0.1', '--start', 'zz', '--json']]) {
      const bad = await runCli(args)
      expect(bad.code, args.join(' ')).not.toBe(0)
      expect(bad.stdout.trimEnd().split('\n'), args.join(' ')).toHaveLength(1)
      expect(bad.json<{ error: { code: string } }>().error.code, args.join(' ')).toMatch(/^[A-Z_]+$/)
    }
  })

  it('refuses a first page of another position (a segment under the wrong name) naming the file and both addresses', async () => {
    const segs = pg.walSegments()
    const next = segs[0]!.slice(0, 16) + (parseInt(segs[0]!.slice(16), 16) + 1).toString(16).toUpperCase().padStart(8, '0')
    const dir = join(scratch, 'misnamed')
    mkdirSync(dir)
    copyFileSync(join(walDir, segs[0]!), join(dir, next))
    const own = formatLsn(BigInt(parseInt(segs[0]!.slice(16), 16)) * 16n * 1024n * 1024n)
    const expected = formatLsn(BigInt(parseInt(next.slice(16), 16)) * 16n * 1024n * 1024n)
    const r = await runCli(['wal', 'dump', dir, '--json'])
    expect(r.code).toBe(2)
    const err = r.json().error
    expect(err.code).toBe('WAL_UNEXPECTED_FIRST_PAGE')
    expect(err.message).toContain(join(dir, next))
    expect(err.message).toContain(`expected at ${expected}`)
    expect(err.message).toContain(`page address ${own}`)
  })

  it('refuses a FIFO named like a segment (exit 2) instead of blocking on it', async () => {
    const dir = join(scratch, 'fifo')
    mkdirSync(dir)
    const fifo = join(dir, pg.walSegments()[0]!)
    spawnSync('mkfifo', [fifo])
    const r = await runCli(['wal', 'dump', fifo], { timeoutMs: 20_000 })
    expect(r.timedOut).toBe(false)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`WAL segment ${fifo} is not a regular file: it is a FIFO`)
  })

  it('exits 3 for a --start past the end of the files', async () => {
    const segs = pg.walSegments()
    const filesEnd = BigInt(parseInt(segs[segs.length - 1]!.slice(16), 16) + 1) * 16n * 1024n * 1024n
    const r = await runCli(['wal', 'dump', walDir, '--start', formatLsn(filesEnd + 0x28n)])
    expect(r.code).toBe(3)
    expect(r.stderr).toContain('which was not given')
    expect(r.stderr).toContain(`ends at ${formatLsn(filesEnd)}`)
  })

  it('prints what it decoded before corrupt WAL, then the error with the LSN, and exits 5', async () => {
    const target = oracle[Math.floor(oracle.length / 2)]!
    const segs = pg.walSegments()
    const lsnNum = Number(parseLsn(target.lsn))
    const segName = segs.find((s) => parseInt(s.slice(16), 16) === Math.floor(lsnNum / (16 * 1024 * 1024)))!
    const dir = join(scratch, 'corrupt')
    mkdirSync(dir)
    for (const s of segs) copyFileSync(join(walDir, s), join(dir, s))
    const seg = readFileSync(join(dir, segName))
    seg[(lsnNum % (16 * 1024 * 1024)) + 21]! ^= 0xff // inside xl_crc
    writeFileSync(join(dir, segName), seg)

    const r = await runCli(['wal', 'dump', dir])
    expect(r.code).toBe(5)
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(oracle.indexOf(target))
    expect(r.stderr).toContain(`Error: incorrect resource manager data checksum`)
    expect(r.stderr).toContain(`at ${target.lsn} in ${join(dir, segName)}`) // the error names the segment file

    const j = await runCli(['wal', 'dump', dir, '--json'])
    expect(j.code).toBe(5)
    const objs = j.stdout.trimEnd().split('\n').map((l) => JSON.parse(l))
    expect(objs).toHaveLength(oracle.indexOf(target) + 1)
    expect(objs[objs.length - 1].error).toMatchObject({ code: 'WAL_BAD_CRC', message: expect.stringContaining(target.lsn) })
  })

  it('--end stops where pg_waldump -e does: after the last record whose bytes end at or before it', async () => {
    // pg_switch_wal() returns the switch record's start + 24 (its bytes' end, not the next segment's start),
    // and a record's bytes may end a few bytes before its 8-aligned end LSN.
    const sw = oracle.find((o) => o.rmgr === 'XLOG' && o.type === 'SWITCH')!
    const odd = oracle.find((o, i) => i > 20 && o.totalLength % 8 !== 0 && (Number(parseLsn(o.lsn)) % 8192) + o.totalLength < 8192)!
    const start = oracle[oracle.indexOf(odd) - 5]!.lsn
    for (const [from, end] of [
      [oracle[oracle.indexOf(sw) - 5]!.lsn, parseLsn(sw.lsn) + 24n],
      [start, parseLsn(odd.lsn) + BigInt(odd.totalLength)],
      [start, parseLsn(odd.lsn) + BigInt(odd.totalLength) - 1n],
    ] as const) {
      const r = await runCli(['wal', 'dump', walDir, '--start', from, '--end', formatLsn(end), '--json'])
      expect(r.code).toBe(0)
      const ours = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l)).slice(0, -1).map((o: { lsn: string }) => o.lsn)
      const theirs = parseWaldump(await pg.waldump(['-p', walDir, '-s', from, '-e', formatLsn(end)])).map((o) => o.lsn)
      expect(ours, `--start ${from} --end ${formatLsn(end)}`).toEqual(theirs)
    }
  })

  it('notes a --start inside a record as pg_waldump does: on stderr, or as firstRecordLsn in the JSON end', async () => {
    const a = oracle[Math.floor(oracle.length / 3)]!
    const next = oracle[oracle.indexOf(a) + 1]!
    const start = formatLsn(parseLsn(a.lsn) + 3n)
    const skipped = parseLsn(next.lsn) - parseLsn(start)
    const r = await runCli(['wal', 'dump', walDir, '--start', start, '--limit', '2'])
    expect(r.code).toBe(0)
    expect(r.stderr).toContain(`pageserver: first record is after ${start}, at ${next.lsn}, skipping over ${skipped} bytes\n`)
    const atRecord = await runCli(['wal', 'dump', walDir, '--start', next.lsn, '--limit', '2'])
    expect(atRecord.stderr).not.toContain('first record is after')
    // At a segment's first byte pg_waldump says nothing of the page header stepped over, nor do we.
    const segStart = formatLsn((parseLsn(a.lsn) / 0x1000000n) * 0x1000000n)
    const atSegment = await runCli(['wal', 'dump', walDir, '--start', segStart, '--limit', '1'])
    expect(atSegment.code).toBe(0)
    expect(atSegment.stderr).not.toContain('first record is after')
    const j = await runCli(['wal', 'dump', walDir, '--start', start, '--limit', '2', '--json'])
    expect(j.code).toBe(0)
    expect(j.stderr).toBe('')
    const objs = j.stdout.trimEnd().split('\n').map((l) => JSON.parse(l))
    expect(objs[0].lsn).toBe(next.lsn)
    expect(objs[objs.length - 1].end).toMatchObject({ records: 2, firstRecordLsn: next.lsn })
    // Stopped by --limit: the end line names the last printed record, not nulls.
    expect(objs[objs.length - 1].end).toMatchObject({ reason: 'limit', lastRecordLsn: objs[1].lsn, endLsn: objs[1].endLsn })
  })

  it('refuses a pg_wal of two timelines with a hint naming --timeline, and reads the one --timeline picks', async () => {
    const segs = pg.walSegments()
    const dir = join(scratch, 'promoted')
    mkdirSync(dir)
    copyFileSync(join(walDir, segs[0]!), join(dir, segs[0]!))
    writeFileSync(join(dir, '00000002.history'), '1\t0/3000000\tno recovery target specified\n')
    for (const s of segs.slice(1)) copyFileSync(join(walDir, s), join(dir, '00000002' + s.slice(8)))
    const r = await runCli(['wal', 'dump', dir, '--json'])
    expect(r.code).toBe(2)
    expect(r.json().error).toMatchObject({ code: 'WAL_MULTIPLE_TIMELINES', hint: expect.stringContaining('--timeline 2') })
    expect(r.json().error.hint).toContain('found: 1, 2')
    const two = await runCli(['wal', 'dump', dir, '--timeline', '2', '--json'])
    expect(two.code).toBe(0)
    const objs = two.stdout.trimEnd().split('\n').map((l) => JSON.parse(l))
    const segTwoStart = BigInt(parseInt(segs[1]!.slice(16), 16)) * 16n * 1024n * 1024n
    expect(objs.slice(0, -1).map((o: { lsn: string }) => o.lsn)).toEqual(oracle.filter((o) => parseLsn(o.lsn) >= segTwoStart).map((o) => o.lsn))
  })

  it('ends quietly with exit 0 when the reader goes away (| head)', () => {
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${CLI_BIN}" wal dump "${walDir}" | head -n 2; echo "status=\${PIPESTATUS[0]}"`], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
      timeout: 60_000,
    })
    const out = r.stdout.trimEnd().split('\n')
    expect(out).toHaveLength(3)
    expect(out[2]).toBe('status=0')
    expect(r.stderr).not.toContain('Error')
    expect(r.stderr).not.toContain('EPIPE')
  })

  it('prints help with the JSON fields', async () => {
    const r = await runCli(['wal', 'dump', '--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('--start')
    expect(r.stdout).toContain('mainDataLength')
    expect(formatLsn(parseLsn('0/1000028'))).toBe('0/1000028')
  })
})
