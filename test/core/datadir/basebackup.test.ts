/**
 * Backups of a small timeline (bootstrapped from a stock initdb): the tar layout of both flavours, the
 * generated pg_control (our codec and pg_controldata), relation segment splitting, the LSN rules, and a
 * stock PostgreSQL started on the exported directory. The directory writer's refusals (unsafe paths,
 * links, non-empty targets) are tested on hand-built archives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../../src/core/config/index.js'
import { withRepository, type AppContext } from '../../../src/core/app/context.js'
import { bootstrapTimeline, createTenant } from '../../../src/core/app/timelines.js'
import { backupTar, exportTimeline, exportTimelineFromServer, postgresCannotReach, resolveBackupLsn } from '../../../src/core/app/export.js'
import { readerFor } from '../../../src/core/app/pages.js'
import { prepareBasebackup, type BackupFlavour } from '../../../src/core/datadir/basebackup.js'
import { DATADIR_SUBDIRS, postgresqlConfText } from '../../../src/core/datadir/backup-layout.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../../../src/core/model/ids.js'
import { DBState, decodeControlFile } from '../../../src/core/pg/controlfile.js'
import { formatLsn, lsn as toLsn, parseLsn, type Lsn } from '../../../src/core/pg/lsn.js'
import { TarReader, tarEnd, tarHeader, tarPadding, type TarEntryHeader } from '../../../src/core/pg/tar.js'
import { findPostgres, runPgTool } from '../../../src/core/postgres/install.js'
import { TarDirectoryWriter } from '../../../src/core/storage/tar-extract.js'
import { PageServiceServer } from '../../../src/core/page-service/server.js'
import type { BasebackupOptions, PageServiceTimeline } from '../../../src/core/page-service/backend.js'
import { PgCluster, pgAvailable } from '../../support/pg-cluster.js'

interface Entry {
  path: string
  type: string
  size: number
  /** Content of small files (under 64 KiB); null for larger ones. */
  content: Buffer | null
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Entry[]> {
  const entries: Entry[] = []
  let parts: Buffer[] = []
  let cur: TarEntryHeader | null = null
  const reader = new TarReader({
    entry: (h) => {
      cur = h
      parts = []
    },
    data: (c) => {
      if (cur!.size < 65536) parts.push(Buffer.from(c))
    },
    entryEnd: () => {
      entries.push({ path: cur!.path, type: cur!.type, size: cur!.size, content: cur!.size < 65536 ? Buffer.concat(parts) : null })
    },
  })
  for await (const c of chunks) reader.feed(Buffer.from(c))
  reader.end()
  return entries
}

