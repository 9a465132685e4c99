/**
 * The errors a replication connection (ReplicationConnection, replication-connection.ts) raises itself, as
 * opposed to those the server reports in an ErrorResponse (pg-errors.ts): a setting it cannot honour, a
 * cancelled connect, a command past its deadline, bytes that are not PostgreSQL's protocol, a connection
 * that is busy, closed, or went away.
 *
 * Each says what to do in its hint. A socket that closes is told apart by when it closed, because the
 * causes differ: refused before anything was said (nothing listens there), closed during startup (a port
 * that is not PostgreSQL's, or one not taking connections yet), or lost mid-session (the primary restarted
 * or the network dropped; the receiver reconnects). None is built on the CopyData path unless the stream
 * ends with it.
 */
import { CorruptionError, InterruptedError, PageserverError, TimeoutError, UnavailableError, UnsupportedError, UsageError, messageOf } from '../lib/errors.js'
import type { SslMode } from '../protocol/conn-string.js'

/** sslmode=require and stronger ask for TLS, which this client does not implement. */
export function tlsUnsupportedError(sslMode: SslMode): UsageError {
  return new UsageError('PG_TLS_UNSUPPORTED', `sslmode=${sslMode} needs TLS, which this client does not speak`, {
    hint: 'Use sslmode=disable or prefer on a trusted network (e.g. loopback or a private link).',
  })
}

export function connectCancelledError(where: string): InterruptedError {
  return new InterruptedError('INTERRUPTED', `connecting to ${where} was cancelled`, { hint: 'The operation was stopped on request.' })
}

/** `what` is the pending command ('connecting' for the startup); the timeout is shown in s when whole. */
export function commandTimeoutError(what: string, where: string, timeoutMs: number): TimeoutError {
  const after = timeoutMs % 1000 === 0 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`
  return new TimeoutError('PG_TIMEOUT', `${what === 'connecting' ? `connecting to ${where}` : `${what} on ${where}`} timed out after ${after}`, {
    hint: 'Check that the server is reachable and not overloaded; raise the timeout if the link is slow.',
  })
}

/** A message the connection does not expect in its phase. */
export function protocolViolationError(name: string, phase: string): CorruptionError {
  return new CorruptionError('PG_PROTOCOL_VIOLATION', `unexpected "${name}" message from the server in phase ${phase}`, { hint: 'Check that host and port point to a PostgreSQL 15 server.' })
}

/** pg-protocol reports bytes it cannot frame as an error message without a SQLSTATE ("received invalid response"). */
export function unexpectedBytesError(message: string): CorruptionError {
  return new CorruptionError('PG_PROTOCOL_VIOLATION', `unexpected bytes from the server: ${message}`, { hint: 'Check that host and port point to a PostgreSQL server.' })
}

/** Anything pg-protocol's parser throws becomes a typed error (an unknown auth method gets its own code). */
export function toProtocolError(e: unknown): PageserverError {
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

/** A command asked of a connection that is closed already. */
export function closedForCommandError(what: string, where: string): UnavailableError {
  return new UnavailableError('PG_CONNECTION_CLOSED', `cannot run ${what}: the connection to ${where} is closed`, { hint: 'Reconnect.' })
}

/** A command asked while another one (or the stream) still has the connection. */
export function connectionBusyError(what: string, phase: string): UsageError {
  return new UsageError('PG_CONNECTION_BUSY', `cannot run ${what} while the connection is ${phase}`, { hint: 'This is a bug in the caller: one command at a time.' })
}

/** What a pending command (and the stream consumer) gets when the connection is closed without an error. */
export function connectionClosedError(where: string): UnavailableError {
  return new UnavailableError('PG_CONNECTION_CLOSED', `the connection to ${where} was closed`, { hint: 'Reconnect.' })
}

/**
 * Why the socket closed under us. `connecting`: the startup was still pending; `beforeAuth`: the server had
 * sent no ParameterStatus yet; `socketError`: the first error the socket reported, if any.
 */
export function socketClosedError(where: string, connecting: boolean, beforeAuth: boolean, socketError: Error | undefined): UnavailableError {
  if (connecting && socketError && beforeAuth) {
    const code = (socketError as { code?: string }).code ?? ''
    return new UnavailableError('PG_UNREACHABLE', `cannot connect to ${where}: ${socketError.message}`, {
      hint: 'Check that PostgreSQL is running and listens on that host and port (listen_addresses, port).',
      details: { errno: code },
      cause: socketError,
    })
  }
  if (connecting) {
    // Accepted, then closed before the startup finished: not a primary that went away mid-session, but
    // something at that port that is not (or not yet) taking connections.
    const when = beforeAuth ? 'during startup, before authentication' : 'during startup'
    return new UnavailableError('PG_CLOSED_AT_STARTUP', `${where} closed the connection ${when}${socketError ? ` (${socketError.message})` : ''}`, {
      hint: 'Check that the port is PostgreSQL\'s (not a proxy or another service) and that it accepts connections (max_connections, max_wal_senders); the receiver retries.',
      ...(socketError ? { cause: socketError } : {}),
    })
  }
  return new UnavailableError('PG_CONNECTION_LOST', `the connection to ${where} was lost${socketError ? `: ${socketError.message}` : ''}`, {
    hint: 'The primary restarted or the network dropped; the receiver reconnects.',
    cause: socketError,
  })
}
