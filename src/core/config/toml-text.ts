/**
 * TOML in and out for the config: parse a file or a `-c` fragment with errors that carry line and column,
 * and write single values back as inline TOML (for `config show` and the `init` template).
 *
 * Parsing uses smol-toml with big integers kept exact (`asNeeded`), keys like `__proto__` rejected, and a
 * small nesting limit (no config value nests deeper than a table of arrays). Tables from smol-toml have a
 * null prototype: code here never relies on `constructor` or `Object.prototype` methods on them.
 *
 * A `-c` value that is a single bare `key=value` whose value is not valid TOML (`-c checkpoint_timeout=10s`,
 * `-c listen_pg_addr=127.0.0.1:6400`) is taken as that key set to the string after `=`, so the common case
 * needs no shell-quoted TOML quotes. Values starting with `{ [ " '` are not reinterpreted (except an IPv6
 * address like `[::1]:6400`): a broken inline table, array or string keeps its syntax error with line and
 * column.
 */
import { parse, TomlError } from 'smol-toml'
import { UsageError } from '../lib/errors.js'
import type { ShownValue } from './kinds.js'
import { redactCredentialValues } from './secret.js'

/** Largest config file we read: a real one is a few KiB. */
export const CONFIG_FILE_SIZE_MAX_BYTES = 1024 * 1024
/** Longest `-c` fragment. */
export const CONFIG_OVERRIDE_LENGTH_MAX = 64 * 1024
/** Most `-c` flags on one command line. */
export const CONFIG_OVERRIDES_MAX = 256
/** Deepest nesting of inline tables and arrays. */
const TOML_DEPTH_MAX = 8

export type RawTable = Record<string, unknown>

const BARE_OVERRIDE_RE = /^\s*([A-Za-z0-9_-]+)\s*=\s*(.*?)\s*$/
const BARE_KEY_RE = /^[A-Za-z0-9_-]+$/
/** `[::1]:6400` starts like a TOML array but is an address: the one bracketed bare value we accept. */
const IPV6_HOST_PORT_RE = /^\[[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?\]:\d+$/

/**
 * `-c "checkpoint_distance=1"` as shown in messages (long fragments shortened; credential values, which the
 * config refuses, redacted: messages reach terminals, CI logs and `serve` logs).
 */
export function overrideLabel(fragment: string): string {
  const shown = redactCredentialValues(fragment)
  const short = shown.length > 80 ? shown.slice(0, 77) + '...' : shown
  return `-c ${JSON.stringify(short)}`
}

/** Parses a whole TOML document; `where` (a file path or a -c label) goes into the error message. */
export function parseTomlDocument(text: string, where: string): RawTable {
  try {
    return parse(text, { integersAsBigInt: 'asNeeded', unsafeKeyBehaviour: 'throw', maxDepth: TOML_DEPTH_MAX }) as RawTable
  } catch (err) {
    if (!(err instanceof TomlError)) throw err
    const problem = err.message.replace(/^Invalid TOML document:\s*/, '').split('\n')[0]!.trim()
    return throwSyntax(where, problem, err.line, err.column, err.codeblock)
  }
}

function throwSyntax(where: string, problem: string, line: number, column: number, codeblock: string): never {
  throw new UsageError('CONFIG_SYNTAX', `${where}: line ${line}, column ${column}: ${problem}`, {
    hint: 'Fix the TOML syntax there; strings need quotes, as in listen_pg_addr = "127.0.0.1:64000".',
    details: { where, line, column, codeblock: redactCredentialValues(codeblock) },
  })
}

/** One `-c` argument as a table of top-level keys (see the module header for the bare `key=value` form). */
export function parseOverride(fragment: string): RawTable {
  const label = overrideLabel(fragment)
  if (fragment.length > CONFIG_OVERRIDE_LENGTH_MAX) {
    throw new UsageError('CONFIG_TOO_LARGE', `${label} is ${fragment.length} characters long`, {
      hint: `Keep each -c value under ${CONFIG_OVERRIDE_LENGTH_MAX} characters; put large settings in pageserver.toml.`,
    })
  }
  let table: RawTable
  try {
    table = parseTomlDocument(fragment, label)
  } catch (err) {
    const bare = fragment.includes('\n') ? null : BARE_OVERRIDE_RE.exec(fragment)
    const value = bare?.[2] ?? ''
    const structured = '{["\''.includes(value[0] ?? '{') && !IPV6_HOST_PORT_RE.test(value)
    if (bare === null || value === '' || structured) throw err
    table = Object.create(null) as RawTable
    table[bare[1]!] = value
  }
  if (Object.keys(table).length === 0) {
    throw new UsageError('CONFIG_SYNTAX', `${label} sets no key`, {
      hint: 'Write -c key=value, for example -c checkpoint_distance=268435456.',
    })
  }
  return table
}

function formatString(s: string): string {
  // JSON escapes are valid TOML basic-string escapes; TOML also forbids a raw DEL (U+007F).
  return JSON.stringify(s).replaceAll('\x7f', '\\u007F')
}

function formatKey(k: string): string {
  return BARE_KEY_RE.test(k) ? k : formatString(k)
}

/** A value as inline TOML: `"10m"`, `268435456`, `["postgres", "--wal-redo"]`, `{ local_path = "/x" }`. */
export function formatTomlValue(v: ShownValue): string {
  if (typeof v === 'string') return formatString(v)
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TypeError(`cannot write ${v} as TOML`)
    return String(v)
  }
  if (typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) return `[${(v as readonly ShownValue[]).map(formatTomlValue).join(', ')}]`
  const entries = Object.entries(v as Record<string, ShownValue>)
  if (entries.length === 0) return '{}'
  return `{ ${entries.map(([k, x]) => `${formatKey(k)} = ${formatTomlValue(x)}`).join(', ')} }`
}

/** A raw value read from TOML (may hold bigints, dates) as inline TOML, for writing overrides back. */
export function formatRawTomlValue(v: unknown): string {
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf'
  if (v instanceof Date) return v.toISOString()
  if (Array.isArray(v)) return `[${v.map(formatRawTomlValue).join(', ')}]`
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v as RawTable)
    if (entries.length === 0) return '{}'
    return `{ ${entries.map(([k, x]) => `${formatKey(k)} = ${formatRawTomlValue(x)}`).join(', ')} }`
  }
  return formatTomlValue(v as ShownValue)
}

export function formatKeyName(k: string): string {
  return formatKey(k)
}
