/**
 * WAL page headers and segment geometry (PostgreSQL 15, src/include/access/xlog_internal.h).
 *
 * Every 8 KiB WAL page starts with a 24-byte short header; the first page of each segment has a 40-byte
 * long header that adds the system identifier, the segment size and the WAL block size:
 *   0 xlp_magic u16 (0xD110) | 2 xlp_info u16 | 4 xlp_tli u32 | 8 xlp_pageaddr u64 | 16 xlp_rem_len u32 | 20 pad
 *   24 xlp_sysid u64 | 32 xlp_seg_size u32 | 36 xlp_xlog_blcksz u32            (long header only)
 * Page headers are not covered by any CRC, so they are validated field by field.
 */
import { CorruptionError } from '../lib/errors.js'
import { formatLsn, type Lsn } from './lsn.js'

export const XLOG_PAGE_MAGIC = 0xd110
export const XLOG_BLCKSZ = 8192
export const SizeOfXLogShortPHD = 24
export const SizeOfXLogLongPHD = 40
export const DEFAULT_WAL_SEGMENT_SIZE = 16 * 1024 * 1024

export const XLP_FIRST_IS_CONTRECORD = 0x0001
export const XLP_LONG_HEADER = 0x0002
export const XLP_BKP_REMOVABLE = 0x0004
export const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008
export const XLP_ALL_FLAGS = 0x000f

export interface WalPageHeader {
  readonly xlp_magic: number
  readonly xlp_info: number
  readonly xlp_tli: number
  readonly xlp_pageaddr: number
  readonly xlp_rem_len: number
  /** Present on long headers. */
  readonly xlp_sysid?: bigint
  readonly xlp_seg_size?: number
  readonly xlp_xlog_blcksz?: number
  readonly size: number
}

/** Header size announced by a page's xlp_info (needs only the first 4 bytes). */
export function pageHeaderSize(info: number): number {
  return info & XLP_LONG_HEADER ? SizeOfXLogLongPHD : SizeOfXLogShortPHD
}

function pageError(message: string, pageLsn: number, code = 'WAL_BAD_PAGE_HEADER', details: Record<string, unknown> = {}): CorruptionError {
  return new CorruptionError(code, `${message} in WAL page at ${formatLsn(BigInt(pageLsn))}`, {
    hint: 'The WAL is corrupt, from another PostgreSQL major version, or not contiguous with what came before.',
    details: { pageLsn: formatLsn(BigInt(pageLsn)), ...details },
  })
}

/**
 * Parses and validates the page header at `buf[off..]` for the page at `pageLsn`, as
 * XLogReaderValidatePageHeader does. `segSize` is the expected segment size; `sysid`, when known, must
 * match long headers.
 */
export function parsePageHeader(buf: Buffer, off: number, pageLsn: number, segSize: number, sysid: bigint | null): WalPageHeader {
  const magic = buf.readUInt16LE(off)
  if (magic !== XLOG_PAGE_MAGIC) {
    throw pageError(
      `invalid magic number ${magic.toString(16).toUpperCase().padStart(4, '0')} (PostgreSQL 15 writes D110)`,
      pageLsn,
      'WAL_BAD_MAGIC',
      { magic },
    )
  }
  const info = buf.readUInt16LE(off + 2)
  if ((info & ~XLP_ALL_FLAGS) !== 0) throw pageError(`invalid info bits ${info.toString(16)}`, pageLsn)
  const tli = buf.readUInt32LE(off + 4)
  const pageaddr = buf.readUInt32LE(off + 8) + buf.readUInt32LE(off + 12) * 0x1_0000_0000
  const remLen = buf.readUInt32LE(off + 16)
  const segOffset = pageLsn % segSize
  let sysidOut: bigint | undefined
  let segSizeOut: number | undefined
  let blcksz: number | undefined
  if (info & XLP_LONG_HEADER) {
    sysidOut = buf.readBigUInt64LE(off + 24)
    segSizeOut = buf.readUInt32LE(off + 32)
    blcksz = buf.readUInt32LE(off + 36)
    if (sysid !== null && sysidOut !== sysid) {
      throw pageError(`WAL is from a different database system (system id ${sysidOut}, expected ${sysid})`, pageLsn, 'WAL_SYSTEM_ID_MISMATCH')
    }
    if (segSizeOut !== segSize) throw pageError(`segment size ${segSizeOut} in the header, expected ${segSize}`, pageLsn)
    if (blcksz !== XLOG_BLCKSZ) throw pageError(`WAL block size ${blcksz} in the header, expected ${XLOG_BLCKSZ}`, pageLsn)
  } else if (segOffset === 0) {
    throw pageError('first page of a segment has no long header', pageLsn)
  }
  if (pageaddr !== pageLsn) {
    throw pageError(`unexpected page address ${formatLsn(BigInt(pageaddr))}`, pageLsn, 'WAL_BAD_PAGE_ADDRESS')
  }
  return {
    xlp_magic: magic,
    xlp_info: info,
    xlp_tli: tli,
    xlp_pageaddr: pageaddr,
    xlp_rem_len: remLen,
    xlp_sysid: sysidOut,
    xlp_seg_size: segSizeOut,
    xlp_xlog_blcksz: blcksz,
    size: pageHeaderSize(info),
  }
}

/** Segment number holding `lsn`. */
export function segmentNumber(lsn: Lsn | bigint, segSize = DEFAULT_WAL_SEGMENT_SIZE): bigint {
  return BigInt(lsn) / BigInt(segSize)
}

/** "000000010000000000000003": timeline, then the segment number split in two 8-digit halves. */
export function walFileName(tli: number, segno: bigint, segSize = DEFAULT_WAL_SEGMENT_SIZE): string {
  const perId = 0x1_0000_0000n / BigInt(segSize)
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0')
  return hex(tli) + hex(segno / perId) + hex(segno % perId)
}

/** Parses a WAL segment file name into timeline and segment number; null if it is not one. */
export function parseWalFileName(name: string, segSize = DEFAULT_WAL_SEGMENT_SIZE): { tli: number; segno: bigint } | null {
  const m = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/.exec(name)
  if (!m) return null
  const perId = 0x1_0000_0000n / BigInt(segSize)
  const lo = BigInt('0x' + m[3])
  if (lo >= perId) return null
  return { tli: walFileTimeline(name), segno: BigInt('0x' + m[2]) * perId + lo }
}

/** The timeline of a segment file name (its first 8 hex digits), known before the segment size is. */
export function walFileTimeline(name: string): number {
  return parseInt(name.slice(0, 8), 16)
}
