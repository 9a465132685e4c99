/**
 * The on-disk format of delta and image layer files (our own; Neon's is a source of ideas only).
 * Every integer is big-endian.
 *
 *   [0, 512)                      header: identity, ranges, sizes and offsets of every region, CRC-32C
 *   [512, indexOffset)            value area: the stored values; in version 1 back to back in (key, lsn)
 *                                 order, in version 2 (L0 flushes) in the order they were put, where a
 *                                 version replaced at the same LSN leaves its bytes unreferenced
 *   [indexOffset, topOffset)      index blocks of `indexBlockBytes` each (4 KiB by default)
 *   [topOffset, fileSize)         top-level index: the first (key, lsn) of every index block
 *
 * Index block: crc32c u32 (of bytes 4..end) | entry count u16 | reserved u16 | entries | zero padding.
 * Every block but the last holds exactly `entriesPerBlock` entries. An index entry (41 bytes):
 *
 *   key [18] | lsn u64 | value offset u48 | stored length u32 | flags u8 | crc32c of the stored value u32
 *
 * flags: bit 0 will-init (so readers stop without reading the value), bit 1 LZ4-compressed. A lookup
 * binary-searches the top-level index (loaded and CRC-checked on open), reads one index block (CRC-checked
 * once, then cached), binary-searches it, then reads the value and checks its CRC. So every byte of the file
 * is covered by a CRC: header, each index block (padding included), the top-level index, each value; and the
 * header's sizes must add up to the file's size, so truncation and trailing garbage are caught on open.
 *
 * Image layers use the same layout with magic 'PSIM', LSN range [lsn, lsn+1) and every entry at that lsn.
 *
 * Compression (codec 1 = LZ4 block with a little-endian u32 size prefix, via lz4-napi): tried for values of
 * at least 256 bytes and kept only when it saves at least 1/8. Image layers use it by default, delta layers
 * not (see LayerWriterOptions.compression). Why LZ4: page images shrink by a third or more (free space,
 * zeroed holes), and decompressing 8 KiB costs about 5 µs, inside the GetPage budget; zstd would save more
 * but Node 20 has no built-in zstd and its napi package needs network access at install. Measured on the
 * 2-core VM: compressing an 8 KiB page costs 20-30 µs (about 300 MB/s), too slow for the L0 flush on the
 * ingest path, fine for image layers written by background compaction.
 */
import { compressSync, uncompressSync } from 'lz4-napi'
import { CorruptionError, UnsupportedError, assert } from '../lib/errors.js'
import { crc32c } from '../lib/crc32c.js'
import { KEY_BYTES, keyFromBytes, keyToBytes, type Key } from '../model/key.js'
import { idToBytes, type TenantId, type TimelineId } from '../model/ids.js'
import type { Lsn } from '../pg/lsn.js'
import type { LayerKind } from './layer-name.js'

export const DELTA_MAGIC = 0x5053444c // 'PSDL'
export const IMAGE_MAGIC = 0x5053494d // 'PSIM'
/** Values in (key, lsn) order, back to back. */
export const LAYER_FORMAT_VERSION = 1
/**
 * Values where the writer placed them (an L0 written slab by slab as ingest filled them: arrival order);
 * the index, as in version 1, is in (key, lsn) order and says where each value lies.
 */
export const LAYER_FORMAT_VERSION_PLACED = 2
export const HEADER_BYTES = 512
const HEADER_CRC_OFFSET = HEADER_BYTES - 4

export const INDEX_ENTRY_BYTES = 41
export const INDEX_BLOCK_HEADER_BYTES = 8
export const TOP_ENTRY_BYTES = KEY_BYTES + 8
/** Default index block: 99 entries; a cache miss reads and CRC-checks 4 KiB. */
export const INDEX_BLOCK_BYTES_DEFAULT = 4096
export const INDEX_BLOCK_BYTES_MIN = 128
export const INDEX_BLOCK_BYTES_MAX = 64 * 1024

/** A stored value is at most this large (PostgreSQL WAL records stop below 1 GiB; images are 8 KiB). */
export const LAYER_VALUE_MAX_BYTES = 1024 * 1024 * 1024
/** Entries per layer file: bounds the index a writer keeps in memory (41 bytes each). */
export const LAYER_ENTRIES_MAX = 2 ** 32 - 1
/** u48 value offsets. */
const OFFSET_MAX = 2 ** 48 - 1

export const ENTRY_FLAG_WILL_INIT = 1
export const ENTRY_FLAG_LZ4 = 2
const ENTRY_FLAGS_KNOWN = ENTRY_FLAG_WILL_INIT | ENTRY_FLAG_LZ4

