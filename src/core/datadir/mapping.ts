/**
 * The mapping between PostgreSQL objects and keys: the only module that knows what key fields mean.
 *
 * Neon's layout (field1 | field2 | field3 | field4 | field5 | field6):
 *   DbDir              00 | 0       | 0      | 0       | 0    | 0
 *   relmap file        00 | spc     | db     | 0       | 0    | 0
 *   RelDir             00 | spc     | db     | 0       | 0    | 1
 *   relation block     00 | spc     | db     | relnode | fork | blkno
 *   relation size      00 | spc     | db     | relnode | fork | FFFFFFFF
 *   SLRU dir           01 | kind    | 0      | 0       | 0    | 0
 *   SLRU block         01 | kind    | 1      | segno   | 0    | page in segment
 *   SLRU segment size  01 | kind    | 1      | segno   | 0    | FFFFFFFF
 *   TwoPhaseDir        02 | 0       | 0      | 0       | 0    | 0
 *   two-phase file     02 | 0       | 0      | 0       | 0    | xid
 *   pg_control         03 | 0       | 0      | 0       | 0    | 0
 *   CheckPoint         03 | 0       | 0      | 0       | 0    | 1
 * SLRU kinds: 0 pg_xact, 1 pg_multixact/members, 2 pg_multixact/offsets. Relation blocks are the only keys
 * whose values are page versions rebuilt by redo (with SLRU blocks); every other value is an image: a whole
 * directory, a size, a file.
 *
 * Directory values use a compact encoding of our own (sorted entries, u32 count, little-endian), sizes are
 * u32 little-endian block counts as in Neon.
 */
import { CorruptionError } from '../lib/errors.js'
import { keyFields, keyFromFields, keyFromPrefix, keyPrefixFromFields, type Key, type KeyRange } from '../model/key.js'
import { forkName, type BufferTag, type RelTag } from '../pg/reltag.js'
import { SLRU_DIRS, SLRU_PAGES_PER_SEGMENT, SlruKind, slruSegmentName, type SlruKindFork } from '../pg/slru.js'

const ALL_ONES = 0xffff_ffff

// --- SLRU kinds: Neon's key numbering <-> our redo pseudo-forks ---
const SLRU_KIND_TO_FIELD: Readonly<Record<SlruKindFork, number>> = {
  [SlruKind.Clog]: 0,
  [SlruKind.MultixactMembers]: 1,
  [SlruKind.MultixactOffsets]: 2,
}
const FIELD_TO_SLRU_KIND: readonly SlruKindFork[] = [SlruKind.Clog, SlruKind.MultixactMembers, SlruKind.MultixactOffsets]

export function slruKindField(kind: SlruKindFork): number {
  return SLRU_KIND_TO_FIELD[kind]
}

export function slruKindFromField(field: number): SlruKindFork {
  const k = FIELD_TO_SLRU_KIND[field]
  if (k === undefined) throw new CorruptionError('BAD_SLRU_KIND', `unknown SLRU kind ${field}`)
  return k
}

// --- keys ---
export function dbDirKey(): Key {
  return keyFromFields({ field1: 0, field2: 0, field3: 0, field4: 0, field5: 0, field6: 0 })
}

export function relmapFileKey(spcNode: number, dbNode: number): Key {
  return keyFromFields({ field1: 0, field2: spcNode, field3: dbNode, field4: 0, field5: 0, field6: 0 })
}

/**
 * Relation directory keys of recently used databases, direct-mapped: every GetPage looks one up (does the
 * relation exist), and the same string each time is a map lookup with its hash already computed.
 */
const REL_DIR_SLOTS = 64
const relDirFields = new Float64Array(REL_DIR_SLOTS * 2).fill(-1)
const relDirText: string[] = new Array<string>(REL_DIR_SLOTS).fill('')

export function relDirKey(spcNode: number, dbNode: number): Key {
  const slot = (dbNode ^ (spcNode << 2)) & (REL_DIR_SLOTS - 1)
  if (relDirFields[slot * 2] === spcNode && relDirFields[slot * 2 + 1] === dbNode) return relDirText[slot] as Key
  const key = keyFromFields({ field1: 0, field2: spcNode, field3: dbNode, field4: 0, field5: 0, field6: 1 })
  relDirFields[slot * 2] = spcNode
  relDirFields[slot * 2 + 1] = dbNode
  relDirText[slot] = key
  return key
}

