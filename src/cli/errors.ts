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

/** What oclif's parser errors carry: the flag definitions (for their short forms) and the missing arguments. */
interface ParseContext {
  input?: { flags?: Record<string, { char?: string } | undefined> }
}

interface OclifErrorShape {
  oclif?: { exit?: number }
  code?: string
  message?: string
  parse?: ParseContext
  args?: unknown[]
}

export function toUserFacing(err: unknown): UserFacingError {
  if (err instanceof PageserverError) {
    return {
      code: err.code,
      // A flag's parse function threw it, and oclif wrapped its message: "Parsing --tenant \n\t...".
      message: oneLine(parserMessage(err.message, {})),
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
      message: oneLine(parserMessage(e.message ?? 'invalid arguments', e)),
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

/** One reason of oclif's flag validation error (src: @oclif/core parser/validate.js). */
const MISSING_FLAG_RE = /^Missing required flag (\S+)$/

/**
 * oclif's parser messages in our one-line form, e.g.
 *   "The following error occurred:\n  Missing required flag pgdata\nSee more help with --help"
 *     -> "missing required flag -D/--pgdata"
 *   "Parsing --tenant \n\tTenant id: \"xyz\" is not ...\nSee more help with --help" -> "--tenant: Tenant id: \"xyz\" is not ..."
 *   "Missing 1 required arg:\nfile  Path of ...\n\nNote: --config allows multiple values..." -> "missing required argument FILE"
 * Other messages lose only the help suffix (the hint says --help) and colour codes.
 */
function parserMessage(raw: string, e: OclifErrorShape): string {
  const message = raw.replace(/\u001b\[[0-9;]*m/g, '').replace(/\s*See more help with --help\s*$/i, '')
  const parsing = /^Parsing (--\S+)\s*\n\s*([\s\S]*)$/.exec(message)
  if (parsing) return `${parsing[1]}: ${parsing[2]!.trim()}`
  const validation = /^The following errors? occurred:\s*\n([\s\S]*)$/.exec(message)
  if (validation) {
    const reasons = validation[1]!.split('\n').map((l) => l.trim()).filter((l) => l !== '')
    const missing = reasons.map((r) => MISSING_FLAG_RE.exec(r)?.[1]).filter((n) => n !== undefined)
    if (missing.length === reasons.length) {
      return `missing required flag${missing.length === 1 ? '' : 's'} ${missing.map((n) => flagForms(n, e.parse)).join(', ')}`
    }
    return reasons.map((r) => r.replace(MISSING_FLAG_RE, (_, n: string) => `missing required flag ${flagForms(n, e.parse)}`)).join('; ')
  }
  if (/^Missing \d+ required args?\b/.test(message) && Array.isArray(e.args)) {
    const names = e.args.map((a) => String((a as { name?: unknown }).name ?? '').toUpperCase()).filter((n) => n !== '')
    if (names.length > 0) return `missing required argument${names.length === 1 ? '' : 's'} ${names.join(', ')}`
  }
  return message
}

/** "--tenant", or "-D/--pgdata" for a flag with a short form. */
function flagForms(name: string, parse: ParseContext | undefined): string {
  const char = parse?.input?.flags?.[name]?.char
  return char ? `-${char}/--${name}` : `--${name}`
}

function oneLine(message: string): string {
  return message
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join('; ')
}