describe.skipIf(!pgAvailable())('basebackup and fullbackup of a bootstrapped timeline', () => {
  let root: string
  let ctx: AppContext
  let tenantId: TenantId
  let timelineId: TimelineId
  let lastLsn: Lsn

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'ps-backup-'))
    // The postgres user must reach the exported directories below.
    chmodSync(root, 0o755)
    mkdirSync(join(root, '.neon')) // as `pageserver init` would: commands refuse a missing workdir
    ctx = { config: await loadConfig({ workdir: join(root, '.neon'), overrides: ['no_sync=true'], env: {} }), env: process.env }
    tenantId = parseTenantId((await createTenant(ctx)).tenantId)
    const info = await bootstrapTimeline(ctx, { tenantId, dataChecksums: true })
    timelineId = parseTimelineId(info.timelineId)
    lastLsn = parseLsn(info.lastRecordLsn)
  })
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true })
  })

  async function backup(flavour: BackupFlavour, extra: { relSegBlocks?: number; lsn?: Lsn } = {}) {
    return withRepository(ctx, async (repo) => {
      const tenant = await repo.tenant(tenantId)
      const tl = await tenant.timeline(timelineId)
      const r = resolveBackupLsn(tl, extra.lsn ?? null, null)
      const prepared = prepareBasebackup(readerFor(tenant, tl), { ...r, flavour, mtimeSec: 1700000000, ...(extra.relSegBlocks ? { relSegBlocks: extra.relSegBlocks } : {}) })
      return { prepared, entries: await collect(prepared.tar()) }
    })
  }

  it('full: the directory skeleton, every relation in whole pages, relmaps, WAL and pg_control last', async () => {
    const { prepared, entries } = await backup('full')
    const byPath = new Map(entries.map((e) => [e.path, e]))
    for (const d of DATADIR_SUBDIRS) expect(byPath.get(d)?.type, d).toBe('directory')
    expect(byPath.get('PG_VERSION')?.content?.toString()).toBe('15\n')
    for (const db of [1, 4, 5]) {
      expect(byPath.get(`base/${db}`)?.type).toBe('directory')
      expect(byPath.get(`base/${db}/PG_VERSION`)?.content?.toString()).toBe('15\n')
      expect(byPath.get(`base/${db}/pg_filenode.map`)?.size).toBe(512)
    }
    expect(byPath.get('global/pg_filenode.map')?.size).toBe(512)
    expect(byPath.has('global/PG_VERSION')).toBe(false)
    expect(byPath.get('pg_hba.conf')?.content?.toString()).toMatch(/^host\s+replication\s+all\s+127\.0\.0\.1\/32\s+trust$/m)
    expect(byPath.has('postgresql.conf')).toBe(true)
    expect(byPath.has('neon.signal')).toBe(false)
    expect(byPath.get('pg_xact/0000')?.size).toBeGreaterThan(0)

    const relFiles = entries.filter((e) => /^(base\/\d+|global)\/\d+(_fsm|_vm|_init)?(\.\d+)?$/.test(e.path))
    expect(relFiles.length).toBeGreaterThan(600) // three databases of catalogs and their indexes
    for (const f of relFiles) expect(f.size % 8192, f.path).toBe(0)
    expect(relFiles.some((f) => f.size === 0)).toBe(true) // empty catalogs still have their file
    expect(byPath.get('global/1262')?.size).toBeGreaterThan(0) // pg_database

    const wal = entries.filter((e) => e.path.startsWith('pg_wal/') && e.type === 'file')
    expect(wal.map((e) => e.size)).toEqual([16 * 1024 * 1024])
    expect(entries.at(-1)!.path).toBe('global/pg_control')
    const control = decodeControlFile(entries.at(-1)!.content!)
    expect(control.state).toBe(DBState.SHUTDOWNED)
    expect(control.checkPoint).toBe(prepared.checkpointLsn)
    expect(control.checkPointCopy.redo).toBe(prepared.checkpointLsn)
    expect(control.checkPointCopy.oldestActiveXid).toBe(0)
    expect(control.minRecoveryPoint).toBe(0n)
    expect(control.backupStartPoint).toBe(0n)
    expect(control.data_checksum_version).toBe(1)
    expect(prepared.lsn).toBe(lastLsn)
    expect(prepared.checkpointLsn! >= lastLsn).toBe(true)
    // A file name is the WAL segment of the checkpoint on the checkpoint's timeline.
    const segno = prepared.checkpointLsn! / BigInt(16 * 1024 * 1024)
    expect(wal[0]!.path).toBe(`pg_wal/00000001${(segno / 256n).toString(16).toUpperCase().padStart(8, '0')}${(segno % 256n).toString(16).toUpperCase().padStart(8, '0')}`)
  })

  it('full: splits relation forks into segments of relseg_size blocks, same bytes', async () => {
    const whole = await backup('full')
    const split = await backup('full', { relSegBlocks: 2 })
    const wholeRel = whole.entries.find((e) => /^base\/5\/\d+$/.test(e.path) && e.size >= 3 * 8192 && e.size <= 7 * 8192)
    expect(wholeRel, 'a catalog of 3 to 7 pages').toBeDefined()
    const pages = wholeRel!.size / 8192
    const names = Array.from({ length: Math.ceil(pages / 2) }, (_, i) => (i === 0 ? wholeRel!.path : `${wholeRel!.path}.${i}`))
    const parts = split.entries.filter((e) => names.includes(e.path))
    expect(parts.map((p) => p.path)).toEqual(names)
    expect(parts.map((p) => p.size)).toEqual(names.map((_, i) => Math.min(2, pages - 2 * i) * 8192))
    expect(Buffer.concat(parts.map((p) => p.content!)).equals(wholeRel!.content!)).toBe(true)
    expect(split.entries.filter((e) => /\.\d+$/.test(e.path)).every((e) => e.size <= 2 * 8192)).toBe(true)
  })

  it("neon: no relation data, signal files, Neon's pg_control", async () => {
    const { entries } = await backup('neon')
    expect(entries.filter((e) => /^(base\/\d+|global)\/\d+/.test(e.path))).toEqual([])
    const byPath = new Map(entries.map((e) => [e.path, e]))
    expect(byPath.get('neon.signal')?.content?.toString()).toBe('PREV LSN: invalid')
    expect(byPath.get('zenith.signal')?.content?.toString()).toBe('PREV LSN: invalid')
    expect(byPath.has('postgresql.conf')).toBe(false)
    expect(byPath.get('base/5/pg_filenode.map')?.size).toBe(512)
    const control = decodeControlFile(byPath.get('global/pg_control')!.content!)
    expect(control.checkPoint).toBe(0n)
    expect(control.state).toBe(DBState.SHUTDOWNED)
    expect(control.checkPointCopy.redo >= lastLsn).toBe(true)
  })

  it('applies the LSN rules: default last record, aligned up, refused above the last record', async () => {
    await withRepository(ctx, async (repo) => {
      const tenant = await repo.tenant(tenantId)
      const tl = await tenant.timeline(timelineId)
      expect(resolveBackupLsn(tl, null, null).lsn).toBe(lastLsn)
      expect(() => resolveBackupLsn(tl, toLsn(lastLsn + 8n), null)).toThrow(expect.objectContaining({ code: 'LSN_NOT_YET_INGESTED' }))
      expect(() => resolveBackupLsn(tl, toLsn(lastLsn - 8n), null)).toThrow(expect.objectContaining({ code: 'LSN_BEFORE_START' }))
      expect(resolveBackupLsn(tl, toLsn(lastLsn - 3n), null).lsn).toBe(lastLsn)
      // The page service hook: errors before any byte.
      await expect(backupTar(tl, readerFor(tenant, tl), { lsn: toLsn(lastLsn + 8n), full: true, prevLsn: null, replica: false, signal: new AbortController().signal })).rejects.toThrow(/above the timeline's last record/)
      const ac = new AbortController()
      const stream = await backupTar(tl, readerFor(tenant, tl), { lsn: null, full: true, prevLsn: null, replica: false, signal: ac.signal })
      expect(stream.lsn).toBe(lastLsn)
      ac.abort()
      await expect(collect(stream.tar)).rejects.toThrow(expect.objectContaining({ code: 'BACKUP_ABORTED' }))
    })
  })

  it('exports a directory stock PostgreSQL starts from without recovery, and refuses a non-empty target', async () => {
    const dir = join(root, 'export')
    const r = await exportTimeline(ctx, { tenantId, timelineId, dir })
    expect(r.lsn).toBe(formatLsn(lastLsn))
    expect(r.files).toBeGreaterThan(600)
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    const inst = findPostgres(undefined, process.env)
    const cd = await runPgTool(inst, 'pg_controldata', ['-D', dir])
    expect(cd.stdout).toMatch(/^Database cluster state:\s+shut down$/m)
    expect(cd.stdout).toMatch(new RegExp(`^Latest checkpoint location:\\s+${r.checkpointLsn}$`, 'm'))
    expect(cd.stdout).toMatch(new RegExp(`^Latest checkpoint's REDO location:\\s+${r.checkpointLsn}$`, 'm'))

    await expect(exportTimeline(ctx, { tenantId, timelineId, dir })).rejects.toThrow(expect.objectContaining({ code: 'EXPORT_DIR_NOT_EMPTY' }))

    // Interrupted once files are being written (as `timeline export` on SIGINT/SIGTERM): nothing is left.
    const cut = join(root, 'export-interrupted')
    const ac = new AbortController()
    const interrupted = await exportTimeline(ctx, { tenantId, timelineId, dir: cut, signal: ac.signal, onProgress: (_bytes, files) => files > 0 && ac.abort() }).catch((e: unknown) => e)
    expect(interrupted).toMatchObject({ code: 'EXPORT_INTERRUPTED', exitCode: 130 })
    expect(existsSync(cut)).toBe(false)

    const pg = await PgCluster.startOnDataDir(dir, { name: 'export-initdb' })
    try {
      expect(pg.logTail()).not.toMatch(/automatic recovery|redo starts/)
      expect(await pg.sql("SELECT count(*) > 0 FROM pg_class WHERE relname = 'pg_class'")).toBe('t')
      await pg.sql('CREATE TABLE after_export (id int); INSERT INTO after_export SELECT generate_series(1, 10)')
      expect(await pg.sql('SELECT sum(id) FROM after_export')).toBe('55')
      expect(await pg.sql('SELECT pg_current_wal_insert_lsn() > $$' + r.checkpointLsn + '$$::pg_lsn')).toBe('t')
    } finally {
      await pg.destroy()
    }
    expect(existsSync(join(dir, 'global', 'pg_control'))).toBe(true) // the data directory is the caller's
  })
})