/**
 * Relation key prefixes (field1..field5) of recently used relation forks, direct-mapped. Ingest builds a
 * block key for every page version it stores, nearly always in a handful of hot relations: a hit costs four
 * integer compares instead of 28 hex digits (the whole key then costs ~70 ns instead of ~500 ns). The slot
 * also keeps the fork's size key, built on first use: every GetPage looks it up. A deterministic cache of a
 * pure function; a collision only evicts.
 */
const REL_PREFIX_SLOTS = 256
const relPrefixFields = new Float64Array(REL_PREFIX_SLOTS * 4).fill(-1)
const relPrefixText: string[] = new Array<string>(REL_PREFIX_SLOTS).fill('')
const relSizeText: string[] = new Array<string>(REL_PREFIX_SLOTS).fill('')

/** The prefix slot of `rel`, filled with its prefix (and no size key yet) if it held another fork. */
function relPrefixSlot(rel: RelTag): number {
  const slot = ((rel.relNode ^ (rel.dbNode << 3)) + rel.forkNum) & (REL_PREFIX_SLOTS - 1)
  const i = slot * 4
  const f = relPrefixFields
  if (f[i] === rel.relNode && f[i + 1] === rel.dbNode && f[i + 2] === rel.spcNode && f[i + 3] === rel.forkNum) return slot
  relPrefixText[slot] = keyPrefixFromFields(0, rel.spcNode, rel.dbNode, rel.relNode, rel.forkNum)
  relSizeText[slot] = ''
  f[i] = rel.relNode
  f[i + 1] = rel.dbNode
  f[i + 2] = rel.spcNode
  f[i + 3] = rel.forkNum
  return slot
}

/** The 28 hex digits shared by every block key and the size key of a relation fork (a stable string per fork). */
export function relKeyPrefix(rel: RelTag): string {
  return relPrefixText[relPrefixSlot(rel)]!
}

export function relBlockKey(rel: RelTag, blkno: number): Key {
  return keyFromPrefix(relKeyPrefix(rel), blkno)
}

/**
 * Block keys of recently served pages, direct-mapped by (relation prefix slot, block): relBlockKey giving the
 * same string object for a block asked again, so the page cache's lookup finds its hash computed and the
 * stored key identical (a fresh 36-character key is flattened and hashed on every lookup: ~1.8 µs per GetPage
 * in a profile of the page service). A slot holds the key only with the prefix it was built from: a
 * relation that took over the prefix slot, or another block, is a miss and rebuilds. For the GetPage path;
 * scans (import, basebackup) use relBlockKey and leave these slots to the hot pages.
 */
const BLOCK_KEY_SLOTS_LOG2 = 14
const blockKeyPrefix: string[] = new Array<string>(1 << BLOCK_KEY_SLOTS_LOG2).fill('')
const blockKeyBlock = new Float64Array(1 << BLOCK_KEY_SLOTS_LOG2).fill(-1)
const blockKeyText: string[] = new Array<string>(1 << BLOCK_KEY_SLOTS_LOG2).fill('')

export function relBlockKeyCached(rel: RelTag, blkno: number): Key {
  const ps = relPrefixSlot(rel)
  const prefix = relPrefixText[ps]!
  const slot = (Math.imul(blkno, 0x9e3779b1) ^ Math.imul(ps + 1, 0x85ebca6b)) >>> (32 - BLOCK_KEY_SLOTS_LOG2)
  if (blockKeyBlock[slot] === blkno && blockKeyPrefix[slot] === prefix) return blockKeyText[slot] as Key
  const key = keyFromPrefix(prefix, blkno)
  blockKeyPrefix[slot] = prefix
  blockKeyBlock[slot] = blkno
  blockKeyText[slot] = key
  return key
}

export function relSizeKey(rel: RelTag): Key {
  const slot = relPrefixSlot(rel)
  let key = relSizeText[slot]!
  if (key === '') relSizeText[slot] = key = keyFromPrefix(relPrefixText[slot]!, ALL_ONES)
  return key as Key
}

export function slruDirKey(kind: SlruKindFork): Key {
  return keyFromFields({ field1: 1, field2: slruKindField(kind), field3: 0, field4: 0, field5: 0, field6: 0 })
}

