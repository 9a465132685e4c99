/** Process checks for tests that must leave nothing running. Linux only (reads /proc). */
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'

/** The command lines ("pid: argv joined by spaces") of running processes that mention `path`. */
export function processesNaming(path: string): string[] {
  const found: string[] = []
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')
      if (cmd.includes(path)) found.push(`${pid}: ${cmd}`)
    } catch {
      // gone meanwhile
    }
  }
  return found
}

/** Whether an initdb began writing a data directory under `scratch` (its global/ appears early) within `timeoutMs`. */
export async function initdbStartedIn(scratch: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (readdirSync(scratch).some((d) => existsSync(join(scratch, d, 'pgdata', 'global')))) return true
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** "n<inode>" of this process's pid namespace, as initdb scratch directory names carry it (read here on its own). */
export function pidNamespaceTag(): string {
  return `n${/\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))![1]}`
}
