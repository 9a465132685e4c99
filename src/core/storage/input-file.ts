/**
 * Files the user names for input (`layer dump FILE`, WAL segment files, `redo replay --base/--verify`,
 * pageserver.toml) are checked to be regular files before they are opened.
 *
 * Why: opening a FIFO for reading blocks until a writer opens the other end, which in a CLI is forever; a
 * directory opens and then fails on the first read (EISDIR); a character device may never end. So the path
 * is stat()ed first (following symbolic links, as open does) and anything but a regular file is a usage
 * error, NOT_A_REGULAR_FILE (exit 2), naming the path and what it is. Something swapped in between the stat
 * and the open is not guarded against: these are paths an operator typed, not an attacker's.
 *
 * A stat failure is handed to the caller as Node threw it: each caller has its own not-found code, and
 * `inputPathFailed` wraps the rest (a path through a file, ENOTDIR, is the user's path: a usage error).
 */
import { stat } from 'node:fs/promises'
import { statSync, type Stats } from 'node:fs'
import { UsageError, type PageserverError } from '../lib/errors.js'
import { ioFailed } from './io-errors.js'

/** What a non-regular file is, in words ("a directory", "a FIFO (named pipe)", ...). */
function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory'
  if (st.isFIFO()) return 'a FIFO (named pipe)'
  if (st.isSocket()) return 'a socket'
  if (st.isCharacterDevice()) return 'a character device'
  if (st.isBlockDevice()) return 'a block device'
  return 'a special file'
}

/** Throws NOT_A_REGULAR_FILE unless `st` (of `path`) is a regular file; `what` names it ("layer file"). */
export function requireRegularFile(path: string, st: Stats, what: string): void {
  if (st.isFile()) return
  const kind = fileKind(st)
  throw new UsageError('NOT_A_REGULAR_FILE', `${what} ${path} is not a regular file: it is ${kind}`, {
    hint: st.isDirectory()
      ? 'Check the path: give the path of a file, not of a directory.'
      : 'Check the path: give the path of a regular file; copy the data into one first if it comes from a pipe or a device.',
    details: { path, kind },
  })
}

/** stat()s `path` and checks that it is a regular file (see the module header); returns the stats. */
export async function statRegularFile(path: string, what: string): Promise<Stats> {
  const st = await stat(path)
  requireRegularFile(path, st, what)
  return st
}

/** statRegularFile for synchronous callers. */
export function statRegularFileSync(path: string, what: string): Stats {
  const st = statSync(path)
  requireRegularFile(path, st, what)
  return st
}

/**
 * A failed stat, open or read of a path the user gave, with the path: a directory where a file is expected
 * (EISDIR) or a file where a directory is (ENOTDIR) is a usage error, since a different path fixes it and no
 * retry does; anything else as ioFailed (ENOENT not found, the rest unavailable).
 */
export function inputPathFailed(what: string, path: string, err: unknown): PageserverError {
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'EISDIR') {
    return new UsageError('NOT_A_REGULAR_FILE', `${what} ${path} failed: it is a directory, not a file`, {
      hint: 'Check the path: give the path of a file, not of a directory.',
      cause: err,
      details: { path, errno: code },
    })
  }
  if (code === 'ENOTDIR') {
    return new UsageError('PATH_NOT_A_DIRECTORY', `${what} ${path} failed: a component of the path is a file, not a directory`, {
      hint: 'Check the path: every name before the last "/" must be a directory.',
      cause: err,
      details: { path, errno: code },
    })
  }
  return ioFailed(what, path, err)
}
