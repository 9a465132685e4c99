/**
 * Cached benchmark data for WAL ingest: a PostgreSQL 15 primary's WAL, a page-server workdir holding a
 * timeline imported from that primary before the WAL was written, and optionally a pg_basebackup copy
 * taken at the same point (for PostgreSQL's own replay) and the primary's final data directory.
 *
 * Generation (once per spec name and version; ~1-3 minutes) under `$TMPDIR/pageserver-bench-<name>-<version>/`:
 *   primary with data checksums -> spec.prepare (e.g. pgbench -i) -> pg_basebackup -X none (optional)
 *   -> `timeline import` into workdir/ (BASE_BACKUP through a slot, so no WAL is recycled) -> spec.workload
 *   -> clean shutdown -> pg_wal/ copied -> info.json written last (its presence marks a complete cache).
 * Delete the directory to regenerate. The workdir is a template: benchmarks copy it before writing to it.
 */
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initWorkdir, loadConfig } from '../../src/core/config/index.js'
import { createTenant } from '../../src/core/app/timelines.js'
import { importTimeline } from '../../src/core/app/import.js'
import { ingestWalFiles } from '../../src/core/app/ingest-files.js'
import { parseTenantId, parseTimelineId, type TenantId, type TimelineId } from '../../src/core/model/ids.js'
import { formatLsn, parseLsn } from '../../src/core/pg/lsn.js'
import { runPgTool } from '../../src/core/postgres/install.js'
import { PgCluster } from '../../test/support/pg-cluster.js'

export interface IngestDataSpec {
  /** Cache directory name part, e.g. 'ingest'. */
  name: string
  /** Bump when the workload changes: the cache key. */
  version: string
  /** Runs before the base backup and the import (its WAL is not ingested). */
  prepare?: (pg: PgCluster) => Promise<void>
  /** Runs after the import: the WAL it writes is what the benchmark ingests. */
  workload: (pg: PgCluster, log: (m: string) => void) => Promise<Record<string, string | number> | void>
  /** Take a pg_basebackup copy before the import (PostgreSQL replay baseline). */
  backup?: boolean
  /** Keep the stopped primary's data directory (pages to compare or read as a baseline). */
  keepPrimary?: boolean
  /** Ingest the WAL into the template workdir once (benchmarks that only read). */
  ingest?: boolean
}

export interface IngestData {
  dir: string
  workdir: string
  walDir: string
  backupDir: string | null
  primaryDir: string | null
  tenantId: TenantId
  timelineId: TimelineId
  info: {
    importLsn: string
    endLsn: string
    /** WAL written after the import (insert LSN difference). */
    walBytes: number
    generatedS: number
    /** Facts the workload returned (table OIDs and such). */
    facts: Record<string, string | number>
    ingested: { records: number; walBytes: number; layers: number } | null
  }
}

export async function ensureIngestData(spec: IngestDataSpec): Promise<IngestData> {
  const dir = join(tmpdir(), `pageserver-bench-${spec.name}-${spec.version}`)
  const paths = {
    dir,
    workdir: join(dir, 'workdir'),
    walDir: join(dir, 'pg_wal'),
    backupDir: spec.backup ? join(dir, 'backup') : null,
    primaryDir: spec.keepPrimary ? join(dir, 'primary') : null,
  }
  const marker = join(dir, 'info.json')
  if (existsSync(marker)) {
    const saved = JSON.parse(readFileSync(marker, 'utf8')) as { tenantId: string; timelineId: string; info: IngestData['info'] }
    return { ...paths, tenantId: parseTenantId(saved.tenantId), timelineId: parseTimelineId(saved.timelineId), info: saved.info }
  }
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  chmodSync(dir, 0o777) // pg_basebackup runs as the postgres user
  const log = (m: string) => process.stderr.write(`[${spec.name} data] ${m}\n`)
  log(`generating benchmark data in ${dir} (once) ...`)
  const t0 = Date.now()
  const pg = await PgCluster.start({ checksums: true, name: `bench-${spec.name}` })
  try {
    await spec.prepare?.(pg)
    if (paths.backupDir !== null) {
      log('pg_basebackup')
      await runPgTool(pg.inst, 'pg_basebackup', ['-h', pg.socketDir, '-p', String(pg.port), '-U', 'postgres', '-D', paths.backupDir, '-X', 'none', '-c', 'fast'], {
        asPostgresUser: true,
        timeoutMs: 1_800_000,
      })
    }
    log('timeline import')
    // Commands need an existing workdir (as `pageserver init` makes it).
    await initWorkdir({ workdir: paths.workdir, overrides: ['no_sync=true'], env: {} })
    const ctx = { config: await loadConfig({ workdir: paths.workdir, overrides: ['no_sync=true'], env: {} }), env: process.env }
    const tenantId = parseTenantId((await createTenant(ctx)).tenantId)
    const imported = await importTimeline(ctx, { tenantId, connString: pg.connString() })
    const timelineId = parseTimelineId(imported.timelineId)
    const importLsn = parseLsn(imported.lastRecordLsn)
    log(`imported at ${imported.lastRecordLsn}; workload`)
    const facts = (await spec.workload(pg, log)) ?? {}
    const endLsn = await pg.insertLsn()
    await pg.stop()
    cpSync(pg.walDir, paths.walDir, { recursive: true })
    if (paths.primaryDir !== null) cpSync(pg.dataDir, paths.primaryDir, { recursive: true })
    let ingested: IngestData['info']['ingested'] = null
    if (spec.ingest) {
      log('ingesting the WAL into the template workdir')
      const r = await ingestWalFiles(ctx, { tenantId, timelineId, walPaths: [paths.walDir] })
      ingested = { records: r.records, walBytes: r.walBytes, layers: r.layers }
    }
    const info: IngestData['info'] = {
      importLsn: formatLsn(importLsn),
      endLsn: formatLsn(endLsn),
      walBytes: Number(endLsn - importLsn),
      generatedS: Math.round((Date.now() - t0) / 1000),
      facts,
      ingested,
    }
    writeFileSync(marker, JSON.stringify({ tenantId, timelineId, info }, null, 2))
    log(`done in ${info.generatedS} s: ${(info.walBytes / 1048576).toFixed(0)} MiB of WAL after the import, ${readdirSync(paths.walDir).length} files in pg_wal`)
    return { ...paths, tenantId, timelineId, info }
  } finally {
    await pg.destroy()
  }
}

/** Runs pgbench rounds (CHECKPOINT first, so full-page images are common) until `bytes` of WAL were written. */
export async function pgbenchUntil(pg: PgCluster, bytes: number, args: string[], log: (m: string) => void): Promise<void> {
  const start = await pg.insertLsn()
  for (let round = 1; ; round++) {
    const done = Number((await pg.insertLsn()) - start)
    if (done >= bytes) return
    log(`pgbench round ${round}: ${(done / 1048576).toFixed(0)} of ${(bytes / 1048576).toFixed(0)} MiB`)
    await pg.checkpoint()
    await pg.pgbench([...args, '-n', `--random-seed=${round}`], 'postgres', 1_800_000)
  }
}
