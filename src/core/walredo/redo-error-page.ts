/**
 * Redo errors in band, for our own worker: the reply to a request the engine cannot redo is an "error page"
 * instead of the worker's exit, so the worker lives on and the requests pipelined behind the failing one are
 * answered as usual.
 *
 * Neon's pipe protocol has no error reply: a worker that cannot redo a page exits, and our worker still does
 * so (with its `pageserver-redo-error:` stderr line, redo-error-line.ts) when it was not given a mark. Exiting
 * cost a respawn per error and failed the requests behind it in the pipe with WALREDO_WORKER_LOST once their
 * attempts ran out: an audit's `redo verify` over WAL with hash-index records (no redo here) reported 1,212
 * false mismatches and ran for minutes where the engine alone took seconds.
 *
 * Layout (8192 bytes, the size of any reply, so the framing is unchanged):
 *
 *   offset 0   mark      16 bytes, random per pool, given to its workers in PAGESERVER_REDO_ERROR_MARK (hex)
 *   offset 16  length    u32 big-endian, bytes of the JSON that follows
 *   offset 20  report    JSON of RedoErrorReport (kind, code, message, hint, details), as the stderr line's
 *   the rest   zeros
 *
 * A page that PostgreSQL wrote cannot start with the mark: its first 16 bytes are the page header (LSN,
 * checksum, flags, pd_lower, pd_upper) and the mark is 128 random bits no one else knows. A program other
 * than ours ignores the variable and never answers with a mark.
 */
import { randomBytes } from 'node:crypto'
import { PAGE_BYTES } from './protocol.js'
import { formatRedoErrorJson, parseRedoErrorJson, type RedoErrorReport } from './redo-error-line.js'

export const REDO_ERROR_MARK_ENV = 'PAGESERVER_REDO_ERROR_MARK'
export const REDO_ERROR_MARK_BYTES = 16
const REPORT_OFFSET = REDO_ERROR_MARK_BYTES + 4
const MARK_HEX_RE = /^[0-9a-f]{32}$/

/** A fresh mark for one pool's workers. */
export function newRedoErrorMark(): Buffer {
  return randomBytes(REDO_ERROR_MARK_BYTES)
}

/** The mark given in the environment (worker side), or null when none or malformed: then errors end the worker. */
export function redoErrorMarkFromEnv(env: NodeJS.ProcessEnv): Buffer | null {
  const hex = env[REDO_ERROR_MARK_ENV]
  return hex !== undefined && MARK_HEX_RE.test(hex) ? Buffer.from(hex, 'hex') : null
}

/** The error page reporting `err` (worker side). */
export function encodeRedoErrorPage(mark: Buffer, err: unknown): Buffer {
  const page = Buffer.alloc(PAGE_BYTES)
  mark.copy(page, 0)
  const json = Buffer.from(formatRedoErrorJson(err, PAGE_BYTES - REPORT_OFFSET), 'utf8')
  page.writeUInt32BE(json.length, REDO_ERROR_MARK_BYTES)
  json.copy(page, REPORT_OFFSET)
  return page
}

/** Whether a reply starts with `mark` (parent side, per reply: a real page differs in its first word). */
export function isRedoErrorPage(page: Buffer, mark: Buffer): boolean {
  for (let i = 0; i < REDO_ERROR_MARK_BYTES; i += 4) if (page.readUInt32LE(i) !== mark.readUInt32LE(i)) return false
  return true
}

/** The report of an error page, or null when its length or JSON is not well-formed (a malformed reply). */
export function decodeRedoErrorPage(page: Buffer): RedoErrorReport | null {
  const len = page.readUInt32BE(REDO_ERROR_MARK_BYTES)
  if (len === 0 || len > PAGE_BYTES - REPORT_OFFSET) return null
  return parseRedoErrorJson(page.toString('utf8', REPORT_OFFSET, REPORT_OFFSET + len))
}
