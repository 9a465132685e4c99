/**
 * One `local start` at a time on a workdir. Two at once chose the same timeline and exported into the same
 * `<dir>.partial`, each removing the other's files: one renamed into place a data directory with pg_control
 * but without PG_VERSION, which PostgreSQL refused ("not a database cluster directory") at every later start.
 * Held until the server runs and state.json is written; the lock of a start that died (kill -9) is stale and
 * taken over (storage/workdir-lock.ts). Its file is `local/pageserver.lock`: the workdir's own lock is for
 * `serve` and the offline writers that start runs itself.
 */
import { mkdirSync } from 'node:fs'
import { ConflictError, PageserverError } from '../lib/errors.js'
import { WorkdirLock, type LockHolder } from '../storage/workdir-lock.js'

/**
 * Takes the lock in `localDir` (created if needed) for a start on `workdir`; returns the release.
 * LOCAL_START_RUNNING naming the other start otherwise (`startCommand`: how to run it again, for the hint).
 */
export function lockLocalStart(localDir: string, workdir: string, startCommand: string): () => void {
  mkdirSync(localDir, { recursive: true })
  let lock: WorkdirLock
  try {
    lock = WorkdirLock.acquire(localDir, 'local start')
  } catch (e) {
    if (!(e instanceof PageserverError) || e.code !== 'WORKDIR_LOCKED') throw e
    const holder = e.details?.['holder'] as LockHolder | undefined
    throw new ConflictError('LOCAL_START_RUNNING', `another local start is running on ${workdir}${holder ? ` (pid ${holder.pid}, since ${holder.startedAt})` : ''}`, {
      hint: `Wait for it to end. Run \`${startCommand}\` again then if need be: it reports what runs and starts what is missing.`,
      cause: e,
    })
  }
  return () => lock.release()
}
