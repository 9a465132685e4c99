/**
 * CPU time of a process and everything it started (the page server and its redo workers), or of a list of
 * processes (PostgreSQL backends), read from /proc. Linux only; clock ticks of 10 ms, so use it over runs of
 * a second or so. Processes that exited are no longer counted (their parent accounts for them only once
 * it waits for them): a benchmark's server tree must be long-lived across the measured interval.
 */
import { readdirSync, readFileSync } from 'node:fs'

/** Kernel clock ticks per second for /proc/<pid>/stat times (100 on Linux x86-64 and arm64). */
const CLK_TCK = 100

interface ProcStat {
  ppid: number
  cpuSeconds: number
}

function statOf(pid: number): ProcStat | null {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ')
    // fields[0] is state; ppid is field 4 of stat(5), i.e. fields[1]; utime and stime are 14 and 15.
    return { ppid: Number(fields[1]), cpuSeconds: (Number(fields[11]) + Number(fields[12])) / CLK_TCK }
  } catch {
    return null
  }
}

/** user + system CPU seconds of `root` and all its live descendants. */
export function treeCpuSeconds(root: number): number {
  const children = new Map<number, number[]>()
  const stats = new Map<number, ProcStat>()
  for (const name of readdirSync('/proc')) {
    const pid = Number(name)
    if (!Number.isInteger(pid) || pid <= 0) continue
    const s = statOf(pid)
    if (s === null) continue
    stats.set(pid, s)
    const list = children.get(s.ppid)
    if (list) list.push(pid)
    else children.set(s.ppid, [pid])
  }
  let total = 0
  const stack = [root]
  while (stack.length > 0) {
    const pid = stack.pop()!
    total += stats.get(pid)?.cpuSeconds ?? 0
    stack.push(...(children.get(pid) ?? []))
  }
  return total
}

/** Sum of user + system CPU seconds of the given live processes. */
export function pidsCpuSeconds(pids: readonly number[]): number {
  let total = 0
  for (const pid of pids) total += statOf(pid)?.cpuSeconds ?? 0
  return total
}
