/**
 * TimelineService: one timeline as the running server holds it — its reader (pages via the tenant's redo
 * workers), its ingest driver (flush policy), and, when it has a WAL source, the loop that streams WAL from
 * that PostgreSQL into it. Implements the page service's view of a timeline.
 *
 * The WAL loop reconnects forever with backoff (the WalReceiver retries within a session; when it gives
 * up, this loop waits and starts a new receiver from last_record_lsn). A system-id mismatch or a
 * corruption stops the loop and is reported in `walReceiverStatus`: never silently accepted.
 *
 * A source that keeps failing the same way (down, refusing) is logged once, then at most once per
 * RECEIVER_REPEAT_LOG_INTERVAL_MS with how many failures the line stands for (a scale audit: 500 timelines
 * pointing at a dead primary wrote 8,000 lines a minute); reconnect attempts after the first failure are
 * debug lines; the first success after failures says how many there were.
 */
import { withEitherSignal } from '../lib/abort.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import type { RelTag } from '../pg/reltag.js'
import { SlruKind } from '../pg/slru.js'
import { errorOfKind, NotFoundError, PageserverError, UnavailableError } from '../lib/errors.js'
import { WalReceiver, type ReceiverLogEvent } from '../walreceiver/wal-receiver.js'
import { PG_WAL_REMOVED } from '../walreceiver/pg-errors.js'
import type { DatadirReader } from '../datadir/read.js'
import type { Tenant } from '../repository/tenant.js'
import type { Timeline } from '../repository/timeline.js'
import type { BasebackupOptions, BasebackupStream, PageServiceTimeline } from '../page-service/backend.js'
import { TimelineIngestDriver, type IngestPolicy } from './ingest-driver.js'
import { readerFor } from './pages.js'
import type { AppContext } from './context.js'
import { explainPasswordError, sourceConnection } from './source-password.js'

const SLRU_KIND_BY_WIRE = [SlruKind.Clog, SlruKind.MultixactMembers, SlruKind.MultixactOffsets] as const

/** At most one log line per timeline this often for failed page reads (readFailed). */
export const READ_FAILURE_LOG_INTERVAL_MS = 10_000

/** Pause before restarting a WAL receiver that gave up (the receiver itself backs off within a session). */
const WAL_LOOP_RESTART_DELAY_MS = 5_000
/** The same receiver failure is logged again at most this often (with the count of those not logged). */
export const RECEIVER_REPEAT_LOG_INTERVAL_MS = 5 * 60_000

/**
 * The primary no longer has WAL this timeline needs: its slot was dropped or invalidated (max_slot_wal_keep_size)
 * while the WAL was not yet durable here. The receiver's hint is for `wal receive`; say what it means here.
 */
function walRemovedForGood(e: unknown): unknown {
  if (!(e instanceof PageserverError) || e.code !== PG_WAL_REMOVED) return e
  if (e.details?.slotRestartLsn !== undefined) return e // the receiver said why (its slot is ahead of the timeline)
  return errorOfKind(e.kind, e.code, e.message, {
    hint: 'The primary removed WAL this timeline still needs (its replication slot was dropped or invalidated, e.g. by max_slot_wal_keep_size): it cannot continue from this primary. It stays readable up to its last record; import the primary again as a new timeline, and delete this one.',
    cause: e,
    ...(e.details === undefined ? {} : { details: e.details }),
  })
}

export type BackupProducer = (tl: Timeline, reader: DatadirReader, opts: BasebackupOptions) => Promise<BasebackupStream>

export class TimelineService implements PageServiceTimeline {
  readonly reader: DatadirReader
  readonly driver: TimelineIngestDriver
  private walLoop: Promise<void> | null = null
  /** A flush asked for by a primary waiting for our flush position (see flushForPrimary). */
  private primaryFlush: Promise<void> | null = null
  private walAbort: AbortController | null = null
  private status = 'no WAL source'
  /**
   * Aborted, with the error as its reason, when WAL ingest stops for good (a conflict, corruption, an
   * unsupported record, WAL the primary removed: the loop does not retry). Waits for WAL beyond what arrived
   * then fail at once, naming it, instead of timing out.
   */
  private readonly ingestStopped = new AbortController()
  /**
   * While the source refuses us for a reason that waiting will not fix by itself (a login refused after a
   * password change, say: retried, as a fix on the primary's side is picked up), the refusal; null once
   * streaming resumes. Waits that start meanwhile fail at once naming it, rather than at wait_lsn_timeout.
   */
  private sourceRefusing: PageserverError | null = null
  /** Read failures since the last one logged, and when that was (readFailed). */
  private readFailures = 0
  private readFailureLoggedAt = -Infinity