describe.skipIf(!pgAvailable())('timeline export from a page server', () => {
  let root: string
  let ctx: AppContext
  let tenantId: TenantId
  let timelineId: TimelineId

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'ps-backup-server-'))
    mkdirSync(join(root, '.neon')) // as `pageserver init` would: commands refuse a missing workdir
    ctx = { config: await loadConfig({ workdir: join(root, '.neon'), overrides: ['no_sync=true'], env: {} }), env: process.env }
    tenantId = parseTenantId((await createTenant(ctx)).tenantId)
    timelineId = parseTimelineId((await bootstrapTimeline(ctx, { tenantId })).timelineId)
  })
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true })
  })

  function filesOf(dir: string, rel = ''): Map<string, Buffer> {
    const out = new Map<string, Buffer>()
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const p = rel === '' ? e.name : `${rel}/${e.name}`
      if (e.isDirectory()) for (const [k, v] of filesOf(dir, p)) out.set(k, v)
      else out.set(p, readFileSync(join(dir, p)))
    }
    return out
  }

  it('unpacks the fullbackup the server streams: the same files as the offline export', async () => {
    await withRepository(ctx, async (repo) => {
      const tenant = await repo.tenant(tenantId)
      const tl = await tenant.timeline(timelineId)
      const reader = readerFor(tenant, tl)
      // The page service's view of this one timeline; only what fullbackup uses is real.
      const view = {
        lastRecordLsn: () => tl.lastRecordLsn,
        gcCutoffLsn: () => tl.metadata.latestGcCutoffLsn,
        minReadableLsn: () => tl.metadata.minReadableLsn,
        waitForLsn: (l: Lsn, timeoutMs: number, signal: AbortSignal) => tl.waitForLsn(l, timeoutMs, signal),
        basebackup: (opts: BasebackupOptions) => backupTar(tl, reader, opts),
      } as unknown as PageServiceTimeline
      const server = new PageServiceServer({ timeline: () => view })
      await server.listen('127.0.0.1', 0)
      try {
        const viaServer = join(root, 'via-server')
        const r = await exportTimelineFromServer(ctx, { tenantId, timelineId, dir: viaServer, host: '127.0.0.1', port: server.address.port })
        expect(r.source).toBe('server')
        expect(r.lsn).toBe(formatLsn(tl.lastRecordLsn))
        const offline = join(root, 'offline')
        const o = await exportTimeline(ctx, { tenantId, timelineId, dir: offline })
        expect(r.checkpointLsn).toBe(o.checkpointLsn)
        expect([r.files, r.bytes]).toEqual([o.files, o.bytes])
        const a = filesOf(viaServer)
        const b = filesOf(offline)
        expect([...a.keys()].sort()).toEqual([...b.keys()].sort())
        for (const [k, v] of a) expect(v.equals(b.get(k)!), k).toBe(true)
        // An LSN the server refuses: the error comes back, and nothing is left behind.
        const refused = join(root, 'refused')
        await expect(
          exportTimelineFromServer(ctx, { tenantId, timelineId, dir: refused, host: '127.0.0.1', port: server.address.port, lsn: toLsn(tl.lastRecordLsn - 8n) }),
        ).rejects.toThrow(/before the first readable LSN/)
        expect(existsSync(refused)).toBe(false)
        // An LSN not yet received: the server waits for it; interrupting the export ends the wait at once
        // (an audit's export ignored SIGINT and SIGTERM for the server's whole wait_lsn_timeout).
        const waiting = join(root, 'waiting')
        const ac = new AbortController()
        setTimeout(() => ac.abort(), 300)
        const t0 = Date.now()
        await expect(
          exportTimelineFromServer(ctx, { tenantId, timelineId, dir: waiting, host: '127.0.0.1', port: server.address.port, lsn: toLsn(tl.lastRecordLsn + 0x10000n), signal: ac.signal }),
        ).rejects.toMatchObject({ code: 'EXPORT_INTERRUPTED' })
        expect(Date.now() - t0).toBeLessThan(10_000)
        expect(existsSync(waiting)).toBe(false)
      } finally {
        await server.close()
      }
    })
  })
})

