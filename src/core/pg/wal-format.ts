/**
 * How a decoded WAL record is shown to people and scripts: one JSON object, or one text line.
 *
 * The JSON fields are a contract (scripts rely on them, `wal dump --json` and `wal receive --json` both
 * print them): lsn, endLsn, prevLsn ("X/X"), rmgr, type (as pg_waldump names them), xid, totalLength,
 * mainDataLength, blocks [{id, rel "spc/db/rel", fork, blk, image, apply, willInit, holeOffset, holeLength,
 * compression}]. Add fields at the end; never rename one.
 *
 * The text line follows pg_waldump's so operators recognise it: the same "rmgr: %-11s len (rec/tot):
 * %6u/%6u, tx: %10u, lsn: %X/%08X, prev %X/%08X, desc: TYPE" opening (rec = total minus stored image
 * bytes), then what pg_waldump does not print: the end LSN and the main-data length. Block references come
 * on the same line, in pg_waldump's --bkp-details wording ("blkref #0: rel 1663/5/16384 fork main blk 0
 * (FPW); hole: offset: 236, length: 5100, method: lz4"), plus "will-init" where set. We do not print
 * rm_desc's decoded main data: that needs a parser per record type.
 */
import { formatLsn, type Lsn } from './lsn.js'
import { forkName, formatRelFileNode } from './reltag.js'
import { rmgrName } from './rmgr.js'
import { recordTypeName } from './rmgr-identify.js'
import type { ImageCompression } from './wal-compression.js'
import type { DecodedBlock, DecodedRecord } from './wal-record.js'

export interface WalBlockJson {
  id: number
  rel: string
  fork: string
  blk: number
  image: boolean
  apply: boolean
  willInit: boolean
  holeOffset: number
  holeLength: number
  compression: ImageCompression
}

export interface WalRecordJson {
  lsn: string
  endLsn: string
  prevLsn: string
  rmgr: string
  type: string
  xid: number
  totalLength: number
  mainDataLength: number
  blocks: WalBlockJson[]
}

export function blockToJson(b: DecodedBlock): WalBlockJson {
  return {
    id: b.id,
    rel: formatRelFileNode(b.rel),
    fork: forkName(b.forkNum),
    blk: b.blkno,
    image: b.hasImage,
    apply: b.applyImage,
    willInit: b.willInit,
    holeOffset: b.holeOffset,
    holeLength: b.holeLength,
    compression: b.compression,
  }
}

export function recordToJson(rec: DecodedRecord): WalRecordJson {
  const blocks: WalBlockJson[] = new Array(rec.blocks.length)
  for (let i = 0; i < rec.blocks.length; i++) blocks[i] = blockToJson(rec.blocks[i]!)
  return {
    lsn: formatLsn(rec.lsn),
    endLsn: formatLsn(rec.endLsn),
    prevLsn: formatLsn(rec.xl_prev),
    rmgr: rmgrName(rec.xl_rmid),
    type: recordTypeName(rec.xl_rmid, rec.xl_info),
    xid: rec.xl_xid,
    totalLength: rec.xl_tot_len,
    mainDataLength: rec.mainDataLength,
    blocks,
  }
}

/** "0/01A2B3C8": pg_waldump's %X/%08X, so columns line up as operators are used to. */
export function formatLsnPadded(l: Lsn | bigint): string {
  const hi = Number(BigInt(l) >> 32n)
  const lo = Number(BigInt(l) & 0xffff_ffffn)
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase().padStart(8, '0')}`
}

/** Bytes of stored (possibly compressed) images in the record: pg_waldump's fpi_len. */
export function recordImageBytes(rec: DecodedRecord): number {
  let n = 0
  for (const b of rec.blocks) if (b.hasImage) n += b.bimgLen
  return n
}

function formatBlock(b: DecodedBlock): string {
  let s = `blkref #${b.id}: rel ${formatRelFileNode(b.rel)} fork ${forkName(b.forkNum)} blk ${b.blkno}`
  if (b.willInit) s += ' will-init'
  if (b.hasImage) {
    s += b.applyImage ? ' (FPW)' : ' (FPW for WAL verification)'
    s += `; hole: offset: ${b.holeOffset}, length: ${b.holeLength}`
    if (b.compression !== 'none') s += `, compression saved: ${8192 - b.holeLength - b.bimgLen}, method: ${b.compression}`
  }
  return s
}

/** One line per record (no trailing newline). */
export function formatRecordLine(rec: DecodedRecord): string {
  const total = rec.xl_tot_len
  const recLen = total - recordImageBytes(rec)
  let s =
    `rmgr: ${rmgrName(rec.xl_rmid).padEnd(11)} len (rec/tot): ${String(recLen).padStart(6)}/${String(total).padStart(6)}, ` +
    `tx: ${String(rec.xl_xid).padStart(10)}, lsn: ${formatLsnPadded(rec.lsn)}, prev ${formatLsnPadded(rec.xl_prev)}, ` +
    `end: ${formatLsnPadded(rec.endLsn)}, desc: ${recordTypeName(rec.xl_rmid, rec.xl_info)}, main: ${rec.mainDataLength}`
  for (const b of rec.blocks) s += ', ' + formatBlock(b)
  return s
}
