/** A full garbage collection of this process's heap, for benchmarks that start every run from a collected heap. */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { setTimeout as sleep } from 'node:timers/promises'

// The flag must be set before a context asks for `gc`; a new context then has it.
setFlagsFromString('--expose-gc')
export const collectGarbage = runInNewContext('gc') as () => void

/** Sampling interval of settle(), and the CPU share (of one core) below which the process counts as quiet. */
const SETTLE_STEP_MS = 10
const QUIET_SHARE = 0.1
const SETTLE_MAX_MS = 2_000

/**
 * collectGarbage(), then waits until this process is quiet: a full collection leaves work to V8's helper
 * threads (sweeping, freeing backing stores) after gc() returns, which would otherwise run during, and be
 * counted in, the next timed run. At most SETTLE_MAX_MS. It does not undo what was seen to follow a forced
 * collection in a busy page server (GC helper threads busy throughout the next run, the main thread
 * slower; the cause was not pinned down): bench/getpage.ts therefore forces collections only in its client.
 */
export async function collectGarbageAndSettle(): Promise<void> {
  collectGarbage()
  const deadline = Date.now() + SETTLE_MAX_MS
  let last = process.cpuUsage()
  while (Date.now() < deadline) {
    await sleep(SETTLE_STEP_MS)
    const now = process.cpuUsage()
    const usedUs = now.user - last.user + (now.system - last.system)
    last = now
    if (usedUs < SETTLE_STEP_MS * 1000 * QUIET_SHARE) return
  }
}
