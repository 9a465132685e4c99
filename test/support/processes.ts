/** Process checks for tests that must leave nothing running. Linux only (reads /proc). */
import { readFileSync, readdirSync } from 'node:fs'

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
