/**
 * Reading the management API's JSON request bodies strictly: a body is an object whose keys are all known
 * (an unknown key is 400 BAD_REQUEST naming it and the closest known one), and each field has its JSON type
 * (a string where a string is expected, a boolean where a boolean is). Silently ignoring a misspelled key
 * would do something other than what the caller asked: `{"import_fromm": {...}}` would bootstrap an empty
 * timeline instead of importing one.
 *
 * Field names are Neon's (snake_case) where Neon has the field.
 */
import { UsageError } from '../lib/errors.js'
import { closestKey } from '../config/suggest.js'

/** The body as an object whose every key is in `known`; an absent body is `{}`. `what` names it in errors. */
export function bodyFields(body: unknown, known: readonly string[], what = 'the request body'): Record<string, unknown> {
  if (body === undefined) return {}
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new UsageError('BAD_REQUEST', `${what} must be a JSON object`)
  for (const key of Object.keys(body)) {
    if (known.includes(key)) continue
    const near = closestKey(key, known)
    throw new UsageError('BAD_REQUEST', `unknown field ${JSON.stringify(key.slice(0, 200))} in ${what}${near === null ? '' : `; did you mean "${near}"?`}`, {
      hint: `The fields of ${what} are ${known.map((k) => `"${k}"`).join(', ')}.`,
    })
  }
  return body as Record<string, unknown>
}

/** A string field; absent or null is undefined. */
export function stringField(v: unknown, name: string): string | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') throw new UsageError('BAD_REQUEST', `${name} must be a string, got ${describeJson(v)}`)
  return v
}

/** A boolean field; absent or null is undefined. `"yes"` or `1` is refused rather than read as false. */
export function booleanField(v: unknown, name: string): boolean | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'boolean') throw new UsageError('BAD_REQUEST', `${name} must be true or false, got ${describeJson(v)}`)
  return v
}

/** `the string "15"`, `the number 14`, `an object`: what a caller sent, for an error message. */
export function describeJson(v: unknown): string {
  if (typeof v === 'string') return `the string ${JSON.stringify(v.slice(0, 100))}`
  if (typeof v === 'number' || typeof v === 'boolean') return `the ${typeof v} ${String(v)}`
  if (v === null) return 'null'
  return Array.isArray(v) ? 'an array' : 'an object'
}
