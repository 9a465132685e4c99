/**
 * OS users by name, from /etc/passwd: a root export hands the data directory to the `postgres` user
 * (PostgreSQL refuses to run as root and refuses a data directory it does not own).
 */
import { readSmallFile } from './small-file.js'

/** /etc/passwd is small; a larger file is not read. */
const PASSWD_BYTES_MAX = 16 * 1024 * 1024

export interface OsUserIds {
  readonly uid: number
  readonly gid: number
}

/** uid and primary gid of `name`, or null when there is no such user (or no readable passwd file). */
export function lookupOsUser(name: string, passwdPath = '/etc/passwd'): OsUserIds | null {
  let text: string
  try {
    text = readSmallFile(passwdPath, PASSWD_BYTES_MAX, 'passwd file').toString('utf8')
  } catch {
    return null
  }
  for (const line of text.split('\n')) {
    const f = line.split(':')
    if (f[0] === name && f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!)) return { uid: Number(f[2]), gid: Number(f[3]) }
  }
  return null
}
