/**
 * Value kinds of config keys: how a raw TOML value (from the file, a `-c` fragment, or a default) becomes a
 * typed value, and how a typed value is shown again as TOML by `config show`.
 *
 * Invariants: `parse` either returns a value inside the kind's limits or throws a usage error that names the
 * key; `display(parse(x))` parses back to the same typed value (the `config show` output is a valid config).
 * Sizes and durations accept a number or a string with a unit ("256MiB", "10s"); a bare number is bytes for
 * sizes and seconds for durations.
 */
import { isAbsolute, resolve } from 'node:path'
import { UsageError } from '../lib/errors.js'
import { formatDuration, parseDuration, parseSize } from '../lib/units.js'
import { splitHostPort } from '../lib/host-port.js'
import { badValue, wrongType, type ValueContext } from './errors.js'

/** A TOML value as `config show` prints it (no dates, no bigints: every shown value fits these). */
export type ShownValue = string | number | boolean | readonly ShownValue[] | { readonly [key: string]: ShownValue }

export interface Kind<T> {
  /** What a valid value looks like, for messages and docs: `a size such as "256MiB" or 268435456`. */
  readonly expected: string
  parse(raw: unknown, ctx: ValueContext): T
  display(value: T): ShownValue
}

/** Longest string value accepted (paths, addresses, names); PATH_MAX on Linux. */
export const CONFIG_STRING_LENGTH_MAX = 4096
/** Most arguments in an argv array (wal_redo_command). */
export const CONFIG_ARGV_LENGTH_MAX = 64
/** Sizes above this are surely a typo (256 TiB). */
export const CONFIG_SIZE_MAX_BYTES = 2 ** 48
/** Durations above this are surely a typo (10 years). */
export const CONFIG_DURATION_MAX_MS = 10 * 365 * 86_400_000

function isNumeric(raw: unknown): raw is number | bigint {
  return typeof raw === 'number' || typeof raw === 'bigint'
}

function checkRange(ctx: ValueContext, value: number, min: number, max: number, show: (n: number) => string): void {
  if (value < min) throw badValue(ctx, `${show(value)} is below the minimum ${show(min)}`, `Use a value of at least ${show(min)}.`)
  if (value > max) throw badValue(ctx, `${show(value)} is above the maximum ${show(max)}`, `Use a value of at most ${show(max)}.`)
}

/** Re-throws a units.ts parse error as a config error that names the key and the source. */
function rethrowUnitError(ctx: ValueContext, raw: unknown, what: string, err: unknown): never {
  if (err instanceof UsageError) throw badValue(ctx, `${JSON.stringify(String(raw))} is not ${what}`, err.hint ?? '')
  throw err
}

export function sizeKind(limits: { minBytes?: number; maxBytes?: number } = {}): Kind<number> {
  const min = limits.minBytes ?? 0
  const max = limits.maxBytes ?? CONFIG_SIZE_MAX_BYTES
  const expected = 'a size such as "256MiB" or a byte count'
  return {
    expected,
    parse(raw, ctx) {
      if (!isNumeric(raw) && typeof raw !== 'string') throw wrongType(ctx, expected, raw)
      let bytes: number
      try {
        bytes = parseSize(raw, ctx.key)
      } catch (err) {
        rethrowUnitError(ctx, raw, 'a size', err)
      }
      checkRange(ctx, bytes, min, max, (n) => `${n} bytes`)
      return bytes
    },
    display: (bytes) => bytes,
  }
}

export function durationKind(limits: { minMs?: number; maxMs?: number } = {}): Kind<number> {
  const min = limits.minMs ?? 0
  const max = limits.maxMs ?? CONFIG_DURATION_MAX_MS
  const expected = 'a duration such as "10s" or "10m" (a bare number is seconds)'
  return {
    expected,
    parse(raw, ctx) {
      if (!isNumeric(raw) && typeof raw !== 'string') throw wrongType(ctx, expected, raw)
      let ms: number
      try {
        ms = parseDuration(raw, ctx.key)
      } catch (err) {
        rethrowUnitError(ctx, raw, 'a duration', err)
      }
      checkRange(ctx, ms, min, max, formatDuration)
      return ms
    },
    display: (ms) => formatDuration(ms),
  }
}