export const VALUE_CODECS = { none: 0, lz4: 1 } as const
export type ValueCodec = keyof typeof VALUE_CODECS
/** Values shorter than this are stored as they are (headers and small WAL records do not compress). */
export const COMPRESS_MIN_BYTES = 256

export interface LayerHeader {
  readonly kind: LayerKind
  readonly formatVersion: number
  readonly tenantId: TenantId
  readonly timelineId: TimelineId
  readonly keyStart: Key
  readonly keyEnd: Key
  readonly lsnStart: Lsn
  readonly lsnEnd: Lsn
  readonly entryCount: number
  readonly keyCount: number
  readonly valueOffset: number
  readonly valueBytes: number
  /** Sum of the uncompressed value lengths. */
  readonly rawValueBytes: number
  readonly compressedCount: number
  readonly indexOffset: number
  readonly indexBlockBytes: number
  readonly indexBlockCount: number
  readonly topOffset: number
  readonly topBytes: number
  readonly topCrc: number
  readonly fileSize: number
  readonly codec: ValueCodec
}

export function entriesPerBlock(indexBlockBytes: number): number {
  return Math.floor((indexBlockBytes - INDEX_BLOCK_HEADER_BYTES) / INDEX_ENTRY_BYTES)
}

export function isValidIndexBlockBytes(n: number): boolean {
  return Number.isInteger(n) && n >= INDEX_BLOCK_BYTES_MIN && n <= INDEX_BLOCK_BYTES_MAX && (n & (n - 1)) === 0
}

export function encodeHeader(h: LayerHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES)
  b.writeUInt32BE(h.kind === 'delta' ? DELTA_MAGIC : IMAGE_MAGIC, 0)
  b.writeUInt16BE(h.formatVersion, 4)
  b.writeUInt16BE(HEADER_BYTES, 6)
  idToBytes(h.tenantId).copy(b, 8)
  idToBytes(h.timelineId).copy(b, 24)
  keyToBytes(h.keyStart, b, 40)
  keyToBytes(h.keyEnd, b, 58)
  b.writeBigUInt64BE(h.lsnStart, 76)
  b.writeBigUInt64BE(h.lsnEnd, 84)
  b.writeBigUInt64BE(BigInt(h.entryCount), 92)
  b.writeBigUInt64BE(BigInt(h.keyCount), 100)
  b.writeBigUInt64BE(BigInt(h.valueOffset), 108)
  b.writeBigUInt64BE(BigInt(h.valueBytes), 116)
  b.writeBigUInt64BE(BigInt(h.rawValueBytes), 124)
  b.writeBigUInt64BE(BigInt(h.compressedCount), 132)
  b.writeBigUInt64BE(BigInt(h.indexOffset), 140)
  b.writeUInt32BE(h.indexBlockBytes, 148)
  b.writeUInt32BE(h.indexBlockCount, 152)
  b.writeBigUInt64BE(BigInt(h.topOffset), 156)
  b.writeUInt32BE(h.topBytes, 164)
  b.writeUInt32BE(h.topCrc, 168)
  b.writeBigUInt64BE(BigInt(h.fileSize), 172)
  b.writeUInt8(VALUE_CODECS[h.codec], 180)
  b.writeUInt32BE(crc32c(b.subarray(0, HEADER_CRC_OFFSET)), HEADER_CRC_OFFSET)
  return b
}

/**
 * Decodes and validates a header against the file's real size: CRC, magic, version, and that every region
 * lies where the others end. `path` names the file in errors.
 */
