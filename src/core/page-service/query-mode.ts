/**
 * QueryMode: what a logged-in connection does with the client's messages between commands (the `query`
 * state of connection.ts), and the commands it starts.
 *
 *   Query              -> run the command it names, then ReadyForQuery
 *   Parse              -> remember the unnamed statement's text; ParseComplete
 *   Bind, Close        -> BindComplete, CloseComplete (acknowledged only)
 *   Describe           -> ParameterDescription (none), NoData
 *   Execute            -> run the remembered text, without ReadyForQuery (as Neon: Sync brings it)
 *   Sync / Flush       -> ReadyForQuery / nothing
 *   Terminate          -> close once the answers are sent
 *   anything else      -> protocol violation (FATAL 08P01, close)
 *
 * A command (commands.ts) is checked before it starts: parsed, allowed by the client's token (jwt auth),
 * its timeline found. Every refusal is an ErrorResponse, typed errors with their kind, code and hint
 * (connection-errors.ts), then ReadyForQuery; the connection stays in query mode. Then:
 *   set                      -> CommandComplete "SELECT 1"
 *   pagestream_v2|v3         -> CopyBothResponse and a PagestreamSession (pagestream-handler.ts); the
 *                               connection feeds it CopyData from then on
 *   basebackup, fullbackup   -> the tar over CopyOut (backup-stream.ts) while the connection reads nothing
 *                               (`busy`), then CommandComplete or the ErrorResponse, and query mode again
 *
 * Shape: the connection owns the socket, the reading and the state machine; query mode holds what only it
 * uses (the unnamed statement, the client's claims, a backup's LSN wait) and moves the state machine through
 * `QueryModeHost`. One per connection, made with it, and so are the host's functions; a pagestream session
 * writes through them as it wrote through the closures the connection made for it before.
 */
import { messageOf, PageserverError } from '../lib/errors.js'
import { describeType, type Frame } from '../protocol/pg-frames.js'
import {
  FrontendType,
  bindComplete,
  closeComplete,
  commandComplete,
  copyBothResponse,
  errorResponse,
  noData,
  parameterDescriptionEmpty,
  parseCString,
  parseComplete,
  parseParseMessage,
  readyForQuery,
} from '../protocol/pg-backend-messages.js'
import type { TenantId } from '../model/ids.js'
import { SHUTTING_DOWN_CODE, type PageServiceTimeline } from './backend.js'
import { checkPermission, type JwtClaims } from './auth.js'
import { parseCommand, type PageServiceCommand } from './commands.js'
import { PagestreamSession, type PagestreamSink } from './pagestream-handler.js'
import { streamBackup } from './backup-stream.js'
import { typedForWire } from './error-wire.js'
import { SqlState, timelineDeletedDuringBackup, typedErrorResponse } from './connection-errors.js'
import type { ConnectionContext } from './connection.js'

type BackupCommand = Extract<PageServiceCommand, { readonly kind: 'basebackup' | 'fullbackup' }>

/**
 * What query mode needs of its connection: functions bound to it, made once with it and passed on as they
 * are (write, wake and fatal are the sink of every pagestream session; write and drained a backup's).
 */
export interface QueryModeHost extends PagestreamSink {
  /** Resolves once the socket's write buffer is below its high-water mark, or the connection closed. */
  readonly drained: () => Promise<void>
  /** Aborted when the connection closes: a backup stops. */
  readonly signal: AbortSignal
  /** Whether the connection has closed (a command that ends after that answers nothing). */
  closed(): boolean
  /** Terminate: stop reading, send what is buffered, then close. */
  closeAfterFlush(): void
  /** A message query mode does not take: FATAL 08P01, then close. */
  protocolViolation(message: string): void
  /** pagestream_v2|v3 started (CopyBothResponse written): CopyData goes to `session` from now on (`pagestream`). */
  servePagestream(session: PagestreamSession): void
  /** A backup started: nothing is read until `commandEnded` (`busy`). */
  busy(): void
  /** An asynchronous command ended: `done`, then query mode again (or FATAL 57P01 if a shutdown began meanwhile). */
  commandEnded(done: () => void): void
}

export class QueryMode {
  /** The claims of the client's token, set once it is verified (jwt auth; null with trust). */
  claims: JwtClaims | null = null
  private unnamedQuery = ''
  /** While a backup waits for its LSN: ends that wait (graceful shutdown). */
  private backupWaitAbort: AbortController | null = null

  constructor(
    private readonly host: QueryModeHost,
    private readonly ctx: ConnectionContext,
  ) {}