describe('TarDirectoryWriter refuses what is not a data directory backup', () => {
  let root: string
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ps-extract-'))
  })
  afterAll(() => {
    rmSync(root, { recursive: true, force: true })
  })

  function archive(entries: Array<{ path: string; type?: 'file' | 'directory' | 'symlink'; data?: string }>): Buffer {
    const parts: Buffer[] = []
    for (const e of entries) {
      const data = Buffer.from(e.data ?? '')
      parts.push(tarHeader({ path: e.path, type: e.type ?? 'file', size: data.length, linkname: e.type === 'symlink' ? '/etc/passwd' : '' }))
      if ((e.type ?? 'file') === 'file') parts.push(data, tarPadding(data.length))
    }
    parts.push(tarEnd())
    return Buffer.concat(parts)
  }

  function extract(dir: string, tar: Buffer): void {
    const w = TarDirectoryWriter.create(dir, { noSync: true })
    try {
      const r = new TarReader(w)
      r.feed(tar)
      r.end()
      w.finish()
    } catch (e) {
      w.abort()
      throw e
    }
  }

  it('writes files and directories with PostgreSQL modes', () => {
    const dir = join(root, 'ok')
    extract(dir, archive([{ path: 'global', type: 'directory' }, { path: 'global/x', data: 'abc' }, { path: 'base/5/PG_VERSION', data: '15\n' }]))
    expect(readFileSync(join(dir, 'global', 'x'), 'utf8')).toBe('abc')
    expect(readFileSync(join(dir, 'base', '5', 'PG_VERSION'), 'utf8')).toBe('15\n')
    expect(statSync(join(dir, 'base', '5')).mode & 0o777).toBe(0o700)
    expect(statSync(join(dir, 'global', 'x')).mode & 0o777).toBe(0o600)
  })

  it.each([
    ['../escape', 'file'],
    ['/etc/evil', 'file'],
    ['base/../../escape', 'file'],
    ['base/./x', 'file'],
    ['link', 'symlink'],
  ] as const)('refuses %s (%s) and removes what it wrote', (path, type) => {
    const dir = join(root, `bad-${Math.random().toString(36).slice(2)}`)
    expect(() => extract(dir, archive([{ path: 'PG_VERSION', data: '15\n' }, { path, type, data: 'x' }]))).toThrow(expect.objectContaining({ code: 'BACKUP_BAD_ENTRY' }))
    expect(existsSync(dir)).toBe(false)
    expect(existsSync(join(root, 'escape'))).toBe(false)
  })

  it('creates missing parents with mode 0700, and fails at once where a parent refuses new entries (/proc)', () => {
    const dir = join(root, 'new-a', 'new-b', 'target')
    const w = TarDirectoryWriter.create(dir, { noSync: true })
    w.finish()
    for (const d of [join(root, 'new-a'), join(root, 'new-a', 'new-b'), dir]) expect(statSync(d).mode & 0o777).toBe(0o700)
    // Node's own recursive mkdir loops forever here.
    expect(() => TarDirectoryWriter.create('/proc/pageserver-no-such-dir/x')).toThrow(expect.objectContaining({ code: 'OUTPUT_NOT_WRITABLE' }))
  })

  it('refuses a duplicate file and a target that is not empty; keeps an empty target it did not create', () => {
    const dir = join(root, 'dup')
    mkdirSync(dir)
    expect(() => extract(dir, archive([{ path: 'a', data: '1' }, { path: 'a', data: '2' }]))).toThrow(expect.objectContaining({ code: 'BACKUP_BAD_ENTRY' }))
    expect(existsSync(dir)).toBe(true)
    expect(readdirSync(dir)).toEqual([])
    writeFileSync(join(dir, 'old'), 'x')
    expect(() => TarDirectoryWriter.create(dir)).toThrow(expect.objectContaining({ code: 'EXPORT_DIR_NOT_EMPTY' }))
    // An empty target it was given gets its mode back when the export fails (create() made it 0700).
    const given = join(root, 'given')
    mkdirSync(given, { mode: 0o755 })
    chmodSync(given, 0o755)
    expect(() => extract(given, archive([{ path: 'a', data: '1' }, { path: 'a', data: '2' }]))).toThrow(expect.objectContaining({ code: 'BACKUP_BAD_ENTRY' }))
    expect(statSync(given).mode & 0o777).toBe(0o755)
  })
})

