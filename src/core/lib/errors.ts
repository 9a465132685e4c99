/**
 * Typed errors of the page server.
 *
 * Every error that reaches a user carries a stable machine `code` (SCREAMING_SNAKE, never renamed once
 * shipped: scripts match on it), a one-line `message` that says what happened, and a `hint` that says what
 * to do. The `kind` decides the process exit code, and that mapping lives here and nowhere else.
 *
 * Core code throws these; it never prints and never exits. The CLI layer maps them to exit codes and to
 * `{"error": {code, message, hint}}` under `--json`.
 */

export type ErrorKind =
  | 'internal' // a bug in the page server
  | 'usage' // bad flags, bad arguments, bad config
  | 'not_found' // unknown tenant, timeline, file, relation
  | 'conflict' // already exists, locked by another process
  | 'corruption' // a checksum, magic or structural check failed on stored or received bytes
  | 'unavailable' // a peer (PostgreSQL, remote storage, redo worker) cannot be reached or refused
  | 'timeout' // a deadline passed
  | 'interrupted' // the user or the system asked us to stop
  | 'unsupported' // valid input that this version cannot handle (e.g. a WAL record type without redo)

/** Exit codes, one per kind; documented in the README and in every man page. */
export const EXIT_CODES: Readonly<Record<ErrorKind, number>> = Object.freeze({
  internal: 1,
  usage: 2,
  not_found: 3,
  conflict: 4,
  corruption: 5,
  unavailable: 6,
  timeout: 7,
  unsupported: 8,
  interrupted: 130,
})

export interface ErrorOptions {
  hint?: string
  cause?: unknown
  /** Structured facts for logs and JSON output (LSNs as "X/X" strings, ids as text). */
  details?: Record<string, unknown>
}

export class PageserverError extends Error {
  readonly kind: ErrorKind
  readonly code: string
  readonly hint: string | undefined
  readonly details: Record<string, unknown> | undefined

  constructor(kind: ErrorKind, code: string, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'PageserverError'
    this.kind = kind
    this.code = code
    this.hint = options.hint
    this.details = options.details
  }

  get exitCode(): number {
    return EXIT_CODES[this.kind]
  }
}

export class UsageError extends PageserverError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('usage', code, message, options)
    this.name = 'UsageError'
  }
}

export class NotFoundError extends PageserverError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('not_found', code, message, options)
    this.name = 'NotFoundError'
  }
}

export class ConflictError extends PageserverError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('conflict', code, message, options)
    this.name = 'ConflictError'
  }
}

export class CorruptionError extends PageserverError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('corruption', code, message, options)
    this.name = 'CorruptionError'
  }
}

export class UnavailableError extends PageserverError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('unavailable', code, message, options)
    this.name = 'UnavailableError'
  }
}

export class TimeoutError extends PageserverError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('timeout', code, message, options)
    this.name = 'TimeoutError'
  }
}

export class InterruptedError extends PageserverError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('interrupted', code, message, options)
    this.name = 'InterruptedError'
  }
}

export class UnsupportedError extends PageserverError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('unsupported', code, message, options)
    this.name = 'UnsupportedError'
  }
}

/** A PageserverError of the class that matches `kind`. */
export function errorOfKind(kind: ErrorKind, code: string, message: string, options: ErrorOptions): PageserverError {
  switch (kind) {
    case 'usage':
      return new UsageError(code, message, options)
    case 'not_found':
      return new NotFoundError(code, message, options)
    case 'conflict':
      return new ConflictError(code, message, options)
    case 'corruption':
      return new CorruptionError(code, message, options)
    case 'unavailable':
      return new UnavailableError(code, message, options)
    case 'timeout':
      return new TimeoutError(code, message, options)
    case 'interrupted':
      return new InterruptedError(code, message, options)
    case 'unsupported':
      return new UnsupportedError(code, message, options)
    case 'internal':
      return new PageserverError('internal', code, message, options)
  }
}

/** A programmer error: an invariant that cannot fail unless the page server itself is wrong. */
export class AssertionFailure extends PageserverError {
  constructor(message: string, options?: ErrorOptions) {
    super('internal', 'ASSERTION_FAILED', message, {
      hint: 'This is a bug in pageserver; please report it with the command that triggered it.',
      ...options,
    })
    this.name = 'AssertionFailure'
  }
}

/** Throws an AssertionFailure unless `condition` holds. For invariants, never for input validation. */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new AssertionFailure(typeof message === 'function' ? message() : message)
}

/** Throws when a switch over a closed union is not exhaustive. */
export function unreachable(value: never, what = 'value'): never {
  throw new AssertionFailure(`unexpected ${what}: ${String(value)}`)
}

/** True for an error thrown by Node for a missing file or directory. */
export function isNotFoundFsError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT'
}

/** The message of any thrown value, for wrapping foreign errors. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}