  onMessage(frame: Frame): void {
    switch (frame.type) {
      case FrontendType.Query:
        return this.runQuery(parseCString(frame.body, 'Query'), true)
      case FrontendType.Parse:
        this.unnamedQuery = parseParseMessage(frame.body)
        return this.host.write(parseComplete())
      case FrontendType.Bind:
        return this.host.write(bindComplete())
      case FrontendType.Describe:
        this.host.write(parameterDescriptionEmpty())
        return this.host.write(noData())
      case FrontendType.Close:
        return this.host.write(closeComplete())
      case FrontendType.Execute:
        // As Neon: run the remembered query; no ReadyForQuery (Sync brings it).
        return this.runQuery(this.unnamedQuery, false)
      case FrontendType.Sync:
        return this.host.write(readyForQuery())
      case FrontendType.Flush:
        return
      case FrontendType.Terminate:
        return this.host.closeAfterFlush()
      default:
        return this.host.protocolViolation(`unexpected message type ${describeType(frame.type)}`)
    }
  }

  private runQuery(text: string, sendReady: boolean): void {
    const done = (): void => {
      if (sendReady) this.host.write(readyForQuery())
    }
    const fail = (message: string, detail?: string): void => {
      this.host.write(errorResponse({ severity: 'ERROR', code: SqlState.InternalError, message, ...(detail === undefined ? {} : { detail }) }))
      done()
    }
    const failTyped = (err: PageserverError, message = err.message): void => {
      this.host.write(typedErrorResponse(err, message))
      done()
    }
    let cmd: PageServiceCommand
    try {
      cmd = parseCommand(text)
    } catch (err) {
      return failTyped(typedForWire(err))
    }
    if (cmd.kind === 'set') {
      this.host.write(commandComplete('SELECT 1'))
      return done()
    }
    const refusal = this.permissionFor(cmd.tenantId)
    if (refusal !== null) return fail('JWT authentication error', refusal)
    let timeline: PageServiceTimeline
    try {
      timeline = this.ctx.backend.timeline(cmd.tenantId, cmd.timelineId)
    } catch (err) {
      if (err instanceof PageserverError && err.code === SHUTTING_DOWN_CODE) return this.host.fatal(SqlState.AdminShutdown, 'shutdown')
      // Neon's text for an unknown tenant or timeline ("Not found: ..."). Any other refusal (a timeline that
      // failed to load: data_corrupted when the cause is damaged files) as it is. Both typed.
      if (err instanceof PageserverError) return failTyped(err, err.kind === 'not_found' ? `Not found: ${err.message}` : err.message)
      return fail(`Not found: ${messageOf(err)}`)
    }
    if (cmd.kind === 'pagestream') {
      this.host.write(copyBothResponse())
      this.host.servePagestream(
        new PagestreamSession(this.host, {
          version: cmd.version,
          timeline,
          inFlightMax: this.ctx.options.inFlightMax,
          waitLsnTimeoutMs: this.ctx.options.waitLsnTimeoutMs,
          metrics: this.ctx.metrics,
        }),
      )
      return
    }
    this.runBackup(cmd, timeline, done)
  }

  /** A graceful shutdown began: a backup still waiting for its LSN stops waiting (one streaming is let finish). */
  shutdown(): void {
    this.backupWaitAbort?.abort()
  }

  private runBackup(cmd: BackupCommand, timeline: PageServiceTimeline, done: () => void): void {
    this.host.busy()
    this.ctx.metrics.backupsStarted++
    const waitAbort = (this.backupWaitAbort = new AbortController())
    const sink = { write: this.host.write, drained: this.host.drained, signal: this.host.signal, waitSignal: waitAbort.signal }
    const req =
      cmd.kind === 'basebackup'
        ? { lsn: cmd.lsn, prevLsn: null, full: false, gzip: cmd.gzip, replica: cmd.replica }
        : { lsn: cmd.lsn, prevLsn: cmd.prevLsn, full: true, gzip: false, replica: false }
    streamBackup(sink, timeline, req, this.ctx.options).then(
      () => {
        if (this.host.closed()) return
        this.host.write(commandComplete('SELECT 1'))
        this.backupEnded(done)
      },
      (err: unknown) => {
        if (this.host.closed()) return
        if ((err instanceof PageserverError && err.code === SHUTTING_DOWN_CODE) || waitAbort.signal.aborted) return this.host.fatal(SqlState.AdminShutdown, 'shutdown')
        // A timeline deleted under the backup fails it on a closed file: say why, not which file.
        const failure = timeline.deleted?.() === true ? timelineDeletedDuringBackup() : typedForWire(err)
        this.host.write(typedErrorResponse(failure))
        this.backupEnded(done)
      },
    )
  }

  private backupEnded(done: () => void): void {
    this.backupWaitAbort = null
    this.host.commandEnded(done)
  }

  private permissionFor(tenantId: TenantId): string | null {
    if (this.ctx.options.authType === 'trust') return null
    const refusal = checkPermission(this.claims!, tenantId)
    return refusal === null ? null : refusal.message
  }
}
