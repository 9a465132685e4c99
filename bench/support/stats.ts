/**
 * Small helpers shared by the ingest, GetPage-latency and RSS benchmarks: order statistics, rounding,
 * CPU time of other processes from /proc, and a plain-text table.
 *
 * Percentiles are nearest-rank on a sorted copy (no interpolation): with a few hundred samples p99 is one
 * of the slowest few, which is what a reader of a latency table expects.
 */
import { readFileSync } from 'node:fs'

/** Kernel clock ticks per second for /proc/<pid>/stat times (100 on Linux x86-64 and arm64). */
const CLK_TCK = 100

export function median(xs: readonly number[]): number {
  return percentile(xs, 0.5)
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN
  return percentileOfSorted([...xs].sort((a, b) => a - b), p)
}

/** Nearest-rank percentile of values already sorted ascending. */
export function percentileOfSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
}

/** A copy of `xs` in a seeded pseudo-random order (the same order for the same seed). */
export function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs]
  let s = seed >>> 0
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** user + system CPU seconds a live process has used, or 0 once it is gone. */
export function procCpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
  } catch {
    return 0
  }
}

/** A `/proc/<pid>/status` field in bytes (VmRSS, VmHWM, ...), or null when absent. */
export function procStatusBytes(pid: number | 'self', field: string): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : null
  } catch {
    return null
  }
}

/** Columns padded to their widest cell; numbers right-aligned. */
export function formatTable(head: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? c.toLocaleString('en-US') : c)))
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => String(r[i] ?? '').length)))
  const line = (r: ReadonlyArray<string | number>, numeric: boolean[]) =>
    r.map((c, i) => (numeric[i] ? String(c).padStart(widths[i]!) : String(c).padEnd(widths[i]!))).join('  ')
  const numeric = head.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'))
  return [line(head, numeric), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map((r, k) => line(r, rows[k]!.map((c) => typeof c === 'number')))].join('\n')
}

export const MiB = 1024 * 1024
