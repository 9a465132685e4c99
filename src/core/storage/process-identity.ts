/**
 * Is the process that wrote a pid file still the one with that pid? A pid names a process only while it
 * runs: after it exits (and certainly after a reboot) the kernel hands the number to another process, and
 * `kill(pid, 0)` then answers for that one. Signalling a pid read from a file (`pageserver.lock`,
 * `postmaster.pid`) without checking would stop an unrelated process.
 *
 * So a pid file we write also records the writer's start identity: `<boot id>/<start time>`, the boot id
 * from /proc/sys/kernel/random/boot_id and the start time in clock ticks since boot (field 22 of
 * /proc/<pid>/stat). A pid and that pair name one process for ever: within one boot a start time belongs to
 * one process per pid, and a reboot changes the boot id. Example: a lock written as
 * {pid: 4242, processStart: "8c1e.../91234"}, read after a reboot where pid 4242 is a `sleep` started at
 * tick 5120 under boot id "f03a...": the identities differ, so the lock is stale whatever kill(4242, 0) says.
 *
 * Without /proc (not Linux) there is no identity: a live pid counts as the writer, as before these checks.
 * A file written before the identity was recorded is judged the same way.
 */
import { readFileSync } from 'node:fs'

/** Whether `pid` is a running process (one that exited but is not yet reaped counts as gone). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM'
  }
  return !isZombie(pid)
}

/** The fields of /proc/<pid>/stat after "(comm)": state is [0], starttime (field 22) is [19]; null without /proc. */
function statFields(pid: number): string[] | null {
  try {
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses; the fields follow the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return null
  }
}

/**
 * Whether `pid` exited and waits to be reaped (state Z or X in /proc/<pid>/stat): such a process still
 * answers signal 0. Where /proc is missing, false (a process that answers is taken as alive).
 */
export function isZombie(pid: number): boolean {
  const state = statFields(pid)?.[0]
  return state === 'Z' || state === 'X'
}

let bootIdCache: string | null | undefined

function bootId(): string | null {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim() || null
    } catch {
      bootIdCache = null
    }
  }
  return bootIdCache
}

/** `<boot id>/<start ticks>` of a running process (see the header); null where /proc does not tell. */
export function processStartId(pid: number): string | null {
  const start = statFields(pid)?.[19]
  if (start === undefined || !/^\d+$/.test(start)) return null
  return `${bootId() ?? 'unknown-boot'}/${start}`
}

/**
 * Whether `pid` is still the process whose start identity was recorded as `recordedStart` (undefined or null:
 * a file from before identities were recorded, judged by liveness alone). A live pid whose identity differs
 * is another process: the writer is gone.
 */
export function isSameProcess(pid: number, recordedStart: string | null | undefined): boolean {
  if (!(pid > 0) || !processAlive(pid)) return false
  if (recordedStart === undefined || recordedStart === null) return true
  const now = processStartId(pid)
  return now === null || now === recordedStart
}

/**
 * The command name of a running process (/proc/<pid>/comm, the executable's name as exec set it, at most 15
 * characters); null without /proc or when it is gone. Readable for every process, whoever owns it.
 */
export function processName(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'latin1').trim()
  } catch {
    return null
  }
}
