/**
 * Hand-built WAL records with uncompressed, hole-less block images, for unit tests of the verifier: enough
 * of the PostgreSQL 15 record layout (header, block headers with XLogRecordBlockImageHeader, payloads, main
 * data, CRC), built independently of the decoder under test, then decoded with it.
 */
import { crc32c } from '../../../src/core/lib/crc32c.js'
import { lsn as toLsn } from '../../../src/core/pg/lsn.js'
import type { RelFileNode } from '../../../src/core/pg/reltag.js'
import { decodeRecord, type DecodedRecord } from '../../../src/core/pg/wal-record.js'
import { pageAddItemExtended } from '../../../src/core/redo/page/bufpage.js'
import { pageInit } from '../../../src/core/redo/page/page.js'

export const REL: RelFileNode = { spcNode: 1663, dbNode: 5, relNode: 16384 }

export interface ImageBlockSpec {
  id: number
  blkno: number
  fork?: number
  /** An 8192-byte image (stored whole: no hole, no compression). */
  image?: Buffer
  /** BKPIMAGE_APPLY: a real full-page write. */
  apply?: boolean
  willInit?: boolean
  data?: Buffer
}

export interface ImageRecordSpec {
  rmid: number
  info: number
  xid?: number
  blocks: ImageBlockSpec[]
  main?: Buffer
  /** Set XLR_CHECK_CONSISTENCY (default true). */
  checking?: boolean
}

export function buildImageRecord(spec: ImageRecordSpec): Buffer {
  const headers: Buffer[] = []
  const payloads: Buffer[] = []
  for (const b of spec.blocks) {
    const data = b.data ?? Buffer.alloc(0)
    const flags = (b.fork ?? 0) | (b.image ? 0x10 : 0) | (data.length > 0 ? 0x20 : 0) | (b.willInit ? 0x40 : 0)
    const h = Buffer.alloc(4 + (b.image ? 5 : 0) + 12 + 4)
    h[0] = b.id
    h[1] = flags
    h.writeUInt16LE(data.length, 2)
    let p = 4
    if (b.image) {
      h.writeUInt16LE(8192, p) // bimg length
      h.writeUInt16LE(0, p + 2) // hole offset
      h[p + 4] = b.apply ? 0x02 : 0 // bimg_info
      p += 5
      payloads.push(b.image)
    }
    h.writeUInt32LE(REL.spcNode, p)
    h.writeUInt32LE(REL.dbNode, p + 4)
    h.writeUInt32LE(REL.relNode, p + 8)
    h.writeUInt32LE(b.blkno, p + 12)
    headers.push(h)
    payloads.push(data)
  }
  const main = spec.main ?? Buffer.alloc(0)
  if (main.length > 0) {
    headers.push(Buffer.from([0xff, main.length]))
    payloads.push(main)
  }
  const body = Buffer.concat([...headers, ...payloads])
  const rec = Buffer.alloc(24 + body.length)
  rec.writeUInt32LE(rec.length, 0)
  rec.writeUInt32LE((spec.xid ?? 700) >>> 0, 4)
  rec[16] = spec.info | (spec.checking === false ? 0 : 0x02)
  rec[17] = spec.rmid
  body.copy(rec, 24)
  rec.writeUInt32LE(crc32c(rec.subarray(0, 20), crc32c(rec.subarray(24))), 20)
  return rec
}

/** A record decoded at a made-up position: record `n` starts at 0/1000000 + n * 0x10000. */
export function decodedAt(n: number, raw: Buffer): DecodedRecord {
  const start = 0x1000000 + n * 0x10000
  return decodeRecord(raw, toLsn(start), toLsn(start + raw.length))
}

/** A heap page with one 64-byte tuple whose payload bytes all equal `fill`. */
export function heapPage(fill: number): Buffer {
  const page = Buffer.alloc(8192)
  pageInit(page, 0)
  const tuple = Buffer.alloc(64, fill)
  tuple.fill(0, 0, 24)
  tuple[22] = 24 // t_hoff
  pageAddItemExtended(page, tuple, tuple.length, 1, 0)
  return page
}
