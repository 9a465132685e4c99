/**
 * Builds WAL record bytes by hand, from PostgreSQL 15's layout (xlogrecord.h), independently of the decoder
 * under test: header, fragment headers in writer order (blocks, origin, top-level xid, main data), then
 * payloads (per block: image, data; then main data), then the CRC over body then header.
 */
import { crc32c } from '../../../src/core/lib/crc32c.js'

export interface BlockSpec {
  id: number
  fork?: number
  rel?: { spcNode: number; dbNode: number; relNode: number }
  /** omit the RelFileNode (BKPBLOCK_SAME_REL) */
  sameRel?: boolean
  blkno: number
  willInit?: boolean
  data?: Buffer
  image?: { stored: Buffer; holeOffset: number; bimgInfo: number; holeLength?: number }
}

export interface RecordSpec {
  xid?: number
  prev?: bigint
  info?: number
  rmid?: number
  blocks?: BlockSpec[]
  origin?: number
  toplevelXid?: number
  mainData?: Buffer
  /** force the 254 (long) main-data header even for short data */
  longMainData?: boolean
}

export function buildRecord(spec: RecordSpec): Buffer {
  const headers: Buffer[] = []
  const payloads: Buffer[] = []
  for (const b of spec.blocks ?? []) {
    let flags = b.fork ?? 0
    if (b.image) flags |= 0x10
    if (b.data && b.data.length > 0) flags |= 0x20
    if (b.willInit) flags |= 0x40
    if (b.sameRel) flags |= 0x80
    const h = Buffer.alloc(4)
    h[0] = b.id
    h[1] = flags
    h.writeUInt16LE(b.data?.length ?? 0, 2)
    headers.push(h.subarray(0, 4))
    if (b.image) {
      const ih = Buffer.alloc(5)
      ih.writeUInt16LE(b.image.stored.length, 0)
      ih.writeUInt16LE(b.image.holeOffset, 2)
      ih[4] = b.image.bimgInfo
      headers.push(ih)
      const compressed = (b.image.bimgInfo & 0x1c) !== 0
      if (compressed && b.image.bimgInfo & 0x01) {
        const hl = Buffer.alloc(2)
        hl.writeUInt16LE(b.image.holeLength ?? 0, 0)
        headers.push(hl)
      }
      payloads.push(b.image.stored)
    }
    if (!b.sameRel) {
      const r = Buffer.alloc(12)
      const rel = b.rel ?? { spcNode: 1663, dbNode: 5, relNode: 16384 }
      r.writeUInt32LE(rel.spcNode, 0)
      r.writeUInt32LE(rel.dbNode, 4)
      r.writeUInt32LE(rel.relNode, 8)
      headers.push(r)
    }
    const blk = Buffer.alloc(4)
    blk.writeUInt32LE(b.blkno, 0)
    headers.push(blk)
    if (b.data && b.data.length > 0) payloads.push(b.data)
  }
  if (spec.origin !== undefined) {
    const o = Buffer.alloc(3)
    o[0] = 253
    o.writeUInt16LE(spec.origin, 1)
    headers.push(o)
  }
  if (spec.toplevelXid !== undefined) {
    const t = Buffer.alloc(5)
    t[0] = 252
    t.writeUInt32LE(spec.toplevelXid, 1)
    headers.push(t)
  }
  const main = spec.mainData ?? Buffer.alloc(0)
  if (main.length > 0) {
    if (main.length < 256 && !spec.longMainData) {
      headers.push(Buffer.from([255, main.length]))
    } else {
      const m = Buffer.alloc(5)
      m[0] = 254
      m.writeUInt32LE(main.length, 1)
      headers.push(m)
    }
    payloads.push(main)
  }
  const body = Buffer.concat([...headers, ...payloads])
  const rec = Buffer.alloc(24 + body.length)
  rec.writeUInt32LE(rec.length, 0)
  rec.writeUInt32LE(spec.xid ?? 0, 4)
  rec.writeBigUInt64LE(spec.prev ?? 0n, 8)
  rec[16] = spec.info ?? 0
  rec[17] = spec.rmid ?? 10
  body.copy(rec, 24)
  return fixCrc(rec)
}

/** Recomputes xl_crc after a test edited the record. */
export function fixCrc(rec: Buffer): Buffer {
  rec.writeUInt32LE(crc32c(rec.subarray(0, 20), crc32c(rec.subarray(24))), 20)
  return rec
}
