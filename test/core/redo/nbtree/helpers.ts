/**
 * Test helpers for B-tree redo units: index tuples and btree pages built straight from bytes (no code
 * under test), and readers for what redo left on a page.
 */

export const align8 = (n: number): number => Math.ceil(n / 8) * 8

export type Tid = [block: number, offset: number]

function writeTid(buf: Buffer, at: number, [blk, off]: Tid): void {
  buf.writeUInt16LE((blk >>> 16) & 0xffff, at)
  buf.writeUInt16LE(blk & 0xffff, at + 2)
  buf.writeUInt16LE(off, at + 4)
}

export function readTid(buf: Buffer, at: number): Tid {
  return [((buf.readUInt16LE(at) << 16) | buf.readUInt16LE(at + 2)) >>> 0, buf.readUInt16LE(at + 4)]
}

/** A plain leaf tuple: 8-byte header (t_tid, t_info = size) + an 8-byte key `key` (int8 LE). */
export function plainTuple(key: number, tid: Tid): Buffer {
  const b = Buffer.alloc(16)
  writeTid(b, 0, tid)
  b.writeUInt16LE(16, 6)
  b.writeBigInt64LE(BigInt(key), 8)
  return b
}

/** A posting tuple: key at 8..16, TIDs from 16, size MAXALIGN(16 + 6n), t_tid = (16, 0x2000 | n). */
export function postingTuple(key: number, tids: Tid[]): Buffer {
  const size = align8(16 + 6 * tids.length)
  const b = Buffer.alloc(size)
  writeTid(b, 0, [16, 0x2000 | tids.length])
  b.writeUInt16LE(size | 0x2000, 6)
  b.writeBigInt64LE(BigInt(key), 8)
  tids.forEach((t, i) => writeTid(b, 16 + 6 * i, t))
  return b
}

/** A pivot (high key or downlink): key, t_tid block = downlink, offset = 1 key attribute. */
export function pivotTuple(key: number, downlink: number): Buffer {
  const b = Buffer.alloc(16)
  writeTid(b, 0, [downlink, 1])
  b.writeUInt16LE(16 | 0x2000, 6)
  b.writeBigInt64LE(BigInt(key), 8)
  return b
}

export function postingTids(tup: Buffer): Tid[] {
  const n = tup.readUInt16LE(4) & 0x0fff
  const off = readTid(tup, 0)[0]
  return Array.from({ length: n }, (_, i) => readTid(tup, off + 6 * i))
}

export interface BtPageSpec {
  prev?: number
  next?: number
  level?: number
  flags?: number
  items: Buffer[]
}

/**
 * A btree page as PostgreSQL builds one by PageAddItem in item order: items packed down from pd_special
 * (8176), each at an 8-aligned offset with lp_len = its length.
 */
export function btPage(spec: BtPageSpec): Buffer {
  const p = Buffer.alloc(8192)
  const special = 8192 - 16
  let upper = special
  spec.items.forEach((it, i) => {
    upper -= align8(it.length)
    it.copy(p, upper)
    p.writeUInt32LE((upper | (1 << 15) | (it.length << 17)) >>> 0, 24 + 4 * i)
  })
  p.writeUInt16LE(24 + 4 * spec.items.length, 12)
  p.writeUInt16LE(upper, 14)
  p.writeUInt16LE(special, 16)
  p.writeUInt16LE(0x2004, 18)
  p.writeUInt32LE(spec.prev ?? 0, special)
  p.writeUInt32LE(spec.next ?? 0, special + 4)
  p.writeUInt32LE(spec.level ?? 0, special + 8)
  p.writeUInt16LE(spec.flags ?? 1, special + 12)
  return p
}

export interface PageItem {
  off: number
  flags: number
  len: number
  data: Buffer
}

export function pageItems(p: Buffer): PageItem[] {
  const n = (p.readUInt16LE(12) - 24) / 4
  return Array.from({ length: n }, (_, i) => {
    const raw = p.readUInt32LE(24 + 4 * i)
    const off = raw & 0x7fff
    const len = raw >>> 17
    return { off, flags: (raw >>> 15) & 3, len, data: Buffer.from(p.subarray(off, off + len)) }
  })
}

export function opaque(p: Buffer): { prev: number; next: number; level: number; flags: number; cycleid: number } {
  const s = p.readUInt16LE(16)
  return { prev: p.readUInt32LE(s), next: p.readUInt32LE(s + 4), level: p.readUInt32LE(s + 8), flags: p.readUInt16LE(s + 12), cycleid: p.readUInt16LE(s + 14) }
}

export function header(p: Buffer): { lsnHi: number; lsnLo: number; lower: number; upper: number; special: number } {
  return { lsnHi: p.readUInt32LE(0), lsnLo: p.readUInt32LE(4), lower: p.readUInt16LE(12), upper: p.readUInt16LE(14), special: p.readUInt16LE(16) }
}
