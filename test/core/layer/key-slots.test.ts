/**
 * KeySlots numbers keys densely in order of first sight and finds them by prefix and field6, whatever the
 * field6 (low blocks, blocks far apart, relation size keys at FFFFFFFF): checked against a Map of whole key
 * strings, for keys added by parts and looked up whole and the other way round.
 */
import { describe, expect, it } from 'vitest'
import { FIELD6_PAGED_MAX, KeySlots } from '../../../src/core/layer/key-slots.js'
import { keyField6, keyFromPrefix, keyPrefixFromFields, keyPrefixOf, type Key } from '../../../src/core/model/key.js'
import { prng, randInt } from './helpers.js'

describe('KeySlots', () => {
  it('numbers keys in order of first sight and finds each by parts or whole', () => {
    const slots = new KeySlots()
    const ref = new Map<Key, number>()
    const prefixes = [0, 1, 2, 3].map((i) => keyPrefixFromFields(0, 1663, 5, 16384 + i, i % 3))
    const rng = prng(7)
    const rnd = (n: number): number => randInt(rng, 0, n - 1)
    const field6s = [0, 1, 1023, 1024, 5000, FIELD6_PAGED_MAX - 1, FIELD6_PAGED_MAX, 0xffff_fffe, 0xffff_ffff]
    for (let i = 0; i < 20_000; i++) {
      // Fresh prefix strings (equal text, other objects) half of the time, as a parsed key gives.
      const p = rnd(2) === 0 ? prefixes[rnd(4)]! : (' ' + prefixes[rnd(4)]!).slice(1)
      const f6 = rnd(5) === 0 ? field6s[rnd(field6s.length)]! : rnd(100_000)
      const key = keyFromPrefix(p, f6)
      const known = ref.get(key)
      const found = rnd(2) === 0 ? slots.find(p, f6) : slots.findKey(key)
      if (known === undefined) {
        expect(found).toBe(-1)
        const s = slots.add(p, f6)
        expect(s).toBe(ref.size)
        ref.set(key, s)
      } else {
        expect(found).toBe(known)
      }
    }
    expect(slots.size).toBe(ref.size)
    expect(slots.keys()).toEqual([...ref.keys()])
    for (const [key, s] of ref) {
      expect(slots.key(s)).toBe(key)
      expect(slots.find(keyPrefixOf(key), keyField6(key))).toBe(s)
    }
    // Not there: an unknown prefix, an unknown block of a known prefix, on a page that exists or not.
    expect(slots.find(keyPrefixFromFields(0, 1663, 5, 99, 0), 1)).toBe(-1)
    const p0 = prefixes[0]!
    const missing = [100_001, 100_002, FIELD6_PAGED_MAX + 5, 3_000_000].filter((f) => !ref.has(keyFromPrefix(p0, f)))
    for (const f of missing) expect(slots.find(p0, f)).toBe(-1)
  })

  it('counts its memory by the ranges of blocks used, not by the highest block', () => {
    const slots = new KeySlots()
    const p = keyPrefixFromFields(0, 1663, 5, 16384, 0)
    const before = slots.bytes
    slots.add(p, 0)
    const one = slots.bytes - before
    slots.add(p, FIELD6_PAGED_MAX - 1) // a lone high block: one more page, not millions of slots
    expect(slots.bytes - before).toBeLessThan(2 * one + 1024)
    slots.add(p, 0xffff_ffff)
    expect(slots.bytes - before).toBeLessThan(2 * one + 1024)
  })
})
