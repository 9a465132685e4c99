/**
 * ReplicationConnection: one TCP (or Unix socket) connection to a PostgreSQL 15 primary in physical
 * replication mode (or, with `replicationMode: 'database'`, a logical walsender that also runs SQL).
 *
 * Lifecycle: `connect()` (startup + authentication, until ReadyForQuery) -> commands (`identifySystem`,
 * `show`, `query`; slots through replication-slots.ts) -> `startReplication()` -> iterate WAL chunks ->
 * `stopStreaming()` or `close()`. One owner; every path ends in `close()` (CopyDone, Terminate, destroy).
 *
 * Shape: pg-protocol serialises frontend messages and parses backend ones (PgSocket, pg-socket.ts); all
 * handling happens synchronously in the socket's data callback, so keepalives are answered even while the
 * consumer is busy, and WAL bytes are copied out of pg-protocol's reused parse buffer before the callback
 * returns (a view kept past it is overwritten by later network data). Chunks wait in a ChunkQueue; above
 * `queuedBytesMax` the socket is paused, so memory is bounded whatever the consumer's speed. This class keeps
 * the phases and what they dispatch; BASE_BACKUP's reply is taken apart by base-backup.ts, command texts and
 * rows by replication-commands.ts, and the errors it raises itself are built in connection-errors.ts.
 *
 * Invariants:
 * - streamed chunks are contiguous: the first starts at the requested LSN, each next one where the previous
 *   ended; anything else fails the stream with WAL_STREAM_GAP (never silently patched over);
 * - status updates report `written` = end of the last byte received, and `flushed`/`applied` only what the
 *   owner declared with `setDurable()` (0 until then, which leaves a slot's restart_lsn untouched);
 * - every frame length is checked against `messageBytesMax` before pg-protocol buffers it (FrameGuard, in
 *   PgSocket).
 */
import { serialize } from 'pg-protocol'
import type { BackendMessage } from 'pg-protocol/dist/messages.js'
import type { ConnParams } from '../protocol/conn-string.js'
import { describeConnParams } from '../protocol/conn-string.js'
import type { PageserverError } from '../lib/errors.js'
import type { Lsn } from '../pg/lsn.js'
import { StartupAuth, startupMessage, type AuthMethod } from './startup-auth.js'
import { resolveConnectionOptions, type ReplicationConnectionOptions, type ReplicationMode, type ResolvedConnectionOptions } from './connection-options.js'
import { WalStream, type StreamEnd } from './wal-stream.js'
import { errorFromServer } from './pg-errors.js'
import { emptyReply, parseNextTimeline, parseShowValue, parseSystemRow, parseTimelineHistory, showCommand, startReplicationCommand, type SystemIdentity, type QueryReply, type QueryResult, type TimelineHistoryEntry } from './replication-commands.js'
import { PgSocket } from './pg-socket.js'
import { BASE_BACKUP_TIMEOUT_MS_DEFAULT, BaseBackupCopy, baseBackupCommand, type BackupPositions, type BackupStart } from './base-backup.js'
import { closedForCommandError, commandTimeoutError, connectCancelledError, connectionBusyError, connectionClosedError, protocolViolationError, socketClosedError, tlsUnsupportedError, unexpectedBytesError } from './connection-errors.js'

export type { SlotInfo, SystemIdentity, QueryResult } from './replication-commands.js'
export type { StreamEnd, WalChunk } from './wal-stream.js'
export { replicationConnectionDefaults, type ReplicationConnectionOptions, type ReplicationMode } from './connection-options.js'

type Phase = 'connecting' | 'ready' | 'query' | 'streaming' | 'stream-ending' | 'closed'

interface Pending {
  readonly what: string
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
  timer: NodeJS.Timeout | undefined
}

type AnyMessage = BackendMessage & Record<string, unknown>

export class ReplicationConnection {
  private readonly opts: ResolvedConnectionOptions
  private readonly auth: StartupAuth
  private readonly socket: PgSocket
  private phase: Phase = 'connecting'
  private pending: Pending | undefined
  private result: QueryReply = emptyReply()
  private readonly parameters = new Map<string, string>()

  private stream: WalStream | undefined
  /** During BASE_BACKUP: receives each CopyData payload synchronously; result sets are collected apart. */
  private copyOut: BaseBackupCopy | undefined
  private durableLsn: Lsn = 0n as Lsn
  private shutdownSeen = false
  private nextTimeline: { tli: number; lsn: Lsn } | undefined
  private stopping: Promise<void> | undefined
  private closing: Promise<void> | undefined

  private constructor(
    readonly params: ConnParams,
    options: ReplicationConnectionOptions,
  ) {
    this.opts = resolveConnectionOptions(options, params.connectTimeoutSeconds)
    this.auth = new StartupAuth(params.user, params.password)
    this.socket = new PgSocket(this.opts.messageBytesMax, (msg) => this.onMessage(msg as AnyMessage), (err) => this.fail(err), () => this.onClose())
  }

