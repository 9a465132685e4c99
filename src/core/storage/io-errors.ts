/**
 * Errors of local file I/O, shared by the storage modules.
 *
 * A failed fsync is fatal (`FatalIoError`, `fatal: true`): after a failed fsync the kernel may already
 * have dropped the dirty pages and cleared the error, so a retry can "succeed" with the data lost (the
 * PostgreSQL fsyncgate lesson). Callers must not retry; the owner of the process decides to stop.
 * Other I/O failures are wrapped with the path so the user learns which file is at fault.
 */
import { NotFoundError, PageserverError, UnavailableError, isNotFoundFsError, messageOf } from '../lib/errors.js'

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

/** Wraps a failed open/read/write/rename with the path; ENOENT becomes a NotFoundError. */
export function ioFailed(what: string, path: string, err: unknown): PageserverError {
  if (err instanceof PageserverError) return err
  if (isNotFoundFsError(err)) {
    return new NotFoundError('FILE_NOT_FOUND', `${path} does not exist`, {
      hint: 'Check the path; the file may have been removed or renamed by another process.',
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
