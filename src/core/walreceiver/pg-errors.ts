/**
 * PostgreSQL ErrorResponse -> typed page server error, and which failures a reconnect can cure.
 *
 * The server's own message is kept (prefixed "PostgreSQL: "), with the SQLSTATE, severity and detail in
 * `details`, so logs show what the primary said. The class of the SQLSTATE decides the kind:
 *   28xxx  bad credentials / pg_hba.conf          -> UsageError PG_AUTH_FAILED (retrying cannot help)
 *   53400  a configuration limit reached ("all replication slots are in use") -> UnavailableError
 *          PG_LIMIT_REACHED (retryable: a slot may be dropped meanwhile), with what to do about it
 *   53300  max_wal_senders reached: with max_wal_senders = 0 (replication off) -> UsageError PG_REPLICATION_OFF,
 *          else PG_UNAVAILABLE with what holds the connections
 *   57P01..57P03, 53xxx, 08xxx  shutting down, starting up, too many connections, connection trouble
 *                                                 -> UnavailableError (retryable)
 *   55006  slot active for another process         -> ConflictError PG_SLOT_ACTIVE (retryable: the old
 *          walsender of a dropped connection may not have noticed yet)
 *   58P01  file gone ("requested WAL segment ... has already been removed") -> NotFoundError
 *   42704  undefined object (no such slot)         -> NotFoundError PG_SLOT_NOT_FOUND
 *   42710  duplicate object (slot exists)          -> ConflictError PG_DUPLICATE_OBJECT
 *   other 42xxx / 22xxx (syntax, bad value)        -> UsageError PG_REJECTED
 *   anything else                                  -> UnavailableError PG_SERVER_ERROR
 */
import { ConflictError, NotFoundError, PageserverError, UnavailableError, UsageError } from '../lib/errors.js'

/** The code of the server's "requested WAL segment has already been removed" (SQLSTATE 58P01). */
export const PG_WAL_REMOVED = 'PG_WAL_REMOVED'

export interface ServerErrorFields {
  message?: string | undefined
  code?: string | undefined
  severity?: string | undefined
  detail?: string | undefined
  hint?: string | undefined
}

export function errorFromServer(e: ServerErrorFields, context: string): PageserverError {
  const sqlstate = e.code ?? ''
  const message = `PostgreSQL: ${e.message ?? 'unknown error'}${e.detail ? ` (${e.detail})` : ''}`
  const details = { sqlstate, severity: e.severity, detail: e.detail, serverHint: e.hint, context }
  if (sqlstate.startsWith('28')) {
    return new UsageError('PG_AUTH_FAILED', message, {
      details,
      hint:
        'Check the user and the password (in the connection string or PGPASSWORD; for a stored WAL source, also the password file), ' +
        'and that pg_hba.conf has a "replication" line for this client.',
    })
  }
  if (sqlstate === '55006') {
    return new ConflictError('PG_SLOT_ACTIVE', message, { details, hint: 'Another client is streaming from this slot; stop it or use another slot.' })
  }
  if (sqlstate === '58P01') {
    return new NotFoundError(PG_WAL_REMOVED, message, {
      details,
      hint: 'The primary no longer has the WAL to start from; use a replication slot (--slot) so it keeps WAL, or start at a recent LSN.',
    })
  }
  if (sqlstate === '42704') {
    return new NotFoundError('PG_SLOT_NOT_FOUND', message, { details, hint: 'Create the replication slot first, or leave --slot out.' })
  }
  if (sqlstate === '42710') {
    return new ConflictError('PG_DUPLICATE_OBJECT', message, { details, hint: 'The object exists already.' })
  }
  if (sqlstate === '53400') {
    return new UnavailableError('PG_LIMIT_REACHED', message, {
      details,
      hint:
        'A limit of the primary is reached (max_replication_slots, when all slots are in use): `pageserver slot list --from ...` ' +
        'shows its slots and the WAL each keeps; drop those no timeline owns (`pageserver slot drop --orphans`, e.g. left by an ' +
        'interrupted import) or raise the limit. Retrying alone does not help.',
    })
  }
  const senders = sqlstate === '53300' ? /max_wal_senders \(currently (\d+)\)/.exec(e.message ?? '') : null
  if (senders !== null && senders[1] === '0') {
    return new UsageError('PG_REPLICATION_OFF', message, {
      details,
      hint: 'Replication is off on this PostgreSQL (max_wal_senders = 0): set max_wal_senders (10, say) and wal_level = replica, then restart it. Retrying alone does not help.',
    })
  }
  if (senders !== null) {
    return new UnavailableError('PG_UNAVAILABLE', message, {
      details,
      hint: `Every replication connection of this PostgreSQL is in use (max_wal_senders = ${senders[1]}): a standby, pg_basebackup or another page server streams from it; one must end, or raise max_wal_senders.`,
    })
  }
  if (sqlstate.startsWith('57') || sqlstate.startsWith('53') || sqlstate.startsWith('08')) {
    return new UnavailableError('PG_UNAVAILABLE', message, { details, hint: 'The server is starting, stopping or overloaded; retry in a moment.' })
  }
  if (sqlstate.startsWith('42') || sqlstate.startsWith('22')) {
    return new UsageError('PG_REJECTED', message, { details, hint: `The server rejected ${context}; check the names and LSNs given.` })
  }
  return new UnavailableError('PG_SERVER_ERROR', message, { details, hint: `The server failed ${context}; see its log for more.` })
}

/** Errors a reconnect (after a pause) may cure. Everything else is reported to the caller at once. */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof PageserverError)) return false
  if (err.kind === 'unavailable' || err.kind === 'timeout') return true
  return err.code === 'PG_SLOT_ACTIVE'
}
