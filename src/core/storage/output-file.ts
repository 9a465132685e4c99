/**
 * Files and directories the user names for output (`getpage --out`, `redo replay --out`, `timeline export -D`).
 *
 * A path the user chose that cannot be written (its directory is missing, it is a directory, permission is
 * denied, the file system is read-only) is a usage error with a stable code, OUTPUT_NOT_WRITABLE (exit 2),
 * naming the path and the OS reason: the fix is a different path, not a bug report. Other failures while
 * writing stay what they are for every other file we write (io-errors.ts, exit 6): DISK_FULL for a full
 * file system, IO_ERROR otherwise.
 *
 * Output files are plain writes, not crash-safe renames (durable-file.ts): they are the user's copies, and a
 * half-written one after a crash is found by the same command run again.
 */
import { writeFile } from 'node:fs/promises'
import { UsageError, type PageserverError } from '../lib/errors.js'
import { ioFailed } from './io-errors.js'

/** errno codes that say the path itself is unusable for output, with what to do about each. */
const OUTPUT_PATH_HINTS: Readonly<Record<string, string>> = {
  ENOENT: 'Create the directory first, or give a path in an existing directory.',
  ENOTDIR: 'A component of the path is a file, not a directory; give a path in an existing directory.',
  EISDIR: 'The path is a directory; give a file name in it (e.g. DIR/page.bin).',
  EACCES: 'Choose a path you may write, or change the permissions of its directory.',
  EPERM: 'Choose a path you may write, or change the permissions of its directory.',
  EROFS: 'The file system is read-only; choose a path on a writable one.',
  ENAMETOOLONG: 'Choose a shorter path.',
  ELOOP: 'The path has a symbolic link loop; choose another path.',
}

/** Writes `data` to the output file `path` (created or replaced); failures name the path. */
export async function writeOutputFile(path: string, data: Uint8Array): Promise<void> {
  try {
    await writeFile(path, data)
  } catch (err) {
    throw outputFailed(path, err)
  }
}

/**
 * The error for a failure to create or write the output `path`: OUTPUT_NOT_WRITABLE for an unusable path
 * (see OUTPUT_PATH_HINTS), else the error of io-errors.ts (DISK_FULL, IO_ERROR).
 */
export function outputFailed(path: string, err: unknown): PageserverError {
  const code = (err as { code?: unknown } | null)?.code
  const hint = typeof code === 'string' ? OUTPUT_PATH_HINTS[code] : undefined
  if (hint === undefined) return ioFailed('writing', path, err)
  return new UsageError('OUTPUT_NOT_WRITABLE', `cannot write ${path}: ${osReason(err, code as string)}`, {
    hint,
    cause: err,
    details: { path, errno: code },
  })
}

/**
 * "no such file or directory (ENOENT)" from Node's "ENOENT: no such file or directory, open '/x/y'": the
 * message repeats the path (we name it ourselves) and the syscall (an implementation detail).
 */
function osReason(err: unknown, code: string): string {
  const message = err instanceof Error ? err.message : ''
  const m = /^[A-Z]+: ([^,]+)/.exec(message)
  return m ? `${m[1]} (${code})` : code
}
