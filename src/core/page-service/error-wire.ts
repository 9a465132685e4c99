/**
 * How a typed error (PageserverError: kind, code, hint) crosses the page service, both directions in one
 * place: the server encodes with these functions, the client (client-errors.ts) decodes with them.
 *
 * Two carriers, neither changing a wire layout:
 *
 * 1. libpq ErrorResponse (command failures: basebackup, fullbackup, a refused pagestream):
 *    - C (SQLSTATE) from the kind, standard PostgreSQL codes (`SQLSTATE_OF_KIND`);
 *    - H the error's hint;
 *    - D ends with the line `pageserver error code: RELATION_NOT_FOUND` (the stable code). D is a field
 *      every libpq client shows as DETAIL and none interprets, so Neon's computes and psql just print it;
 *      an unknown field type would have been legal too, but some drivers choke on them.
 *    The client takes the kind from C, the code from D and the hint from H. A server that sends no code line
 *    (Neon, or ours before this) gets today's mapping: Neon answers every refusal with XX000, so XX000
 *    without a code line is read by its message text, never as "internal".
 *
 * 2. A pagestream Error response (tag 103) has only a message string, which Neon's computes log as the
 *    DETAIL of their read error. Neon's classes go by the message's prefix ("Bad request", "Not found",
 *    "LSN timeout", "Read error"); ours refine "Read error" by kind ("Read error: not found: ...", see
 *    `READ_ERROR_PREFIX_OF_KIND`), so a client can tell a missing relation or an unsupported WAL record
 *    from an outage, and every Neon client still sees a read error. After the message comes a trailer
 *    with the code and hint, in one line so that a compute's log stays one line:
 *
 *      Read error: not found: relation 1663/5/4242 does not exist (pageserver error code: RELATION_NOT_FOUND; hint: Check ...)
 *
 *    The client strips the trailer from the message it shows and takes code and hint from it.
 *
 * Example (worked): an UnsupportedError REDO_UNSUPPORTED_RECORD with hint H during a fullbackup goes out as
 * ErrorResponse C=0A000, M=<message>, D="pageserver error code: REDO_UNSUPPORTED_RECORD", H=H, and the
 * client rebuilds kind unsupported (exit 8), code REDO_UNSUPPORTED_RECORD, hint H: what the offline command
 * would have raised.
 */
import { messageOf, PageserverError, type ErrorKind } from '../lib/errors.js'
import { READ_ERROR_CORRUPTED_PREFIX } from '../protocol/pagestream.js'

// ---- libpq ErrorResponse ------------------------------------------------------------------------------

/**
 * The SQLSTATE each kind is sent with (PostgreSQL's errcodes.txt). One per kind, so the client can map
 * back; `kindOfSqlstate` also accepts the neighbours listed there.
 */
export const SQLSTATE_OF_KIND: Readonly<Record<ErrorKind, string>> = Object.freeze({
  internal: 'XX000', // internal_error
  usage: '22023', // invalid_parameter_value
  not_found: '42704', // undefined_object
  conflict: '55000', // object_not_in_prerequisite_state
  corruption: 'XX001', // data_corrupted
  unavailable: '58000', // system_error: a peer (remote storage, redo worker) failed; the connection stays usable
  timeout: '57014', // query_canceled (what statement_timeout raises)
  interrupted: '57000', // operator_intervention
  unsupported: '0A000', // feature_not_supported
})

/** Exact SQLSTATEs with their kind, besides SQLSTATE_OF_KIND (XX000 excepted: Neon's catch-all). */
const KIND_OF_SQLSTATE: ReadonlyMap<string, ErrorKind> = new Map<string, ErrorKind>([
  ...Object.entries(SQLSTATE_OF_KIND)
    .filter(([, s]) => s !== SQLSTATE_OF_KIND.internal)
    .map(([k, s]) => [s, k as ErrorKind] as [string, ErrorKind]),
  ['42601', 'usage'], // syntax_error: a command the server cannot parse
  ['3D000', 'not_found'], // invalid_catalog_name: the timeline was deleted under a pagestream
  ['58P01', 'not_found'], // undefined_file
  ['55006', 'conflict'], // object_in_use
  ['42710', 'conflict'], // duplicate_object
  ['XX002', 'corruption'], // index_corrupted
])

/** Kinds of whole SQLSTATE classes (the first two characters), for codes not listed exactly. */
const KIND_OF_SQLSTATE_CLASS: ReadonlyMap<string, ErrorKind> = new Map<string, ErrorKind>([
  ['08', 'unavailable'], // connection exception (08006 reconnect, 08P01 protocol violation)
  ['53', 'unavailable'], // insufficient resources (53300 too many connections)
  ['57', 'unavailable'], // operator intervention (57P01 shutdown); 57014 and 57000 are listed exactly
  ['58', 'unavailable'], // system error
  ['22', 'usage'], // data exception
  ['42', 'usage'], // syntax error or access rule violation
])

