/**
 * Use cases for backups: `timeline export` (a fullbackup unpacked into a directory stock PostgreSQL 15
 * starts from, offline or fetched from a running page server) and `backupTar`, the producer behind the
 * page service's `basebackup` / `fullbackup` commands.
 *
 * LSN rules (both paths): the default is the timeline's last record LSN; a given LSN is aligned up to 8 (no
 * record ends in between, so the pages are the same) and must be at or above the first readable LSN and the
 * GC cutoff and not above the last record (the page service waits for it first; offline nothing arrives).
 * The previous record LSN (the checkpoint's xl_prev, Neon's `PREV LSN`) is known only at the last record;
 * a caller-supplied one must agree with it.
 *
 * Both paths unpack through the same tar reader and directory writer, so the offline export is exactly
 * what a client of `fullbackup` gets.
 */
import { join } from 'node:path'
import { InterruptedError, UsageError } from '../lib/errors.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { decodeControlFile, PG_CONTROL_FILE_SIZE } from '../pg/controlfile.js'
import { backupLsnOfCheckpoint } from '../pg/synthetic-wal.js'
import { TarReader } from '../pg/tar.js'
import { prepareBasebackup, type BackupFlavour, type PreparedBasebackup } from '../datadir/basebackup.js'
import type { DatadirReader } from '../datadir/read.js'
import type { Timeline } from '../repository/timeline.js'
import type { BasebackupOptions, BasebackupStream } from '../page-service/backend.js'
import { PageServiceClient } from '../page-service/client.js'
import { isRoot } from '../postgres/install.js'
import { postgresCanAccess } from '../postgres/access.js'
import { lookupOsUser } from '../storage/os-user.js'
import { readSmallFile } from '../storage/small-file.js'
import { TarDirectoryWriter } from '../storage/tar-extract.js'
import { withRepository, type AppContext } from './context.js'
import { checkReadableLsn, readerFor } from './pages.js'
import { liftToSameWal, lowerToSameWal, positionBetweenRecords } from './wal-position.js'

export interface ResolvedBackupLsn {
  lsn: Lsn
  prevLsn: Lsn | null
  atAncestorLsn: boolean
}

/** The backup LSN and previous-record LSN for a request on `tl`, by the rules in the header. */
export function resolveBackupLsn(tl: Timeline, requested: Lsn | null, prevLsn: Lsn | null): ResolvedBackupLsn {
  const last = tl.lastRecordLsn
  const lsn = requested === null ? last : lowerToSameWal(tl, liftToSameWal(tl, positionBetweenRecords(tl, requested), tl.metadata.minReadableLsn), last)
  checkReadableLsn(tl, lsn, requested ?? lsn)
  const known = lsn === last ? tl.prevRecordLsn : null
  if (prevLsn !== null && known !== null && prevLsn !== known) {
    throw new UsageError('BACKUP_PREV_LSN_MISMATCH', `prev LSN ${formatLsn(prevLsn)} differs from the timeline's previous record ${formatLsn(known)} at ${formatLsn(lsn)}`, {
      hint: 'Leave prev_lsn out: the page server knows it at the last record.',
    })
  }
  return { lsn, prevLsn: prevLsn ?? known, atAncestorLsn: tl.ancestorLsn === lsn }
}

function prepare(tl: Timeline, reader: DatadirReader, flavour: BackupFlavour, requested: Lsn | null, prevLsn: Lsn | null, signal?: AbortSignal): PreparedBasebackup {
  const r = resolveBackupLsn(tl, requested, prevLsn)
  return prepareBasebackup(reader, {
    ...r,
    flavour,
    label: `tenant ${tl.tenantId} timeline ${tl.timelineId} at ${formatLsn(r.lsn)}`,
    ...(signal === undefined ? {} : { signal }),
  })
}

/**
 * The page service's backup producer: checks the LSN and reads pg_control before answering (errors come
 * before CopyOutResponse), then streams the tar. `replica` changes nothing here: Neon uses it only to
 * leave out logical replication slots, which this repository does not keep.
 */
export async function backupTar(tl: Timeline, reader: DatadirReader, opts: BasebackupOptions): Promise<BasebackupStream> {
  const prepared = prepare(tl, reader, opts.full ? 'full' : 'neon', opts.lsn, opts.prevLsn, opts.signal)
  return { lsn: prepared.lsn, tar: prepared.tar() }
}

export interface ExportOptions {
  tenantId: TenantId
  timelineId: TimelineId
  /** Default: the timeline's last record LSN (offline) or the server's. */
  lsn?: Lsn
  /** The data directory to write: absent or empty. */
  dir: string
  /** Called as data is written (bytes of file data, files). */
  onProgress?: (bytes: number, files: number) => void
  /** Stops the export (InterruptedError); what was written is removed. */
  signal?: AbortSignal
}

export interface ExportServerOptions extends ExportOptions {
  host: string
  port: number
  /** JWT for a page server with NeonJWT auth. */
  token?: string
  connectTimeoutMs?: number
}

