/**
 * Layer names and descriptors.
 *
 * A layer is identified by its key range and LSN range, and its file name says both (Neon's form):
 *
 *   delta: <key start>-<key end>__<lsn start>-<lsn end>     36 hex digits per key, 16 per LSN
 *   image: <key start>-<key end>__<lsn>
 *
 * e.g. the L0 delta 000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF__0000000001696070-00000000016960E9
 * holds the values of all keys with LSNs in [0/1696070, 0/16960E9). Key ends and delta LSN ends are
 * exclusive; an image layer at LSN L is treated as the LSN range [L, L+1). A trailing generation suffix
 * (`-v1-0000000a` or `-0000000a`, Neon's remote and local forms) is accepted when parsing and ignored in
 * the descriptor: `desc.name` is always the canonical name without it. Files being written end in
 * `___temp` and in-memory layer scratch files are `ephemeral-<n>`: neither is a layer.
 */
import { assert } from '../lib/errors.js'
import { MAX_KEY, MIN_KEY, type Key, type KeyRange } from '../model/key.js'
import { formatLsnHex16, type Lsn } from '../pg/lsn.js'

export const LAYER_KINDS = { delta: 'delta', image: 'image' } as const
export type LayerKind = (typeof LAYER_KINDS)[keyof typeof LAYER_KINDS]

/** Half-open: start <= lsn < end. */
export interface LsnRange {
  readonly start: Lsn
  readonly end: Lsn
}

export interface LayerDesc {
  readonly kind: LayerKind
  readonly keyRange: KeyRange
  /** Image layers: [lsn, lsn + 1). */
  readonly lsnRange: LsnRange
  /** Canonical file name (no generation suffix). */
  readonly name: string
}

/** Prefix of in-memory layer scratch files in a timeline directory. */
export const EPHEMERAL_FILE_PREFIX = 'ephemeral-'

const GEN = '(?:-v1-([0-9a-fA-F]{8})|-([0-9a-fA-F]{8}))?'
const DELTA_RE = new RegExp(`^([0-9A-Fa-f]{36})-([0-9A-Fa-f]{36})__([0-9A-Fa-f]{16})-([0-9A-Fa-f]{16})${GEN}$`)
const IMAGE_RE = new RegExp(`^([0-9A-Fa-f]{36})-([0-9A-Fa-f]{36})__([0-9A-Fa-f]{16})${GEN}$`)

export function formatDeltaLayerName(keyRange: KeyRange, lsnRange: LsnRange): string {
  return `${keyRange.start}-${keyRange.end}__${formatLsnHex16(lsnRange.start)}-${formatLsnHex16(lsnRange.end)}`
}

export function formatImageLayerName(keyRange: KeyRange, lsn: Lsn): string {
  return `${keyRange.start}-${keyRange.end}__${formatLsnHex16(lsn)}`
}

/** The descriptor of a delta layer; asserts non-empty ranges. */
export function deltaLayerDesc(keyRange: KeyRange, lsnRange: LsnRange): LayerDesc {
  assert(keyRange.start < keyRange.end, () => `empty key range ${keyRange.start}-${keyRange.end}`)
  assert(lsnRange.start < lsnRange.end, () => `empty LSN range ${formatLsnHex16(lsnRange.start)}-${formatLsnHex16(lsnRange.end)}`)
  return { kind: 'delta', keyRange: { start: keyRange.start, end: keyRange.end }, lsnRange: { start: lsnRange.start, end: lsnRange.end }, name: formatDeltaLayerName(keyRange, lsnRange) }
}

/** The descriptor of an image layer at `lsn`; asserts a non-empty key range. */
export function imageLayerDesc(keyRange: KeyRange, lsn: Lsn): LayerDesc {
  assert(keyRange.start < keyRange.end, () => `empty key range ${keyRange.start}-${keyRange.end}`)
  return { kind: 'image', keyRange: { start: keyRange.start, end: keyRange.end }, lsnRange: { start: lsn, end: (lsn + 1n) as Lsn }, name: formatImageLayerName(keyRange, lsn) }
}

/** The LSN of an image layer. */
export function imageLsn(desc: LayerDesc): Lsn {
  assert(desc.kind === 'image', () => `${desc.name} is not an image layer`)
  return desc.lsnRange.start
}

/** L0: a delta layer over the whole key space, as written by a flush of an in-memory layer. */
export function isL0(desc: LayerDesc): boolean {
  return desc.kind === 'delta' && desc.keyRange.start === MIN_KEY && desc.keyRange.end === MAX_KEY
}

export interface ParsedLayerFileName {
  readonly desc: LayerDesc
  /** The generation suffix, when the name has one. */
  readonly generation: number | null
}

/** Parses a file name; null for anything that is not a valid layer name (temp, ephemeral, other files, empty ranges). */
export function parseLayerFileName(fileName: string): ParsedLayerFileName | null {
  if (fileName.endsWith('___temp') || fileName.startsWith(EPHEMERAL_FILE_PREFIX)) return null
  let m = DELTA_RE.exec(fileName)
  if (m) {
    const keyRange = { start: m[1]!.toUpperCase() as Key, end: m[2]!.toUpperCase() as Key }
    const lsnRange = { start: BigInt('0x' + m[3]) as Lsn, end: BigInt('0x' + m[4]) as Lsn }
    if (keyRange.start >= keyRange.end || lsnRange.start >= lsnRange.end) return null
    return { desc: deltaLayerDesc(keyRange, lsnRange), generation: generationOf(m[5], m[6]) }
  }
  m = IMAGE_RE.exec(fileName)
  if (m) {
    const keyRange = { start: m[1]!.toUpperCase() as Key, end: m[2]!.toUpperCase() as Key }
    const lsn = BigInt('0x' + m[3]) as Lsn
    if (keyRange.start >= keyRange.end || lsn === 0xffff_ffff_ffff_ffffn) return null
    return { desc: imageLayerDesc(keyRange, lsn), generation: generationOf(m[4], m[5]) }
  }
  return null
}

/** The descriptor of a layer file name, or null when it is not one. */
export function parseLayerName(fileName: string): LayerDesc | null {
  return parseLayerFileName(fileName)?.desc ?? null
}

function generationOf(v1: string | undefined, bare: string | undefined): number | null {
  const g = v1 ?? bare
  return g === undefined ? null : parseInt(g, 16)
}

/** Two layers overlap when both their key ranges and their LSN ranges intersect. */
export function layersOverlap(a: LayerDesc, b: LayerDesc): boolean {
  return (
    a.keyRange.start < b.keyRange.end &&
    b.keyRange.start < a.keyRange.end &&
    a.lsnRange.start < b.lsnRange.end &&
    b.lsnRange.start < a.lsnRange.end
  )
}
