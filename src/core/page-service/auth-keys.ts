/**
 * Loads the JWT validation keys named by `auth_validation_public_key_path`: one PEM file, or every
 * regular file of a directory (not recursive; Neon's JwtAuth::from_key_path does the same). Any of the
 * keys may verify a token, so rotating a key is adding a file.
 *
 * This is the page service's only file-system access; each file is read whole under a size cap (a PEM
 * public key is ~110 bytes) and the directory under a file-count cap, so a wrong path (a data directory)
 * fails with a clear error instead of reading gigabytes.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { readSmallFile } from '../storage/small-file.js'
import { NotFoundError, UsageError, isNotFoundFsError } from '../lib/errors.js'
import { JwtAuth } from './auth.js'

/** A PEM public key is ~110 bytes; a certificate chain would still be far below this. */
export const JWT_KEY_FILE_BYTES_MAX = 64 * 1024
/** Keys in a rotation directory; more means the path points somewhere else. */
export const JWT_KEY_FILES_MAX = 64

export async function loadJwtAuth(path: string): Promise<JwtAuth> {
  let st
  try {
    st = await stat(path)
  } catch (err) {
    if (isNotFoundFsError(err)) {
      throw new NotFoundError('JWT_KEY_PATH_MISSING', `auth_validation_public_key_path ${path} does not exist`, {
        hint: 'Create the key file (the public half of an Ed25519 key pair, PEM) or fix the path in pageserver.toml.',
      })
    }
    throw err
  }
  const files: string[] = []
  if (st.isDirectory()) {
    const entries = await readdir(path, { withFileTypes: true })
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const e of entries) if (e.isFile()) files.push(join(path, e.name))
    if (files.length > JWT_KEY_FILES_MAX) {
      throw new UsageError('JWT_TOO_MANY_KEYS', `${path} holds ${files.length} files; at most ${JWT_KEY_FILES_MAX} keys are accepted`, {
        hint: 'Point auth_validation_public_key_path at a directory that holds only public keys.',
      })
    }
  } else if (st.isFile()) {
    files.push(path)
  } else {
    throw new UsageError('JWT_KEY_PATH_INVALID', `auth_validation_public_key_path ${path} is neither a file nor a directory`, {
      hint: 'Point it at a PEM file or a directory of PEM files.',
    })
  }
  const pems = files.map((f) => ({ name: f, pem: readSmallFile(f, JWT_KEY_FILE_BYTES_MAX, 'JWT public key').toString('utf8') }))
  return JwtAuth.fromPublicKeyPems(pems)
}