  constructor(
    private readonly ctx: AppContext,
    readonly tenant: Tenant,
    readonly timeline: Timeline,
    policy: IngestPolicy,
    private readonly backups: BackupProducer | null,
  ) {
    this.reader = readerFor(tenant, timeline)
    this.driver = new TimelineIngestDriver(timeline, this.reader, policy)
  }

  // --- WAL ---

  /** Starts streaming from the timeline's WAL source, if it has one (idempotent). */
  startWal(): void {
    // A retired service (its timeline deleted or closed) never streams again.
    if (this.walLoop || this.retired || this.timeline.metadata.walSource === null) return
    this.walAbort = new AbortController()
    this.walLoop = this.runWal(this.walAbort.signal)
  }

  async stopWal(): Promise<void> {
    this.walAbort?.abort()
    await this.walLoop?.catch(() => {})
    this.walLoop = null
    this.walAbort = null
    this.retrying = false
  }

  private log(level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
    this.ctx.log?.(level, message, { tenant: this.tenant.id, timeline: this.timeline.timelineId, ...fields })
  }

  /**
   * Logs a receiver event at its own level, and keeps `walReceiverStatus` true while the receiver retries
   * within a session (the primary down, say): it otherwise changes only when records arrive.
   */
  private onReceiverEvent(e: ReceiverLogEvent): void {
    this.logReceiverEvent(e)
    switch (e.event) {
      case 'retry':
        this.retrying = true
        this.status = `reconnecting (attempt ${(e.attempt ?? 0) + 1}, last record ${formatLsn(this.timeline.lastRecordLsn)})${e.error ? `: ${e.error.message}` : ''}`
        break
      case 'streaming':
        this.retrying = false
        this.status = `streaming from ${formatLsn(this.timeline.lastRecordLsn)}`
        this.sourceRefusing = null
        break
    }
  }

  /** The failure streak being logged (see the header), or null while the source works. */
  private failureLog: { key: string; lastLoggedMs: number; notLogged: number; total: number } | null = null

  /**
   * Whether to log failure `key` now, and how many identical ones since the last line it stands for; counts
   * it either way.
   */
  private failureWorthLogging(key: string): { log: boolean; notLogged: number } {
    const now = Date.now()
    const f = this.failureLog
    if (f !== null && f.key === key && now - f.lastLoggedMs < RECEIVER_REPEAT_LOG_INTERVAL_MS) {
      f.notLogged++
      f.total++
      return { log: false, notLogged: f.notLogged }
    }
    const notLogged = f !== null && f.key === key ? f.notLogged : 0
    this.failureLog = { key, lastLoggedMs: now, notLogged: 0, total: (f?.total ?? 0) + 1 }
    return { log: true, notLogged }
  }

  private logReceiverEvent(e: ReceiverLogEvent): void {
    const fields = e as unknown as Record<string, unknown>
    if (e.event === 'retry' || e.event === 'gave-up') {
      const { log, notLogged } = this.failureWorthLogging(`${e.event}:${e.error?.code ?? ''}:${e.error?.message ?? e.message}`)
      if (log) this.log(e.level, 'wal receiver', notLogged > 0 ? { ...fields, sameFailuresNotLogged: notLogged } : fields)
      return
    }
    if (e.event === 'connecting' && this.failureLog !== null) {
      this.ctx.log?.('debug', 'wal receiver', { tenant: this.tenant.id, timeline: this.timeline.timelineId, ...fields })
      return
    }
    if (e.event === 'streaming' && this.failureLog !== null) {
      this.log(e.level, 'wal receiver', { ...fields, afterFailures: this.failureLog.total })
      this.failureLog = null
      return
    }
    this.log(e.level, 'wal receiver', fields)
  }

