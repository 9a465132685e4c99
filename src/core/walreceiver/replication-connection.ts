/**
 * ReplicationConnection: one TCP (or Unix socket) connection to a PostgreSQL 15 primary in physical
 * replication mode (or, with `replicationMode: 'database'`, a logical walsender that also runs SQL).
 *
 * Lifecycle: `connect()` (startup + authentication, until ReadyForQuery) -> commands (`identifySystem`,
 * `show`, `query`; slots through replication-slots.ts) -> `startReplication()` -> iterate WAL chunks ->
 * `stopStreaming()` or `close()`. One owner; every path ends in `close()` (CopyDone, Terminate, destroy).
 *
 * Shape: pg-protocol serialises frontend messages and parses backend ones; all handling happens
 * synchronously in the socket's data callback, so keepalives are answered even while the consumer is busy,
 * and WAL bytes are copied out of pg-protocol's reused parse buffer before the callback returns (a view kept
 * past it is overwritten by later network data). Chunks wait in a ChunkQueue; above `queuedBytesMax` the
 * socket is paused, so memory is bounded whatever the consumer's speed.
 *
 * Invariants:
 * - streamed chunks are contiguous: the first starts at the requested LSN, each next one where the previous
 *   ended; anything else fails the stream with WAL_STREAM_GAP (never silently patched over);
 * - status updates report `written` = end of the last byte received, and `flushed`/`applied` only what the
 *   owner declared with `setDurable()` (0 until then, which leaves a slot's restart_lsn untouched);
 * - every frame length is checked against `messageBytesMax` before pg-protocol buffers it (FrameGuard).
 */