export function decodeHeader(b: Buffer, fileSizeBytes: number, path: string): LayerHeader {
  // The magic first: a file that is not a layer at all (`layer dump` of the wrong path) is told so, whatever its size.
  const magic = b.length >= 4 ? b.readUInt32BE(0) : null
  if (magic !== null && magic !== DELTA_MAGIC && magic !== IMAGE_MAGIC) throw notALayerFile(path, magic)
  if (b.length < HEADER_BYTES) throw layerCorrupt(path, `it is ${b.length} bytes, shorter than a layer header`)
  if (crc32c(b.subarray(0, HEADER_CRC_OFFSET)) !== b.readUInt32BE(HEADER_CRC_OFFSET)) throw layerCorrupt(path, 'header checksum mismatch')
  const formatVersion = b.readUInt16BE(4)
  if (formatVersion > LAYER_FORMAT_VERSION_PLACED) {
    // The header's CRC held: a healthy file from a newer build, not damage to restore from a backup.
    throw new UnsupportedError('LAYER_FORMAT_UNSUPPORTED', `layer file ${path} has format version ${formatVersion}, newer than this build reads (${LAYER_FORMAT_VERSION} and ${LAYER_FORMAT_VERSION_PLACED})`, {
      hint: 'It was written by a newer pageserver: run that version (or a newer one) on this workdir; the file is not damaged.',
      details: { path },
    })
  }
  if (formatVersion !== LAYER_FORMAT_VERSION && formatVersion !== LAYER_FORMAT_VERSION_PLACED) {
    throw layerCorrupt(path, `format version ${formatVersion} is not one this build knows (${LAYER_FORMAT_VERSION} and ${LAYER_FORMAT_VERSION_PLACED})`)
  }
  if (b.readUInt16BE(6) !== HEADER_BYTES) throw layerCorrupt(path, `header size ${b.readUInt16BE(6)} is not ${HEADER_BYTES}`)
  const kind: LayerKind = magic === DELTA_MAGIC ? 'delta' : 'image'
  const u64 = (off: number, what: string): number => {
    const v = b.readBigUInt64BE(off)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw layerCorrupt(path, `${what} ${v} is out of range`)
    return Number(v)
  }
  const codecId = b.readUInt8(180)
  const codec = (Object.keys(VALUE_CODECS) as ValueCodec[]).find((c) => VALUE_CODECS[c] === codecId)
  if (codec === undefined) throw layerCorrupt(path, `unknown value codec ${codecId}`)
  const h: LayerHeader = {
    kind,
    formatVersion,
    tenantId: b.toString('hex', 8, 24) as TenantId,
    timelineId: b.toString('hex', 24, 40) as TimelineId,
    keyStart: keyFromBytes(b, 40),
    keyEnd: keyFromBytes(b, 58),
    lsnStart: b.readBigUInt64BE(76) as Lsn,
    lsnEnd: b.readBigUInt64BE(84) as Lsn,
    entryCount: u64(92, 'entry count'),
    keyCount: u64(100, 'key count'),
    valueOffset: u64(108, 'value offset'),
    valueBytes: u64(116, 'value bytes'),
    rawValueBytes: u64(124, 'raw value bytes'),
    compressedCount: u64(132, 'compressed count'),
    indexOffset: u64(140, 'index offset'),
    indexBlockBytes: b.readUInt32BE(148),
    indexBlockCount: b.readUInt32BE(152),
    topOffset: u64(156, 'top index offset'),
    topBytes: b.readUInt32BE(164),
    topCrc: b.readUInt32BE(168),
    fileSize: u64(172, 'file size'),
    codec,
  }
  const bad = (why: string): CorruptionError => layerCorrupt(path, why)
  if (h.keyStart >= h.keyEnd) throw bad(`empty key range ${h.keyStart}-${h.keyEnd}`)
  if (h.lsnStart >= h.lsnEnd) throw bad('empty LSN range')
  if (kind === 'image' && h.lsnEnd !== h.lsnStart + 1n) throw bad('an image layer must cover exactly one LSN')
  if (h.fileSize !== fileSizeBytes) throw bad(`header says ${h.fileSize} bytes, the file has ${fileSizeBytes} (truncated or extended)`)
  if (!isValidIndexBlockBytes(h.indexBlockBytes)) throw bad(`index block size ${h.indexBlockBytes} is invalid`)
  if (h.valueOffset !== HEADER_BYTES) throw bad(`value area starts at ${h.valueOffset}, not ${HEADER_BYTES}`)
  if (h.indexOffset !== h.valueOffset + h.valueBytes) throw bad('index does not start where the values end')
  if (h.topOffset !== h.indexOffset + h.indexBlockCount * h.indexBlockBytes) throw bad('top-level index does not start where the index blocks end')
  if (h.topBytes !== h.indexBlockCount * TOP_ENTRY_BYTES) throw bad('top-level index size does not match the block count')
  if (h.fileSize !== h.topOffset + h.topBytes) throw bad('regions do not add up to the file size')
  const per = entriesPerBlock(h.indexBlockBytes)
  const blocksNeeded = Math.ceil(h.entryCount / per)
  if (blocksNeeded !== h.indexBlockCount) throw bad(`${h.entryCount} entries need ${blocksNeeded} index blocks, header says ${h.indexBlockCount}`)
  if (h.keyCount > h.entryCount || (h.entryCount > 0 && h.keyCount === 0)) throw bad(`key count ${h.keyCount} does not fit ${h.entryCount} entries`)
  if (kind === 'image' && h.keyCount !== h.entryCount) throw bad('an image layer holds one entry per key')
  if (kind === 'image' && formatVersion !== LAYER_FORMAT_VERSION) throw bad(`an image layer has format version ${LAYER_FORMAT_VERSION}`)
  if (h.compressedCount > h.entryCount) throw bad('more compressed values than entries')
  return h
}

