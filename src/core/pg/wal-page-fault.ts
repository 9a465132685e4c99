/**
 * What a page-header failure means when WalFileReader reads segment files: the end of valid WAL, a file
 * that does not hold the WAL its name promises, or corruption.
 *
 * Where a page was due after valid data, a zeroed page or a recycled one (magic right, page address older
 * than expected: PostgreSQL renames old segments for reuse) is the ordinary end of WAL, as in PostgreSQL's
 * XLogReaderValidatePageHeader callers. On the very first page read, before anything was decoded, there is
 * no valid data for the WAL to end after: a page address that is not the expected one means the file holds
 * another segment's WAL (a copy under the wrong name, e.g. segment ...04 saved as ...05) or reading starts
 * in a recycled segment. pg_waldump refuses that too ("could not find a valid record after ..."). We make it
 * a usage error, not corruption: the page is intact, and the fix is another file name or another start, not
 * a restore from backup. A zeroed first page stays a quiet end (a start in the zeroed tail of the segment
 * being written).
 */
import { open } from 'node:fs/promises'
import { PageserverError, UsageError } from '../lib/errors.js'
import { formatLsn } from './lsn.js'
import { SizeOfXLogShortPHD, walFileName, XLOG_BLCKSZ, XLOG_PAGE_MAGIC } from './wal-page.js'

export type WalPageEndReason = 'zeroed-page' | 'recycled-page'

export interface PageFaultContext {
  /** The file holding the page that failed, if any was given. */
  readonly path: string | undefined
  readonly pageLsn: number
  readonly segmentSizeBytes: number
  /** PostgreSQL timeline of the files, to name the segment a page belongs to. */
  readonly pgTimeLineId: number
  /** True when this is the first page read and no record was decoded before it. */
  readonly firstPage: boolean
}

/**
 * The end of WAL that `e` (thrown by the decoder at `c.pageLsn`) stands for, or null when it is an error to
 * rethrow as it is; throws WAL_UNEXPECTED_FIRST_PAGE for a first page of another position (see the header).
 */
export async function classifyPageFault(e: unknown, c: PageFaultContext): Promise<{ reason: WalPageEndReason; message: string } | null> {
  if (!(e instanceof PageserverError) || (e.code !== 'WAL_BAD_MAGIC' && e.code !== 'WAL_BAD_PAGE_ADDRESS')) return null
  if (c.pageLsn % XLOG_BLCKSZ !== 0 || c.path === undefined) return null
  const hdr = Buffer.alloc(SizeOfXLogShortPHD)
  const fh = await open(c.path, 'r')
  try {
    await fh.read(hdr, 0, SizeOfXLogShortPHD, c.pageLsn % c.segmentSizeBytes)
  } finally {
    await fh.close()
  }
  const at = formatLsn(BigInt(c.pageLsn))
  if (hdr.every((b) => b === 0)) return { reason: 'zeroed-page', message: `zeroed WAL page at ${at}` }
  if (hdr.readUInt16LE(0) !== XLOG_PAGE_MAGIC) return null
  const pageaddr = Number(hdr.readBigUInt64LE(8))
  if (c.firstPage && pageaddr !== c.pageLsn) {
    const holds = walFileName(c.pgTimeLineId, BigInt(Math.floor(pageaddr / c.segmentSizeBytes)), c.segmentSizeBytes)
    throw new UsageError(
      'WAL_UNEXPECTED_FIRST_PAGE',
      `${c.path}: the first page read, expected at ${at}, has page address ${formatLsn(BigInt(pageaddr))} (it belongs to segment ${holds})`,
      {
        hint:
          'The file is not the segment its name says (rename a copied segment back to its original name), or it is an old ' +
          'segment PostgreSQL recycled, which holds no WAL at this position: pass the segments that do, or start within valid WAL.',
        details: { path: c.path, expectedLsn: at, pageAddress: formatLsn(BigInt(pageaddr)) },
      },
    )
  }
  if (pageaddr < c.pageLsn) return { reason: 'recycled-page', message: `recycled WAL page at ${at} (page address ${formatLsn(BigInt(pageaddr))})` }
  return null
}
