/**
 * Errors of the config loader: every one names the key it is about and where the value came from
 * (the config file, a `-c` fragment, or a built-in default), so a user can find the line to fix.
 *
 * Codes are stable (scripts match on them): CONFIG_SYNTAX, CONFIG_UNKNOWN_KEY, CONFIG_WRONG_TYPE,
 * CONFIG_BAD_VALUE, CONFIG_MISSING_KEY, CONFIG_REMOTE_STORAGE_FORMS, CONFIG_SECRET_IN_FILE,
 * CONFIG_INCOMPLETE_CREDENTIALS, CONFIG_TOO_LARGE, CONFIG_UNREADABLE, WORKDIR_UNUSABLE and CONFIG_EXISTS.
 * All are usage errors (exit 2) except CONFIG_EXISTS (conflict, exit 4).
 */
import { UsageError } from '../lib/errors.js'

/** Where a value was read from: a file path, a `-c` fragment, or null for a built-in default. */
export interface ValueContext {
  /** The key as a user writes it, dotted for nested keys: `remote_storage.timeout`. */
  readonly key: string
  /** `pageserver.toml` path or `-c "<fragment>"`; null when the value is a built-in default. */
  readonly where: string | null
  /** Absolute workdir; relative paths in the config are relative to it. */
  readonly workdir: string
  /** The process environment as passed in by the caller (credentials come from here). */
  readonly env: Readonly<Record<string, string | undefined>>
}

/** " (in /x/pageserver.toml)" or "" for defaults. */
export function whereSuffix(where: string | null): string {
  return where === null ? '' : ` (in ${where})`
}

/** A short, safe description of a raw TOML value for messages: `boolean true`, `string "abc"`. */
export function describeValue(raw: unknown): string {
  if (typeof raw === 'string') return `string ${JSON.stringify(raw.length > 60 ? raw.slice(0, 57) + '...' : raw)}`
  if (typeof raw === 'bigint') return `integer ${raw}`
  if (typeof raw === 'number') return Number.isInteger(raw) ? `integer ${raw}` : `float ${raw}`
  if (typeof raw === 'boolean') return `boolean ${raw}`
  if (Array.isArray(raw)) return 'an array'
  if (raw instanceof Date) return 'a date'
  if (typeof raw === 'object' && raw !== null) return 'a table'
  return String(raw)
}

export function wrongType(ctx: ValueContext, expected: string, raw: unknown, hint?: string): UsageError {
  return new UsageError(
    'CONFIG_WRONG_TYPE',
    `${ctx.key} must be ${expected}, not ${describeValue(raw)}${whereSuffix(ctx.where)}`,
    { hint: hint ?? `Set ${ctx.key} to ${expected}.`, details: { key: ctx.key, where: ctx.where } },
  )
}

export function badValue(ctx: ValueContext, problem: string, hint: string): UsageError {
  return new UsageError('CONFIG_BAD_VALUE', `${ctx.key}: ${problem}${whereSuffix(ctx.where)}`, {
    hint,
    details: { key: ctx.key, where: ctx.where },
  })
}

export function missingKey(key: string, why: string, where: string | null, hint: string): UsageError {
  return new UsageError('CONFIG_MISSING_KEY', `${key} is required ${why}${whereSuffix(where)}`, {
    hint,
    details: { key, where },
  })
}