export function intKind(limits: { min: number; max: number }): Kind<number> {
  const expected = `an integer from ${limits.min} to ${limits.max}`
  return {
    expected,
    parse(raw, ctx) {
      if (typeof raw === 'bigint') throw badValue(ctx, `${raw} is out of range`, `Use ${expected}.`)
      if (typeof raw !== 'number' || !Number.isInteger(raw)) throw wrongType(ctx, expected, raw)
      checkRange(ctx, raw, limits.min, limits.max, String)
      return raw
    },
    display: (n) => n,
  }
}

export const boolKind: Kind<boolean> = {
  expected: 'true or false',
  parse(raw, ctx) {
    if (typeof raw !== 'boolean') throw wrongType(ctx, 'true or false', raw)
    return raw
  },
  display: (b) => b,
}

export function stringKind(opts: { allowEmpty?: boolean; expected?: string } = {}): Kind<string> {
  const expected = opts.expected ?? 'a string'
  return {
    expected,
    parse(raw, ctx) {
      if (typeof raw !== 'string') throw wrongType(ctx, expected, raw)
      if (raw.length > CONFIG_STRING_LENGTH_MAX) {
        throw badValue(ctx, `the value is ${raw.length} characters long`, `Use at most ${CONFIG_STRING_LENGTH_MAX} characters.`)
      }
      if (raw.includes('\0')) throw badValue(ctx, 'the value contains a NUL character', 'Remove the NUL character.')
      if (!opts.allowEmpty && raw.trim() === '') throw badValue(ctx, 'the value is empty', `Set ${ctx.key} to ${expected}.`)
      return raw
    },
    display: (s) => s,
  }
}

export function enumKind<const V extends string>(values: readonly V[]): Kind<V> {
  const expected = `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`
  return {
    expected,
    parse(raw, ctx) {
      if (typeof raw !== 'string') throw wrongType(ctx, expected, raw)
      const hit = values.find((v) => v === raw) ?? values.find((v) => v.toLowerCase() === raw.toLowerCase())
      if (hit === undefined) throw badValue(ctx, `${JSON.stringify(raw)} is not ${expected}`, `Use ${expected}.`)
      return hit
    },
    display: (v) => v,
  }
}

/** host:port; port 0 asks the OS for a free port (tests use it). */
export const addressKind: Kind<string> = {
  expected: 'an address "host:port" such as "127.0.0.1:64000" or "[::1]:64000"',
  parse(raw, ctx) {
    if (typeof raw !== 'string') throw wrongType(ctx, addressKind.expected, raw)
    const hp = raw.length <= 300 ? splitHostPort(raw) : null
    if (hp === null) {
      throw badValue(ctx, `${JSON.stringify(raw.slice(0, 300))} is not host:port`, 'Write an address such as "127.0.0.1:64000" or "[::1]:64000" (port 0 to 65535).')
    }
    return raw.trim()
  },
  display: (s) => s,
}

/** A filesystem path; relative paths are taken relative to the workdir and stored absolute. */
export const pathKind: Kind<string> = {
  expected: 'a path (relative paths are relative to the workdir)',
  parse(raw, ctx) {
    const text = stringKind({ expected: pathKind.expected }).parse(raw, ctx)
    return isAbsolute(text) ? resolve(text) : resolve(ctx.workdir, text)
  },
  display: (s) => s,
}

/** A program and its arguments as an array of strings: ["postgres", "--wal-redo"]. */
export const argvKind: Kind<readonly string[]> = {
  expected: 'an array of strings such as ["postgres", "--wal-redo"]',
  parse(raw, ctx) {
    if (!Array.isArray(raw)) throw wrongType(ctx, argvKind.expected, raw)
    if (raw.length === 0) throw badValue(ctx, 'the array is empty', 'Give the program first, then its arguments: ["postgres", "--wal-redo"].')
    if (raw.length > CONFIG_ARGV_LENGTH_MAX) {
      throw badValue(ctx, `${raw.length} arguments`, `Use at most ${CONFIG_ARGV_LENGTH_MAX} arguments.`)
    }
    return raw.map((item, i) => stringKind({ allowEmpty: i > 0 }).parse(item, { ...ctx, key: `${ctx.key}[${i}]` }))
  },
  display: (argv) => [...argv],
}
