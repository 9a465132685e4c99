/**
 * The one place where any thrown value becomes what the user sees: a stable code, a one-line message,
 * a hint, and an exit code (0 ok, 1 bug, 2 usage, 3 not found, 4 conflict, 5 corruption, 6 unavailable,
 * 7 timeout, 8 unsupported, 130 interrupted).
 */
import { EXIT_CODES, PageserverError } from '../core/lib/errors.js'

export interface UserFacingError {
  code: string
  message: string
  hint: string | undefined
  exitCode: number
  /** Stack for bugs only, shown with PAGESERVER_DEBUG=1. */
  stack: string | undefined
}

interface OclifErrorShape {
  oclif?: { exit?: number }
  code?: string
  message?: string
  parse?: unknown
}

export function toUserFacing(err: unknown): UserFacingError {
  if (err instanceof PageserverError) {
    return {
      code: err.code,
      message: oneLine(err.message),
      hint: err.hint,
      exitCode: err.exitCode,
      stack: err.kind === 'internal' ? err.stack : undefined,
    }
  }
  const e = (typeof err === 'object' && err !== null ? err : {}) as OclifErrorShape
  // oclif's parser errors (missing or unknown flags, bad values) carry exit 2 or a `parse` context.
  if (e.parse !== undefined || e.oclif?.exit === 2) {
    return {
      code: 'USAGE',
      message: oneLine(stripHelpSuffix(e.message ?? 'invalid arguments')),
      hint: 'Run the command with --help to see its flags and arguments.',
      exitCode: EXIT_CODES.usage,
      stack: undefined,
    }
  }
  if (e.code === 'EPIPE') {
    return { code: 'EPIPE', message: 'output closed early', hint: undefined, exitCode: 0, stack: undefined }
  }
  const message = err instanceof Error ? err.message : String(err)
  return {
    code: 'INTERNAL',
    message: oneLine(message),
    hint: 'This is a bug in pageserver; rerun with PAGESERVER_DEBUG=1 for a stack trace and report it.',
    exitCode: EXIT_CODES.internal,
    stack: err instanceof Error ? err.stack : undefined,
  }
}

function stripHelpSuffix(message: string): string {
  return message.replace(/\s*See more help with --help\s*$/i, '')
}

function oneLine(message: string): string {
  return message
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join('; ')
}
