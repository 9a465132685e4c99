/**
 * Builds PostgreSQL 15 WAL records by hand (header, block references, main data, CRC) for unit tests of
 * redo routines, independently of any encoder in src/. Only what heap tests need: no images, no origin.
 */
import { crc32c } from '../../../../src/core/lib/crc32c.js'
import type { RelFileNode } from '../../../../src/core/pg/reltag.js'

export interface BlockSpec {
  id: number
  rel: RelFileNode
  fork: number
  blkno: number
  data?: Buffer
  willInit?: boolean
}

export interface RecordSpec {
  rmid: number
  info: number
  xid: number
  blocks?: BlockSpec[]
  main?: Buffer
}

export function buildRecord(spec: RecordSpec): Buffer {
  const headers: Buffer[] = []
  const payloads: Buffer[] = []
  let prev: RelFileNode | null = null
  for (const b of spec.blocks ?? []) {
    const data = b.data ?? Buffer.alloc(0)
    const same = prev !== null && prev.spcNode === b.rel.spcNode && prev.dbNode === b.rel.dbNode && prev.relNode === b.rel.relNode
    const flags = b.fork | (data.length > 0 ? 0x20 : 0) | (b.willInit ? 0x40 : 0) | (same ? 0x80 : 0)
    const h = Buffer.alloc(4 + (same ? 0 : 12) + 4)
    h[0] = b.id
    h[1] = flags
    h.writeUInt16LE(data.length, 2)
    let p = 4
    if (!same) {
      h.writeUInt32LE(b.rel.spcNode, p)
      h.writeUInt32LE(b.rel.dbNode, p + 4)
      h.writeUInt32LE(b.rel.relNode, p + 8)
      p += 12
    }
    h.writeUInt32LE(b.blkno, p)
    headers.push(h)
    payloads.push(data)
    prev = b.rel
  }
  const main = spec.main ?? Buffer.alloc(0)
  if (main.length > 0) {
    if (main.length < 256) headers.push(Buffer.from([0xff, main.length]))
    else {
      const h = Buffer.alloc(5)
      h[0] = 0xfe
      h.writeUInt32LE(main.length, 1)
      headers.push(h)
    }
    payloads.push(main)
  }
  const body = Buffer.concat([...headers, ...payloads])
  const rec = Buffer.alloc(24 + body.length)
  rec.writeUInt32LE(rec.length, 0)
  rec.writeUInt32LE(spec.xid >>> 0, 4)
  rec.writeBigUInt64LE(0n, 8)
  rec[16] = spec.info
  rec[17] = spec.rmid
  body.copy(rec, 24)
  rec.writeUInt32LE(crc32c(rec.subarray(0, 20), crc32c(rec.subarray(24))), 20)
  return rec
}

/** Little-endian struct bytes from [value, size] pairs (size 1, 2 or 4). */
export function le(...fields: Array<[number, 1 | 2 | 4]>): Buffer {
  const out = Buffer.alloc(fields.reduce((n, [, s]) => n + s, 0))
  let p = 0
  for (const [v, s] of fields) {
    if (s === 1) out.writeUInt8(v & 0xff, p)
    else if (s === 2) out.writeUInt16LE(v & 0xffff, p)
    else out.writeUInt32LE(v >>> 0, p)
    p += s
  }
  return out
}