  /**
   * The primary waits for everything it sent to be reported flushed (it does so when it shuts down): flush
   * the in-memory layer now rather than at checkpoint_timeout. One flush at a time.
   */
  private flushForPrimary(): void {
    if (this.primaryFlush !== null) return
    this.primaryFlush = this.driver
      .checkpoint()
      .then(() => undefined)
      .catch((e: unknown) => this.log('warn', 'flush for a waiting primary failed', { message: e instanceof Error ? e.message : String(e) }))
      .finally(() => {
        this.primaryFlush = null
      })
  }

  private async runWal(signal: AbortSignal): Promise<void> {
    const tl = this.timeline
    while (!signal.aborted) {
      const src = tl.metadata.walSource
      if (src === null) return
      // Found again for every session: a password file fixed while the loop waits is used at the next attempt.
      const source = sourceConnection(this.ctx, src.connString)
      const receiver = new WalReceiver({
        conn: source.params,
        slotName: src.slotName ?? undefined,
      slotMustExist: true,
        startLsn: tl.lastRecordLsn,
        prevRecordLsn: tl.prevRecordLsn ?? undefined,
        resumesIngest: true,
        expectedSystemId: BigInt(src.systemId),
        durableLsn: tl.diskConsistentLsn,
        signal,
        logger: (e) => this.onReceiverEvent(e),
        onPrimaryWaiting: () => this.flushForPrimary(),
      })
      tl.onDurable = (l) => receiver.markDurable(l)
      this.status = `connecting to the WAL source, from ${formatLsn(tl.lastRecordLsn)}`
      try {
        for await (const batch of receiver.batches()) {
          await this.driver.ingestRecords(batch)
          this.status = `streaming, last record ${formatLsn(tl.lastRecordLsn)}`
        }
      } catch (err) {
        if (signal.aborted) break
        const e = walRemovedForGood(explainPasswordError(err, source))
        const pe = e instanceof PageserverError ? e : null
        const message = e instanceof Error ? e.message : String(e)
        const failed = this.failureWorthLogging(`failed:${pe?.code ?? ''}:${message}`)
        if (failed.log) this.log('error', 'WAL streaming failed', { code: pe?.code, message, hint: pe?.hint, ...(failed.notLogged > 0 ? { sameFailuresNotLogged: failed.notLogged } : {}) })
        // Conflicts (another cluster's WAL), corruption, unsupported records and WAL the primary no longer has
        // will not go away by retrying: ingest stops here, and says so.
        if (pe && (pe.kind === 'conflict' || pe.kind === 'corruption' || pe.kind === 'unsupported' || pe.code === PG_WAL_REMOVED)) {
          this.status = `stopped: ${message}`
          this.ingestStopped.abort(pe)
          return
        }
        this.status = `restarting the receiver in ${WAL_LOOP_RESTART_DELAY_MS / 1000} s after: ${message}`
        if (pe && pe.kind !== 'unavailable' && pe.kind !== 'internal') this.sourceRefusing = pe
      } finally {
        tl.onDurable = null
        await receiver.close()
      }
      if (signal.aborted) break
      await new Promise<void>((resolve) => {
        // The listener goes when the delay ends either way: one left per retry would pile up on the
        // service's signal while a source keeps refusing (a soak audit: 11 in 25 s, each holding a receiver).
        const done = (): void => {
          clearTimeout(t)
          signal.removeEventListener('abort', done)
          resolve()
        }
        const t = setTimeout(done, WAL_LOOP_RESTART_DELAY_MS)
        signal.addEventListener('abort', done, { once: true })
      })
    }
    this.status = 'stopped'
  }

  // --- PageServiceTimeline ---