export interface ExportResult {
  tenantId: string
  timelineId: string
  /** The backup LSN: the data is as of this LSN. */
  lsn: string
  /** Where pg_control points: the shutdown checkpoint record PostgreSQL starts from. */
  checkpointLsn: string
  dir: string
  files: number
  bytes: number
  source: 'offline' | 'server'
}

/** How long an export may run without letting the event loop turn (signals are handled in a turn). */
const EVENT_LOOP_TURN_MS = 50

/**
 * Unpacks a tar stream into `dir` (mode 0700, owned by postgres when we are root); removes it on failure
 * and when `o.signal` aborts (checked between chunks).
 */
/** Running as root, whether the postgres user (who will run PostgreSQL on `dir`) is kept out of it by a parent. */
export function postgresCannotReach(dir: string): boolean {
  return isRoot() && !postgresCanAccess(dir)
}

function exportInterrupted(o: ExportOptions): InterruptedError {
  return new InterruptedError('EXPORT_INTERRUPTED', `the export into ${o.dir} was interrupted; what it had written was removed`, {
    hint: 'Run the export again.',
  })
}

async function unpack(chunks: AsyncIterable<Uint8Array>, o: ExportOptions, noSync: boolean): Promise<{ files: number; bytes: number }> {
  const owner = isRoot() ? lookupOsUser('postgres') : null
  const writer = TarDirectoryWriter.create(o.dir, { owner, noSync })
  try {
    const reader = new TarReader(writer)
    let yieldedAt = performance.now()
    for await (const c of chunks) {
      // An offline export can run without ever waiting for I/O (pages from image layers, read synchronously):
      // give the event loop a turn now and then, so that a signal's handler runs and can stop it.
      if (o.signal !== undefined && performance.now() - yieldedAt > EVENT_LOOP_TURN_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve))
        yieldedAt = performance.now()
      }
      if (o.signal?.aborted) throw exportInterrupted(o)
      reader.feed(Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.length))
      o.onProgress?.(writer.stats.bytes, writer.stats.files)
    }
    reader.end()
    const stats = writer.finish()
    return { files: stats.files, bytes: stats.bytes }
  } catch (e) {
    writer.abort()
    throw e
  }
}

/** `timeline export` offline: the fullbackup of a timeline in this workdir, unpacked into `dir`. */
export async function exportTimeline(ctx: AppContext, o: ExportOptions): Promise<ExportResult> {
  return withRepository(ctx, async (repo) => {
    const tenant = await repo.tenant(o.tenantId)
    const tl = await tenant.timeline(o.timelineId)
    const prepared = prepare(tl, readerFor(tenant, tl), 'full', o.lsn ?? null, null)
    const { files, bytes } = await unpack(prepared.tar(), o, ctx.config.noSync)
    return {
      tenantId: o.tenantId,
      timelineId: o.timelineId,
      lsn: formatLsn(prepared.lsn),
      checkpointLsn: formatLsn(prepared.checkpointLsn!),
      dir: o.dir,
      files,
      bytes,
      source: 'offline' as const,
    }
  })
}

/** `timeline export --server`: the fullbackup from a running page server, unpacked into `dir`. */
export async function exportTimelineFromServer(ctx: AppContext, o: ExportServerOptions): Promise<ExportResult> {
  const client = await PageServiceClient.connect({
    host: o.host,
    port: o.port,
    applicationName: 'pageserver timeline export',
    ...(o.token === undefined ? {} : { token: o.token }),
    ...(o.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: o.connectTimeoutMs }),
  })
  let unpacked: { files: number; bytes: number }
  // The server may wait for the LSN (up to its wait_lsn_timeout) before the first byte: a signal then
  // closes the connection, which ends that wait on the server too.
  const onAbort = (): void => client.destroy()
  o.signal?.addEventListener('abort', onAbort, { once: true })
  try {
    unpacked = await unpack(client.basebackup(o.tenantId, o.timelineId, { full: true, ...(o.lsn === undefined ? {} : { lsn: o.lsn }) }), o, ctx.config.noSync)
  } catch (e) {
    if (o.signal?.aborted) throw exportInterrupted(o)
    throw e
  } finally {
    o.signal?.removeEventListener('abort', onAbort)
    await client.close()
  }
  // The archive does not say its LSN; pg_control points at the checkpoint written for it (the server may
  // have moved an LSN inside a page header to the page boundary).
  const control = decodeControlFile(readSmallFile(join(o.dir, 'global', 'pg_control'), PG_CONTROL_FILE_SIZE, 'pg_control'))
  return {
    tenantId: o.tenantId,
    timelineId: o.timelineId,
    lsn: formatLsn(backupLsnOfCheckpoint(control.checkPoint, control.xlog_seg_size)),
    checkpointLsn: formatLsn(control.checkPoint),
    dir: o.dir,
    ...unpacked,
    source: 'server',
  }
}