import { connect as netConnect, type Socket } from 'node:net'
import { join } from 'node:path'
import { serialize } from 'pg-protocol'
import { Parser } from 'pg-protocol/dist/parser.js'
import type { BackendMessage } from 'pg-protocol/dist/messages.js'
import type { ConnParams } from '../protocol/conn-string.js'
import { describeConnParams } from '../protocol/conn-string.js'
import { CorruptionError, InterruptedError, PageserverError, TimeoutError, UnavailableError, UnsupportedError, UsageError, messageOf } from '../lib/errors.js'
import { formatLsn, parseLsn, type Lsn } from '../pg/lsn.js'
import { FrameGuard } from './frame-guard.js'
import { StartupAuth, type AuthMethod } from './startup-auth.js'
import { resolveConnectionOptions, type ReplicationConnectionOptions, type ReplicationMode, type ResolvedConnectionOptions } from './connection-options.js'
import { WalStream, type StreamEnd } from './wal-stream.js'
import { errorFromServer } from './pg-errors.js'
import { parseSystemRow, parseTimelineHistory, validateSlotName, type SystemIdentity, type QueryResult, type TimelineHistoryEntry } from './replication-commands.js'

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
  private socket: Socket | undefined
  private readonly parser = new Parser()
  private readonly guard: FrameGuard
  private phase: Phase = 'connecting'
  private pending: Pending | undefined
  private result: { fields: string[]; rows: Array<Array<string | null>>; tags: string[]; error: PageserverError | undefined } = newResult()
  private socketError: Error | undefined
  private readonly parameters = new Map<string, string>()

  private stream: WalStream | undefined
  /** During BASE_BACKUP: receives each CopyData payload synchronously; result sets are collected apart. */
  private copyOut: { onData: (chunk: Buffer) => void; onStart: ((s: { lsn: Lsn; timeline: number }) => void) | undefined; resultSets: Array<{ fields: string[]; rows: Array<Array<string | null>> }>; inCopy: boolean } | undefined
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
    this.guard = new FrameGuard(this.opts.messageBytesMax)
  }

  /** Opens a replication connection and authenticates. Throws typed errors (unavailable, auth, timeout). */
  static async connect(params: ConnParams, options: ReplicationConnectionOptions = {}): Promise<ReplicationConnection> {
    if (params.sslMode === 'require' || params.sslMode === 'verify-ca' || params.sslMode === 'verify-full') {
      throw new UsageError('PG_TLS_UNSUPPORTED', `sslmode=${params.sslMode} needs TLS, which this client does not speak`, {
        hint: 'Use sslmode=disable or prefer on a trusted network (e.g. loopback or a private link).',
      })
    }
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
        reject(new InterruptedError('INTERRUPTED', `connecting to ${where} was cancelled`, { hint: 'The operation was stopped on request.' }))
        return
      }
      const onAbort = (): void => this.fail(new InterruptedError('INTERRUPTED', `connecting to ${where} was cancelled`, { hint: 'The operation was stopped on request.' }))
      signal?.addEventListener('abort', onAbort, { once: true })
      const done = (fn: () => void) => () => {
        signal?.removeEventListener('abort', onAbort)
        fn()
      }
      this.setPending('connecting', this.opts.connectTimeoutMs, (v) => done(() => resolve(v as void))(), (e) => done(() => reject(e))())
      const socket = this.params.host.startsWith('/')
        ? netConnect({ path: join(this.params.host, `.s.PGSQL.${this.params.port}`) })
        : netConnect({ host: this.params.host, port: this.params.port })
      this.socket = socket
      socket.setNoDelay(true)
      socket.on('connect', () => {
        socket.setKeepAlive(true, 10_000)
        socket.write(
          serialize.startup({
            user: this.params.user,
            database: this.params.dbname,
            // 'database' asks for a logical walsender, which also runs SQL (connection-options.ts).
            replication: this.opts.replicationMode === 'database' ? 'database' : 'true',
            application_name: this.params.applicationName ?? this.opts.applicationName,
          }),
        )
      })
      socket.on('data', (chunk: Buffer) => this.onData(chunk))
      socket.on('error', (err) => {
        this.socketError ??= err
      })
      socket.on('close', () => this.onClose())
    })
  }

  private setPending(what: string, timeoutMs: number, resolve: (v: unknown) => void, reject: (e: unknown) => void): void {
    const timer = setTimeout(() => {
      const where = describeConnParams(this.params)
      const after = timeoutMs % 1000 === 0 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`
      this.fail(
        new TimeoutError('PG_TIMEOUT', `${what === 'connecting' ? `connecting to ${where}` : `${what} on ${where}`} timed out after ${after}`, {
          hint: 'Check that the server is reachable and not overloaded; raise the timeout if the link is slow.',
        }),
      )
    }, timeoutMs)
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

  private onData(chunk: Buffer): void {
    try {
      this.guard.feed(chunk)
      this.parser.parse(chunk, (msg) => this.onMessage(msg as AnyMessage))
    } catch (e) {
      this.fail(toProtocolError(e))
    }
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
    if (this.phase === 'query') return this.onQueryMessage(msg)
    this.protocolViolation(msg.name)
  }

  private onServerError(msg: AnyMessage): void {
    const code = typeof msg.code === 'string' ? msg.code : undefined
    if (code === undefined && String(msg.message ?? '').startsWith('received invalid response')) {
      return this.fail(new CorruptionError('PG_PROTOCOL_VIOLATION', `unexpected bytes from the server: ${String(msg.message)}`, { hint: 'Check that host and port point to a PostgreSQL server.' }))
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
    this.fail(new CorruptionError('PG_PROTOCOL_VIOLATION', `unexpected "${name}" message from the server in phase ${this.phase}`, { hint: 'Check that host and port point to a PostgreSQL 15 server.' }))
  }

  private write(buf: Buffer): void {
    if (this.socket && !this.socket.destroyed && this.socket.writable) this.socket.write(buf)
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
    this.result = newResult()
    return new Promise<QueryResult>((resolve, reject) => {
      this.setPending(what, this.opts.commandTimeoutMs, resolve as (v: unknown) => void, reject)
      this.write(serialize.query(sql))
    })
  }

  private onQueryMessage(msg: AnyMessage): void {
    const co = this.copyOut
    if (co !== undefined) {
      switch (msg.name) {
        case 'rowDescription':
          co.resultSets.push({ fields: (msg.fields as Array<{ name: string }>).map((f) => f.name), rows: [] })
          return
        case 'dataRow':
          co.resultSets[co.resultSets.length - 1]?.rows.push(msg.fields as Array<string | null>)
          return
        case 'copyOutResponse': {
          co.inCopy = true
          const first = co.resultSets[0]?.rows[0]
          if (!first || first[0] == null) return this.protocolViolation('copyOutResponse before the start position')
          try {
            co.onStart?.({ lsn: parseLsn(first[0], 'backup start'), timeline: Number(first[1]) })
          } catch (e) {
            return this.fail(e instanceof PageserverError ? e : toProtocolError(e))
          }
          return
        }
        case 'copyData':
          if (!co.inCopy) return this.protocolViolation('copyData')
          try {
            co.onData(msg.chunk as Buffer)
          } catch (e) {
            // The consumer failed (corrupt archive, import error): stop everything, report that error.
            return this.fail(e instanceof PageserverError ? e : toProtocolError(e))
          }
          return
        case 'copyDone':
          co.inCopy = false
          return
      }
    }
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
    if (this.phase === 'closed') {
      throw new UnavailableError('PG_CONNECTION_CLOSED', `cannot run ${what}: the connection to ${describeConnParams(this.params)} is closed`, { hint: 'Reconnect.' })
    }
    throw new UsageError('PG_CONNECTION_BUSY', `cannot run ${what} while the connection is ${this.phase}`, { hint: 'This is a bug in the caller: one command at a time.' })
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
    if (!/^[a-z_][a-z0-9_.]*$/i.test(name)) throw new UsageError('BAD_SETTING_NAME', `"${name}" is not a setting name`, { hint: 'Use a PostgreSQL setting name such as wal_segment_size.' })
    const r = await this.query(`SHOW ${name}`, 'SHOW')
    const v = r.rows[0]?.[0]
    if (v === undefined || v === null) throw new CorruptionError('PG_BAD_REPLY', `SHOW ${name} returned no value`, { hint: 'The server replied oddly.' })
    return v
  }

  /**
   * START_REPLICATION [SLOT s] PHYSICAL X/X TIMELINE n. Resolves once the server entered COPY mode (so a
   * missing segment or slot is reported here); the returned stream yields contiguous WAL chunks (copied
   * into SharedArrayBuffer memory with `sharedMemory`, for a CRC worker thread).
   */
  async startReplication(args: { slot?: string | undefined; startLsn: Lsn; timeline: number; sharedMemory?: boolean }): Promise<WalStream> {
    if (args.slot !== undefined) validateSlotName(args.slot)
    if (!Number.isInteger(args.timeline) || args.timeline < 1 || args.timeline > 0xffff_ffff) {
      throw new UsageError('BAD_TIMELINE', `timeline ${args.timeline} is not a PostgreSQL timeline id`, { hint: 'Use the timeline from IDENTIFY_SYSTEM.' })
    }
    this.assertPhase('ready', 'START_REPLICATION')
    const sql = `START_REPLICATION ${args.slot !== undefined ? `SLOT ${args.slot} ` : ''}PHYSICAL ${formatLsn(args.startLsn)} TIMELINE ${args.timeline}`
    this.shutdownSeen = false
    this.nextTimeline = undefined
    const stream = new WalStream(
      {
        send: (buf) => this.write(buf),
        pause: () => this.socket?.pause(),
        resume: () => this.socket?.resume(),
        fail: (err) => this.fail(err),
        where: describeConnParams(this.params),
        partialFrame: () => this.guard.partialFrame,
      },
      this.opts,
      args.startLsn,
      this.durableLsn,
      args.sharedMemory ?? false,
    )
    stream.onConsumerReturn = () => this.stopStreaming()
    this.stream = stream
    this.phase = 'query'
    this.result = newResult()
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
    onStart?: (start: { lsn: Lsn; timeline: number }) => void,
  ): Promise<{ startLsn: Lsn; startTimeline: number; endLsn: Lsn; endTimeline: number }> {
    this.assertPhase('ready', 'BASE_BACKUP')
    const label = options.label.replaceAll("'", "''")
    this.phase = 'query'
    this.result = newResult()
    const co = { onData, onStart, resultSets: [] as Array<{ fields: string[]; rows: Array<Array<string | null>> }>, inCopy: false }
    this.copyOut = co
    try {
      await new Promise<void>((resolve, reject) => {
        this.setPending('BASE_BACKUP', options.timeoutMs ?? 6 * 3600_000, resolve as (v: unknown) => void, reject)
        this.write(serialize.query(`BASE_BACKUP ( LABEL '${label}', CHECKPOINT 'fast', MANIFEST 'no' )`))
      })
    } finally {
      this.copyOut = undefined
    }
    const sets = co.resultSets
    const first = sets[0]?.rows[0]
    const last = sets[sets.length - 1]?.rows[0]
    if (sets.length < 2 || !first || !last || first[0] == null || last[0] == null) {
      throw new CorruptionError('PG_BAD_REPLY', 'BASE_BACKUP did not report its start and end positions', { hint: 'The server replied oddly.' })
    }
    return {
      startLsn: parseLsn(first[0], 'backup start'),
      startTimeline: Number(first[1]),
      endLsn: parseLsn(last[0], 'backup end'),
      endTimeline: Number(last[1]),
    }
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
      case 'dataRow': {
        // next_tli (int8), next_tli_startpos (text) after a timeline switch.
        const f = msg.fields as Array<string | null>
        if (f[0] != null && f[1] != null) this.nextTimeline = { tli: Number(f[0]), lsn: parseLsn(f[1], 'next timeline start') }
        return
      }
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
    const closedErr =
      err ??
      new UnavailableError('PG_CONNECTION_CLOSED', `the connection to ${describeConnParams(this.params)} was closed`, { hint: 'Reconnect.' })
    this.settle(false, closedErr)
    this.stream?.finish(err, this.nextTimeline)
    if (!wasClosed && this.socket && !this.socket.destroyed) {
      if (err) this.socket.destroy()
      else this.socket.end(() => this.socket?.destroy())
      // A peer that never closes its side must not keep us waiting.
      const s = this.socket
      setTimeout(() => s.destroy(), this.opts.closeTimeoutMs).unref()
    }
  }

  private onClose(): void {
    if (this.phase === 'closed') return
    const where = describeConnParams(this.params)
    let err: PageserverError
    if (this.phase === 'connecting' && this.socketError && this.pending?.what === 'connecting' && this.parameters.size === 0) {
      const code = (this.socketError as { code?: string }).code ?? ''
      err = new UnavailableError('PG_UNREACHABLE', `cannot connect to ${where}: ${this.socketError.message}`, {
        hint: 'Check that PostgreSQL is running and listens on that host and port (listen_addresses, port).',
        details: { errno: code },
        cause: this.socketError,
      })
    } else if (this.phase === 'connecting' && this.pending?.what === 'connecting') {
      // Accepted, then closed before the startup finished: not a primary that went away mid-session, but
      // something at that port that is not (or not yet) taking connections.
      const when = this.parameters.size === 0 ? 'during startup, before authentication' : 'during startup'
      err = new UnavailableError('PG_CLOSED_AT_STARTUP', `${where} closed the connection ${when}${this.socketError ? ` (${this.socketError.message})` : ''}`, {
        hint: 'Check that the port is PostgreSQL\'s (not a proxy or another service) and that it accepts connections (max_connections, max_wal_senders); the receiver retries.',
        ...(this.socketError ? { cause: this.socketError } : {}),
      })
    } else if ((this.phase === 'streaming' || this.phase === 'stream-ending') && this.shutdownSeen) {
      // The walsender said "COPY 0" and exited: the primary is shutting down; a clean end of stream.
      this.fail(undefined)
      return
    } else {
      err = new UnavailableError('PG_CONNECTION_LOST', `the connection to ${where} was lost${this.socketError ? `: ${this.socketError.message}` : ''}`, {
        hint: 'The primary restarted or the network dropped; the receiver reconnects.',
        cause: this.socketError,
      })
    }
    this.fail(err)
  }
}

function newResult(): { fields: string[]; rows: Array<Array<string | null>>; tags: string[]; error: PageserverError | undefined } {
  return { fields: [], rows: [], tags: [], error: undefined }
}

/** Anything pg-protocol's parser throws becomes a typed error (an unknown auth method gets its own code). */
function toProtocolError(e: unknown): PageserverError {
  if (e instanceof PageserverError) return e
  const m = /Unknown authenticationOk message type (\d+)/.exec(messageOf(e))
  if (m) {
    return new UnsupportedError('PG_AUTH_METHOD', `the server asks for an authentication method this client does not support (code ${m[1]})`, {
      hint: 'Allow scram-sha-256, md5, password or trust for this client in pg_hba.conf.',
    })
  }
  return new CorruptionError('PG_PROTOCOL_VIOLATION', `cannot parse the server's reply: ${messageOf(e)}`, {
    hint: 'Check that host and port point to a PostgreSQL server.',
    cause: e,
  })
}
