/**
 * WalReceiver: WAL records from a PostgreSQL 15 primary, in LSN order, each exactly once, across
 * reconnects.
 *
 * One session = one ReplicationConnection: IDENTIFY_SYSTEM (the system id must match the expected one, or
 * the first connection's), the slot (created with RESERVE_WAL when missing), START_REPLICATION at the resume
 * point, and a fresh WalStreamDecoder fed with the streamed bytes. When a session ends (primary restart,
 * dropped connection, silence), the next one starts after a backoff at the end LSN of the last record
 * handed out: a record boundary, so nothing is delivered twice, and the decoder checks the previous-record
 * link of the first new record against the last delivered one, so nothing is skipped.
 *
 * Why restart from a record boundary rather than from the last byte received: bytes of a record that was
 * never completed may be replaced after a crash of the primary (XLP_FIRST_IS_OVERWRITE_CONTRECORD); a fresh
 * decoder at the last complete record reads the new bytes as PostgreSQL's own recovery does.
 *
 * Decoding: a WalStreamDecoder with deferred CRCs (records are decoded where they lie in the streamed
 * chunks) and a WalCrcVerifier. While the receiver keeps up, each chunk's records are CRC-checked on this
 * thread and handed out at once; when chunks queue up behind the one being decoded (catching up), a worker
 * thread checks CRCs while later chunks are decoded here, and batches are handed out, in order, once
 * checked. Either way nothing unchecked is handed out, and the first fault in WAL order is the one reported.
 *
 * Durability: the primary's slot keeps WAL from what the owner declared durable with `markDurable()`
 * (reported as flushed = applied), never from what was merely received. Before any declaration the
 * receiver reports 0, which leaves the slot where it is.
 *
 * Failures: retryable ones (unreachable, lost, shutting down, silent, slot still held by the previous
 * walsender) are retried up to `reconnectAttemptsMax` consecutive times; anything else (system id
 * mismatch, authentication, corrupt WAL, WAL already removed) ends `records()` with that error.
 */
import { assert, ConflictError, CorruptionError, errorOfKind, PageserverError, UnavailableError, UsageError, messageOf } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { WalCrcVerifier, type CrcCheck } from '../pg/wal-crc-verifier.js'
import { walCrcError } from '../pg/wal-decoder-errors.js'
import { WalStreamDecoder } from '../pg/wal-decoder.js'
import type { DecodedRecord } from '../pg/wal-record.js'
import { DEFAULT_WAL_SEGMENT_SIZE, SizeOfXLogLongPHD, SizeOfXLogShortPHD, XLOG_BLCKSZ } from '../pg/wal-page.js'
import type { ConnParams } from '../protocol/conn-string.js'
import { describeConnParams } from '../protocol/conn-string.js'
import { backoffDefaults, backoffDelayMs, sleep, validateBackoff, type BackoffOptions } from './backoff.js'
import type { ReplicationConnectionOptions } from './connection-options.js'
import { isRetryable } from './pg-errors.js'
import { ReplicationConnection } from './replication-connection.js'
import { parseSegmentSizeSetting } from './segment-size.js'
import { createPhysicalSlot, readReplicationSlot } from './replication-slots.js'
import { timelineOfLsn } from './replication-commands.js'

export interface ReceiverLogEvent {
  readonly level: 'info' | 'warn' | 'error'
  readonly event: 'connecting' | 'streaming' | 'slot-created' | 'stream-ended' | 'retry' | 'gave-up' | 'stopped'
  readonly message: string
  readonly attempt?: number
  readonly delayMs?: number
  readonly lsn?: string
  readonly error?: { code: string; message: string }
}

