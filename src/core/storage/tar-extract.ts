/**
 * TarDirectoryWriter: unpacks a tar stream (fed through pg/tar.ts's TarReader) into a directory, as a data
 * directory PostgreSQL can start from: the root and every directory mode 0700, files 0600, everything
 * chowned to `owner` when given (root exporting for the postgres user; PostgreSQL refuses a data
 * directory it does not own or that others can read).
 *
 * The archive may come from another process over the network, so it is input: a path must be relative
 * with no empty, "." or ".." component (nothing may land outside the directory), only files and
 * directories are accepted (no links), a file holds at most `FILE_BYTES_MAX` bytes and the archive at most
 * `entriesMax` entries. The target must be absent or empty: an export never mixes with old files.
 *
 * Writes are synchronous: the producer (a tar generator or a socket) waits while a chunk is written, which
 * is the back-pressure we want. Files are fsynced before close and directories at `finish` unless
 * `noSync`. `abort` removes what this writer created, so a failed export leaves no half directory.
 */
import { chownSync, closeSync, constants, fchmodSync, fchownSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, rmSync, statSync, writeSync, chmodSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ConflictError, CorruptionError, assert, isNotFoundFsError } from '../lib/errors.js'
import type { TarEntryHeader, TarSink } from '../pg/tar.js'
import { fsyncFailed, ioFailed } from './io-errors.js'
import { outputFailed } from './output-file.js'
import { fsyncDirSync } from './durable-file.js'

/** PostgreSQL's largest files are 1 GiB relation segments and WAL segments of at most 1 GiB. */
export const FILE_BYTES_MAX = 1024 * 1024 * 1024
/** Archive entries accepted by default (a data directory with millions of files is not one we wrote). */
export const EXTRACT_ENTRIES_MAX_DEFAULT = 4_000_000
/** Longest path accepted inside the archive. */
const PATH_BYTES_MAX = 1024

export interface OsOwner {
  readonly uid: number
  readonly gid: number
}

export interface ExtractOptions {
  readonly owner?: OsOwner | null
  readonly noSync?: boolean
  readonly entriesMax?: number
}

export interface ExtractStats {
  files: number
  directories: number
  /** Bytes of file data written. */
  bytes: number
}

function badEntry(why: string): CorruptionError {
  return new CorruptionError('BACKUP_BAD_ENTRY', `the backup archive ${why}`, { hint: 'The server sent something that is not a data directory backup.' })
}

/** "base/5/16384" -> ["base", "5", "16384"]; refuses anything that could leave the directory. */
function safeComponents(path: string): string[] {
  if (Buffer.byteLength(path) > PATH_BYTES_MAX) throw badEntry(`has a path longer than ${PATH_BYTES_MAX} bytes`)
  const trimmed = path.replace(/^\.\//, '').replace(/\/+$/, '')
  const parts = trimmed.split('/')
  if (trimmed === '' || path.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\\'))) {
    throw badEntry(`has an unsafe path "${path}"`)
  }
  return parts
}

/**
 * `dir` and its missing parents, each with mode 0700. Not `mkdirSync(..., { recursive: true })`: on a parent
 * that refuses new entries without saying it exists (`/proc`), Node 20's recursive mkdir retries forever.
 */
function makeDirs(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 })
    return
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST' && statSync(dir).isDirectory()) return
    const parent = dirname(dir)
    if (!isNotFoundFsError(e) || parent === dir) throw e
  }
  makeDirs(dirname(dir))
  mkdirSync(dir, { mode: 0o700 }) // a parent that exists and still refuses (/proc) fails here, once
}

export class TarDirectoryWriter implements TarSink {
  private readonly createdDirs: string[] = []
  private readonly knownDirs = new Set<string>()
  private readonly createdFiles: string[] = []
  private fd: number | null = null
  private filePath = ''
  private readonly entriesMax: number
  private entries = 0
  readonly stats: ExtractStats = { files: 0, directories: 0, bytes: 0 }

  private constructor(
    readonly dir: string,
    private readonly createdRoot: boolean,
    private readonly opts: ExtractOptions,
    /** Mode and owner of the (empty) directory it was given, restored by abort(); null when it made it. */
    private readonly existedAs: { mode: number; uid: number; gid: number } | null = null,
  ) {
    this.entriesMax = opts.entriesMax ?? EXTRACT_ENTRIES_MAX_DEFAULT
    this.knownDirs.add('')
  }

