/**
 * Walking a directory tree and reading files in chunks: how a data directory on disk is fed to the
 * importer. Files are visited in sorted order (deterministic imports). Symlinks are never followed: the
 * walk refuses one (the data directories walked come from initdb, which makes none), and a file is opened
 * with O_NOFOLLOW, so a link planted in the tree cannot make us read another file.
 */
import { constants } from 'node:fs'
import { open, readdir } from 'node:fs/promises'
import { UsageError } from '../lib/errors.js'
import { join } from 'node:path'

/** Chunk size for reading files: large enough for throughput, small enough to bound memory. */
export const READ_CHUNK_BYTES = 1024 * 1024

export interface WalkedFile {
  /** path relative to the root, with '/' separators */
  relPath: string
  absPath: string
}

export async function* walkFiles(root: string, rel = ''): AsyncGenerator<WalkedFile> {
  const entries = await readdir(join(root, rel), { withFileTypes: true })
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const e of entries) {
    const relPath = rel === '' ? e.name : `${rel}/${e.name}`
    if (e.isDirectory()) yield* walkFiles(root, relPath)
    else if (e.isFile()) yield { relPath, absPath: join(root, relPath) }
    else if (e.isSymbolicLink()) {
      throw new UsageError('DATA_DIR_SYMLINK', `${join(root, relPath)} is a symbolic link; the data directory to import must hold none`, {
        hint: 'Import a data directory made by initdb, without tablespaces or links.',
      })
    }
  }
}

/** The content of a file in chunks of at most `chunkBytes` (a fresh buffer per chunk). */
export async function* readFileChunks(path: string, chunkBytes = READ_CHUNK_BYTES): AsyncGenerator<Buffer> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    for (;;) {
      const buf = Buffer.allocUnsafe(chunkBytes)
      const { bytesRead } = await fh.read(buf, 0, chunkBytes, null)
      if (bytesRead === 0) return
      yield bytesRead === chunkBytes ? buf : buf.subarray(0, bytesRead)
    }
  } finally {
    await fh.close()
  }
}
