// End to end: `pageserver wal receive` through the built CLI (npm run build first) against PostgreSQL 15.
import { spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_BIN, runCli } from '../support/cli.js'
import { PgCluster, freePort } from '../support/pg-cluster.js'
import { formatLsn, parseLsn } from '../../src/core/pg/lsn.js'

describe('pageserver wal receive', () => {
  let pg: PgCluster
  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'cli-walrx', auth: 'scram-sha-256', password: 'rx pw' })
    await pg.sql('CREATE TABLE t (id int, v text)')
  })
  afterAll(async () => {
    await pg?.destroy()
  })

  const from = () => pg.connUrl()

  it('--start/--until prints the records in between (one line each) and exits 0', async () => {
    const start = await pg.insertLsn()
    await pg.sql("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 25) g")
    const until = await pg.insertLsn()
    const r = await runCli(['wal', 'receive', '--from', from(), '--start', formatLsn(start), '--until', formatLsn(until)])
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(26) // 25 inserts + commit
    expect(lines[0]).toMatch(/^rmgr: Heap .*desc: INSERT\+INIT/)
    expect(lines[25]).toMatch(/^rmgr: Transaction .*desc: COMMIT/)
    expect(lines[0]).toContain(`lsn: ${formatLsn(start).split('/')[0]}/${formatLsn(start).split('/')[1]!.padStart(8, '0')}`)
    expect(r.stderr).toMatch(/26 records, \d+ bytes from .* \(until; 1 session/)

    const j = await runCli(['wal', 'receive', '--from', from(), '--start', formatLsn(start), '--until', formatLsn(until), '--json'])
    expect(j.code).toBe(0)
    expect(j.stderr).toBe('')
    const objs = j.stdout.trimEnd().split('\n').map((l) => JSON.parse(l))
    expect(objs).toHaveLength(27)
    expect(objs[0]).toMatchObject({ lsn: formatLsn(start), rmgr: 'Heap', type: 'INSERT+INIT', blocks: [{ fork: 'main', blk: 0 }] })
    for (let i = 1; i < 26; i++) expect(objs[i].prevLsn).toBe(objs[i - 1].lsn)
    expect(parseLsn(objs[25].endLsn) >= until).toBe(true)
    expect(objs[26].end).toMatchObject({ reason: 'until', records: 26, startLsn: formatLsn(start), sessions: 1, systemId: await pg.systemId() })
  })

  it('defaults to the current segment, creates a --slot without moving it, and moves it with --advance-slot', async () => {
    await pg.sql("INSERT INTO t VALUES (1, 'slot')")
    const until = await pg.insertLsn()
    const r = await runCli(['wal', 'receive', '--from', from(), '--slot', 'cli_slot', '--until', formatLsn(until), '--json'])
    expect(r.code).toBe(0)
    const objs = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l))
    const end = objs[objs.length - 1].end
    expect(Number(BigInt(parseLsn(end.startLsn)) % (16n * 1024n * 1024n))).toBe(0)
    // The slot it made is said on stderr (stdout: records only) and in the end line, --json or not.
    expect(end).toMatchObject({ slot: 'cli_slot', slotCreated: true })
    expect(r.stderr).toContain("creating physical replication slot cli_slot; drop it with SELECT pg_drop_replication_slot('cli_slot')")
    const slotLsn = async () => parseLsn(await pg.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'cli_slot'"))
    const created = await slotLsn()
    expect(created > 0n).toBe(true)
    await pg.sql("INSERT INTO t VALUES (2, 'advance')")
    const until2 = await pg.insertLsn()
    // Without --advance-slot: starts at the slot's restart_lsn, the slot stays.
    const again = await runCli(['wal', 'receive', '--from', from(), '--slot', 'cli_slot', '--until', formatLsn(until2), '--json'])
    expect(again.code).toBe(0)
    const first = JSON.parse(again.stdout.split('\n')[0]!)
    expect(parseLsn(first.lsn) >= created).toBe(true)
    expect(JSON.parse(again.stdout.trimEnd().split('\n').at(-1)!).end).toMatchObject({ slot: 'cli_slot', slotCreated: false })
    expect(again.stderr).not.toContain('creating physical replication slot')
    expect(await slotLsn()).toBe(created)
    // With --advance-slot: the slot follows the last printed record.
    const adv = await runCli(['wal', 'receive', '--from', from(), '--slot', 'cli_slot', '--until', formatLsn(until2), '--advance-slot', '--json'])
    expect(adv.code).toBe(0)
    const advObjs = adv.stdout.trimEnd().split('\n').map((l) => JSON.parse(l))
    const lastRecordEnd = parseLsn(advObjs[advObjs.length - 2].endLsn)
    expect(await slotLsn()).toBe(lastRecordEnd)
    await pg.sql("SELECT pg_drop_replication_slot('cli_slot')")
  })

  it('--summary prints a line per second; SIGINT stops cleanly with exit 0 and a final summary', async () => {
    const child = spawn(process.execPath, [CLI_BIN, 'wal', 'receive', '--from', from(), '--summary'], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
    try {
      const deadline = Date.now() + 30_000
      while (!/records \d+ .*lag \d+ B/.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      await pg.sql("INSERT INTO t SELECT g, 'summary' FROM generate_series(1, 100) g")
      await new Promise((r) => setTimeout(r, 1500))
      child.kill('SIGINT')
      const code = await exited
      expect(code).toBe(0)
      const lines = stdout.trimEnd().split('\n')
      expect(lines.length).toBeGreaterThanOrEqual(2)
      for (const l of lines) expect(l).toMatch(/^records \d+ \(\d+\/s\)  bytes \d+ \(\d+ B\/s\)  lsn [0-9A-F]+\/[0-9A-F]+  lag \d+ B$/)
      expect(Number(/^records (\d+)/.exec(lines[lines.length - 1]!)![1])).toBeGreaterThanOrEqual(101)
      expect(stderr).toMatch(/records, \d+ bytes from .* \(interrupted; 1 session/)
      expect(await pg.sql("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pageserver wal receive'")).toBe('0')
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })

  it('a bad connection string exits 2; an unreachable server exits 6 after bounded retries', async () => {
    const bad = await runCli(['wal', 'receive', '--from', 'host=127.0.0.1 prot=5432'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('unknown connection parameter "prot"')
    const badJson = await runCli(['wal', 'receive', '--from', "password='open", '--json'])
    expect(badJson.code).toBe(2)
    expect(badJson.json()).toMatchObject({ error: { code: 'BAD_CONNECTION_STRING' } })

    const port = await freePort()
    const down = await runCli(['wal', 'receive', '--from', `host=127.0.0.1 port=${port} user=postgres`, '--connect-retries', '2'])
    expect(down.code).toBe(6)
    expect(down.stderr.match(/retrying in \d+ ms/g)).toHaveLength(2)
    expect(down.stderr).toMatch(/Error: cannot reach the primary: .*ECONNREFUSED/)
    const downJson = await runCli(['wal', 'receive', '--from', `host=127.0.0.1 port=${port}`, '--connect-retries', '0', '--json'])
    expect(downJson.code).toBe(6)
    expect(downJson.json()).toMatchObject({ error: { code: 'WAL_RECEIVER_GAVE_UP' } })
  })

  it('a wrong password exits 2 with the server\'s message', async () => {
    const r = await runCli(['wal', 'receive', '--from', `host=${pg.host} port=${pg.port} user=postgres password=wrong`])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('password authentication failed for user "postgres"')
  })

  it('waits for a reader that stops reading instead of buffering the stream in memory', async () => {
    const start = await pg.insertLsn()
    const child = spawn(process.execPath, [CLI_BIN, 'wal', 'receive', '--from', from(), '--start', formatLsn(start), '--json'], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child.stdout.pause() // a pager that shows one screen and waits: the pipe fills and stays full
    const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
    const sentLsn = async (): Promise<bigint> =>
      parseLsn((await pg.sql("SELECT coalesce(max(sent_lsn), '0/0') FROM pg_stat_replication WHERE application_name = 'pageserver wal receive'")).trim())
    try {
      // About 70 MiB of WAL: far more than the stream's queue (16 MiB) and the socket buffers hold.
      await pg.sql("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000000) g")
      const end = await pg.insertLsn()
      let sent = await sentLsn()
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, 500))
        const now = await sentLsn()
        if (now === sent && now > start) break
        sent = now
      }
      // Before: every record was turned into text queued on stdout, so the primary sent everything (and the
      // process held it all in memory).
      expect(end - sent).toBeGreaterThan(20n * 1024n * 1024n)
      child.kill('SIGINT')
      child.stdout.resume()
      expect(await exited).toBe(0)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  }, 120_000)
})
