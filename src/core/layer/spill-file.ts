/**
 * SpillFile: the ephemeral file `<timeline dir>/ephemeral-<n>` an in-memory layer writes slabs to when the
 * slab pool's budget is reached (value-slabs.ts), and reads spilled values back from.
 *
 * Created at the first spill ('wx': two layers never share one), append-only, never fsynced: after a crash
 * it is garbage (WAL is replayed from disk_consistent_lsn) and every `ephemeral-*` file is removed at
 * startup (`removeEphemeralFiles`). What it holds is checked by the caller against CRCs it keeps in memory;
 * a short file or a bad CRC is a CorruptionError naming the file.
 */
import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs'
import { CorruptionError } from '../lib/errors.js'
import type { Key } from '../model/key.js'
import { formatLsn } from '../pg/lsn.js'
import { removeFilesWhere } from '../storage/directory.js'
import { ioFailed } from '../storage/io-errors.js'
import { EPHEMERAL_FILE_PREFIX } from './layer-name.js'

export class SpillFile {
  private fd = -1
  private bytes = 0
  /** The file exists (made by the first append, even if that append then failed). */
  private created = false

  constructor(readonly path: string) {}

  /**
   * An existing file opened for reading only (`readInto`, `close`; `delete` leaves it): an L0 stream's file,
   * which the in-memory layer reads its released slabs from. Throws when it cannot be opened.
   */
  static openForReading(path: string): SpillFile {
    const f = new SpillFile(path)
    try {
      f.fd = openSync(path, 'r')
    } catch (err) {
      throw ioFailed('opening', path, err)
    }
    return f
  }

  /** The open descriptor (-1: none), for a reader in another thread of this process while this one is open. */
  get descriptor(): number {
    return this.fd
  }

  /** Bytes written so far (0: the file was never created). */
  get lengthBytes(): number {
    return this.bytes
  }

  /** Appends data[0, length); returns the offset it starts at. Creates the file on first use. */
  append(data: Uint8Array, length: number): number {
    if (this.fd < 0) {
      try {
        this.fd = openSync(this.path, 'wx+')
        this.created = true
      } catch (err) {
        throw ioFailed('creating', this.path, err)
      }
    }
    const at = this.bytes
    let done = 0
    while (done < length) {
      try {
        done += writeSync(this.fd, data, done, length - done, at + done)
      } catch (err) {
        throw ioFailed('writing', this.path, err)
      }
    }
    this.bytes += length
    return at
  }

  /** Reads out.length bytes at `position`. */
  readInto(out: Buffer, position: number): void {
    readFully(this.fd, out, position, this.path)
  }

  /** Closes the descriptor; the file stays. Idempotent. */
  close(): void {
    if (this.fd < 0) return
    const fd = this.fd
    this.fd = -1
    closeSync(fd)
  }

  /** Closes and removes the file, if it was ever created. Idempotent. */
  delete(): void {
    this.close()
    if (!this.created) return
    try {
      rmSync(this.path, { force: true })
    } catch (err) {
      throw ioFailed('removing', this.path, err)
    }
  }
}

/** Reads exactly out.length bytes at `position` of `fd` (a spill file). */
export function readFully(fd: number, out: Buffer, position: number, path: string): void {
  let done = 0
  while (done < out.length) {
    let n: number
    try {
      n = readSync(fd, out, done, out.length - done, position + done)
    } catch (err) {
      throw ioFailed('reading', path, err)
    }
    if (n === 0) throw spilledFileShort(path)
    done += n
  }
}

export function spilledValueCorrupt(path: string, key: Key, lsn: bigint): CorruptionError {
  return new CorruptionError('EPHEMERAL_CORRUPT', `${path}: value of ${key} at ${formatLsn(lsn)} fails its checksum`, {
    hint: 'A file the in-memory layer keeps values in (its spill file, or its L0 file being written) was damaged; restart the page server, which replays WAL from disk_consistent_lsn.',
    details: { path },
  })
}

function spilledFileShort(path: string): CorruptionError {
  return new CorruptionError('EPHEMERAL_CORRUPT', `${path} is shorter than the bytes spilled to it`, {
    hint: 'The spill file of the in-memory layer was truncated; restart the page server, which replays WAL from disk_consistent_lsn.',
    details: { path },
  })
}

/** Removes every `ephemeral-*` file of a timeline directory (garbage at startup); returns their names. */
export async function removeEphemeralFiles(dir: string): Promise<string[]> {
  return removeFilesWhere(dir, (name) => name.startsWith(EPHEMERAL_FILE_PREFIX))
}