export interface WalReceiverOptions {
  conn: ConnParams
  /** Physical slot to stream from; created with RESERVE_WAL when missing, unless `slotMustExist`. */
  slotName?: string | undefined
  /**
   * The slot identifies the source (a timeline's: its import or `timeline source` made it): when it is
   * missing, the server at that address is not the one this stream came from (another PostgreSQL of the
   * same cluster listening there now, a branch's say, whose WAL may continue this LSN with another
   * history), or the slot was dropped there. Stop with WAL_SOURCE_SLOT_MISSING instead of creating it.
   */
  slotMustExist?: boolean | undefined
  /** A WAL page boundary or a record boundary. */
  startLsn: Lsn
  /** Start LSN of the record before `startLsn`, when known: the first record's prev-link is then checked. */
  prevRecordLsn?: Lsn | undefined
  /**
   * `startLsn` is where earlier ingest ended (a timeline's last record): the primary had WAL there, so no
   * record at the start is a fault of the stream (corruption), never "nothing here yet" (a usage error, for
   * a start a user picked: `wal receive`).
   */
  resumesIngest?: boolean | undefined
  /** The primary must have this system id (else WAL_SYSTEM_ID_MISMATCH, not retried). */
  expectedSystemId?: bigint | undefined
  /** Durable LSN known at start (e.g. from disk): reported as flushed from the first status update on. */
  durableLsn?: Lsn | undefined
  backoff?: Partial<BackoffOptions> | undefined
  /** Consecutive failed attempts before giving up; a session that reaches streaming resets the count. */
  reconnectAttemptsMax?: number | undefined
  connection?: Omit<ReplicationConnectionOptions, 'signal'> | undefined
  signal?: AbortSignal | undefined
  logger?: ((e: ReceiverLogEvent) => void) | undefined
  /** For tests: the jitter source. */
  random?: (() => number) | undefined
  /**
   * Where record CRCs are checked: 'auto' (default) on this thread while the receiver keeps up, on a worker
   * thread once chunks queue up (catching up); 'always' on the worker from the start; 'never' on this thread.
   * The records and errors are the same either way.
   */
  crcWorker?: 'auto' | 'always' | 'never' | undefined
  /**
   * The primary asked for a reply while every record it sent has been delivered but not all of them were
   * declared durable: it is waiting for us. A stock walsender that shuts down waits until the standby reports
   * as flushed all it sent, so an owner that flushes only by size or time would hold the primary's shutdown
   * (`pg_ctl stop`) until its next timed flush: the owner should flush now and `markDurable()`.
   */
  onPrimaryWaiting?: (() => void) | undefined
}

export const walReceiverDefaults = Object.freeze({
  // With the default backoff (capped at 10 s) about ten minutes of outage before giving up.
  reconnectAttemptsMax: 60,
})

export interface ReceiverStats {
  /** Sessions that reached streaming. */
  sessions: number
  /** Connection attempts, successful or not. */
  attempts: number
  records: number
  /** WAL bytes received over all sessions. */
  walBytes: number
  systemId: bigint | undefined
  timeline: number | undefined
  segmentSizeBytes: number
  /** End LSN of the last record handed out (where a reconnect resumes); startLsn before the first. */
  lastRecordEnd: Lsn
  /** The primary's end of WAL as last reported. */
  serverWalEnd: Lsn
  durable: Lsn
  /** Records whose CRC a worker thread checked (the others were checked on the receiving thread). */
  crcWorkerRecords: number
}

/** Bytes queued behind the chunk being decoded that start the CRC worker (a backlog: catching up). */
export const CRC_WORKER_BACKLOG_BYTES = 1024 * 1024
/** WAL bytes whose records go to the CRC worker in one batch (network chunks are at most 128 KiB). */
export const RECEIVER_CHECK_BATCH_BYTES = 1024 * 1024
/** Batches that may wait for their CRC check while later chunks are decoded. */
export const RECEIVER_HELD_BATCHES_MAX = 2

interface HeldBatch {
  readonly records: DecodedRecord[]
  readonly check: CrcCheck
}

export class WalReceiver {
  private readonly backoff: BackoffOptions
  private readonly attemptsMax: number
  private readonly controller = new AbortController()
  private readonly log: (e: ReceiverLogEvent) => void
  private conn: ReplicationConnection | undefined
  private started = false
  private stopped = false
  /** Listens on the caller's signal until close(): removed there, so a long-lived signal keeps no receiver alive. */
  private readonly onCallerAbort = (): void => void this.close()
  private expectedSystemId: bigint | undefined
  /** The slot's restart LSN when it was ahead of where this stream resumed (see withSlotAhead), else null. */
  private slotAheadAt: Lsn | null = null
  private lastRecordLsn: Lsn | undefined
  private durableLsn: Lsn
  private readonly crcWorker: 'auto' | 'always' | 'never'
  readonly stats: ReceiverStats