  /** Prepares `dir` (created, or existing and empty) with mode 0700 and the owner. */
  static create(dir: string, opts: ExtractOptions = {}): TarDirectoryWriter {
    let existed = false
    let existedAs: { mode: number; uid: number; gid: number } | null = null
    try {
      // lstat: a symbolic link at `dir` is refused, not followed (as root, the chmod and chown below would
      // hand the link's target to the postgres user: any empty directory someone could point a link at).
      const st = lstatSync(dir)
      if (st.isSymbolicLink()) {
        throw new ConflictError('EXPORT_DIR_IS_SYMLINK', `${dir} is a symbolic link; an export is written only into a real directory`, {
          hint: `Pass the directory it points to (\`realpath ${dir}\`), if that is where the export belongs.`,
        })
      }
      existed = st.isDirectory()
      existedAs = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid }
      if (!existed) throw new ConflictError('EXPORT_DIR_NOT_EMPTY', `${dir} exists and is not a directory`, { hint: 'Choose a new directory for the export.' })
      if (readdirSync(dir).length > 0) {
        throw new ConflictError('EXPORT_DIR_NOT_EMPTY', `${dir} is not empty`, {
          hint: 'Export into a new or empty directory; an export never mixes with old files. A directory without global/pg_control is what a killed export left: remove it and export again.',
        })
      }
    } catch (e) {
      if (!isNotFoundFsError(e)) throw e instanceof ConflictError ? e : outputFailed(dir, e)
    }
    try {
      if (!existed) makeDirs(dir)
      // Through a descriptor opened without following a link: what is checked is what is changed, even if
      // `dir` was swapped for a link since the check above.
      const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
      try {
        fchmodSync(fd, 0o700)
        if (opts.owner) fchownSync(fd, opts.owner.uid, opts.owner.gid)
      } finally {
        closeSync(fd)
      }
    } catch (e) {
      throw outputFailed(dir, e)
    }
    return new TarDirectoryWriter(dir, !existed, opts, existedAs)
  }

  entry(h: TarEntryHeader): void {
    assert(this.fd === null, 'tar entry inside a file')
    if (++this.entries > this.entriesMax) throw badEntry(`has more than ${this.entriesMax} entries`)
    const parts = safeComponents(h.path)
    if (h.type === 'directory') {
      this.ensureDir(parts)
      return
    }
    if (h.type !== 'file') throw badEntry(`has a ${h.type} entry ${h.path}; only files and directories are expected`)
    if (h.size > FILE_BYTES_MAX) throw badEntry(`has a file ${h.path} of ${h.size} bytes`)
    this.ensureDir(parts.slice(0, -1))
    const abs = join(this.dir, ...parts)
    try {
      this.fd = openSync(abs, 'wx', 0o600)
    } catch (e) {
      if ((e as { code?: string }).code === 'EEXIST') throw badEntry(`names ${h.path} twice`)
      throw ioFailed('creating', abs, e)
    }
    this.filePath = abs
    this.createdFiles.push(abs)
    if (this.opts.owner) fchownSync(this.fd, this.opts.owner.uid, this.opts.owner.gid)
    this.stats.files++
  }

  data(chunk: Buffer): void {
    assert(this.fd !== null, 'tar data outside a file')
    try {
      for (let off = 0; off < chunk.length; ) off += writeSync(this.fd, chunk, off, chunk.length - off)
    } catch (e) {
      throw ioFailed('writing', this.filePath, e)
    }
    this.stats.bytes += chunk.length
  }

  entryEnd(): void {
    const fd = this.fd
    if (fd === null) return // a directory
    this.fd = null
    try {
      if (!this.opts.noSync) {
        try {
          fsyncSync(fd)
        } catch (e) {
          throw fsyncFailed(this.filePath, e)
        }
      }
    } finally {
      closeSync(fd)
    }
  }

  /** Makes the directories durable; returns what was written. */
  finish(): ExtractStats {
    assert(this.fd === null, 'tar extraction finished inside a file')
    for (const d of [...this.createdDirs, this.dir]) fsyncDirSync(d, { noSync: this.opts.noSync })
    return { ...this.stats }
  }

  /** Removes everything this writer created (the root too, when it created it). Best effort. */
  abort(): void {
    if (this.fd !== null) {
      closeSync(this.fd)
      this.fd = null
    }
    if (this.createdRoot) {
      rmSync(this.dir, { recursive: true, force: true })
      return
    }
    for (const f of this.createdFiles) rmSync(f, { force: true })
    for (const d of [...this.createdDirs].reverse()) rmSync(d, { recursive: true, force: true })
    // The empty directory it was given goes back to how it was (create() made it 0700, maybe postgres's).
    if (this.existedAs !== null) {
      try {
        chmodSync(this.dir, this.existedAs.mode)
        chownSync(this.dir, this.existedAs.uid, this.existedAs.gid)
      } catch {
        // best effort: the export's own error is the one to report
      }
    }
  }

  private ensureDir(parts: string[]): void {
    for (let i = 1; i <= parts.length; i++) {
      const rel = parts.slice(0, i).join('/')
      if (this.knownDirs.has(rel)) continue
      const abs = join(this.dir, ...parts.slice(0, i))
      try {
        mkdirSync(abs, { mode: 0o700 })
        if (this.opts.owner) chownSync(abs, this.opts.owner.uid, this.opts.owner.gid)
      } catch (e) {
        if ((e as { code?: string }).code === 'EEXIST') throw badEntry(`makes ${rel} a directory after a file of that name`)
        throw ioFailed('creating directory', abs, e)
      }
      this.knownDirs.add(rel)
      this.createdDirs.push(abs)
      this.stats.directories++
    }
  }
}
