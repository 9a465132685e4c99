/**
 * Creating a directory atomically: build it under a temporary name in the same parent, make its contents
 * durable, then rename it into place. Two concurrent creators of the same name get one success and one
 * ConflictError (rename onto an existing non-empty directory fails); a crash midway leaves only a
 * `.tmp-*` directory, which `removeAbandonedTempDirs` deletes at the next start.
 *
 * Deleting is the mirror image: rename the directory to a `.tmp-<name>-deleted-*` tombstone in the same
 * parent (one atomic step, made durable), then remove the tombstone recursively. A crash before the rename
 * leaves the object whole; a crash after it leaves only a tombstone, which readers skip (`listSubdirs`) and
 * the next writer's `removeAbandonedTempDirs` finishes off. A plain `rm -r` of the live directory instead
 * could stop halfway and leave, e.g., a tenant directory whose config.toml is gone but whose timelines are
 * not: still listed, no longer loadable.
 *
 * Within one process, `removeAbandonedTempDirs` never touches a temporary directory or tombstone of a
 * creation or deletion still in progress here (`liveTempDirs`): a running server lists timelines (which
 * cleans up) while it imports or branches others, and removing their directories midway would destroy them.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ConflictError, isNotFoundFsError, NotFoundError, PageserverError } from '../lib/errors.js'
import { fsyncDir, type SyncOptions } from './durable-file.js'
import { ioFailed } from './io-errors.js'
import { namesIn } from './directory.js'

export const TEMP_DIR_PREFIX = '.tmp-'
/** Middle of a tombstone's name: `.tmp-<name>-deleted-<8 hex>` (the random tail lets a re-created and
 * re-deleted object get a fresh tombstone while an older one still waits for removal). */
export const TOMBSTONE_INFIX = '-deleted-'
/** Random hex characters that end a creation's temporary name: `.tmp-<name>-<12 hex>`. */
const CREATION_TAIL_HEX = 12

/** Temporary directories and tombstones of this process's creations and deletions in progress. */
const liveTempDirs = new Set<string>()

export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (e) {
    if (isNotFoundFsError(e)) return false
    throw ioFailed('inspecting', path, e)
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
  try {
    await mkdir(parent, { recursive: true })
  } catch (e) {
    throw ioFailed('creating', parent, e)
  }
  if (await pathExists(target)) throw conflict()
  // Named and registered before it exists, so that a cleanup running meanwhile never sees it unregistered.
  const tmp = join(parent, `${TEMP_DIR_PREFIX}${name}-${randomBytes(CREATION_TAIL_HEX / 2).toString('hex')}`)
  liveTempDirs.add(tmp)
  try {
    await mkdir(tmp, { mode: 0o700 })
  } catch (e) {
    liveTempDirs.delete(tmp)
    throw ioFailed('creating', tmp, e)
  }
  try {
    await populate(tmp)
    await fsyncDir(tmp, options)
    try {
      await rename(tmp, target)
    } catch (e) {
      const code = (e as { code?: string }).code
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw conflict()
      throw ioFailed('renaming', tmp, e)
    }
    await fsyncDir(parent, options)
    return target
  } catch (e) {
    // A failure to clean up must not hide why the creation failed (the leftover is removed at the next start).
    await rm(tmp, { recursive: true, force: true }).catch(() => {})
    // `populate` may fail on a raw file system call (a mkdir on a full disk): named, not reported as a bug.
    throw isFsError(e) ? ioFailed('creating', fsErrorPath(e) ?? target, e) : e
  } finally {
    liveTempDirs.delete(tmp)
  }
}

/** A Node file system error (errno code and syscall), as opposed to a bug or one of our typed errors. */
function isFsError(e: unknown): boolean {
  const o = e as { code?: unknown; syscall?: unknown } | null
  return typeof o === 'object' && o !== null && !(e instanceof PageserverError) && typeof o.code === 'string' && typeof o.syscall === 'string'
}

function fsErrorPath(e: unknown): string | undefined {
  const p = (e as { path?: unknown }).path
  return typeof p === 'string' ? p : undefined
}

/** Removes `.tmp-*` directories left by creations and deletions that never finished (not this process's live ones). */
export async function removeAbandonedTempDirs(parent: string): Promise<string[]> {
  const names = (await namesIn(parent)) ?? []
  const removed: string[] = []
  for (const n of names) {
    if (n.startsWith(TEMP_DIR_PREFIX) && !liveTempDirs.has(join(parent, n))) {
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
    throw ioFailed('listing', dir, e)
  }
}

/** A creation's temporary directory under some parent: what it will be named, and where it is now. */
export interface CreationUnderway {
  readonly name: string
  readonly tmpDir: string
}

/**
 * The creations under `parent` that have a temporary directory (`.tmp-<name>-<12 hex>`, not a tombstone):
 * each is in progress in some process, or was abandoned by one that died (the next writer removes it).
 * Telling the two apart is the caller's business (the workdir lock says whether anyone can be creating).
 */
export async function creationsUnderway(parent: string): Promise<CreationUnderway[]> {
  const re = new RegExp(`^${TEMP_DIR_PREFIX.replace('.', '\\.')}(.+)-[0-9a-f]{${CREATION_TAIL_HEX}}$`)
  let entries
  try {
    entries = await readdir(parent, { withFileTypes: true })
  } catch (e) {
    if (isNotFoundFsError(e)) return []
    throw e
  }
  const out: CreationUnderway[] = []
  for (const e of entries) {
    const m = e.isDirectory() ? re.exec(e.name) : null
    if (m && !e.name.includes(TOMBSTONE_INFIX)) out.push({ name: m[1]!, tmpDir: join(parent, e.name) })
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

/** Removes a directory tree (a tombstone, or a temporary directory). */
export async function removeDir(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true })
  } catch (e) {
    throw ioFailed('removing', path, e)
  }
}

/**
 * The first, atomic half of `deleteDirAtomically`: renames `<parent>/<name>` to a tombstone and makes the
 * rename durable. Returns the tombstone's path. `what` names the object in the not-found error. Exported so
 * tests can stop here, as a crash would.
 */
export async function tombstoneDir(parent: string, name: string, what: string, options: SyncOptions = {}): Promise<string> {
  const tombstone = join(parent, `${TEMP_DIR_PREFIX}${name}${TOMBSTONE_INFIX}${randomBytes(4).toString('hex')}`)
  try {
    await rename(join(parent, name), tombstone)
  } catch (e) {
    if (isNotFoundFsError(e)) throw new NotFoundError('NOT_FOUND', `${what} does not exist`, { details: { path: join(parent, name) } })
    throw ioFailed('renaming', join(parent, name), e)
  }
  // Durable before any file inside goes: after a power loss the object is either whole or a tombstone.
  await fsyncDir(parent, options)
  return tombstone
}

/** Deletes `<parent>/<name>` crash-safely: tombstone (atomic), then recursive removal of the tombstone. */
export async function deleteDirAtomically(parent: string, name: string, what: string, options: SyncOptions = {}): Promise<void> {
  await removeDir(await tombstoneDir(parent, name, what, options))
}
