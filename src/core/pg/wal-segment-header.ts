/**
 * The long header on the first page of a WAL segment file, read before anything is decoded: it gives the
 * cluster's segment size and system identifier, which WalFileReader needs to parse the other files' names,
 * check their sizes and start its decoder.
 *
 * Only what a reader must trust before decoding is checked here (PostgreSQL 15's page magic, the long
 * header flag, a valid segment size, the 8 KiB WAL block size); the decoder checks the rest of every page
 * header, this one included, when it reaches it. A file failing these checks is not a WAL segment (or its
 * first page is damaged): a CorruptionError naming the file.
 */
import { open } from 'node:fs/promises'
import { CorruptionError } from '../lib/errors.js'
import { SizeOfXLogLongPHD, XLOG_BLCKSZ, XLOG_PAGE_MAGIC, XLP_LONG_HEADER } from './wal-page.js'

/** PostgreSQL's IsValidWalSegSize: a power of two from 1 MiB to 1 GiB. */
export const WAL_SEGMENT_SIZE_MIN_BYTES = 1024 * 1024
export const WAL_SEGMENT_SIZE_MAX_BYTES = 1024 * 1024 * 1024

export interface LongHeaderFacts {
  readonly segSize: number
  readonly sysid: bigint
}

/** The segment size and system identifier in the long header of the segment file at `path`. */
export async function readLongHeader(path: string): Promise<LongHeaderFacts> {
  const fh = await open(path, 'r')
  try {
    const b = Buffer.alloc(SizeOfXLogLongPHD)
    const { bytesRead } = await fh.read(b, 0, SizeOfXLogLongPHD, 0)
    const bad = (what: string): CorruptionError =>
      new CorruptionError('WAL_BAD_SEGMENT_HEADER', `${path}: ${what}`, {
        hint: 'The file is not a PostgreSQL 15 WAL segment, or its first page is damaged.',
      })
    if (bytesRead < SizeOfXLogLongPHD) throw bad(`only ${bytesRead} bytes, shorter than a segment header`)
    const magic = b.readUInt16LE(0)
    if (magic !== XLOG_PAGE_MAGIC) {
      throw bad(`page magic ${magic.toString(16).toUpperCase().padStart(4, '0')}, PostgreSQL 15 writes D110`)
    }
    if ((b.readUInt16LE(2) & XLP_LONG_HEADER) === 0) throw bad('first page has no long header')
    const segSize = b.readUInt32LE(32)
    if (segSize < WAL_SEGMENT_SIZE_MIN_BYTES || segSize > WAL_SEGMENT_SIZE_MAX_BYTES || (segSize & (segSize - 1)) !== 0) {
      throw bad(`segment size ${segSize} in the header is not a power of two between 1 MiB and 1 GiB`)
    }
    if (b.readUInt32LE(36) !== XLOG_BLCKSZ) throw bad(`WAL block size ${b.readUInt32LE(36)}, expected ${XLOG_BLCKSZ}`)
    return { segSize, sysid: b.readBigUInt64LE(24) }
  } finally {
    await fh.close()
  }
}