  /** Opens a replication connection and authenticates. Throws typed errors (unavailable, auth, timeout). */
  static async connect(params: ConnParams, options: ReplicationConnectionOptions = {}): Promise<ReplicationConnection> {
    if (params.sslMode === 'require' || params.sslMode === 'verify-ca' || params.sslMode === 'verify-full') throw tlsUnsupportedError(params.sslMode)
    const conn = new ReplicationConnection(params, options)
    await conn.open(options.signal)
    return conn
  }

  /** How the server authenticated us. */
  get authMethod(): AuthMethod {
    return this.auth.method
  }

  /** The walsender this connection asked for: 'database' runs SQL too (connection-options.ts). */
  get replicationMode(): ReplicationMode {
    return this.opts.replicationMode
  }

  /** ParameterStatus values sent by the server (server_version, ...). */
  parameter(name: string): string | undefined {
    return this.parameters.get(name)
  }

  /** The server's end of WAL as last reported (0 before streaming). */
  get serverWalEnd(): Lsn {
    return this.stream?.serverWalEnd ?? (0n as Lsn)
  }

  /** End of the last WAL byte received (the `written` position). */
  get written(): Lsn {
    return this.stream?.written ?? (0n as Lsn)
  }

  /** Counters of the current (or last) stream. */
  get stats(): WalStream['stats'] | undefined {
    return this.stream?.stats
  }

  get isStreaming(): boolean {
    return this.phase === 'streaming'
  }

  get isClosed(): boolean {
    return this.phase === 'closed'
  }