  constructor(private readonly opts: WalReceiverOptions) {
    this.backoff = { ...backoffDefaults, ...definedOnly(opts.backoff ?? {}) }
    validateBackoff(this.backoff)
    this.attemptsMax = opts.reconnectAttemptsMax ?? walReceiverDefaults.reconnectAttemptsMax
    this.log = opts.logger ?? (() => {})
    this.expectedSystemId = opts.expectedSystemId
    this.lastRecordLsn = opts.prevRecordLsn
    this.durableLsn = opts.durableLsn ?? (0n as Lsn)
    this.crcWorker = opts.crcWorker ?? 'auto'
    this.stats = {
      sessions: 0,
      attempts: 0,
      records: 0,
      walBytes: 0,
      systemId: undefined,
      timeline: undefined,
      segmentSizeBytes: DEFAULT_WAL_SEGMENT_SIZE,
      lastRecordEnd: opts.startLsn,
      serverWalEnd: 0n as Lsn,
      durable: this.durableLsn,
      crcWorkerRecords: 0,
    }
    if (opts.signal) {
      if (opts.signal.aborted) this.stopped = true
      else opts.signal.addEventListener('abort', this.onCallerAbort, { once: true })
    }
  }

  /**
   * Declares WAL up to `lsn` durable (an end LSN of a delivered record, or the start LSN). The primary's
   * slot may then free WAL below it. Never moves backwards.
   */
  markDurable(lsn: Lsn): void {
    assert(lsn <= this.stats.lastRecordEnd, () => `markDurable(${formatLsn(lsn)}) is past the last delivered record end ${formatLsn(this.stats.lastRecordEnd)}`)
    if (lsn <= this.durableLsn) return
    this.durableLsn = lsn
    this.stats.durable = lsn
    this.conn?.setDurable(lsn)
  }

  /** Stops streaming (CopyDone, Terminate); `records()` then ends normally. */
  async close(): Promise<void> {
    this.stopped = true
    this.opts.signal?.removeEventListener('abort', this.onCallerAbort)
    this.controller.abort()
    await this.conn?.close()
  }

  /** Records one by one. Single use: one consumer per receiver. */
  async *records(): AsyncGenerator<DecodedRecord, void, undefined> {
    for await (const batch of this.batches()) {
      for (const rec of batch) yield rec
    }
  }

  /** Records in the batches the network delivered them (cheaper than one await per record). Single use. */
  async *batches(): AsyncGenerator<DecodedRecord[], void, undefined> {
    assert(!this.started, 'WalReceiver.records()/batches() can be iterated once')
    this.started = true
    let failures = 0 // consecutive failed sessions
    while (!this.stopped) {
      let failure: unknown
      try {
        yield* this.session(() => {
          failures = 0
        })
      } catch (e) {
        if (!this.stopped) {
          if (!isRetryable(e)) {
            const err = this.withSlotAhead(e)
            this.log({ level: 'error', event: 'gave-up', message: `stopping: ${messageOf(err)}`, error: errorInfo(err) })
            throw err
          }
          failure = e
          failures++
        }
      } finally {
        const c = this.conn
        this.conn = undefined
        await c?.close()
      }
      if (this.stopped) break
      if (failures > this.attemptsMax) {
        this.log({ level: 'error', event: 'gave-up', message: `giving up after ${failures} failed attempts`, attempt: failures, error: errorInfo(failure) })
        throw new UnavailableError('WAL_RECEIVER_GAVE_UP', `cannot stream WAL from ${describeConnParams(this.opts.conn)}: ${messageOf(failure)}`, {
          hint: `Check that the primary is running and reachable${this.attemptsMax > 0 ? `; the receiver tried ${failures} times in a row, with backoff, and gave up` : ''}.`,
          cause: failure,
          details: { attempts: failures },
        })
      }
      // After a stream that ended normally (primary shutting down) pause as after a first failure.
      const delayMs = backoffDelayMs(Math.max(failures, 1), this.backoff, this.opts.random)
      this.log({
        level: failure ? 'warn' : 'info',
        event: 'retry',
        message: `reconnecting in ${delayMs} ms from ${formatLsn(this.stats.lastRecordEnd)}${failure ? ` after: ${messageOf(failure)}` : ''}`,
        attempt: failures,
        delayMs,
        lsn: formatLsn(this.stats.lastRecordEnd),
        ...(failure ? { error: errorInfo(failure) } : {}),
      })
      await sleep(delayMs, this.controller.signal)
    }
    this.log({ level: 'info', event: 'stopped', message: `stopped at ${formatLsn(this.stats.lastRecordEnd)}`, lsn: formatLsn(this.stats.lastRecordEnd) })
  }