  /**
   * Logs a failed page read. A compute retries a page it cannot get, so one damaged file can fail thousands of
   * reads a second: at most one line per READ_FAILURE_LOG_INTERVAL_MS per timeline, saying how many failures
   * it stands for (the metric pageserver_page_service_request_errors_total counts them all).
   */
  readFailed(err: unknown): void {
    const now = Date.now()
    this.readFailures++
    if (now - this.readFailureLoggedAt < READ_FAILURE_LOG_INTERVAL_MS) return
    const pe = err instanceof PageserverError ? err : null
    this.log(pe?.kind === 'corruption' || pe === null || pe.kind === 'internal' ? 'error' : 'warn', 'page read failed', {
      code: pe?.code,
      message: err instanceof Error ? err.message : String(err),
      failuresSinceLastLine: this.readFailures,
    })
    this.readFailureLoggedAt = now
    this.readFailures = 0
  }

  lastRecordLsn(): Lsn {
    return this.timeline.lastRecordLsn
  }

  gcCutoffLsn(): Lsn {
    return this.timeline.metadata.latestGcCutoffLsn
  }

  minReadableLsn(): Lsn {
    return this.timeline.metadata.minReadableLsn
  }

  diskConsistentLsn(): Lsn {
    return this.timeline.diskConsistentLsn
  }

  walReceiverStatus(): string {
    return this.status
  }

  /** Whether the WAL receiver is between attempts after a failure (the source down, the disk full...). */
  get walReceiverRetrying(): boolean {
    return this.retrying
  }

  private retrying = false

  /** Set when the timeline (or its tenant) is deleted: open page-service sessions on it end. */
  private retired = false

  retire(): void {
    this.retired = true
  }

  deleted(): boolean {
    return this.retired
  }

  waitForLsn(lsn: Lsn, timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (lsn <= this.timeline.lastRecordLsn || this.timeline.metadata.walSource === null) return this.timeline.waitForLsn(lsn, timeoutMs, signal)
    if (this.ingestStopped.signal.aborted) return Promise.reject(this.walWillNotArrive(lsn))
    if (this.sourceRefusing !== null) {
      const cause = this.sourceRefusing
      return Promise.reject(
        new UnavailableError('WAL_SOURCE_REFUSING', `WAL up to ${formatLsn(lsn)} is not arriving: the WAL source refuses this timeline (retried every ${WAL_LOOP_RESTART_DELAY_MS / 1000} s): ${cause.message}`, {
          hint: cause.hint ?? 'See the server log.',
          cause,
        }),
      )
    }
    return withEitherSignal(signal, this.ingestStopped.signal, (either) => this.timeline.waitForLsn(lsn, timeoutMs, either)).catch((e: unknown) => {
      if (this.ingestStopped.signal.aborted && !signal.aborted) throw this.walWillNotArrive(lsn)
      throw e
    })
  }

  private walWillNotArrive(lsn: Lsn): PageserverError {
    const cause = this.ingestStopped.signal.reason as PageserverError
    return new UnavailableError(
      'WAL_INGEST_STOPPED',
      `WAL up to ${formatLsn(lsn)} will not arrive: ingest of this timeline stopped at ${formatLsn(this.timeline.lastRecordLsn)}: ${cause.message}`,
      { hint: cause.hint ?? 'See the server log; a restart of the server retries.', cause },
    )
  }

  relExists(rel: RelTag, lsn: Lsn): boolean {
    return this.reader.relExists(rel, lsn)
  }

  relSize(rel: RelTag, lsn: Lsn): number {
    return this.reader.relSize(rel, lsn)
  }

  getPage(rel: RelTag, blkno: number, lsn: Lsn): Uint8Array | Promise<Uint8Array> {
    return this.reader.relPage(rel, blkno, lsn)
  }

  async dbSize(dbNode: number, lsn: Lsn): Promise<bigint> {
    return this.reader.dbSize(1663, dbNode, lsn)
  }

  slruSegment(kind: 0 | 1 | 2, segno: number, lsn: Lsn): Promise<Uint8Array> {
    return this.reader.slruSegment(SLRU_KIND_BY_WIRE[kind], segno, lsn)
  }

  basebackup(opts: BasebackupOptions): Promise<BasebackupStream> {
    if (this.backups === null) {
      throw new NotFoundError('BASEBACKUP_UNAVAILABLE', 'this server cannot produce base backups', { hint: 'Upgrade pageserver.' })
    }
    return this.backups(this.timeline, this.reader, opts)
  }
}
