/**
 * Errors of local file I/O, shared by the storage modules.
 *
 * A failed fsync is fatal (`FatalIoError`, `fatal: true`): after a failed fsync the kernel may already
 * have dropped the dirty pages and cleared the error, so a retry can "succeed" with the data lost (the
 * PostgreSQL fsyncgate lesson). Callers must not retry; the owner of the process decides to stop.
 * Other I/O failures are wrapped with the path so the user learns which file is at fault; a full file system
 * (ENOSPC, EDQUOT) is DISK_FULL, whose remedy differs from a broken disk's. Everything the repository writes
 * goes to a temporary name first, so a write that failed for space left the previous state in place.
 */
import { accessSync, constants } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { NotFoundError, PageserverError, UnavailableError, UsageError, isNotFoundFsError, messageOf } from '../lib/errors.js'

export class FatalIoError extends PageserverError {
  /** Marks errors after which the process must not continue writing (never retry an fsync). */
  readonly fatal = true

  constructor(code: string, message: string, cause: unknown, path: string) {
    super('unavailable', code, message, {
      hint: 'The disk reported an error while making data durable; check the disk and the kernel log, then restart the page server.',
      cause,
      details: { path },
    })
    this.name = 'FatalIoError'
  }
}

/** Wraps an fsync failure; never retried. */
export function fsyncFailed(path: string, err: unknown): FatalIoError {
  return new FatalIoError('FSYNC_FAILED', `fsync of ${path} failed: ${messageOf(err)}`, err, path)
}

/** Whether `err` says the file system is full (no space, or the user's quota reached). */
export function isDiskFullError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'ENOSPC' || code === 'EDQUOT'
}

/** DISK_FULL for a write under `path` that failed for space (see the header). */
export function diskFull(what: string, path: string, err: unknown): UnavailableError {
  const dir = dirname(resolve(path))
  return new UnavailableError('DISK_FULL', `${what} ${path} failed: the file system is full (${messageOf(err)})`, {
    hint: `Free space on the file system of ${dir} (\`df ${dir}\` shows it), or grow it, then retry.`,
    cause: err,
    details: { path },
  })
}

/** Wraps a failed open/read/write/rename with the path; ENOENT becomes a NotFoundError, ENOSPC DISK_FULL. */
/** A file stands where the page server keeps a directory (`message` says which). */
export function notADirectory(message: string, path: string, err: unknown): UnavailableError {
  return new UnavailableError('IO_ERROR', message, {
    hint: 'A file stands where the page server keeps a directory: move it aside and put the directory back (from a backup of the workdir).',
    cause: err,
    details: { path },
  })
}

export function ioFailed(what: string, path: string, err: unknown): PageserverError {
  if (err instanceof PageserverError) return err
  if (isDiskFullError(err)) return diskFull(what, path, err)
  if (isNotFoundFsError(err)) {
    return new NotFoundError('FILE_NOT_FOUND', `${path} does not exist`, {
      hint: 'Check the path; the file may have been removed or renamed by another process.',
      cause: err,
      details: { path },
    })
  }
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'ENOTDIR') return notADirectory(`${what} ${path} failed: it, or a directory above it, is not a directory (${messageOf(err)})`, path, err)
  if (code === 'EACCES' || code === 'EPERM') {
    return new UnavailableError('IO_ERROR', `${what} ${path} failed: permission denied (${messageOf(err)})`, {
      hint: `Check the owner and mode of ${path} and of the directories above it: the page server runs as uid ${process.getuid?.() ?? '?'}.`,
      cause: err,
      details: { path },
    })
  }
  return new UnavailableError('IO_ERROR', `${what} ${path} failed: ${messageOf(err)}`, {
    hint: 'Check the disk, the permissions of the directory and the free space.',
    cause: err,
    details: { path },
  })
}

/**
 * A write under `path` failed: if the file system there is read-only, a UsageError saying so; else null (the
 * caller reports `err` as it would). Worth the check because what the write reports can hide the cause: Node's
 * recursive mkdir answers ENOENT for a directory it cannot create on a read-only mount. access(2) with W_OK
 * answers EROFS on the nearest existing ancestor of `path`, whoever asks (root included). `code`: the caller's
 * stable code for an unusable place, if it has one (`init`: WORKDIR_UNUSABLE).
 */
export function readOnlyFileSystemError(path: string, err: unknown, code = 'READ_ONLY_FILE_SYSTEM'): UsageError | null {
  const errno = (err as { code?: unknown } | null)?.code
  if (errno !== 'EROFS' && errno !== 'ENOENT' && errno !== 'EACCES' && errno !== 'EPERM') return null
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    try {
      accessSync(dir, constants.W_OK)
      return null
    } catch (e) {
      const c = (e as { code?: unknown }).code
      if (c === 'EROFS') {
        return new UsageError(code, `cannot write ${path}: the file system of ${dir} is read-only (EROFS)`, {
          hint: 'Choose a workdir (-D/--workdir) on a writable file system, or remount it read-write.',
          cause: err,
          details: { path },
        })
      }
      if (c !== 'ENOENT' || dirname(dir) === dir) return null
    }
  }
}
