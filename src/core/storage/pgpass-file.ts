/**
 * Reading a libpq password file (~/.pgpass) the way libpq does before it trusts one: a file that does not
 * exist is simply not there; one that is not a plain file, or that group or others may read, write or
 * execute (any of mode 077), is ignored with a reason, which libpq prints as a WARNING
 * ("has group or world access; permissions should be u=rw (0600) or less"). The format is
 * protocol/pgpass.ts.
 */
import { readFileSync, statSync } from 'node:fs'
import { isNotFoundFsError, messageOf } from '../lib/errors.js'

/** A password file is a few lines; anything larger is not one, and is not read into memory. */
export const passFileBytesMax = 1024 * 1024

export type PassFileRead =
  | { readonly kind: 'read'; readonly text: string }
  | { readonly kind: 'absent' }
  /** Present but not used: `reason` says why (libpq's warning). */
  | { readonly kind: 'ignored'; readonly reason: string }

export function readPassFile(path: string): PassFileRead {
  let st
  try {
    st = statSync(path)
  } catch (e) {
    // libpq ignores a file it cannot stat without a word; we say why when it is there but unreadable.
    if (isNotFoundFsError(e) || (e as { code?: unknown }).code === 'ENOTDIR') return { kind: 'absent' }
    return { kind: 'ignored', reason: `cannot be read: ${messageOf(e)}` }
  }
  if (!st.isFile()) return { kind: 'ignored', reason: 'is not a plain file' }
  if ((st.mode & 0o077) !== 0) {
    return { kind: 'ignored', reason: `has group or world access (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); permissions should be u=rw (0600) or less` }
  }
  if (st.size > passFileBytesMax) return { kind: 'ignored', reason: `has ${st.size} bytes, more than the ${passFileBytesMax} a password file may have` }
  try {
    return { kind: 'read', text: readFileSync(path, 'utf8') }
  } catch (e) {
    return { kind: 'ignored', reason: `cannot be read: ${messageOf(e)}` }
  }
}
