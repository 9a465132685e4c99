/**
 * Loads the JWT validation keys named by `auth_validation_public_key_path`: one PEM file, or every file of a
 * directory (not recursive; Neon's JwtAuth::from_key_path does the same). Symbolic links are followed, as
 * Neon's `is_file()` does: in a Kubernetes secret mount every key is a symlink (`key.pem -> ..data/key.pem`),
 * and `..data` itself, a link to a directory, is skipped like any directory. A link that leads nowhere is an
 * error rather than a key silently left out (Neon's `is_file()` would skip it; a reload that fails keeps the
 * old keys, so refusing costs nothing and shows the problem).
 *
 * Keys are read at start and again on a reload (SIGHUP to `serve`, POST /v1/reload_auth_validation_keys);
 * see auth.ts for rotation. Failures are typed errors naming the path: a missing path JWT_KEY_PATH_MISSING
 * (exit 3), a file that is not a key JWT_BAD_KEY, and a file-system error (EACCES, ELOOP, a dangling link)
 * JWT_KEY_UNREADABLE naming `auth_validation_public_key_path` (exit 2), never a bare fs error that the CLI
 * would report as a bug.
 *
 * This is the page service's only file-system access; each file is read whole under a size cap (a PEM
 * public key is ~110 bytes) and the directory under a file-count cap, so a wrong path (a data directory)
 * fails with a clear error instead of reading gigabytes.
 */
import type { Stats } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { readSmallFile } from '../storage/small-file.js'
import { NotFoundError, PageserverError, UsageError, isNotFoundFsError } from '../lib/errors.js'
import { JwtAuth } from './auth.js'

/** A PEM public key is ~110 bytes; a certificate chain would still be far below this. */
export const JWT_KEY_FILE_BYTES_MAX = 64 * 1024
/** Keys in a rotation directory; more means the path points somewhere else. */
export const JWT_KEY_FILES_MAX = 64

export async function loadJwtAuth(path: string): Promise<JwtAuth> {
  const files = await keyFiles(path)
  const pems = files.map((f) => {
    try {
      return { name: f, pem: readSmallFile(f, JWT_KEY_FILE_BYTES_MAX, 'JWT public key').toString('utf8') }
    } catch (err) {
      throw keyReadError(err, f)
    }
  })
  return JwtAuth.fromPublicKeyPems(pems)
}

/** The key files under `path`, sorted by name. */
async function keyFiles(path: string): Promise<string[]> {
  let st
  try {
    st = await stat(path)
  } catch (err) {
    if (isNotFoundFsError(err)) {
      throw new NotFoundError('JWT_KEY_PATH_MISSING', `auth_validation_public_key_path ${path} does not exist`, {
        hint: 'Create the key file (the public half of an Ed25519 key pair, PEM) or fix the path in pageserver.toml.',
      })
    }
    throw keyReadError(err, path)
  }
  if (st.isFile()) return [path]
  if (!st.isDirectory()) {
    throw new UsageError('JWT_KEY_PATH_INVALID', `auth_validation_public_key_path ${path} is neither a file nor a directory`, {
      hint: 'Point it at a PEM file or a directory of PEM files.',
    })
  }
  let entries
  try {
    entries = await readdir(path, { withFileTypes: true })
  } catch (err) {
    throw keyReadError(err, path)
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const files: string[] = []
  for (const e of entries) {
    const f = join(path, e.name)
    if (e.isFile()) files.push(f)
    else if (e.isSymbolicLink() && (await followLink(f)).isFile()) files.push(f)
  }
  if (files.length > JWT_KEY_FILES_MAX) {
    throw new UsageError('JWT_TOO_MANY_KEYS', `${path} holds ${files.length} files; at most ${JWT_KEY_FILES_MAX} keys are accepted`, {
      hint: 'Point auth_validation_public_key_path at a directory that holds only public keys.',
    })
  }
  return files
}

async function followLink(link: string): Promise<Stats> {
  try {
    return await stat(link)
  } catch (err) {
    throw keyReadError(err, link, ' (a symbolic link to a missing or unreadable file?)')
  }
}

/**
 * A file-system error met while reading `path` as a config error (JWT_KEY_UNREADABLE, exit 2) naming the
 * setting and the path: EACCES, ELOOP, EIO... are the operator's to fix, not bugs. Typed errors (a file
 * too large, one that vanished) and non-fs errors pass through unchanged.
 */
export function keyReadError(err: unknown, path: string, note = ''): unknown {
  if (err instanceof PageserverError) return err
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
  if (typeof code !== 'string') return err
  return new UsageError('JWT_KEY_UNREADABLE', `auth_validation_public_key_path: cannot read ${path}: ${code}${note}`, {
    hint: 'Make the key files and their directory readable by the user the page server runs as, or fix auth_validation_public_key_path.',
    cause: err,
    details: { path, errno: code },
  })
}