export function slruBlockKey(kind: SlruKindFork, segno: number, pageInSegment: number): Key {
  return keyFromFields({ field1: 1, field2: slruKindField(kind), field3: 1, field4: segno, field5: 0, field6: pageInSegment })
}

export function slruSegmentSizeKey(kind: SlruKindFork, segno: number): Key {
  return keyFromFields({ field1: 1, field2: slruKindField(kind), field3: 1, field4: segno, field5: 0, field6: ALL_ONES })
}

export function twoPhaseDirKey(): Key {
  return keyFromFields({ field1: 2, field2: 0, field3: 0, field4: 0, field5: 0, field6: 0 })
}

export function twoPhaseFileKey(xid: number): Key {
  return keyFromFields({ field1: 2, field2: 0, field3: 0, field4: 0, field5: 0, field6: xid })
}

export function controlFileKey(): Key {
  return keyFromFields({ field1: 3, field2: 0, field3: 0, field4: 0, field5: 0, field6: 0 })
}

export function checkpointKey(): Key {
  return keyFromFields({ field1: 3, field2: 0, field3: 0, field4: 0, field5: 0, field6: 1 })
}

/** All keys of one relation fork: its blocks and its size key (which sorts right after the last block). */
export function relKeyRange(rel: RelTag): KeyRange {
  return {
    start: relBlockKey(rel, 0),
    end: keyFromFields({ field1: 0, field2: rel.spcNode, field3: rel.dbNode, field4: rel.relNode, field5: rel.forkNum + 1, field6: 0 }),
  }
}

// --- classification and conversion to redo targets ---
export function isRelBlockKey(k: Key): boolean {
  const f = keyFields(k)
  return f.field1 === 0 && f.field4 !== 0 && f.field6 !== ALL_ONES
}

export function isSlruBlockKey(k: Key): boolean {
  const f = keyFields(k)
  return f.field1 === 1 && f.field3 === 1 && f.field6 !== ALL_ONES
}

/** The redo target of a page key (relation block, or SLRU page as a pseudo-fork tag); null for other keys. */
export function keyToBufferTag(k: Key): BufferTag | null {
  const f = keyFields(k)
  if (f.field1 === 0 && f.field4 !== 0 && f.field6 !== ALL_ONES) {
    return { spcNode: f.field2, dbNode: f.field3, relNode: f.field4, forkNum: f.field5, blkno: f.field6 }
  }
  if (f.field1 === 1 && f.field3 === 1 && f.field6 !== ALL_ONES) {
    return { spcNode: 0, dbNode: 0, relNode: 0, forkNum: slruKindFromField(f.field2), blkno: f.field4 * SLRU_PAGES_PER_SEGMENT + f.field6 }
  }
  return null
}

/**
 * What a key stands for, in PostgreSQL's terms, for people reading dumps: "rel 1663/5/16397 main blk 1",
 * "pg_xact 0000 page 3", "relation directory of 1663/5", ...; the key itself for a key no rule here makes.
 */
export function describeKey(k: Key): string {
  const f = keyFields(k)
  const rel = `${f.field2}/${f.field3}/${f.field4}`
  if (f.field1 === 0) {
    if (f.field4 !== 0) return f.field6 === ALL_ONES ? `rel ${rel} ${forkName(f.field5)} size` : `rel ${rel} ${forkName(f.field5)} blk ${f.field6}`
    if (f.field2 === 0 && f.field3 === 0 && f.field6 === 0) return 'database directory'
    if (f.field6 === 0) return `relmap of ${f.field2}/${f.field3}`
    if (f.field6 === 1) return `relation directory of ${f.field2}/${f.field3}`
  }
  const slru = f.field1 === 1 ? FIELD_TO_SLRU_KIND[f.field2] : undefined
  if (slru !== undefined) {
    const dir = SLRU_DIRS[slru]
    if (f.field3 === 0) return `${dir} segments`
    return f.field6 === ALL_ONES ? `${dir} ${slruSegmentName(f.field4)} size` : `${dir} ${slruSegmentName(f.field4)} page ${f.field6}`
  }
  if (f.field1 === 2) return f.field6 === 0 ? 'two-phase directory' : `two-phase state of xid ${f.field6}`
  if (f.field1 === 3 && f.field6 === 0) return 'pg_control'
  if (f.field1 === 3 && f.field6 === 1) return 'checkpoint'
  return k
}

