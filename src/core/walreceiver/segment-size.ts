/**
 * The primary's WAL segment size, from `SHOW wal_segment_size` ("16MB", "1GB", "64MB").
 *
 * PostgreSQL allows powers of two from 1 MB to 1 GB (initdb --wal-segsize); anything else is refused here,
 * because every segment and page computation downstream relies on it.
 */
import { CorruptionError } from '../lib/errors.js'

const UNIT_BYTES: Readonly<Record<string, number>> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }

export const walSegmentSizeBytesMin = 1024 ** 2
export const walSegmentSizeBytesMax = 1024 ** 3

export function parseSegmentSizeSetting(text: string): number {
  const m = /^(\d{1,10})\s*(B|kB|MB|GB)?$/.exec(text.trim())
  const bytes = m ? Number(m[1]) * UNIT_BYTES[m[2] ?? 'B']! : NaN
  if (!Number.isSafeInteger(bytes) || bytes < walSegmentSizeBytesMin || bytes > walSegmentSizeBytesMax || (bytes & (bytes - 1)) !== 0) {
    throw new CorruptionError('PG_BAD_SEGMENT_SIZE', `the server reports wal_segment_size "${text}", which is not a power of two between 1MB and 1GB`, {
      hint: 'Check that the server is a stock PostgreSQL 15.',
    })
  }
  return bytes
}
