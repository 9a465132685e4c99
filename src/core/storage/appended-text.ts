/**
 * What a log file got since some moment: its size is taken before a child process starts writing to it, and
 * afterwards only the bytes past that size are read (older lines are other runs' and mislead an error
 * message). Used by `local start` for PostgreSQL's log and for the background `serve`'s log.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs'

/** The size of `path` now; 0 when it does not exist yet (a log about to be created). */
export function fileSizeOrZero(path: string): number {
  try {
    return statSync(path).size
  } catch {
    return 0
  }
}

/**
 * The text `path` got after it was `offset` bytes long (all of it when it is now shorter: rotated or
 * replaced), at most its last `maxBytes`; '' when it cannot be read.
 */
export function textAppendedSince(path: string, offset: number, maxBytes: number): string {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch {
    return ''
  }
  try {
    const size = statSync(path).size
    const from = Math.max(size < offset ? 0 : offset, size - maxBytes)
    const buf = Buffer.alloc(size - from)
    return buf.subarray(0, readSync(fd, buf, 0, buf.length, from)).toString('utf8')
  } catch {
    return ''
  } finally {
    closeSync(fd)
  }
}