/** The key of a redo target: a relation block, or an SLRU page named by its pseudo-fork. */
export function bufferTagToKey(tag: BufferTag): Key {
  if (tag.forkNum >= SlruKind.Clog) {
    const segno = Math.floor(tag.blkno / SLRU_PAGES_PER_SEGMENT)
    return slruBlockKey(tag.forkNum as SlruKindFork, segno, tag.blkno % SLRU_PAGES_PER_SEGMENT)
  }
  return relBlockKey(tag, tag.blkno)
}

// --- value encodings ---
export function encodeBlockCount(n: number): Buffer {
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32LE(n, 0)
  return b
}

export function decodeBlockCount(b: Buffer, what = 'size'): number {
  if (b.length !== 4) throw new CorruptionError('BAD_SIZE_VALUE', `${what} value has ${b.length} bytes, expected 4`)
  return b.readUInt32LE(0)
}

export interface DbDirEntry {
  spcNode: number
  dbNode: number
  hasRelmap: boolean
}

/** DbDir: u32 count, then per database spc u32, db u32, hasRelmap u8 (sorted by spc, db). */
export function encodeDbDir(entries: Iterable<DbDirEntry>): Buffer {
  const list = [...entries].sort((a, b) => a.spcNode - b.spcNode || a.dbNode - b.dbNode)
  const out = Buffer.allocUnsafe(4 + list.length * 9)
  out.writeUInt32LE(list.length, 0)
  let p = 4
  for (const e of list) {
    out.writeUInt32LE(e.spcNode, p)
    out.writeUInt32LE(e.dbNode, p + 4)
    out[p + 8] = e.hasRelmap ? 1 : 0
    p += 9
  }
  return out
}

export function decodeDbDir(b: Buffer): DbDirEntry[] {
  const n = countOf(b, 9, 'database directory')
  const out: DbDirEntry[] = []
  for (let i = 0, p = 4; i < n; i++, p += 9) out.push({ spcNode: b.readUInt32LE(p), dbNode: b.readUInt32LE(p + 4), hasRelmap: b[p + 8] === 1 })
  return out
}

export interface RelDirEntry {
  relNode: number
  forkNum: number
}

/** RelDir: u32 count, then per relation fork relnode u32, fork u8 (sorted). */
export function encodeRelDir(entries: Iterable<RelDirEntry>): Buffer {
  const list = [...entries].sort((a, b) => a.relNode - b.relNode || a.forkNum - b.forkNum)
  const out = Buffer.allocUnsafe(4 + list.length * 5)
  out.writeUInt32LE(list.length, 0)
  let p = 4
  for (const e of list) {
    out.writeUInt32LE(e.relNode, p)
    out[p + 4] = e.forkNum
    p += 5
  }
  return out
}

export function decodeRelDir(b: Buffer): RelDirEntry[] {
  const n = countOf(b, 5, 'relation directory')
  const out: RelDirEntry[] = []
  for (let i = 0, p = 4; i < n; i++, p += 5) out.push({ relNode: b.readUInt32LE(p), forkNum: b[p + 4]! })
  return out
}

/** A set of u32 (SLRU segment numbers, two-phase xids): u32 count then sorted values. */
export function encodeU32Set(values: Iterable<number>): Buffer {
  const list = [...new Set(values)].sort((a, b) => a - b)
  const out = Buffer.allocUnsafe(4 + list.length * 4)
  out.writeUInt32LE(list.length, 0)
  for (let i = 0; i < list.length; i++) out.writeUInt32LE(list[i]!, 4 + i * 4)
  return out
}

export function decodeU32Set(b: Buffer, what = 'set'): number[] {
  const n = countOf(b, 4, what)
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(b.readUInt32LE(4 + i * 4))
  return out
}

function countOf(b: Buffer, entryBytes: number, what: string): number {
  if (b.length < 4) throw new CorruptionError('BAD_DIRECTORY_VALUE', `${what} value is truncated`)
  const n = b.readUInt32LE(0)
  if (b.length !== 4 + n * entryBytes) {
    throw new CorruptionError('BAD_DIRECTORY_VALUE', `${what} value has ${b.length} bytes for ${n} entries`)
  }
  return n
}
