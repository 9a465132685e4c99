/**
 * Crash-safe whole-file writes: write `<path>___temp`, fsync it, rename it over `<path>`, fsync the
 * directory. After a crash at any instant `<path>` holds either its old content or the new one, never a
 * mix; a leftover `*___temp` file is garbage that `removeTempFiles` deletes at startup.
 *
 * Why each step: the file fsync makes the data durable before the name points at it (otherwise a crash
 * after the rename can leave a named, empty file on ext4 with delayed allocation); the directory fsync
 * makes the rename itself durable. `noSync` (config `no_sync`) skips both fsyncs for tests only.
 * A failed fsync throws a FatalIoError and is never retried.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { open, rename, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import { removeFilesWhere } from './directory.js'
import { fsyncFailed, ioFailed } from './io-errors.js'

/** Suffix of every file being written; such files are never layers and are removed at startup. */
export const TEMP_SUFFIX = '___temp'

export interface SyncOptions {
  /** Skip fsyncs (config `no_sync`): fast and unsafe, for tests. */
  readonly noSync?: boolean
}

export function tempPathFor(path: string): string {
  return path + TEMP_SUFFIX
}

/** Writes `data` to `path` atomically and durably (see the module header). */
export async function writeFileDurably(path: string, data: Uint8Array, options: SyncOptions = {}): Promise<void> {
  const temp = tempPathFor(path)
  let fh
  try {
    fh = await open(temp, 'w')
  } catch (err) {
    throw ioFailed('creating', temp, err)
  }
  try {
    let written = 0
    while (written < data.length) {
      const { bytesWritten } = await fh.write(data, written, data.length - written, written)
      written += bytesWritten
    }
    if (!options.noSync) {
      try {
        await fh.sync()
      } catch (err) {
        throw fsyncFailed(temp, err)
      }
    }
  } catch (err) {
    await fh.close().catch(() => {})
    await rm(temp, { force: true }).catch(() => {})
    throw ioFailed('writing', temp, err)
  }
  await fh.close()
  try {
    await rename(temp, path)
  } catch (err) {
    await rm(temp, { force: true }).catch(() => {})
    throw ioFailed('renaming', temp, err)
  }
  if (!options.noSync) await fsyncDir(dirname(path))
}

/** writeFileDurably for small files written by synchronous code (state files): the same steps, blocking. */
export function writeFileDurablySync(path: string, data: Uint8Array, options: SyncOptions = {}): void {
  const temp = tempPathFor(path)
  let fd: number
  try {
    fd = openSync(temp, 'w')
  } catch (err) {
    throw ioFailed('creating', temp, err)
  }
  try {
    for (let written = 0; written < data.length; ) written += writeSync(fd, data, written, data.length - written, written)
    if (!options.noSync) {
      try {
        fsyncSync(fd)
      } catch (err) {
        throw fsyncFailed(temp, err)
      }
    }
  } catch (err) {
    closeSync(fd)
    rmSync(temp, { force: true })
    throw ioFailed('writing', temp, err)
  }
  closeSync(fd)
  try {
    renameSync(temp, path)
  } catch (err) {
    rmSync(temp, { force: true })
    throw ioFailed('renaming', temp, err)
  }
  fsyncDirSync(dirname(path), options)
}

/** fsyncDir for synchronous code. */
export function fsyncDirSync(dir: string, options: SyncOptions = {}): void {
  if (options.noSync) return
  let fd: number
  try {
    fd = openSync(dir, 'r')
  } catch (err) {
    throw ioFailed('opening directory', dir, err)
  }
  try {
    fsyncSync(fd)
  } catch (err) {
    throw fsyncFailed(dir, err)
  } finally {
    closeSync(fd)
  }
}

/** fsyncs a directory so that creations, renames and deletions of its entries are durable. */
export async function fsyncDir(dir: string, options: SyncOptions = {}): Promise<void> {
  if (options.noSync) return
  let fh
  try {
    fh = await open(dir, 'r')
  } catch (err) {
    throw ioFailed('opening directory', dir, err)
  }
  try {
    await fh.sync()
  } catch (err) {
    throw fsyncFailed(dir, err)
  } finally {
    await fh.close()
  }
}

/** Deletes every `*___temp` file in `dir` (leftovers of writes interrupted by a crash); returns their names. */
export async function removeTempFiles(dir: string): Promise<string[]> {
  return removeFilesWhere(dir, (name) => name.endsWith(TEMP_SUFFIX))
}