  /**
   * WAL the primary removed, while the slot stood ahead of where this stream resumes: the stream's own
   * position is older than what it once reported durable (files restored from an older copy, or a copy of
   * the workdir that went on streaming elsewhere). Said so, rather than as a slot dropped or invalidated.
   */
  private withSlotAhead(e: unknown): unknown {
    const at = this.slotAheadAt
    if (at === null || !(e instanceof PageserverError) || e.code !== 'PG_WAL_REMOVED') return e
    return errorOfKind(e.kind, e.code, `${e.message} (the replication slot ${this.opts.slotName} is at ${formatLsn(at)}, ahead of this stream's ${formatLsn(this.opts.startLsn)})`, {
      hint:
        `The slot says WAL up to ${formatLsn(at)} was made durable, but this timeline resumes at ${formatLsn(this.opts.startLsn)}: its files are older than that ` +
        '(restored from an older backup, or a copy of the workdir that went on streaming elsewhere). The WAL between is gone from the primary: ' +
        'restore the newer files (or use the copy that has them), or import the primary again as a new timeline.',
      cause: e,
      details: { ...e.details, slotRestartLsn: formatLsn(at), resumeLsn: formatLsn(this.opts.startLsn) },
    })
  }

  /** One connection, from connect to the end of its stream. */
  private async *session(onStreaming: () => void): AsyncGenerator<DecodedRecord[], void, undefined> {
    const o = this.opts
    this.stats.attempts++
    this.log({ level: 'info', event: 'connecting', message: `connecting to ${describeConnParams(o.conn)}`, attempt: this.stats.attempts })
    const conn = await ReplicationConnection.connect(o.conn, { ...o.connection, signal: this.controller.signal })
    this.conn = conn
    if (this.stopped) return
    const sys = await conn.identifySystem()
    if (this.expectedSystemId !== undefined && sys.systemId !== this.expectedSystemId) {
      throw new ConflictError(
        'WAL_SYSTEM_ID_MISMATCH',
        `${describeConnParams(o.conn)} has system id ${sys.systemId}, but this WAL stream belongs to system ${this.expectedSystemId}`,
        {
          hint: 'The connection string points at a different PostgreSQL cluster (or the primary was re-initialised); fix the connection string.',
          details: { expected: String(this.expectedSystemId), got: String(sys.systemId) },
        },
      )
    }
    this.expectedSystemId = sys.systemId
    this.stats.systemId = sys.systemId
    this.stats.segmentSizeBytes = parseSegmentSizeSetting(await conn.show('wal_segment_size'))
    if (o.slotName !== undefined) {
      const slot = await readReplicationSlot(conn, o.slotName)
      if (slot === null && o.slotMustExist === true) throw slotMissing(o.slotName, describeConnParams(o.conn))
      this.slotAheadAt = slot !== null && slot.restartLsn !== null && slot.restartLsn > this.stats.lastRecordEnd ? slot.restartLsn : null
      if (slot === null) {
        const { created } = await createPhysicalSlot(conn, o.slotName)
        if (created) this.log({ level: 'info', event: 'slot-created', message: `created physical replication slot ${o.slotName}` })
      }
    }
    if (this.durableLsn > 0n) conn.setDurable(this.durableLsn)
    const startLsn = this.stats.lastRecordEnd
    // After a promotion the resume point may lie on an earlier timeline: stream that one (the server ends it
    // at its switch point, and the next session goes on with the next timeline), as PostgreSQL's walreceiver.
    const timeline = sys.timeline > 1 ? timelineOfLsn(await conn.timelineHistory(sys.timeline), sys.timeline, startLsn) : sys.timeline
    this.stats.timeline = timeline
    const stream = await conn.startReplication({ slot: o.slotName, startLsn, timeline })
    if (o.onPrimaryWaiting !== undefined) {
      const waiting = o.onPrimaryWaiting
      stream.onReplyRequested = (walEnd) => {
        if (walEnd > 0n && this.stats.lastRecordEnd >= walEnd && this.durableLsn < this.stats.lastRecordEnd) waiting()
      }
    }
    this.stats.sessions++
    onStreaming()
    this.log({ level: 'info', event: 'streaming', message: `streaming from ${formatLsn(startLsn)} on timeline ${timeline}${timeline !== sys.timeline ? ` (the server is on ${sys.timeline})` : ''}`, lsn: formatLsn(startLsn) })
    const decoder = new WalStreamDecoder({
      startLsn,
      systemId: sys.systemId,
      segmentSizeBytes: this.stats.segmentSizeBytes,
      prevRecordLsn: this.lastRecordLsn ?? null,
      inPlace: true, // every chunk is our private copy, read once
      deferCrc: true, // checked by `verifier`, here or on its worker thread, before anything is handed out
    })
    // The worker starts once chunks queue up behind the one being decoded (catching up): a live stream that
    // keeps up checks each batch here at once and waits for no thread.
    const verifier = new WalCrcVerifier({ worker: this.crcWorker === 'never' ? 'never' : 'later' })
    if (this.crcWorker === 'always') {
      verifier.startWorker()
      stream.useSharedMemory()
    }
    const held: HeldBatch[] = []
    // With the worker, records of several network chunks go to it together (fewer messages and wake-ups).
    let gathered: DecodedRecord[] = []
    let gatheredBytes = 0
    let decodedInSession = 0
    // Nothing received yet from a start a user picked: the position is still the one asked for (a session
    // that dropped before any record resumes there), where the primary may simply have no WAL (see below).
    const atStreamStart = (): boolean => this.opts.resumesIngest !== true && decodedInSession === 0 && this.stats.records === 0
    try {
      for await (const chunk of stream) {
        this.stats.walBytes += chunk.data.length
        if (chunk.walEnd > this.stats.serverWalEnd) this.stats.serverWalEnd = chunk.walEnd
        decoder.feed(chunk.data)
        let failure: unknown = null
        try {
          for (let rec = decoder.next(); rec !== null; rec = decoder.next()) {
            gathered.push(rec)
            decodedInSession++
          }
        } catch (e) {
          // Zeros right where streaming began (not where a reconnection resumes: the primary had WAL there).
          failure = atStreamStart() ? zeroedStartPage(e) ?? e : e // the records before it are handed out first, once checked
        }
        gatheredBytes += chunk.data.length
        if (failure === null && decoder.end) {
          // At the very position streaming began, the segment may simply not hold WAL there: a cluster started
          // from an export made before exports declared the gap before their checkpoint (or from another
          // tool's backup) begins its first segment at its checkpoint, zeros before it. Not corruption.
          const at = formatLsn(decoder.end.lsn)
          failure =
            atStreamStart()
              ? noWalAtStart(
                  `there is no WAL record at ${at}, where streaming began: ${decoder.end.reason}`,
                  at,
                  'A primary started from a backup or an export may have none before its first checkpoint: start at a later LSN, e.g. its pg_current_wal_lsn(), or from a replication slot.',
                )
              : new CorruptionError('WAL_STREAM_INVALID_RECORD', `the primary streamed an invalid record at ${at}: ${decoder.end.reason}`, {
                  hint: 'The primary sent WAL past its valid end; this should not happen with a stock primary. Check its log.',
                  details: { lsn: at },
                })
        }
        const backlog = stream.queuedBytes
        if (this.crcWorker === 'auto' && backlog >= CRC_WORKER_BACKLOG_BYTES && !verifier.workerStarted) {
          verifier.startWorker()
          stream.useSharedMemory() // later chunks go to the worker; these are checked here
        }
        // With nothing queued behind, hand everything out now: a live stream must not wait for more WAL.
        const now = failure !== null || backlog === 0
        if (now || !verifier.workerStarted || gatheredBytes >= RECEIVER_CHECK_BATCH_BYTES) {
          if (gathered.length > 0) held.push({ records: gathered, check: verifier.check(gathered) })
          gathered = []
          gatheredBytes = 0
        }
        yield* this.deliver(held, now ? 0 : RECEIVER_HELD_BATCHES_MAX, verifier)
        if (failure !== null) throw failure
        if (this.stopped) return
      }
      if (gathered.length > 0) held.push({ records: gathered, check: verifier.check(gathered) })
      yield* this.deliver(held, 0, verifier)
    } finally {
      await verifier.close()
      this.stats.crcWorkerRecords += verifier.stats.workerRecords
    }
    if (conn.serverWalEnd > this.stats.serverWalEnd) this.stats.serverWalEnd = conn.serverWalEnd
    const end = conn.lastStreamEnd
    this.log({ level: 'info', event: 'stream-ended', message: `stream ended (${end?.reason ?? 'unknown'}) at ${formatLsn(this.stats.lastRecordEnd)}`, lsn: formatLsn(this.stats.lastRecordEnd) })
  }