  private open(signal: AbortSignal | undefined): Promise<void> {
    const where = describeConnParams(this.params)
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(connectCancelledError(where))
        return
      }
      const onAbort = (): void => this.fail(connectCancelledError(where))
      signal?.addEventListener('abort', onAbort, { once: true })
      const done = (fn: () => void) => () => {
        signal?.removeEventListener('abort', onAbort)
        fn()
      }
      this.setPending('connecting', this.opts.connectTimeoutMs, (v) => done(() => resolve(v as void))(), (e) => done(() => reject(e))())
      this.socket.dial(this.params, startupMessage(this.params, this.opts))
    })
  }

  private setPending(what: string, timeoutMs: number, resolve: (v: unknown) => void, reject: (e: unknown) => void): void {
    const timer = setTimeout(() => this.fail(commandTimeoutError(what, describeConnParams(this.params), timeoutMs)), timeoutMs)
    timer.unref()
    this.pending = { what, resolve, reject, timer }
  }

  private settle(ok: boolean, value: unknown): void {
    const p = this.pending
    if (!p) return
    this.pending = undefined
    if (p.timer) clearTimeout(p.timer)
    if (ok) p.resolve(value)
    else p.reject(value)
  }

  private onMessage(msg: AnyMessage): void {
    if (this.phase === 'closed') return
    switch (msg.name) {
      case 'notice':
      case 'backendKeyData':
      case 'notification':
        return
      case 'parameterStatus':
        this.parameters.set(String(msg.parameterName), String(msg.parameterValue))
        return
      case 'error':
        return this.onServerError(msg)
    }
    if (this.phase === 'connecting') return this.onStartupMessage(msg)
    if (this.phase === 'streaming' || this.phase === 'stream-ending') return this.onStreamMessage(msg)
    if (this.phase === 'query') {
      // During BASE_BACKUP the backup takes its messages first: the archive's CopyData goes straight on.
      if (this.copyOut !== undefined && this.copyOut.onMessage(msg)) return
      return this.onQueryMessage(msg)
    }
    this.protocolViolation(msg.name)
  }

  private onServerError(msg: AnyMessage): void {
    const code = typeof msg.code === 'string' ? msg.code : undefined
    if (code === undefined && String(msg.message ?? '').startsWith('received invalid response')) {
      return this.fail(unexpectedBytesError(String(msg.message)))
    }
    const err = errorFromServer(msg as { message?: string; code?: string }, this.pending?.what ?? 'streaming')
    if (this.phase === 'query') {
      this.result.error ??= err
      return
    }
    // During startup, or while streaming: the server ends the session (FATAL) or the command (ERROR). Either
    // way the stream cannot continue on this connection.
    this.fail(err)
  }

  private protocolViolation(name: string): void {
    this.fail(protocolViolationError(name, this.phase))
  }

  private write(buf: Buffer): void {
    this.socket.write(buf)
  }

  private onStartupMessage(msg: AnyMessage): void {
    const step = this.auth.onMessage(msg)
    if (step.send) this.write(step.send)
    if (step.ready) {
      this.phase = 'ready'
      this.settle(true, undefined)
    }
  }

  /** Runs one simple-protocol command; resolves with its rows, rejects with the server's typed error. */
  query(sql: string, what = sql.split(' ')[0] ?? 'command'): Promise<QueryResult> {
    this.assertPhase('ready', what)
    this.phase = 'query'
    this.result = emptyReply()
    return new Promise<QueryResult>((resolve, reject) => {
      this.setPending(what, this.opts.commandTimeoutMs, resolve as (v: unknown) => void, reject)
      this.write(serialize.query(sql))
    })
  }

  private onQueryMessage(msg: AnyMessage): void {
    switch (msg.name) {
      case 'rowDescription':
        this.result.fields = (msg.fields as Array<{ name: string }>).map((f) => f.name)
        return
      case 'dataRow':
        this.result.rows.push(msg.fields as Array<string | null>)
        return
      case 'commandComplete':
        this.result.tags.push(String(msg.text))
        return
      case 'emptyQuery':
        return
      case 'replicationStart':
        this.phase = 'streaming'
        return this.settle(true, undefined)
      case 'readyForQuery': {
        this.phase = 'ready'
        const r = this.result
        if (r.error) return this.settle(false, r.error)
        return this.settle(true, { fields: r.fields, rows: r.rows, tags: r.tags })
      }
      default:
        return this.protocolViolation(msg.name)
    }
  }

  private assertPhase(phase: Phase, what: string): void {
    if (this.phase === phase) return
    if (this.phase === 'closed') throw closedForCommandError(what, describeConnParams(this.params))
    throw connectionBusyError(what, this.phase)
  }

  /** IDENTIFY_SYSTEM: the primary's system id, timeline and current flush LSN. */
  async identifySystem(): Promise<SystemIdentity> {
    return parseSystemRow(await this.query('IDENTIFY_SYSTEM'))
  }

  /** TIMELINE_HISTORY n: the timelines before `tli` with the LSN each ended at, oldest first. */
  async timelineHistory(tli: number): Promise<TimelineHistoryEntry[]> {
    return parseTimelineHistory(await this.query(`TIMELINE_HISTORY ${tli}`, 'TIMELINE_HISTORY'))
  }

  /** SHOW a server setting (walsenders accept SHOW), e.g. wal_segment_size -> "16MB". */
  async show(name: string): Promise<string> {
    return parseShowValue(await this.query(showCommand(name), 'SHOW'), name)
  }

  /**
   * START_REPLICATION [SLOT s] PHYSICAL X/X TIMELINE n. Resolves once the server entered COPY mode (so a
   * missing segment or slot is reported here); the returned stream yields contiguous WAL chunks (copied
   * into SharedArrayBuffer memory with `sharedMemory`, for a CRC worker thread).
   */
  async startReplication(args: { slot?: string | undefined; startLsn: Lsn; timeline: number; sharedMemory?: boolean }): Promise<WalStream> {
    const sql = startReplicationCommand(args.slot, args.startLsn, args.timeline)
    this.assertPhase('ready', 'START_REPLICATION')
    this.shutdownSeen = false
    this.nextTimeline = undefined
    const stream = new WalStream(
      {
        send: (buf) => this.write(buf),
        pause: () => this.socket.pause(),
        resume: () => this.socket.resume(),
        fail: (err) => this.fail(err),
        where: describeConnParams(this.params),
        partialFrame: () => this.socket.partialFrame,
      },
      this.opts,
      args.startLsn,
      this.durableLsn,
      args.sharedMemory ?? false,
    )
    stream.onConsumerReturn = () => this.stopStreaming()
    this.stream = stream
    this.phase = 'query'
    this.result = emptyReply()
    try {
      await new Promise<void>((resolve, reject) => {
        this.setPending('START_REPLICATION', this.opts.commandTimeoutMs, resolve as (v: unknown) => void, reject)
        this.write(serialize.query(sql))
      })
    } catch (e) {
      stream.finish()
      throw e
    }
    stream.begin()
    return stream
  }

  /**
   * BASE_BACKUP (PostgreSQL 15 syntax, fast checkpoint, no manifest, no WAL): every CopyData payload goes to
   * `onData` synchronously, in order (the first byte is the copystream sub-type: 'n' new archive, 'd'
   * archive data, 'p' progress, 'm' manifest). Resolves with the start LSN and timeline (the redo point WAL
   * must be replayed from) and the end LSN (pages are consistent from there on). A throw in `onData` aborts
   * the backup and the connection with that error.
   */
  async baseBackup(
    options: { label: string; timeoutMs?: number },
    onData: (chunk: Buffer) => void,
    onStart?: (start: BackupStart) => void,
  ): Promise<BackupPositions> {
    this.assertPhase('ready', 'BASE_BACKUP')
    const sql = baseBackupCommand(options.label)
    this.phase = 'query'
    this.result = emptyReply()
    const co = new BaseBackupCopy({ fail: (err) => this.fail(err), protocolViolation: (name) => this.protocolViolation(name) }, onData, onStart)
    this.copyOut = co
    try {
      await new Promise<void>((resolve, reject) => {
        this.setPending('BASE_BACKUP', options.timeoutMs ?? BASE_BACKUP_TIMEOUT_MS_DEFAULT, resolve as (v: unknown) => void, reject)
        this.write(serialize.query(sql))
      })
    } finally {
      this.copyOut = undefined
    }
    return co.positions()
  }

  /** Why the last stream ended (after its iterator finished). */
  get lastStreamEnd(): StreamEnd | undefined {
    return this.stream?.end
  }

  private onStreamMessage(msg: AnyMessage): void {
    const stream = this.stream!
    switch (msg.name) {
      case 'copyData':
        return stream.onCopyData(msg.chunk as Buffer)
      case 'copyDone':
        // The server left COPY mode (end of a timeline): answer with our CopyDone; a result row follows.
        stream.sendCopyDone('server-ended')
        this.phase = 'stream-ending'
        // The stream no longer watches for silence (it is no longer active): a link that dies before the
        // result arrives must still end it, or the receiver would wait for ever.
        if (this.pending === undefined) this.setPending('waiting for the end of the timeline', this.opts.silenceTimeoutMs, () => {}, () => {})
        return
      case 'rowDescription':
        return
      case 'dataRow':
        this.nextTimeline = parseNextTimeline(msg.fields as Array<string | null>) ?? this.nextTimeline
        return
      case 'commandComplete':
        // "COPY 0" inside COPY mode: the walsender is shutting down after sending everything (WalSndDone).
        if (this.phase === 'streaming') {
          this.shutdownSeen = true
          stream.end ??= { reason: 'server-shutdown' }
        }
        return
      case 'readyForQuery':
        stream.finish(undefined, this.nextTimeline)
        this.phase = 'ready'
        this.settle(true, undefined)
        return
      default:
        return this.protocolViolation(msg.name)
    }
  }

  /**
   * Declares the LSN up to which the owner made WAL durable. Reported as `flushed` and `applied` (the
   * primary's slot may then free WAL below it); while streaming, within `durableReportDelayMs`.
   */
  setDurable(lsn: Lsn): void {
    if (lsn > this.durableLsn) this.durableLsn = lsn
    this.stream?.setDurable(lsn)
  }

  get durable(): Lsn {
    return this.durableLsn
  }

  /** Sends a standby status update with the current positions now. */
  sendStatus(options: { replyRequested?: boolean } = {}): void {
    this.assertPhase('streaming', 'a status update')
    this.stream!.sendStatus(options.replyRequested ?? false)
  }

  /** Sends CopyDone and waits (bounded) until the server is back to command mode. Idempotent. */
  stopStreaming(): Promise<void> {
    if (this.phase !== 'streaming' && this.phase !== 'stream-ending') return Promise.resolve()
    this.stopping ??= new Promise<void>((resolve) => {
      this.stream!.sendCopyDone('client-stopped')
      this.phase = 'stream-ending'
      this.setPending('ending the stream', this.opts.closeTimeoutMs, () => resolve(), () => resolve())
    }).finally(() => {
      this.stopping = undefined
    })
    return this.stopping
  }

  /** Ends streaming if needed, says goodbye (Terminate) and closes the socket. Never throws; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.phase === 'closed') return
      try {
        if (this.phase === 'streaming' || this.phase === 'stream-ending') await this.stopStreaming()
        if (this.phase === 'ready') this.write(serialize.end())
      } catch {
        // closing anyway
      }
      this.fail(undefined)
    })()
    return this.closing
  }

  /** Tears everything down; `err` (if any) goes to the pending command and to the stream consumer. */
  private fail(err: PageserverError | undefined): void {
    const wasClosed = this.phase === 'closed'
    this.phase = 'closed'
    this.settle(false, err ?? connectionClosedError(describeConnParams(this.params)))
    this.stream?.finish(err, this.nextTimeline)
    if (!wasClosed) this.socket.end(err !== undefined, this.opts.closeTimeoutMs)
  }

  private onClose(): void {
    if (this.phase === 'closed') return
    // The walsender said "COPY 0" and exited: the primary is shutting down; a clean end of stream.
    if ((this.phase === 'streaming' || this.phase === 'stream-ending') && this.shutdownSeen) return this.fail(undefined)
    const connecting = this.phase === 'connecting' && this.pending?.what === 'connecting'
    this.fail(socketClosedError(describeConnParams(this.params), connecting, this.parameters.size === 0, this.socket.error))
  }
}