describe('postgresql.conf of a full backup', () => {
  const facts = { label: 'a test', maxConnections: 100, maxWorkerProcesses: 8, maxWalSenders: 10, maxLocksPerXact: 64 }
  const settings = (text: string): string[] => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))

  it("no prepared transactions: PostgreSQL's defaults, nothing set", () => {
    expect(settings(postgresqlConfText({ ...facts, maxPreparedXacts: 0, maxLocksPerXact: 512, maxConnections: 500 }))).toEqual([])
  })

  it('WAL sizes in segments, as initdb writes them, when the segment size is not 16 MiB (PostgreSQL refuses min_wal_size below two segments)', () => {
    const MiB = 1024 * 1024
    expect(settings(postgresqlConfText({ ...facts, maxPreparedXacts: 0, walSegmentSizeBytes: 16 * MiB }))).toEqual([])
    expect(settings(postgresqlConfText({ ...facts, maxPreparedXacts: 0, walSegmentSizeBytes: 64 * MiB }))).toEqual(['min_wal_size = 320MB', 'max_wal_size = 4GB'])
    expect(settings(postgresqlConfText({ ...facts, maxPreparedXacts: 0, walSegmentSizeBytes: 1 * MiB }))).toEqual(['min_wal_size = 5MB', 'max_wal_size = 64MB'])
    expect(settings(postgresqlConfText({ ...facts, maxPreparedXacts: 0, walSegmentSizeBytes: 1024 * MiB }))).toEqual(['min_wal_size = 5GB', 'max_wal_size = 64GB'])
  })

  it("prepared transactions: their slots, and the primary's lock table sizing where it exceeds the defaults (an audit's export failed to start with 'out of shared memory' re-taking a prepared transaction's 20,000 locks)", () => {
    expect(settings(postgresqlConfText({ ...facts, maxPreparedXacts: 5 }))).toEqual(['max_prepared_transactions = 5'])
    expect(settings(postgresqlConfText({ ...facts, maxPreparedXacts: 5, maxLocksPerXact: 512, maxConnections: 20, maxWorkerProcesses: 16 }))).toEqual([
      'max_prepared_transactions = 5',
      'max_worker_processes = 16',
      'max_locks_per_transaction = 512',
    ])
  })
})

describe.skipIf(process.getuid?.() !== 0)('an export as root where the postgres user cannot reach it', () => {
  it('is told apart from one it can reach (the command then warns instead of printing a pg_ctl line that fails)', () => {
    const parent = mkdtempSync(join(tmpdir(), 'ps-reach-'))
    try {
      const dir = join(parent, 'db')
      mkdirSync(dir, { mode: 0o755 })
      chmodSync(parent, 0o700)
      expect(postgresCannotReach(dir)).toBe(true)
      chmodSync(parent, 0o755)
      expect(postgresCannotReach(dir)).toBe(false)
    } finally {
      rmSync(parent, { recursive: true, force: true })
    }
  })
})
