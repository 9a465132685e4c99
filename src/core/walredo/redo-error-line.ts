/**
 * The one stderr line with which a redo worker reports why it gives up, and its parser in the manager.
 *
 *   pageserver-redo-error: {"kind":"unsupported","code":"REDO_UNSUPPORTED_RECORD","message":"...","hint":"...","details":{...}}
 *
 * Neon's pipe protocol has no in-band errors: a worker that cannot redo a page writes this line and exits
 * non-zero. The manager then knows the failure is deterministic (the same request would fail again on a
 * fresh worker), so it does not retry and rethrows the error with the same kind, code and details.
 *
 * The line is bounded (REDO_ERROR_LINE_MAX_BYTES) on both sides; a line that does not parse, or parses to
 * something that is not a well-formed error, is treated as an ordinary stderr line (the failure then counts
 * as a crash).
 */
import {
  EXIT_CODES,
  PageserverError,
  errorOfKind,
  messageOf,
  type ErrorKind,
  type ErrorOptions,
} from '../lib/errors.js'

export const REDO_ERROR_PREFIX = 'pageserver-redo-error: '
/** A report longer than this loses its details, then its message is cut: stderr lines are bounded. */
export const REDO_ERROR_LINE_MAX_BYTES = 16 * 1024
const MESSAGE_MAX_CHARS = 2000
const CODE_RE = /^[A-Z][A-Z0-9_]{0,63}$/

export interface RedoErrorReport {
  kind: ErrorKind
  code: string
  message: string
  hint?: string
  details?: Record<string, unknown>
}

/** What a thrown value says, as a report. Foreign errors become kind `internal`. */
export function redoErrorReport(err: unknown): RedoErrorReport {
  if (err instanceof PageserverError) {
    return {
      kind: err.kind,
      code: err.code,
      message: err.message,
      ...(err.hint === undefined ? {} : { hint: err.hint }),
      ...(err.details === undefined ? {} : { details: err.details }),
    }
  }
  return {
    kind: 'internal',
    code: 'WALREDO_WORKER_BUG',
    message: `the redo worker failed: ${messageOf(err)}`,
    hint: 'This is a bug in the redo engine; please report it with the page and LSN that triggered it.',
  }
}

function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value
}

/** The whole line, without the trailing newline; never longer than REDO_ERROR_LINE_MAX_BYTES. */
export function formatRedoErrorLine(err: unknown): string {
  return REDO_ERROR_PREFIX + formatRedoErrorJson(err, REDO_ERROR_LINE_MAX_BYTES - REDO_ERROR_PREFIX.length)
}

/**
 * The report as JSON of at most `maxBytes` bytes (at least 1 KiB): whole if it fits, else without details
 * and with message and hint cut, shorter until it fits (escaped characters take up to six bytes each).
 */
export function formatRedoErrorJson(err: unknown, maxBytes: number): string {
  const report = redoErrorReport(err)
  const json = JSON.stringify(report, jsonSafe)
  if (Buffer.byteLength(json) <= maxBytes) return json
  const { details: _dropped, ...rest } = report
  let cut = ''
  for (const chars of [MESSAGE_MAX_CHARS, 500, 100]) {
    cut = JSON.stringify({ ...rest, message: rest.message.slice(0, chars), ...(rest.hint === undefined ? {} : { hint: rest.hint.slice(0, chars) }) })
    if (Buffer.byteLength(cut) <= maxBytes) return cut
  }
  return cut
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The report in a stderr line, or null when the line is not a well-formed report. */
export function parseRedoErrorLine(line: string): RedoErrorReport | null {
  if (!line.startsWith(REDO_ERROR_PREFIX)) return null
  if (Buffer.byteLength(line) > REDO_ERROR_LINE_MAX_BYTES) return null
  return parseRedoErrorJson(line.slice(REDO_ERROR_PREFIX.length))
}

/** The report in its JSON text (a stderr line's or an error page's), or null when it is not well-formed. */
export function parseRedoErrorJson(json: string): RedoErrorReport | null {
  let v: unknown
  try {
    v = JSON.parse(json)
  } catch {
    return null
  }
  if (!isPlainObject(v)) return null
  const { kind, code, message, hint, details } = v
  if (typeof kind !== 'string' || !Object.hasOwn(EXIT_CODES, kind)) return null
  if (typeof code !== 'string' || !CODE_RE.test(code)) return null
  if (typeof message !== 'string' || message.length > MESSAGE_MAX_CHARS) return null
  if (hint !== undefined && (typeof hint !== 'string' || hint.length > MESSAGE_MAX_CHARS)) return null
  if (details !== undefined && !isPlainObject(details)) return null
  return {
    kind: kind as ErrorKind,
    code,
    message,
    ...(hint === undefined ? {} : { hint }),
    ...(details === undefined ? {} : { details }),
  }
}

/** The typed error a report describes (same kind, code, hint and details). */
export function errorFromReport(report: RedoErrorReport, extraDetails: Record<string, unknown> = {}): PageserverError {
  const options: ErrorOptions = {
    ...(report.hint === undefined ? {} : { hint: report.hint }),
    details: { ...report.details, ...extraDetails },
  }
  return errorOfKind(report.kind, report.code, report.message, options)
}

/**
 * The typed error of a redo request for `page` ("1663/5/16384 blk 7"): errorFromReport, and when the report
 * does not locate the page itself (the engine's rmgr errors carry `blk`; a bad CRC, a record that does not
 * decode or a missing base page do not), the page is added to its message and details, so that the error
 * a reader sees says which page failed.
 */
export function redoRequestError(report: RedoErrorReport, page: string, extraDetails: Record<string, unknown> = {}): PageserverError {
  if (report.details?.['blk'] !== undefined) return errorFromReport(report, extraDetails)
  return errorFromReport({ ...report, message: `${report.message} (redo of ${page})` }, { page, ...extraDetails })
}

