// Layer names: Neon's delta and image forms (examples from Neon's documentation), generation suffixes,
// and what is not a layer.
import { describe, expect, it } from 'vitest'
import {
  deltaLayerDesc,
  formatDeltaLayerName,
  formatImageLayerName,
  imageLayerDesc,
  imageLsn,
  isL0,
  layersOverlap,
  parseLayerFileName,
  parseLayerName,
} from '../../../src/core/layer/layer-name.js'
import { AssertionFailure } from '../../../src/core/lib/errors.js'
import { MAX_KEY, MIN_KEY, type Key } from '../../../src/core/model/key.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'

const L0_NAME = '000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF__0000000001696070-00000000016960E9'
const IMAGE_NAME = '000000067F000032BE0000400000000070B6-000000067F000032BE0000400000000080B6__00000000346BC568'

describe('layer names', () => {
  it('parses and formats an L0 delta name', () => {
    const d = parseLayerName(L0_NAME)!
    expect(d).toEqual({ kind: 'delta', keyRange: { start: MIN_KEY, end: MAX_KEY }, lsnRange: { start: 0x1696070n, end: 0x16960e9n }, name: L0_NAME })
    expect(isL0(d)).toBe(true)
    expect(formatDeltaLayerName(d.keyRange, d.lsnRange)).toBe(L0_NAME)
  })

  it('parses and formats an image name', () => {
    const d = parseLayerName(IMAGE_NAME)!
    expect(d.kind).toBe('image')
    expect(d.keyRange).toEqual({ start: '000000067F000032BE0000400000000070B6', end: '000000067F000032BE0000400000000080B6' })
    expect(d.lsnRange).toEqual({ start: 0x346bc568n, end: 0x346bc569n })
    expect(imageLsn(d)).toBe(0x346bc568n)
    expect(isL0(d)).toBe(false)
    expect(formatImageLayerName(d.keyRange, imageLsn(d))).toBe(IMAGE_NAME)
    expect(imageLayerDesc(d.keyRange, 0x346bc568n as Lsn)).toEqual(d)
  })

  it('accepts generation suffixes and lower-case hex, returning the canonical name', () => {
    expect(parseLayerFileName(`${L0_NAME}-v1-0000000a`)).toEqual({ desc: parseLayerName(L0_NAME), generation: 10 })
    expect(parseLayerFileName(`${IMAGE_NAME}-000000ff`)).toEqual({ desc: parseLayerName(IMAGE_NAME), generation: 255 })
    expect(parseLayerFileName(IMAGE_NAME)?.generation).toBeNull()
    expect(parseLayerName(L0_NAME.toLowerCase())?.name).toBe(L0_NAME)
  })

  it('rejects what is not a layer', () => {
    for (const n of [
      `${L0_NAME}___temp`,
      `${L0_NAME}.1234abcd___temp`,
      'ephemeral-3',
      'metadata',
      '',
      L0_NAME.slice(1),
      `${L0_NAME}-v1-0000000`, // short generation
      `${L0_NAME}-v2-0000000a`,
      // empty ranges
      `${MAX_KEY}-${MIN_KEY}__0000000000000001-0000000000000002`,
      `${MIN_KEY}-${MAX_KEY}__0000000000000002-0000000000000002`,
      `${MIN_KEY}-${MIN_KEY}__0000000000000002`,
      `${MIN_KEY}-${MAX_KEY}__FFFFFFFFFFFFFFFF`,
    ]) {
      expect(parseLayerName(n), n).toBeNull()
    }
  })

  it('asserts on empty ranges and tells overlap', () => {
    expect(() => deltaLayerDesc({ start: MIN_KEY, end: MAX_KEY }, { start: 5n as Lsn, end: 5n as Lsn })).toThrow(AssertionFailure)
    expect(() => imageLayerDesc({ start: MAX_KEY, end: MAX_KEY }, 5n as Lsn)).toThrow(AssertionFailure)
    const mid = '000000000000000000000000000000000010' as Key
    const a = deltaLayerDesc({ start: MIN_KEY, end: mid }, { start: 10n as Lsn, end: 20n as Lsn })
    const b = deltaLayerDesc({ start: mid, end: MAX_KEY }, { start: 10n as Lsn, end: 20n as Lsn })
    const c = imageLayerDesc({ start: MIN_KEY, end: MAX_KEY }, 19n as Lsn)
    const d = imageLayerDesc({ start: MIN_KEY, end: MAX_KEY }, 20n as Lsn)
    expect(layersOverlap(a, b)).toBe(false)
    expect(layersOverlap(a, c)).toBe(true)
    expect(layersOverlap(a, d)).toBe(false)
  })
})
