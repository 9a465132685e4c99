/**
 * `pageserver serve` streaming from a primary that crashes or restarts, and a serve that is killed:
 *
 * - a crash with a record torn across a segment boundary: the walwriter is stopped (SIGSTOP) so that a large
 *   record's first segment is flushed (and streamed to serve, as a segment finished by a backend is fsynced)
 *   while its tail stays in WAL buffers; then the walwriter is killed (crash) and the cluster stopped with
 *   `-m immediate`. Recovery writes XLOG_OVERWRITE_CONTRECORD over the missing tail; serve must reconnect,
 *   drop the partial record it had half-received, and go on;
 * - a clean restart (fast shutdown) while serve streams;
 * - serve killed with SIGKILL mid-stream and restarted: it resumes from disk_consistent_lsn.
 * After each, `timeline sync` reaches the primary's position, and every page equals the primary's after a
 * CHECKPOINT.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster } from '../support/pg-cluster.js'
import { runCli } from '../support/cli.js'
import { startServe, type ServeHandle } from '../support/serve-process.js'
import { comparePages } from '../support/page-compare.js'
import { loadConfig } from '../../src/core/config/index.js'
import { withRepository, type AppContext } from '../../src/core/app/context.js'
import { DatadirReader } from '../../src/core/datadir/read.js'
import { parseTenantId, parseTimelineId } from '../../src/core/model/ids.js'
import { formatLsn, parseLsn } from '../../src/core/pg/lsn.js'

const SEG = 1024n * 1024n

describe('serve across primary crashes and restarts, and its own SIGKILL', () => {
  let pg: PgCluster
  let root: string
  let workdir: string
  let ctx: AppContext
  let serve: ServeHandle | null = null
  let tenant: string
  let timeline: string
  let db: number
  const env = () => ({ PAGESERVER_WORKDIR: workdir })
  const cli = async (args: string[], timeoutMs = 120_000) => {
    const r = await runCli([...args, '--json'], { env: env(), timeoutMs })
    expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0)
    return r
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  const pidOf = async (backendType: string) => Number(await pg.sql(`SELECT pid FROM pg_stat_activity WHERE backend_type = '${backendType}'`))

  /** sync through the server to the primary's insert LSN after a CHECKPOINT, then every page equals the primary's. */
  async function syncAndCompare(label: string): Promise<void> {
    await pg.sql('CHECKPOINT')
    const at = await pg.insertLsn()
    const synced = await cli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(at)])
    expect(parseLsn(synced.json<{ lastRecordLsn: string }>().lastRecordLsn) >= at, label).toBe(true)
    if (process.env.PS_DEBUG_RESTART) console.log(serve!.stderr() + serve!.stdout())
    // Offline read (the server holds the repository for writing): stop it, compare, start it again.
    await serve!.stop()
    serve = null
    const report = await withRepository(ctx, async (repo) => {
      const t = await repo.tenant(parseTenantId(tenant))
      const tl = await t.timeline(parseTimelineId(timeline))
      const reader = new DatadirReader(tl, t.redoManager(tl.metadata.hintBitsLogged), { dataChecksums: tl.metadata.dataChecksums })
      return comparePages(pg, reader, at, [{ spc: 1663, db }, { spc: 1664, db: 0 }])
    })
    expect(report.blocks, label).toBeGreaterThan(100)
    expect(report.sizeMismatches, label).toEqual([])
    expect(report.mismatches.slice(0, 10), label).toEqual([])
    serve = await startServe(workdir)
  }

  beforeAll(async () => {
    pg = await PgCluster.start({ name: 'serve-restart', walSegmentSizeMb: 1, settings: { wal_buffers: '64kB' } })
    root = mkdtempSync(join(tmpdir(), 'ps-serve-restart-'))
    chmodSync(root, 0o755)
    workdir = join(root, '.neon')
    ctx = { config: await loadConfig({ workdir, overrides: ['no_sync=true'], env: {} }), env: process.env }
    await cli(['init', '-c', 'no_sync=true', '-c', 'checkpoint_distance=2MiB'])
    tenant = (await cli(['tenant', 'create'])).json<{ tenantId: string }>().tenantId
    await pg.sql('CREATE TABLE big (id int, pad text); ALTER TABLE big ALTER pad SET STORAGE external; CREATE TABLE filler (id int, pad text); CREATE INDEX ON filler (id)')
    timeline = (await cli(['timeline', 'import', '--tenant', tenant, '--from', pg.connString()])).json<{ timelineId: string }>().timelineId
    db = Number(await pg.sql("SELECT oid FROM pg_database WHERE datname = 'postgres'"))
    serve = await startServe(workdir)
  })
  afterAll(async () => {
    await serve?.stop()
    await pg?.destroy()
    if (root) rmSync(root, { recursive: true, force: true })
  })

  it('a crash tearing a record across a segment: OVERWRITE_CONTRECORD, serve drops the partial record and goes on', async () => {
    // Rows spanning WAL pages (uncompressed 20 kB values), then fill up to the end of a segment.
    await pg.sql(`INSERT INTO big SELECT g, repeat(md5(g::text), 640) FROM generate_series(1, 50) g`)
    await pg.sql(`DO $$
      DECLARE remain int;
      BEGIN
        LOOP
          INSERT INTO filler SELECT g, repeat(md5(g::text), (random() * 60 + 1)::int) FROM generate_series(1, 10) g;
          remain := ${SEG} - (pg_current_wal_insert_lsn() - '0/0') % ${SEG};
          EXIT WHEN remain < 2 * 8192;
        END LOOP;
      END $$`)
    const before = await pg.insertLsn()
    await cli(['timeline', 'sync', '--tenant', tenant, '--timeline', timeline, '--until', formatLsn(before)])
    const walwriter = await pidOf('walwriter')
    const walsender = await pidOf('walsender')
    expect(walwriter).toBeGreaterThan(0)
    expect(walsender).toBeGreaterThan(0)
    process.kill(walwriter, 'SIGSTOP')
    let killed = false
    try {
      // No xid: nothing flushes this record (its commit is asynchronous, and the walwriter is stopped), but the
      // backend finishes the segment while writing it out of the small WAL buffers, and that flushes it.
      // (It returns the end of the record.)
      const msgEnd = parseLsn(await pg.sql(`SELECT pg_logical_emit_message(false, 'torn', repeat('x', 600000))`))
      const boundary = ((before / SEG) + 1n) * SEG
      expect(msgEnd > boundary + 8192n).toBe(true)
      // The walsender sends up to the flushed segment boundary (a latch wakeup makes it look now).
      for (const t = Date.now(); ; ) {
        process.kill(walsender, 'SIGUSR1')
        const sent = parseLsn(await pg.sql(`SELECT coalesce(sent_lsn, '0/0') FROM pg_stat_replication`))
        if (sent >= boundary) break
        if (Date.now() - t > 30_000) throw new Error(`the walsender did not send the first segment (sent ${formatLsn(sent)})`)
        await sleep(100)
      }
      const flushed = parseLsn(await pg.sql('SELECT pg_current_wal_flush_lsn()'))
      expect(flushed < msgEnd, `flush ${formatLsn(flushed)} already past the record's end ${formatLsn(msgEnd)}`).toBe(true)
      process.kill(walwriter, 'SIGKILL')
      killed = true
      await pg.restart('immediate')
    } finally {
      if (!killed) process.kill(walwriter, 'SIGCONT')
    }
    // After recovery: an OVERWRITE_CONTRECORD at the page where the tail went missing.
    await pg.sql(`INSERT INTO big SELECT g, repeat(md5(g::text), 640) FROM generate_series(51, 80) g; UPDATE filler SET pad = 'u' WHERE id % 3 = 0`)
    await pg.sql('CHECKPOINT')
    await pg.sql(`UPDATE big SET pad = repeat('y', 9000) WHERE id % 4 = 0; UPDATE filler SET id = id + 1 WHERE id % 5 = 0`)
    const end = await pg.flushLsn()
    const dump = await pg.waldump(['-p', join(pg.dataDir, 'pg_wal'), '-s', formatLsn(before), '-e', formatLsn(end)])
    expect(dump).toMatch(/OVERWRITE_CONTRECORD/)
    await syncAndCompare('after the crash')
    expect(serve).not.toBeNull()
  }, 300_000)

  it('a clean restart of the primary while serve streams: it reconnects and sync reaches the primary', async () => {
    let writing = true
    let written = 0
    const writer = (async () => {
      while (writing) {
        try {
          await pg.sql(`INSERT INTO big SELECT g, repeat(md5(g::text), 300) FROM generate_series(1, 20) g; UPDATE filler SET pad = pad || 'z' WHERE id % 7 = ${written % 7}`, { timeoutMs: 30_000 })
          written++
        } catch {
          await sleep(100) // restarting
        }
      }
    })()
    try {
      while (written < 5) await sleep(50)
      await pg.restart('fast')
      const after = written
      while (written < after + 5) await sleep(50)
    } finally {
      writing = false
      await writer
    }
    await syncAndCompare('after a fast restart')
  }, 300_000)

  it('serve killed with SIGKILL mid-stream resumes from disk_consistent_lsn', async () => {
    let writing = true
    let written = 0
    const writer = (async () => {
      while (writing) {
        await pg.sql(`INSERT INTO big SELECT g, repeat(md5(g::text), 300) FROM generate_series(1, 20) g; UPDATE filler SET pad = pad || 'k' WHERE id % 11 = ${written % 11}`)
        written++
      }
    })()
    try {
      while (written < 10) await sleep(50)
      serve!.child.kill('SIGKILL')
      await serve!.stop()
      serve = null
      const after = written
      while (written < after + 10) await sleep(50)
      serve = await startServe(workdir)
      while (written < after + 20) await sleep(50)
    } finally {
      writing = false
      await writer
    }
    await syncAndCompare('after serve was killed')
    // The slot was advanced no further than what was durable here.
    const slotLsn = parseLsn(await pg.sql('SELECT restart_lsn FROM pg_replication_slots'))
    const show = await cli(['timeline', 'list', '--tenant', tenant])
    const tl = show.json<Array<{ timelineId: string; diskConsistentLsn: string }>>().find((t) => t.timelineId === timeline)!
    expect(slotLsn <= parseLsn(tl.diskConsistentLsn)).toBe(true)
  }, 300_000)
})