/**
 * Writes one index entry at `off` of `block`; `keyBytes` is the key's 18-byte form (the writer converts
 * each distinct key once, not once per version).
 */
export function writeIndexEntry(block: Buffer, off: number, keyBytes: Buffer, lsn: Lsn, valueOffset: number, storedLen: number, flags: number, valueCrc: number): void {
  assert(valueOffset <= OFFSET_MAX, 'value offset beyond u48')
  for (let i = 0; i < KEY_BYTES; i++) block[off + i] = keyBytes[i]!
  block.writeBigUInt64BE(lsn, off + 18)
  block.writeUIntBE(valueOffset, off + 26, 6)
  block.writeUInt32BE(storedLen, off + 32)
  block[off + 36] = flags
  block.writeUInt32BE(valueCrc, off + 37)
}

/** Seals an index block: entry count and CRC. */
export function sealIndexBlock(block: Buffer, count: number): void {
  block.writeUInt16BE(count, 4)
  block.writeUInt16BE(0, 6)
  block.writeUInt32BE(crc32c(block.subarray(4)), 0)
}

/** Checks an index block read from `path`: CRC, entry count, and flags and value bounds of each entry. */
export function verifyIndexBlock(block: Buffer, expectedCount: number, h: LayerHeader, blockNo: number, path: string): void {
  if (crc32c(block.subarray(4)) !== block.readUInt32BE(0)) throw layerCorrupt(path, `index block ${blockNo} checksum mismatch`)
  const count = block.readUInt16BE(4)
  if (count !== expectedCount) throw layerCorrupt(path, `index block ${blockNo} holds ${count} entries, expected ${expectedCount}`)
  const valueEnd = h.valueOffset + h.valueBytes
  for (let i = 0, off = INDEX_BLOCK_HEADER_BYTES; i < count; i++, off += INDEX_ENTRY_BYTES) {
    const vOff = block.readUIntBE(off + 26, 6)
    const len = block.readUInt32BE(off + 32)
    const flags = block[off + 36]!
    if (vOff < h.valueOffset || vOff + len > valueEnd || (flags & ~ENTRY_FLAGS_KNOWN) !== 0 || len > LAYER_VALUE_MAX_BYTES) {
      throw layerCorrupt(path, `index block ${blockNo} entry ${i} is invalid`)
    }
  }
}

/** Compresses `value` with `codec` when it pays (saves at least 1/8); returns null to store it as it is. */
export function maybeCompress(value: Buffer, codec: ValueCodec): Buffer | null {
  if (codec === 'none' || value.length < COMPRESS_MIN_BYTES) return null
  const c = compressSync(value)
  return c.length <= value.length - (value.length >> 3) ? c : null
}

/** Decompresses a stored LZ4 value (already CRC-checked); the size prefix is checked against the output. */
export function decompressValue(stored: Buffer, path: string): Buffer {
  if (stored.length < 4) throw layerCorrupt(path, 'compressed value is shorter than its size prefix')
  const rawLen = stored.readUInt32LE(0)
  if (rawLen > LAYER_VALUE_MAX_BYTES) throw layerCorrupt(path, `compressed value claims ${rawLen} bytes`)
  let out: Buffer
  try {
    out = uncompressSync(stored)
  } catch (err) {
    throw layerCorrupt(path, `compressed value does not decompress (${(err as Error).message})`)
  }
  if (out.length !== rawLen) throw layerCorrupt(path, `compressed value decompressed to ${out.length} bytes, expected ${rawLen}`)
  return out
}

/**
 * The one corruption error of layer files: names the file, says what to do. Not "delete it": this build
 * uploads nothing to remote storage (README: remote_storage), so no other copy exists to download again, and
 * a timeline missing a layer would read older versions of its pages.
 */
export function layerCorrupt(path: string, why: string): CorruptionError {
  return new CorruptionError('LAYER_CORRUPT', `layer file ${path} is corrupt: ${why}`, {
    hint: 'Restore the file from a backup of the workdir; do not delete it (the page server keeps no other copy, and its pages would be lost).',
    details: { path },
  })
}

/** LAYER_CORRUPT for a file that does not start with a layer magic: most often the wrong path given to `layer dump`. */
function notALayerFile(path: string, magic: number): CorruptionError {
  return new CorruptionError('LAYER_CORRUPT', `${path} is not a layer file (it starts with 0x${magic.toString(16).padStart(8, '0')}, not PSDL or PSIM)`, {
    hint: 'Give the path of a delta or image layer file (`pageserver layer list` shows those of a timeline); if the page server found this file in a timeline directory, restore it from a backup of the workdir.',
    details: { path },
  })
}
