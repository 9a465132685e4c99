/**
 * Sizes and durations as users write them: `268435456`, `"256MiB"`, `"256 MB"`, `"10s"`, `"10 m"`,
 * `"1 hr"`, `"7 days"` (Neon's config uses humantime strings). Parsed once at the edge into plain numbers:
 * bytes and milliseconds; names carry the unit (`checkpointDistanceBytes`, `gcPeriodMs`).
 */
import { UsageError } from './errors.js'

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  msec: 1,
  millis: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  secs: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hrs: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
  w: 7 * 86_400_000,
  week: 7 * 86_400_000,
  weeks: 7 * 86_400_000,
}

/** setTimeout's longest delay (2^31 - 1 ms, about 24.8 days): Node fires a longer one after 1 ms. */
export const TIMER_DELAY_MAX_MS = 2 ** 31 - 1

/** Bytes from a number or a string like "256MiB". `what` names the setting in errors. */
export function parseSize(value: unknown, what: string): number {
  if (typeof value === 'bigint') value = Number(value)
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw badSize(what, String(value))
    return value
  }
  if (typeof value !== 'string') throw badSize(what, typeof value)
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value.replaceAll('_', ''))
  if (!m) throw badSize(what, value)
  const unit = SIZE_UNITS[m[2]!.toLowerCase()]
  if (unit === undefined) throw badSize(what, value)
  const bytes = Math.round(Number(m[1]) * unit)
  if (!Number.isSafeInteger(bytes)) throw badSize(what, value)
  return bytes
}

/**
 * Milliseconds from a number (taken as seconds when `numberUnitMs` is 1000, the default) or a humantime
 * string: "10s", "10 m", "1h 30m", "7 days", "500ms".
 */
export function parseDuration(value: unknown, what: string, numberUnitMs = 1000): number {
  if (typeof value === 'bigint') value = Number(value)
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw badDuration(what, String(value))
    return Math.round(value * numberUnitMs)
  }
  if (typeof value !== 'string' || value.trim() === '') throw badDuration(what, String(value))
  let total = 0
  const re = /(\d+(?:\.\d+)?)\s*([a-zA-Z]+)/gy
  const text = value.trim()
  let pos = 0
  re.lastIndex = 0
  while (pos < text.length) {
    re.lastIndex = pos
    const m = re.exec(text)
    if (!m) throw badDuration(what, value)
    const unit = DURATION_UNITS[m[2]!.toLowerCase()]
    if (unit === undefined) throw badDuration(what, value)
    total += Number(m[1]) * unit
    pos = re.lastIndex
    while (text[pos] === ' ') pos++
  }
  return Math.round(total)
}

/** "256 MiB", "1.5 GiB", "812 B": for people, never parsed back. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes
  let i = 0
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${v} B` : `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`
}

/** "10s", "10m", "1h", "250ms": the shortest exact humantime form, parseable by parseDuration. */
export function formatDuration(ms: number): string {
  const steps: Array<[number, string]> = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1000, 's'],
  ]
  if (ms === 0) return '0s'
  for (const [unit, name] of steps) if (ms % unit === 0) return `${ms / unit}${name}`
  return `${ms}ms`
}

function badSize(what: string, got: string): UsageError {
  return new UsageError('BAD_SIZE', `${what}: "${got}" is not a size`, {
    hint: 'Write a byte count (268435456) or a number with a unit: 256MiB, 64MB, 1GiB.',
  })
}

function badDuration(what: string, got: string): UsageError {
  return new UsageError('BAD_DURATION', `${what}: "${got}" is not a duration`, {
    hint: 'Write a number with a unit: 500ms, 10s, 10m, 1h, 7 days.',
  })
}
