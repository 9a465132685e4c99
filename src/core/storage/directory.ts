/**
 * Directory helpers for timeline directories: list regular files with their sizes, remove files chosen
 * by name. Names only: what a name means (layer, temp file, ephemeral file) is decided by the caller.
 */
import { readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { isNotFoundFsError } from '../lib/errors.js'
import { ioFailed } from './io-errors.js'

export interface FileEntry {
  readonly name: string
  readonly sizeBytes: number
}

/**
 * Regular files of `dir`, and symbolic links to regular files, sorted by name, with their sizes (a dangling
 * link is left out, as a file removed while listing); a missing directory is a NotFoundError.
 */
export async function listFiles(dir: string): Promise<FileEntry[]> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    throw ioFailed('listing', dir, err)
  }
  const out: FileEntry[] = []
  for (const e of entries) {
    // A symbolic link counts when it leads to a regular file (an operator may move layers to another disk).
    if (!e.isFile() && !e.isSymbolicLink()) continue
    try {
      const st = await stat(join(dir, e.name))
      if (!st.isFile()) continue
      out.push({ name: e.name, sizeBytes: st.size })
    } catch (err) {
      if (isNotFoundFsError(err)) continue // removed while listing (compaction, gc)
      throw ioFailed('inspecting', join(dir, e.name), err)
    }
  }
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  return out
}

/** The names in `dir`, sorted, or null when it does not exist; any other failure is a typed I/O error. */
export async function namesIn(dir: string): Promise<string[] | null> {
  try {
    return (await readdir(dir)).sort()
  } catch (err) {
    if (isNotFoundFsError(err)) return null
    throw ioFailed('listing', dir, err)
  }
}

/** Removes the files of `dir` whose name satisfies `pred`; returns their names. */
export async function removeFilesWhere(dir: string, pred: (name: string) => boolean): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    throw ioFailed('listing', dir, err)
  }
  const removed: string[] = []
  for (const name of names) {
    if (!pred(name)) continue
    try {
      await rm(join(dir, name), { force: true })
    } catch (err) {
      throw ioFailed('removing', join(dir, name), err)
    }
    removed.push(name)
  }
  return removed
}
