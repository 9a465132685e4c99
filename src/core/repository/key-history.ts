/**
 * KeyHistory: what a read of one key at an LSN gathers across a timeline's layers and ancestors — the newest
 * image at or below the LSN and the WAL records above it — built here from the values found, newest first
 * (timeline-reader.ts collects them). Pure: no I/O, no layer access.
 */
import { CorruptionError } from '../lib/errors.js'
import type { Key } from '../model/key.js'
import { decodeValue } from '../model/value.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import type { LsnValue } from '../layer/layer-read.js'

/** The history of one key at an LSN: an optional base image and WAL records above it (ascending). */
export interface KeyHistory {
  /** The newest image at or below the LSN (null: none; the first record initialises, or the key is new). */
  readonly image: { lsn: Lsn; data: Buffer } | null
  /** WAL records above the image, oldest first, each with its end LSN. */
  readonly records: Array<{ lsn: Lsn; raw: Buffer; willInit: boolean }>
  /** True when nothing at all was found for the key (it does not exist at that LSN). */
  readonly missing: boolean
}

/** The history in `found` (values newest first, down to an image or a will-init record, or all there are). */
export function historyOf(found: readonly LsnValue[]): KeyHistory {
  if (found.length === 0) return { image: null, records: [], missing: true }
  let image: KeyHistory['image'] = null
  const records: KeyHistory['records'] = []
  // found is newest first; the last one may be will-init.
  for (let i = found.length - 1; i >= 0; i--) {
    const v = decodeValue(found[i]!.value)
    if (v.kind === 'image') {
      image = { lsn: found[i]!.lsn, data: v.data }
      records.length = 0
    } else {
      if (v.willInit) {
        image = null
        records.length = 0
      }
      records.push({ lsn: found[i]!.lsn, raw: v.raw, willInit: v.willInit })
    }
  }
  return { image, records, missing: false }
}

/**
 * The records above `base`, oldest first, when `found` (newest first) meets a version at `base` with only
 * records above it; else null.
 */
export function recordsAbove(found: readonly LsnValue[], base: Lsn): KeyHistory['records'] | null {
  const records: KeyHistory['records'] = []
  for (const f of found) {
    if (f.lsn < base) return null
    if (f.lsn === base) return records.reverse()
    const v = decodeValue(f.value)
    if (v.kind === 'image' || v.willInit) return null
    records.push({ lsn: f.lsn, raw: v.raw, willInit: false })
  }
  return null
}

/** The image of a history whose versions are images: null when missing; a WAL record is corruption. */
export function imageOf(h: KeyHistory, key: Key, lsn: Lsn): Buffer | null {
  if (h.missing) return null
  if (h.records.length > 0) {
    throw new CorruptionError('VALUE_NOT_AN_IMAGE', `the value of key ${key} at ${formatLsn(lsn)} is a WAL record where an image was expected`)
  }
  return h.image!.data
}
