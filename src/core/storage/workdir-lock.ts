/**
 * The workdir lock: one process at a time may change a workdir (`serve`, and the offline commands that
 * write: create, import, branch, delete, sync, checkpoint). Readers (list, getpage, dump) do not lock.
 *
 * The lock is the file `<workdir>/pageserver.lock` holding the holder's pid, its process start identity
 * (storage/process-identity.ts), command and start time. It is created atomically (written under a temporary
 * name, then hard-linked into place, which fails if the lock exists). A lock whose holder is gone is stale
 * (the holder crashed) and is taken over: its pid is no longer alive, or it is alive but is another process
 * (the pid was reused, typically after a reboot: its start identity differs). A lock without the identity
 * (written by an older version) is judged by liveness alone. The lock also names the workdir it was taken in
 * (device and inode of the directory): a copy of a workdir made while its server ran (cp -a, rsync, tar)
 * carries the original's lock, whose holder is alive, and without that the copy's commands would be sent to
 * the original's server and `serve` on the copy refused (an audit deleted a timeline of the original so). A
 * lock naming another directory is stale here. Moving a workdir keeps its inode, and its lock stays valid.
 * Release removes the file; an exit hook releases
 * it if the owner forgets. Temporary files `pageserver.lock.<pid>.tmp` of processes killed between writing
 * one and removing it are deleted by the next process that takes the lock.
 */
import { linkSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConflictError, isNotFoundFsError } from '../lib/errors.js'
import { ioFailed, readOnlyFileSystemError } from './io-errors.js'
import { isSameProcess, processAlive, processStartId } from './process-identity.js'

export const LOCK_FILE = 'pageserver.lock'
/** Attempts at taking over a stale lock before giving up (another process may race us). */
const LOCK_ATTEMPTS_MAX = 5

export interface LockHolder {
  pid: number
  /** `<boot id>/<start ticks>` of the holder (process-identity.ts); absent in locks of older versions and without /proc. */
  processStart?: string
  command: string
  startedAt: string
  /** `<dev>:<ino>` of the workdir directory the lock was taken in; absent in locks of older versions. */
  workdirId?: string
  /** A running `serve` adds where it listens, so other commands can talk to it. */
  pgAddr?: string
  httpAddr?: string
}

/** Whether the process that wrote `h` still runs (not merely some process with its pid). */
export function holderAlive(h: LockHolder): boolean {
  return isSameProcess(h.pid, h.processStart)
}

/** The current holder of a workdir's lock, if a live process holds it (for commands that talk to `serve`). */
export function liveLockHolder(workdir: string): LockHolder | null {
  const h = readHolder(join(workdir, LOCK_FILE))
  return h !== null && holdsHere(h, workdir) ? h : null
}

/** Whether `h` is a live holder of this very workdir (not of the one this directory was copied from). */
function holdsHere(h: LockHolder, workdir: string): boolean {
  if (!holderAlive(h)) return false
  if (h.workdirId === undefined) return true
  const id = workdirIdentity(workdir)
  return id === null || id === h.workdirId
}

/**
 * `<dev>:<ino>` of the workdir directory, or null when it cannot be read: the same directory under any path,
 * and through a move on one file system; a copy is another. The lock and local/state.json record it.
 */
export function workdirIdentity(workdir: string): string | null {
  try {
    const st = statSync(workdir)
    return `${st.dev}:${st.ino}`
  } catch {
    return null
  }
}

function readHolder(path: string): LockHolder | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockHolder
  } catch (e) {
    if (isNotFoundFsError(e)) return null
    // A torn or empty lock file: treat as stale (its writer died between create and write).
    return { pid: -1, command: 'unknown', startedAt: '' }
  }
}

export class WorkdirLock {
  private released = false
  private readonly onExit = () => this.release()

  private constructor(readonly path: string) {
    process.on('exit', this.onExit)
  }

