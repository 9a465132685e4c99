/**
 * Ingest of WAL from segment files (a copied pg_wal, an archive) instead of a live replication stream.
 *
 * The records from the timeline's last_record_lsn on are decoded by WalFileReader (one chunk read ahead)
 * and fed, a chunk's batch at a time, to the same TimelineIngestDriver the WAL receiver uses, so layers
 * freeze and flush by the configured policy (checkpoint_distance, max_in_memory_layers_bytes); at the end
 * everything ingested is flushed, so the result's disk_consistent_lsn covers every record read.
 *
 * Checks before anything is written: the files come from the timeline's cluster (system identifier and
 * PostgreSQL timeline of its WAL source, when it has one) and hold the timeline's last_record_lsn (else
 * WalFileReader names the missing segment). Reading stops at the end of valid WAL or at `endLsn`.
 * Used by the ingest benchmarks; records already ingested are skipped, so a second run is a no-op.
 */
import { UsageError } from '../lib/errors.js'
import type { TenantId, TimelineId } from '../model/ids.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { WalFileReader, type WalReadEnd } from '../pg/wal-files.js'
import { withRepository, type AppContext } from './context.js'
import { TimelineIngestDriver } from './ingest-driver.js'
import { readerFor } from './pages.js'

export interface IngestFilesOptions {
  tenantId: TenantId
  timelineId: TimelineId
  /** pg_wal directories or segment files (WalFileReader.open). */
  walPaths: readonly string[]
  /** Ingest only records ending at or before this LSN. */
  endLsn?: Lsn
  signal?: AbortSignal
  /** Called after every batch (one read chunk, 1 MiB of WAL). */
  onProgress?: (p: { lastRecordLsn: Lsn; records: number; walBytes: number }) => void
}

export interface IngestFilesResult {
  /** First LSN read (the timeline's last_record_lsn before the call). */
  startLsn: string
  lastRecordLsn: string
  diskConsistentLsn: string
  records: number
  /** WAL bytes from startLsn to the end of the last record ingested. */
  walBytes: number
  /** Why reading stopped (end of valid WAL, end LSN, end of files). */
  end: WalReadEnd['reason'] | null
  /** Layer files of the timeline afterwards. */
  layers: number
}

export async function ingestWalFiles(ctx: AppContext, o: IngestFilesOptions): Promise<IngestFilesResult> {
  return withRepository(
    ctx,
    async (repo) => {
      const tenant = await repo.tenant(o.tenantId)
      const tl = await tenant.timeline(o.timelineId)
      const from = tl.lastRecordLsn
      // Ingest copies every value it keeps out of a batch before asking for the next, so read chunks are
      // reused: fresh ones cost page faults (about 115 MiB more RSS over 1.3 GiB of WAL in
      // bench/ingest-rss.ts). No CRC worker: ingest already keeps both cores busy (this thread, the flush
      // worker, GC), and a third busy thread made it slower, not faster: 3.5 s against 4.1 s elapsed and
      // 1.95 against 2.3 CPU-s on this thread (median of 6 alternated runs of bench/support/ingest-once.ts).
      // `resume`: the timeline's last record may end where the files (or their valid WAL) end; a second run
      // over the same files then reads nothing, which is no mistake.
      const wal = await WalFileReader.open(o.walPaths, { startLsn: from, endLsn: o.endLsn ?? null, reuseBuffers: true, crcWorker: false, resume: true })
      const src = tl.metadata.walSource
      if (src !== null && (BigInt(src.systemId) !== wal.systemId || src.pgTimeline !== wal.timeline)) {
        throw new UsageError(
          'WAL_OTHER_CLUSTER',
          `the WAL files come from system ${wal.systemId} timeline ${wal.timeline}, the timeline's primary is system ${src.systemId} timeline ${src.pgTimeline}`,
          { hint: `Pass the pg_wal of the primary timeline ${o.timelineId} was imported from.` },
        )
      }
      const driver = new TimelineIngestDriver(tl, readerFor(tenant, tl), {
        checkpointDistanceBytes: ctx.config.checkpointDistanceBytes,
        checkpointTimeoutMs: ctx.config.checkpointTimeoutMs,
        maxInMemoryLayersBytes: ctx.config.maxInMemoryLayersBytes,
      })
      tl.prepareForIngest()
      let records = 0
      // for-await closes the reader (its file handle) on an error or an abort.
      for await (const batch of wal.recordBatches()) {
        o.signal?.throwIfAborted()
        await driver.ingestRecordsOrFlush(batch)
        records += batch.length
        o.onProgress?.({ lastRecordLsn: tl.lastRecordLsn, records, walBytes: Number(tl.lastRecordLsn - from) })
      }
      const end = wal.endReport
      await driver.checkpoint()
      return {
        startLsn: formatLsn(from),
        lastRecordLsn: formatLsn(tl.lastRecordLsn),
        diskConsistentLsn: formatLsn(tl.diskConsistentLsn),
        records,
        walBytes: Number(tl.lastRecordLsn - from),
        end: end?.reason ?? null,
        layers: tl.layerFiles().length,
      }
    },
    { lockFor: 'ingest WAL files' },
  )
}
