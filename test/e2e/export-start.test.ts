/**
 * Issue 5 acceptance (offline part), end to end through the CLI: a primary runs a workload (tables,
 * indexes, TOAST, sequences, an unlogged table, a second database, a prepared transaction left open) while
 * it is imported and synced; at quiet moments its pg_dump is recorded with the LSN. For each LSN: branch
 * there, `timeline export`, pg_controldata of the export, stock PostgreSQL 15 started on it (no recovery),
 * its pg_dump equal to the recorded one, and writes accepted.
 *
 * Two differences are PostgreSQL's own, not ours, and are checked rather than hidden:
 * - Sequences: nextval WAL-logs a value up to 32 (SEQ_LOG_VALS) ahead of what it returns, and WAL is all a
 *   backup has (a primary restarted after a crash shows the same jump). setval values of the export must
 *   lie in [primary, primary + 32]; the rest of the dump must be identical.
 * - Unlogged tables: their data is never WAL-logged; they come back empty (as after a crash). Their data
 *   is left out of both dumps and the export's table is checked to be empty and writable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmodSync, closeSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster, pgAvailable } from '../support/pg-cluster.js'
import { runCli } from '../support/cli.js'
import { formatLsn, parseLsn, type Lsn } from '../../src/core/pg/lsn.js'
import { compareSequences, dump, dumpGlobals, firstDifference, SETVAL_RE } from '../support/pg-dump.js'
import { portBindError } from '../../src/core/app/local-postgres.js'
import { findPostgres, runPgTool } from '../../src/core/postgres/install.js'

interface Quiet {
  name: string
  lsn: Lsn
  dumps: Map<string, string>
  globals: string
  preparedOpen: boolean
}

describe.skipIf(!pgAvailable())('timeline export: stock PostgreSQL starts on a branch at every quiet LSN', () => {
  let pg: PgCluster
  let root: string
  let workdir: string
  let tenant: string
  let timeline: string
  const quiet: Quiet[] = []
  const env = () => ({ PAGESERVER_WORKDIR: workdir })

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'export', checksums: true, maxPreparedTransactions: 4 })
    root = mkdtempSync(join(tmpdir(), 'ps-export-'))
    // Exports below root are started by the postgres user: it must traverse root.
    chmodSync(root, 0o755)
    workdir = join(root, '.neon')
    const init = await runCli(['init', '-c', 'no_sync=true', '-c', 'checkpoint_distance=4MiB'], { env: env() })
    expect(init.code, init.stderr).toBe(0)
  })
  afterAll(async () => {
    await pg?.destroy()
    if (root) rmSync(root, { recursive: true, force: true })
  })

  async function sync(until: Lsn): Promise<void> {
    const r = await runCli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(until), '--json'], { env: env(), timeoutMs: 120_000 })
    expect(r.code, r.stderr).toBe(0)
  }

  async function quietMoment(name: string, preparedOpen = false): Promise<void> {
    await pg.sql('CHECKPOINT')
    const lsn = await pg.insertLsn()
    const dbs = (await pg.sql("SELECT datname FROM pg_database WHERE datname NOT IN ('template0', 'template1') ORDER BY 1")).split('\n')
    const dumps = new Map<string, string>()
    for (const db of dbs) dumps.set(db, await dump(pg, db))
    quiet.push({ name, lsn, dumps, globals: await dumpGlobals(pg), preparedOpen })
    await sync(lsn)
  }

  it('records pg_dump at quiet LSNs of a workload, then starts PostgreSQL on an export of a branch at each', async () => {
    await pg.sql("CREATE TABLE early (id int PRIMARY KEY, v text); INSERT INTO early SELECT g, md5(g::text) FROM generate_series(1, 2000) g;")
    tenant = (await runCli(['tenant', 'create', '--json'], { env: env() })).json<{ tenantId: string }>().tenantId
    const imp = await runCli(['timeline', 'import', '--tenant', tenant, '--from', pg.connString(), '--json'], { env: env(), timeoutMs: 120_000 })
    expect(imp.code, imp.stderr).toBe(0)
    timeline = imp.json<{ timelineId: string }>().timelineId

    // 1: pgbench tables and keys, TOAST, a sequence, an unlogged table with an index.
    await pg.pgbench(['-i', '-s', '1', '-q', '--foreign-keys'])
    await pg.sql(`
      CREATE TABLE toasty (id serial PRIMARY KEY, doc text);
      INSERT INTO toasty (doc) SELECT repeat(md5(g::text), 300) FROM generate_series(1, 40) g;
      CREATE SEQUENCE s;
      SELECT nextval('s') FROM generate_series(1, 45);
      CREATE UNLOGGED TABLE unlogged_t (id int PRIMARY KEY, v text);
      INSERT INTO unlogged_t SELECT g, 'u' || g FROM generate_series(1, 500) g;
    `)
    await quietMoment('tables')

    // 2: concurrent OLTP, updates and deletes, vacuum.
    await pg.pgbench(['-c', '2', '-j', '2', '-t', '150', '-n'])
    await pg.sql("UPDATE early SET v = v || '-u' WHERE id % 3 = 0; DELETE FROM early WHERE id > 1800; VACUUM early; SELECT nextval('s');")
    await quietMoment('oltp')

    // 3: a second database with its own tables and index.
    await pg.sql('CREATE DATABASE second')
    await pg.sql('CREATE TABLE other (id serial PRIMARY KEY, v text); INSERT INTO other (v) SELECT md5(g::text) FROM generate_series(1, 700) g; CREATE INDEX ON other (v);', { db: 'second' })
    await quietMoment('second database')

    // 4: a prepared transaction left open at this LSN.
    await pg.sql("BEGIN; INSERT INTO early VALUES (9001, 'prepared'); PREPARE TRANSACTION 'open1';")
    await quietMoment('prepared transaction open', true)

    // 5: commit it, drop, truncate, more writes.
    await pg.sql(`
      COMMIT PREPARED 'open1';
      DROP TABLE toasty;
      TRUNCATE pgbench_history;
      INSERT INTO early SELECT g, 'late' FROM generate_series(5000, 5100) g;
    `)
    await pg.sql("UPDATE other SET v = 'x' WHERE id < 50", { db: 'second' })
    await quietMoment('after commit prepared')
    expect(quiet.length).toBeGreaterThanOrEqual(5)
    // The comparison below means something: the dumps hold data and change along the workload.
    expect(quiet[0]!.dumps.get('postgres')).toMatch(/^COPY public\.pgbench_accounts /m)
    expect([...quiet[0]!.dumps.get('postgres')!.matchAll(SETVAL_RE)].length).toBeGreaterThanOrEqual(2)
    expect(new Set(quiet.map((q) => q.dumps.get('postgres'))).size).toBeGreaterThanOrEqual(3)

    for (const [i, q] of quiet.entries()) {
      const where = `${q.name} (${formatLsn(q.lsn)})`
      const br = await runCli(['timeline', 'branch', '--tenant', tenant, '--ancestor', timeline, '--lsn', formatLsn(q.lsn), '--json'], { env: env() })
      expect(br.code, br.stderr).toBe(0)
      const branch = br.json<{ timelineId: string }>().timelineId
      const dir = join(root, `export-${i}`)
      const ex = await runCli(['timeline', 'export', '--tenant', tenant, '--timeline', branch, '-D', dir, '--json'], { env: env(), timeoutMs: 180_000 })
      expect(ex.code, ex.stderr).toBe(0)
      const res = ex.json<{ tenantId: string; timelineId: string; lsn: string; checkpointLsn: string; dir: string; files: number; bytes: number }>()
      expect(res.lsn).toBe(formatLsn(q.lsn))
      expect(res.dir).toBe(dir)
      expect(res.files).toBeGreaterThan(900)
      expect(statSync(dir).mode & 0o777).toBe(0o700)

      const cd = await runPgTool(pg.inst, 'pg_controldata', ['-D', dir])
      expect(cd.stdout).toMatch(/^Database cluster state:\s+shut down$/m)
      expect(cd.stdout).toMatch(new RegExp(`^Latest checkpoint location:\\s+${res.checkpointLsn}$`, 'm'))
      expect(cd.stdout).toMatch(/^Data page checksum version:\s+1$/m)

      const started = await PgCluster.startOnDataDir(dir, { name: `export-${i}`, settings: { fsync: false } })
      try {
        // A clean start: no crash recovery ran.
        expect(started.logTail(200), where).not.toMatch(/automatic recovery in progress|redo starts at/)
        expect(await started.sql("SELECT datname FROM pg_database WHERE datname NOT IN ('template0', 'template1') ORDER BY 1")).toBe([...q.dumps.keys()].join('\n'))
        for (const [db, want] of q.dumps) {
          const [w, g] = compareSequences(want, await dump(started, db), `${db} at ${where}`)
          expect(g === w, `pg_dump of ${db} at ${where} differs: ${firstDifference(w, g)}`).toBe(true)
        }
        expect(await dumpGlobals(started)).toBe(q.globals)
        expect(await started.sql('SELECT count(*) FROM unlogged_t')).toBe('0')
        expect(await started.sql('SELECT gid FROM pg_prepared_xacts')).toBe(q.preparedOpen ? 'open1' : '')
        if (q.preparedOpen) {
          await started.sql("COMMIT PREPARED 'open1'")
          expect(await started.sql("SELECT v FROM early WHERE id = 9001")).toBe('prepared')
        }
        // Writes: new tables, inserts into existing ones (indexes, the unlogged table), a sequence.
        await started.sql(`
          CREATE TABLE written_after_export (id int PRIMARY KEY, v text);
          INSERT INTO written_after_export SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
          INSERT INTO early VALUES (100000 + ${i}, 'after export');
          INSERT INTO unlogged_t VALUES (1, 'again');
          SELECT nextval('s');
        `)
        expect(await started.sql('SELECT count(*) FROM written_after_export')).toBe('1000')
        if (i === quiet.length - 1) {
          // B-tree indexes of every database check out after the writes.
          const am = await runPgTool(started.inst, 'pg_amcheck', ['-h', started.socketDir, '-p', String(started.port), '-U', 'postgres', '--all', '--install-missing', '--heapallindexed'], {
            timeoutMs: 120_000,
            okCodes: [2],
          })
          expect(am.code, am.stdout + am.stderr).toBe(0)
        }
        await started.stop('fast')
      } catch (e) {
        throw new Error(`${where}: ${e instanceof Error ? e.message : String(e)}\n${started.logTail(30)}`)
      } finally {
        await started.destroy()
      }
      rmSync(dir, { recursive: true, force: true })
    }
  })
  it('exports the imported timeline at its last record (xl_prev known) and where the checkpoint record must be split', async () => {
    const list = await runCli(['timeline', 'list', '--tenant', tenant, '--json'], { env: env() })
    expect(list.code, list.stderr).toBe(0)
    const info = list.json<Array<{ timelineId: string; lastRecordLsn: string; prevRecordLsn: string | null; minReadableLsn: string }>>().find((t) => t.timelineId === timeline)!
    const last = parseLsn(info.lastRecordLsn)
    expect(info.prevRecordLsn, 'sync records the start of the last record').not.toBeNull()
    const min = parseLsn(info.minReadableLsn)
    const SEG = 16n * 1024n * 1024n
    const PAGE = 8192n
    // The first segment boundary inside the readable range: 8 bytes before it the record crosses into the
    // next segment file; 32 bytes before a page end it crosses a page.
    const segEnd = (min / SEG + 1n) * SEG
    expect(segEnd < last, 'the workload spans a segment boundary').toBe(true)
    // An LSN inside a page header stands for the page boundary (no record ends there): exported as that.
    const cases: Array<{ name: string; lsn: Lsn | null; walFiles: number; exportedAt?: Lsn }> = [
      { name: 'last record', lsn: null, walFiles: 1 },
      { name: 'split across segments', lsn: (segEnd - 8n) as Lsn, walFiles: 2 },
      { name: 'split across pages', lsn: (segEnd + 5n * PAGE - 32n) as Lsn, walFiles: 1 },
      { name: "inside a segment's long page header", lsn: (segEnd + 32n) as Lsn, walFiles: 1, exportedAt: segEnd as Lsn },
      { name: 'inside a page header', lsn: (segEnd + 3n * PAGE + 8n) as Lsn, walFiles: 1, exportedAt: (segEnd + 3n * PAGE) as Lsn },
    ]
    // A branch there is taken at the page boundary too (before, it was accepted and could never be exported).
    const br = await runCli(['timeline', 'branch', '--tenant', tenant, '--ancestor', timeline, '--lsn', formatLsn(segEnd + 3n * PAGE + 16n), '--json'], { env: env() })
    expect(br.code, br.stderr).toBe(0)
    expect(br.json<{ ancestorLsn: string }>().ancestorLsn).toBe(formatLsn(segEnd + 3n * PAGE))
    // Refusals: exit codes and stable error codes under --json, nothing written.
    const notEmpty = await runCli(['timeline', 'export', '--tenant', tenant, '--timeline', timeline, '-o', workdir, '--json'], { env: env() })
    expect(notEmpty.code).toBe(4)
    expect(notEmpty.json<{ error: { code: string } }>().error.code).toBe('EXPORT_DIR_NOT_EMPTY')
    const tooNew = await runCli(['timeline', 'export', '--tenant', tenant, '--timeline', timeline, '-o', join(root, 'never'), '--lsn', formatLsn(last + 8n), '--json'], { env: env() })
    expect(tooNew.code).toBe(2)
    expect(tooNew.json<{ error: { code: string } }>().error.code).toBe('LSN_NOT_YET_INGESTED')
    expect(readdirSync(root)).not.toContain('never')

    for (const [i, c] of cases.entries()) {
      const dir = join(root, `main-${i}`)
      const args = ['timeline', 'export', '--tenant', tenant, '--timeline', timeline, '-o', dir, '--json', ...(c.lsn === null ? [] : ['--lsn', formatLsn(c.lsn)])]
      const ex = await runCli(args, { env: env(), timeoutMs: 180_000 })
      expect(ex.code, ex.stderr).toBe(0)
      const res = ex.json<{ lsn: string; checkpointLsn: string }>()
      expect(res.lsn).toBe(formatLsn(c.exportedAt ?? c.lsn ?? last))
      const walFiles = readdirSync(join(dir, 'pg_wal')).filter((f) => /^[0-9A-F]{24}$/.test(f))
      expect(walFiles, c.name).toHaveLength(c.walFiles)
      // pg_waldump from the record's page: one shutdown checkpoint, its prev link the timeline's last record start.
      const cpLsn = parseLsn(res.checkpointLsn)
      const wd = await runPgTool(pg.inst, 'pg_waldump', ['-p', join(dir, 'pg_wal'), '-s', formatLsn(cpLsn - (cpLsn % PAGE))], { okCodes: [1] })
      const recs = wd.stdout.split('\n').filter((l) => l.startsWith('rmgr:'))
      expect(recs, wd.stderr).toHaveLength(1)
      expect(recs[0]).toMatch(/desc: CHECKPOINT_SHUTDOWN .*oldest running xid 0; shutdown$/)
      expect(parseLsn(/lsn: ([0-9A-F/]+)/.exec(recs[0]!)![1]!)).toBe(cpLsn)
      const prev = parseLsn(/prev ([0-9A-F/]+)/.exec(recs[0]!)![1]!)
      expect(prev, c.name).toBe(c.lsn === null ? parseLsn(info.prevRecordLsn!) : 0n)

      const started = await PgCluster.startOnDataDir(dir, { name: `main-${i}`, settings: { fsync: false } })
      try {
        expect(started.logTail(200), c.name).not.toMatch(/automatic recovery in progress|redo starts at/)
        await started.sql(`CREATE TABLE written_${i} AS SELECT g FROM generate_series(1, 500) g; INSERT INTO early VALUES (200000 + ${i}, 'x');`)
        expect(await started.sql(`SELECT count(*) FROM written_${i}`)).toBe('500')
        // New WAL continues right after the synthetic record.
        expect(parseLsn(await started.sql('SELECT pg_current_wal_insert_lsn()')) > cpLsn).toBe(true)
        await started.stop('fast')
        // A clean restart reads the WAL written after our record (its first record's xl_prev points to ours).
        await started.restart()
        expect(await started.sql(`SELECT count(*) FROM written_${i}`)).toBe('500')
        if (i === 0) {
          // In text form the export says how to start it, with a pg_ctl that runs as printed (off PATH on Debian).
          const textDir = join(root, 'text-export')
          const text = await runCli(['timeline', 'export', '--tenant', tenant, '--timeline', timeline, '-D', textDir], { env: env(), timeoutMs: 180_000 })
          expect(text.code, text.stderr).toBe(0)
          const pgCtl = join(findPostgres(undefined, process.env).binDir, 'pg_ctl')
          expect(text.stdout).toContain(`${process.getuid?.() === 0 ? 'runuser -u postgres -- ' : ''}${pgCtl} -D ${textDir} -l ${join(textDir, 'postgresql.log')} -o '-p `)
          // A port that was free (5432 and up: not a system PostgreSQL's).
          const port = Number(/-o '-p (\d+)' start/.exec(text.stdout)?.[1])
          expect(port).toBeGreaterThanOrEqual(5432)
          expect(await portBindError(port)).toBeNull()
          rmSync(textDir, { recursive: true, force: true })
          // `wal receive` starts at the start of the current position's segment: in an exported cluster the
          // pages before the synthetic checkpoint declare themselves the tail of a continued record, so the
          // stream skips them and decodes from the checkpoint on (it found a zero record length there before).
          const until = await started.sql('SELECT pg_current_wal_lsn()')
          const rcv = await runCli(['wal', 'receive', '--from', started.connString(), '--until', until, '--summary', '--json'], { env: env(), timeoutMs: 60_000 })
          expect(rcv.code, rcv.stdout + rcv.stderr).toBe(0)
          const end = rcv.json<{ end: { reason: string; records: number; startLsn: string; endLsn: string } }>().end
          expect(parseLsn(end.startLsn) <= cpLsn - (cpLsn % PAGE)).toBe(true)
          expect(end.reason).toBe('until')
          expect(end.records).toBeGreaterThan(1)
          expect(end.endLsn).toBe(until)
          // So does `wal dump` of the data directory's WAL from its first segment, as its help shows: the
          // first record is the synthetic checkpoint.
          const dump = await runCli(['wal', 'dump', join(dir, 'pg_wal'), '--json'], { env: env(), timeoutMs: 60_000 })
          expect(dump.code, dump.stderr).toBe(0)
          const first = JSON.parse(dump.stdout.split('\n')[0]!) as { lsn: string; rmgr: string }
          expect(first).toMatchObject({ lsn: formatLsn(cpLsn), rmgr: 'XLOG' })
          // An export made before that (its segment's first header claims nothing, zeros follow) streams
          // nothing there: a usage error saying where to start, not corruption. Simulated by clearing the
          // claim in the running cluster's file (the walsender reads segments from disk).
          const segFile = join(dir, 'pg_wal', walFiles[0]!)
          const fd = openSync(segFile, 'r+')
          try {
            writeSync(fd, Buffer.from([0x02, 0x00]), 0, 2, 2) // xlp_info: XLP_LONG_HEADER only
            writeSync(fd, Buffer.alloc(4), 0, 4, 16) // xlp_rem_len 0
          } finally {
            closeSync(fd)
          }
          const old = await runCli(['wal', 'receive', '--from', started.connString(), '--until', until, '--summary', '--json'], { env: env(), timeoutMs: 60_000 })
          expect(old.code, old.stdout + old.stderr).toBe(2)
          expect(old.json<{ error: { code: string; hint: string } }>().error).toMatchObject({ code: 'WAL_STREAM_NO_RECORD_AT_START', hint: expect.stringContaining('pg_current_wal_lsn()') })
        }
      } catch (e) {
        throw new Error(`${c.name}: ${e instanceof Error ? e.message : String(e)}\n${started.logTail(30)}`)
      } finally {
        await started.destroy()
      }
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