  /** Takes the lock of `workdir` for `command`; ConflictError naming the holder if another process has it. */
  static acquire(workdir: string, command: string): WorkdirLock {
    const path = join(workdir, LOCK_FILE)
    const start = processStartId(process.pid)
    const id = workdirIdentity(workdir)
    const me: LockHolder = {
      pid: process.pid,
      ...(start === null ? {} : { processStart: start }),
      ...(id === null ? {} : { workdirId: id }),
      command,
      startedAt: new Date().toISOString(),
    }
    const tmp = lockTempPath(path, process.pid)
    try {
      writeFileSync(tmp, JSON.stringify(me) + '\n')
    } catch (e) {
      removeQuietly(tmp) // a write that failed for space leaves the file created, empty or torn
      throw readOnlyFileSystemError(workdir, e) ?? ioFailed('writing the workdir lock', tmp, e)
    }
    try {
      for (let attempt = 0; attempt < LOCK_ATTEMPTS_MAX; attempt++) {
        try {
          linkSync(tmp, path)
          removeDeadTempFiles(workdir)
          return new WorkdirLock(path)
        } catch (e) {
          if ((e as { code?: string }).code !== 'EEXIST') throw e
        }
        const holder = readHolder(path)
        if (holder === null) continue
        if (holder.pid === process.pid) {
          throw new ConflictError('WORKDIR_LOCKED', `the workdir ${workdir} is already locked by this process (${holder.command})`, {
            hint: 'This is a bug: one lock per process.',
          })
        }
        if (holdsHere(holder, workdir)) {
          throw new ConflictError('WORKDIR_LOCKED', `the workdir ${workdir} is in use by pid ${holder.pid} (${holder.command}, since ${holder.startedAt})`, {
            hint: 'Wait for it to finish, or stop it (a running `pageserver serve` serves the same tenants over its APIs).',
            details: { holder },
          })
        }
        removeStaleLock(path, holder)
      }
      throw new ConflictError('WORKDIR_LOCKED', `could not take the lock of ${workdir}`, { hint: 'Another process keeps taking it; try again.' })
    } finally {
      removeQuietly(tmp)
    }
  }

  /**
   * Adds facts about the holder (e.g. its listen addresses); the file is replaced atomically. A failure (a full
   * disk) leaves the lock as it was and is thrown typed (the caller decides whether it can do without).
   */
  updateInfo(extra: Partial<Pick<LockHolder, 'pgAddr' | 'httpAddr'>>): void {
    const cur = readHolder(this.path)
    if (!cur || cur.pid !== process.pid) return
    const tmp = lockTempPath(this.path, process.pid)
    try {
      writeFileSync(tmp, JSON.stringify({ ...cur, ...extra }) + '\n')
      renameSync(tmp, this.path)
    } catch (e) {
      removeQuietly(tmp)
      throw ioFailed('writing the workdir lock', tmp, e)
    }
  }

  /** Removes the lock file if it is still ours. Idempotent. */
  release(): void {
    if (this.released) return
    this.released = true
    process.removeListener('exit', this.onExit)
    const holder = readHolder(this.path)
    if (holder && holder.pid === process.pid) {
      try {
        unlinkSync(this.path)
      } catch {
        // already gone
      }
    }
  }
}

/**
 * Moves the lock file at `path`, read as held by the dead `stale`, out of the way so that the caller can
 * retry taking it. Two takers may both have read the same stale holder: the first moves it aside and links
 * its own lock; the second's rename would then move that live lock aside. So what was moved is read back,
 * and a lock that is not the stale one is linked back in place (a link, which fails rather than overwrite a
 * lock a third taker made meanwhile).
 */
export function removeStaleLock(path: string, stale: LockHolder): void {
  const aside = `${path}.stale-${stale.pid}-${process.pid}`
  try {
    renameSync(path, aside)
  } catch (e) {
    if (isNotFoundFsError(e)) return
    throw e
  }
  const moved = readHolder(aside)
  if (moved !== null && (moved.pid !== stale.pid || moved.startedAt !== stale.startedAt)) {
    try {
      linkSync(aside, path)
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') throw e
    }
  }
  unlinkSync(aside)
}

/** Where process `pid` writes a new lock (or an update of its own) before moving it into place. */
function lockTempPath(lockPath: string, pid: number): string {
  return `${lockPath}.${pid}.tmp`
}

/** lockTempPath's names in the workdir, with the pid as group 1. */
const LOCK_TEMP_RE = new RegExp(`^${LOCK_FILE.replace('.', '\\.')}\\.(\\d+)\\.tmp$`)

/** Removes a file if it is there; any failure is ignored (never written, already gone). */
function removeQuietly(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // never written, or already gone
  }
}

/** Deletes lock temporaries left by processes that died before removing them (we hold the lock now). */
function removeDeadTempFiles(workdir: string): void {
  let names: string[]
  try {
    names = readdirSync(workdir)
  } catch {
    return
  }
  for (const name of names) {
    const m = LOCK_TEMP_RE.exec(name)
    if (m === null) continue
    const pid = Number(m[1])
    if (pid === process.pid || processAlive(pid)) continue
    removeQuietly(join(workdir, name)) // gone already, or not ours to remove: harmless either way
  }
}
