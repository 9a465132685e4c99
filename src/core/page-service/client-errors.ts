/**
 * Errors the page service client raises, typed by what the user should do about them:
 * - an ErrorResponse from the server becomes PageServiceServerError. From a server that sends the error's
 *   code (a `pageserver error code:` line in D, error-wire.ts): kind from the SQLSTATE (XX000 = internal),
 *   that code, and the server's hint, i.e. what the command raises offline. From one that does not (Neon, or
 *   ours before): kind from the SQLSTATE where it says one (57P01 / 08006 / 53300 / 08P01 unavailable, XX001
 *   data corrupted, 3D000 not found, ...), else from the text ("Not found: ..." -> not_found, "Timed out
 *   while waiting for WAL" -> timeout, anything else, JWT and command refusals included, -> usage), with a
 *   PAGE_SERVICE_* code and hint by kind, or the server's hint when it sent one;
 * - an in-band pagestream Error (tag 103) becomes PagestreamRequestError with Neon's class from its
 *   prefix ("Bad request:", "Not found:", "LSN timeout:", "Read error", and ours "Read error: <kind>:"),
 *   and the code and hint of its trailer when it has one (else PAGESTREAM_<CLASS> and a hint by class);
 * - a lost connection is UnavailableError PAGE_SERVICE_CONNECTION_CLOSED.
 */
import { PageserverError, UnavailableError, type ErrorKind } from '../lib/errors.js'
import type { PgErrorFields } from '../protocol/pg-frontend-messages.js'
import { kindOfSqlstate, READ_ERROR_PREFIX_OF_KIND, splitDetail, splitPagestreamMessage } from './error-wire.js'

export class PageServiceServerError extends PageserverError {
  readonly sqlstate: string
  /** The server's detail, without the code line. */
  readonly detail: string | undefined

  constructor(fields: PgErrorFields, context: string) {
    const { code, detail } = splitDetail(fields.detail)
    const kind = serverErrorKind(fields, code !== null)
    super(kind, code ?? serverErrorCode(kind, fields), `${context}: ${fields.message}${detail ? ` (${detail})` : ''}`, {
      hint: fields.hint ?? serverErrorHint(kind, fields),
      details: { sqlstate: fields.code, severity: fields.severity },
    })
    this.name = 'PageServiceServerError'
    this.sqlstate = fields.code
    this.detail = detail
  }
}

/**
 * The kind of an ErrorResponse. XX000 is Neon's answer to every refusal: with our code line it means
 * internal; without, the text decides, as before codes were sent.
 */
function serverErrorKind(f: PgErrorFields, hasCode: boolean): ErrorKind {
  const bySqlstate = kindOfSqlstate(f.code)
  if (bySqlstate !== null) return bySqlstate
  if (hasCode) return 'internal'
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
    case 'unsupported':
      return 'PAGE_SERVICE_UNSUPPORTED'
    case 'conflict':
      return 'PAGE_SERVICE_CONFLICT'
    default:
      return 'PAGE_SERVICE_REFUSED'
  }
}

/** A hint for an error the server sent none with. */
function serverErrorHint(kind: ErrorKind, f: PgErrorFields): string {
  if (f.message === 'JWT authentication error') return 'Pass a valid token (--token) with scope "tenant" for this tenant, or "pageserverapi".'
  switch (kind) {
    case 'not_found':
      return 'Check the tenant and timeline ids (pageserver tenant list, timeline list).'
    case 'timeout':
      return 'The page server has not received WAL up to that LSN yet; ask for an earlier LSN or check the WAL receiver.'
    case 'unavailable':
      return 'The page server is stopping or overloaded; retry shortly.'
    case 'internal':
    case 'corruption':
    case 'unsupported':
    case 'conflict':
      return SERVER_LOG_HINT
    default:
      return 'Check the command and its arguments.'
  }
}