  /**
   * Hands out the held batches whose CRC check is done, and the oldest beyond `keep` (waiting for their
   * check). On a mismatch: the records before the bad one, then the error.
   */
  private async *deliver(held: HeldBatch[], keep: number, verifier: WalCrcVerifier): AsyncGenerator<DecodedRecord[], void, undefined> {
    while (held.length > 0 && (held.length > keep || held[0]!.check.done)) {
      const b = held.shift()!
      verifier.expedite(b.check)
      const bad = await b.check.result
      const good = bad === null ? b.records : b.records.slice(0, bad.index)
      for (const rec of good) {
        this.checkNext(rec)
        this.lastRecordLsn = rec.lsn
        this.stats.lastRecordEnd = rec.endLsn
      }
      if (good.length > 0) {
        this.stats.records += good.length
        yield good
      }
      if (bad !== null) throw walCrcError(b.records[bad.index]!.lsn, bad.stored, bad.computed)
    }
  }

  /**
   * Belt and braces on top of the decoder's prev-link check: a record starts where the previous one ended,
   * or (after a page or segment boundary, or a record overwritten after a crash) right after the header of
   * a later page; and never before the resume point.
   */
  private checkNext(rec: DecodedRecord): void {
    const prevEnd = this.stats.lastRecordEnd
    assert(rec.lsn >= prevEnd || this.lastRecordLsn === undefined, () => `record at ${formatLsn(rec.lsn)} would be delivered again (resume point ${formatLsn(prevEnd)})`)
    if (this.lastRecordLsn === undefined || rec.lsn === prevEnd) return
    const pageOffset = Number(rec.lsn % BigInt(XLOG_BLCKSZ))
    const segOffset = Number(rec.lsn % BigInt(this.stats.segmentSizeBytes))
    const header = segOffset < XLOG_BLCKSZ ? SizeOfXLogLongPHD : SizeOfXLogShortPHD
    if (rec.lsn > prevEnd && pageOffset === header && rec.xl_prev === this.lastRecordLsn) return
    throw new CorruptionError('WAL_RECORD_GAP', `record at ${formatLsn(rec.lsn)} does not follow the previous record, which ended at ${formatLsn(prevEnd)}`, {
      hint: 'The WAL stream skipped bytes; this is a bug or a server fault. Restart from the last durable LSN.',
      details: { lsn: formatLsn(rec.lsn), previousEnd: formatLsn(prevEnd) },
    })
  }
}

