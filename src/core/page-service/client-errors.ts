/**
 * Errors the page service client raises, typed by what the user should do about them:
 * - an ErrorResponse from the server becomes PageServiceServerError (kind from its text and SQLSTATE:
 *   "Not found: ..." -> not_found, JWT / command / LSN refusals -> usage, "Timed out while waiting for
 *   WAL" -> timeout, shutdown / too many connections / connection failure -> unavailable, XX001 (data
 *   corrupted: a timeline that failed to load) -> corruption; the server's hint when it sent one);
 * - an in-band pagestream Error (tag 103) becomes PagestreamRequestError with Neon's class from its
 *   prefix ("Bad request:", "Not found:", "LSN timeout:", "Read error", and ours "Read error: data
 *   corrupted:", a corruption);
 * - a lost connection is UnavailableError PAGE_SERVICE_CONNECTION_CLOSED.
 */
import { PageserverError, UnavailableError, type ErrorKind } from '../lib/errors.js'
import type { PgErrorFields } from '../protocol/pg-frontend-messages.js'
import { READ_ERROR_CORRUPTED_PREFIX } from '../protocol/pagestream.js'

export class PageServiceServerError extends PageserverError {
  readonly sqlstate: string
  readonly detail: string | undefined

  constructor(fields: PgErrorFields, context: string) {
    const kind = serverErrorKind(fields)
    super(kind, serverErrorCode(kind, fields), `${context}: ${fields.message}${fields.detail ? ` (${fields.detail})` : ''}`, {
      hint: fields.hint ?? serverErrorHint(kind, fields),
      details: { sqlstate: fields.code, severity: fields.severity },
    })
    this.name = 'PageServiceServerError'
    this.sqlstate = fields.code
    this.detail = fields.detail
  }
}

function serverErrorKind(f: PgErrorFields): ErrorKind {
  if (f.code === '57P01' || f.code === '08006' || f.code === '53300' || f.code === '08P01') return 'unavailable'
  if (f.code === 'XX001') return 'corruption'
  if (f.message.startsWith('Not found')) return 'not_found'
  if (f.message.startsWith('Timed out while waiting for WAL') || f.message.startsWith('LSN timeout')) return 'timeout'
  return 'usage'
}

function serverErrorCode(kind: ErrorKind, f: PgErrorFields): string {
  if (f.message === 'JWT authentication error') return 'PAGE_SERVICE_UNAUTHORIZED'
  switch (kind) {
    case 'not_found':
      return 'PAGE_SERVICE_NOT_FOUND'
    case 'timeout':
      return 'PAGE_SERVICE_LSN_TIMEOUT'
    case 'unavailable':
      return 'PAGE_SERVICE_UNAVAILABLE'
    case 'corruption':
      return 'PAGE_SERVICE_DATA_CORRUPTED'
    default:
      return 'PAGE_SERVICE_REFUSED'
  }
}

function serverErrorHint(kind: ErrorKind, f: PgErrorFields): string {
  if (f.message === 'JWT authentication error') return 'Pass a valid token (--token) with scope "tenant" for this tenant, or "pageserverapi".'
  switch (kind) {
    case 'not_found':
      return 'Check the tenant and timeline ids (pageserver tenant list, timeline list).'
    case 'timeout':
      return 'The page server has not received WAL up to that LSN yet; ask for an earlier LSN or check the WAL receiver.'
    case 'unavailable':
      return 'The page server is stopping or overloaded; retry shortly.'
    default:
      return 'Check the command and its arguments.'
  }
}

/** The Neon class of an in-band pagestream error, from its message prefix. */
export type PagestreamErrorClass = 'bad_request' | 'not_found' | 'lsn_timeout' | 'read' | 'data_corrupted' | 'other'

const SERVER_LOG_HINT = 'See the page server log for the cause.'

/**
 * The classes by message prefix, most specific first (ours, "Read error: data corrupted:", before Neon's
 * "Read error"), with the kind (exit code) and hint each gets; anything else is 'other'.
 */
const PAGESTREAM_ERROR_CLASSES: ReadonlyArray<{ prefix: string; errorClass: PagestreamErrorClass; kind: ErrorKind; hint: string }> = [
  { prefix: 'Bad request', errorClass: 'bad_request', kind: 'usage', hint: 'Check the request LSN: not 0, not below the GC cutoff, and not below not_modified_since.' },
  { prefix: 'Not found', errorClass: 'not_found', kind: 'not_found', hint: SERVER_LOG_HINT },
  { prefix: 'LSN timeout', errorClass: 'lsn_timeout', kind: 'timeout', hint: 'The page server has not received WAL up to that LSN yet; ask for an earlier LSN.' },
  {
    prefix: READ_ERROR_CORRUPTED_PREFIX,
    errorClass: 'data_corrupted',
    kind: 'corruption',
    hint: "The page server's files are damaged (the message names the file): restore it from a backup of its workdir; see the server log.",
  },
  { prefix: 'Read error', errorClass: 'read', kind: 'unavailable', hint: SERVER_LOG_HINT },
]

export class PagestreamRequestError extends PageserverError {
  readonly errorClass: PagestreamErrorClass

  constructor(message: string) {
    const c = PAGESTREAM_ERROR_CLASSES.find((x) => message.startsWith(x.prefix)) ?? { errorClass: 'other' as const, kind: 'unavailable' as const, hint: SERVER_LOG_HINT }
    super(c.kind, `PAGESTREAM_${c.errorClass.toUpperCase()}`, message, { hint: c.hint })
    this.name = 'PagestreamRequestError'
    this.errorClass = c.errorClass
  }
}

export function connectionClosed(what: string): UnavailableError {
  return new UnavailableError('PAGE_SERVICE_CONNECTION_CLOSED', `the page service connection closed ${what}`, {
    hint: 'Check that the page server is running and reachable; it may have been restarted.',
  })
}
