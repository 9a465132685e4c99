/**
 * Creating a directory atomically: build it under a temporary name in the same parent, make its contents
 * durable, then rename it into place. Two concurrent creators of the same name get one success and one
 * ConflictError (rename onto an existing non-empty directory fails); a crash midway leaves only a
 * `.tmp-*` directory, which `removeAbandonedTempDirs` deletes at the next start.
 */
import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ConflictError, isNotFoundFsError } from '../lib/errors.js'
import { fsyncDir, type SyncOptions } from './durable-file.js'

export const TEMP_DIR_PREFIX = '.tmp-'

export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (e) {
    if (isNotFoundFsError(e)) return false
    throw e
  }
}

/**
 * Creates `<parent>/<name>` with `populate` filling a temporary directory first. `what` names the object in
 * the conflict error ("tenant 1234...").
 */
export async function createDirAtomically(
  parent: string,
  name: string,
  what: string,
  populate: (tmpDir: string) => Promise<void>,
  options: SyncOptions = {},
): Promise<string> {
  const target = join(parent, name)
  const conflict = () =>
    new ConflictError('ALREADY_EXISTS', `${what} already exists`, {
      hint: 'Choose another id, or delete the existing one first.',
      details: { path: target },
    })
  await mkdir(parent, { recursive: true })
  if (await pathExists(target)) throw conflict()
  const tmp = await mkdtemp(join(parent, `${TEMP_DIR_PREFIX}${name}-`))
  try {
    await populate(tmp)
    await fsyncDir(tmp, options)
    try {
      await rename(tmp, target)
    } catch (e) {
      const code = (e as { code?: string }).code
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw conflict()
      throw e
    }
    await fsyncDir(parent, options)
    return target
  } catch (e) {
    await rm(tmp, { recursive: true, force: true })
    throw e
  }
}

/** Removes `.tmp-*` directories left by creations that never finished. */
export async function removeAbandonedTempDirs(parent: string): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(parent)
  } catch (e) {
    if (isNotFoundFsError(e)) return []
    throw e
  }
  const removed: string[] = []
  for (const n of names) {
    if (n.startsWith(TEMP_DIR_PREFIX)) {
      await rm(join(parent, n), { recursive: true, force: true })
      removed.push(n)
    }
  }
  return removed
}

/** Names of the subdirectories of `dir` (none if it does not exist), excluding temporary ones. */
export async function listSubdirs(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true })
    return entries.filter((e) => e.isDirectory() && !e.name.startsWith(TEMP_DIR_PREFIX)).map((e) => e.name).sort()
  } catch (e) {
    if (isNotFoundFsError(e)) return []
    throw e
  }
}

/** Removes a directory tree (a deleted tenant or timeline). */
export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true })
}