function errorInfo(e: unknown): { code: string; message: string } {
  if (e instanceof PageserverError) return { code: e.code, message: e.message }
  return { code: 'INTERNAL', message: messageOf(e) }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

/** The slot that identifies a timeline's source is not on the server at its address (see `slotMustExist`). */
function slotMissing(slotName: string, server: string): ConflictError {
  return new ConflictError(
    'WAL_SOURCE_SLOT_MISSING',
    `replication slot ${slotName} does not exist on ${server}: the server there is not the one this timeline streams from, or the slot was dropped there`,
    {
      hint:
        'If the slot was dropped on the timeline\'s own primary, `pageserver timeline source` with the same connection string makes it again, ' +
        'after checking that the primary\'s WAL still continues the timeline. If another PostgreSQL listens at that address now (a branch\'s, ' +
        'started on the same port?), its WAL is not this timeline\'s and nothing is taken from it: give the timeline its primary back there, or point it at where that went.',
      details: { slotName, server },
    },
  )
}

/**
 * A zero-filled page where streaming began: no WAL there, not corruption. After a WAL switch PostgreSQL
 * streams the rest of the segment as zeros, with no page headers (an audit's `wal receive --start` at such a
 * page was told the WAL was corrupt). Null for any other fault.
 */
function zeroedStartPage(e: unknown): UsageError | null {
  if (!(e instanceof PageserverError) || e.code !== 'WAL_BAD_MAGIC' || e.details?.magic !== 0) return null
  const at = String(e.details.pageLsn)
  return noWalAtStart(
    `there is no WAL at ${at}, where streaming began: the page is zero-filled`,
    at,
    'A WAL switch (pg_switch_wal(), archive_timeout) leaves the rest of its segment empty: start at the next segment boundary, or at an LSN pg_waldump or `pageserver wal dump` lists.',
  )
}

/** No WAL where a stream a user started began: a usage error (a start to pick again), not corruption. */
function noWalAtStart(message: string, at: string, hint: string): UsageError {
  return new UsageError('WAL_STREAM_NO_RECORD_AT_START', message, { hint, details: { lsn: at } })
}