/** The class of an in-band pagestream error, from its message prefix: Neon's, and ours under "Read error". */
export type PagestreamErrorClass =
  | 'bad_request'
  | 'not_found'
  | 'lsn_timeout'
  | 'read'
  | 'data_corrupted'
  | 'unsupported'
  | 'read_timeout'
  | 'conflict'
  | 'interrupted'
  | 'internal'
  | 'other'

const SERVER_LOG_HINT = 'See the page server log for the cause.'

/**
 * The classes by message prefix, most specific first (ours, "Read error: data corrupted: " and the others
 * of READ_ERROR_PREFIX_OF_KIND, before Neon's "Read error"; Neon's written out, as its servers send them),
 * with the kind (exit code) and the hint each gets when the message has no hint of its own; anything else
 * is 'other'. Neon's "Not found" (tenant or timeline) and ours "Read error: not found" (a
 * relation, an SLRU segment) are one class.
 */
const PAGESTREAM_ERROR_CLASSES: ReadonlyArray<{ prefix: string; errorClass: PagestreamErrorClass; kind: ErrorKind; hint: string }> = [
  { prefix: 'Bad request', errorClass: 'bad_request', kind: 'usage', hint: 'Check the request LSN: not 0, not below the GC cutoff, and not below not_modified_since.' },
  { prefix: 'Not found', errorClass: 'not_found', kind: 'not_found', hint: SERVER_LOG_HINT },
  { prefix: 'LSN timeout', errorClass: 'lsn_timeout', kind: 'timeout', hint: 'The page server has not received WAL up to that LSN yet; ask for an earlier LSN.' },
  {
    prefix: READ_ERROR_PREFIX_OF_KIND.corruption,
    errorClass: 'data_corrupted',
    kind: 'corruption',
    hint: "The page server's files are damaged (the message names the file): restore it from a backup of its workdir; see the server log.",
  },
  { prefix: READ_ERROR_PREFIX_OF_KIND.not_found, errorClass: 'not_found', kind: 'not_found', hint: SERVER_LOG_HINT },
  { prefix: READ_ERROR_PREFIX_OF_KIND.unsupported, errorClass: 'unsupported', kind: 'unsupported', hint: SERVER_LOG_HINT },
  { prefix: READ_ERROR_PREFIX_OF_KIND.timeout, errorClass: 'read_timeout', kind: 'timeout', hint: SERVER_LOG_HINT },
  { prefix: READ_ERROR_PREFIX_OF_KIND.conflict, errorClass: 'conflict', kind: 'conflict', hint: SERVER_LOG_HINT },
  { prefix: READ_ERROR_PREFIX_OF_KIND.interrupted, errorClass: 'interrupted', kind: 'interrupted', hint: SERVER_LOG_HINT },
  { prefix: READ_ERROR_PREFIX_OF_KIND.internal, errorClass: 'internal', kind: 'internal', hint: SERVER_LOG_HINT },
  { prefix: 'Read error', errorClass: 'read', kind: 'unavailable', hint: SERVER_LOG_HINT },
]

export class PagestreamRequestError extends PageserverError {
  readonly errorClass: PagestreamErrorClass

  /** `received`: the Error response's message; shown without its code-and-hint trailer. */
  constructor(received: string) {
    const { message, code, hint } = splitPagestreamMessage(received)
    const c = PAGESTREAM_ERROR_CLASSES.find((x) => message.startsWith(x.prefix)) ?? { errorClass: 'other' as const, kind: 'unavailable' as const, hint: SERVER_LOG_HINT }
    super(c.kind, code ?? `PAGESTREAM_${c.errorClass.toUpperCase()}`, message, { hint: hint ?? c.hint })
    this.name = 'PagestreamRequestError'
    this.errorClass = c.errorClass
  }
}

export function connectionClosed(what: string): UnavailableError {
  return new UnavailableError('PAGE_SERVICE_CONNECTION_CLOSED', `the page service connection closed ${what}`, {
    hint: 'Check that the page server is running and reachable; it may have been restarted.',
  })
}
