/**
 * One `local start` or `local stop` at a time on a workdir. Two starts at once chose the same timeline and
 * exported into the same `<dir>.partial`, each removing the other's files: one renamed into place a data
 * directory with pg_control but without PG_VERSION, which PostgreSQL refused ("not a database cluster
 * directory") at every later start. A stop during a start would stop PostgreSQL or the server under it, and the
 * start would then write state.json naming what the stop had just stopped. Held until the start's server runs
 * and state.json is written (or the stop is done); the lock of one that died (kill -9) is stale and taken over
 * (storage/workdir-lock.ts). Its file is `local/pageserver.lock`: the workdir's own lock is for `serve` and the
 * offline writers that start runs itself.
 */
import { mkdirSync } from 'node:fs'
import { ConflictError, PageserverError } from '../lib/errors.js'
import { WorkdirLock, type LockHolder } from '../storage/workdir-lock.js'

export type LocalCommand = 'local start' | 'local stop'

/**
 * Takes the lock in `localDir` (created if needed) for `command` on `workdir`; returns the release.
 * LOCAL_START_RUNNING (or LOCAL_STOP_RUNNING) naming the other one otherwise (`rerun`: how to run this command
 * again, for the hint).
 */
export function lockLocalCommand(localDir: string, workdir: string, rerun: string, command: LocalCommand = 'local start'): () => void {
  mkdirSync(localDir, { recursive: true })
  let lock: WorkdirLock
  try {
    lock = WorkdirLock.acquire(localDir, command)
  } catch (e) {
    if (!(e instanceof PageserverError) || e.code !== 'WORKDIR_LOCKED') throw e
    const holder = e.details?.['holder'] as LockHolder | undefined
    const other: LocalCommand = holder?.command === 'local stop' ? 'local stop' : 'local start'
    throw new ConflictError(other === 'local stop' ? 'LOCAL_STOP_RUNNING' : 'LOCAL_START_RUNNING', `another ${other} is running on ${workdir}${holder ? ` (pid ${holder.pid}, since ${holder.startedAt})` : ''}`, {
      hint: `Wait for it to end (or interrupt it). Run \`${rerun}\` again then if need be.`,
      cause: e,
    })
  }
  return () => lock.release()
}