/** The kind a SQLSTATE stands for, or null (XX000 and unknown codes: the caller decides). */
export function kindOfSqlstate(sqlstate: string): ErrorKind | null {
  return KIND_OF_SQLSTATE.get(sqlstate) ?? KIND_OF_SQLSTATE_CLASS.get(sqlstate.slice(0, 2)) ?? null
}

/** The SQLSTATE a typed error is sent with. */
export function sqlstateOf(err: PageserverError): string {
  return SQLSTATE_OF_KIND[err.kind]
}

const CODE_LINE_PREFIX = 'pageserver error code: '
/** A stable code: SCREAMING_SNAKE (errors.ts). Anything else in the code line is not ours. */
const CODE_PATTERN = /^[A-Z][A-Z0-9_]*$/

/** The D field carrying `code`, after the detail text if there is one. */
export function detailWithCode(code: string, detail?: string): string {
  return detail === undefined || detail === '' ? `${CODE_LINE_PREFIX}${code}` : `${detail}\n${CODE_LINE_PREFIX}${code}`
}

/** The code line's code and the rest of D; code null when D has no code line (an old-style server). */
export function splitDetail(detail: string | undefined): { code: string | null; detail: string | undefined } {
  if (detail === undefined) return { code: null, detail }
  const at = detail.lastIndexOf(CODE_LINE_PREFIX)
  const startsLine = at === 0 || (at > 0 && detail[at - 1] === '\n')
  if (!startsLine) return { code: null, detail }
  const code = detail.slice(at + CODE_LINE_PREFIX.length)
  if (!CODE_PATTERN.test(code)) return { code: null, detail }
  const rest = detail.slice(0, Math.max(0, at - 1))
  return { code, detail: rest === '' ? undefined : rest }
}

// ---- pagestream Error response ------------------------------------------------------------------------

/** Neon's class for a refused request; ours for a UsageError from the backend too. */
export const BAD_REQUEST_PREFIX = 'Bad request: '
/** Neon's class for a wait for WAL that timed out. */
export const LSN_TIMEOUT_PREFIX = 'LSN timeout: '
/** Neon's class for any other failed read. */
export const READ_ERROR_PREFIX = 'Read error: '

/**
 * The prefix of a failed read by the error's kind: Neon's "Read error: ", refined by a word for each kind
 * but "unavailable" (a failure that may pass, what Neon's plain "Read error" means to our client).
 */
export const READ_ERROR_PREFIX_OF_KIND: Readonly<Record<Exclude<ErrorKind, 'usage'>, string>> = Object.freeze({
  corruption: READ_ERROR_CORRUPTED_PREFIX, // 'Read error: data corrupted: '
  not_found: `${READ_ERROR_PREFIX}not found: `,
  unsupported: `${READ_ERROR_PREFIX}unsupported: `,
  timeout: `${READ_ERROR_PREFIX}timed out: `,
  conflict: `${READ_ERROR_PREFIX}conflict: `,
  interrupted: `${READ_ERROR_PREFIX}interrupted: `,
  internal: `${READ_ERROR_PREFIX}internal error: `,
  unavailable: READ_ERROR_PREFIX,
})

const TRAILER_START = ' (pageserver error code: '
const TRAILER_HINT = '; hint: '

/** The in-band message of a typed error: Neon's class prefix, the message, the code-and-hint trailer. */
export function pagestreamErrorMessage(err: PageserverError): string {
  const prefix = err.kind === 'usage' ? BAD_REQUEST_PREFIX : READ_ERROR_PREFIX_OF_KIND[err.kind]
  return `${prefix}${err.message}${TRAILER_START}${err.code}${err.hint === undefined ? '' : `${TRAILER_HINT}${err.hint}`})`
}

/** An in-band message split into the text to show and the trailer's code and hint (null when absent). */
export function splitPagestreamMessage(message: string): { message: string; code: string | null; hint: string | null } {
  const at = message.lastIndexOf(TRAILER_START)
  if (at < 0 || !message.endsWith(')')) return { message, code: null, hint: null }
  const inner = message.slice(at + TRAILER_START.length, -1)
  const hintAt = inner.indexOf(TRAILER_HINT)
  const code = hintAt < 0 ? inner : inner.slice(0, hintAt)
  if (!CODE_PATTERN.test(code)) return { message, code: null, hint: null }
  return { message: message.slice(0, at), code, hint: hintAt < 0 ? null : inner.slice(hintAt + TRAILER_HINT.length) }
}

// ---- untyped errors -----------------------------------------------------------------------------------

/**
 * `err` as a typed error for the wire: itself, or (a foreign Error: a failed read of a file, a bug) an
 * internal error, code INTERNAL, as the CLI reports any untyped error offline.
 */
export function typedForWire(err: unknown): PageserverError {
  if (err instanceof PageserverError) return err
  return new PageserverError('internal', 'INTERNAL', messageOf(err), {
    hint: 'This is a bug in pageserver, or a failure the page server did not expect: see the page server log, and report it.',
    cause: err,
  })
}
