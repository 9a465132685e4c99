import { describe, expect, it } from 'vitest'
import { closestKey, editDistance } from '../../../src/core/config/suggest.js'
import { KNOWN_KEYS } from '../../../src/core/config/schema.js'

describe('closestKey', () => {
  it('computes edit distance with transpositions', () => {
    expect(editDistance('', 'abc')).toBe(3)
    expect(editDistance('kitten', 'sitting')).toBe(3)
    expect(editDistance('ab', 'ba')).toBe(1)
    expect(editDistance('same', 'same')).toBe(0)
  })

  it.each([
    ['checkpoint_distanse', 'checkpoint_distance'],
    ['CHECKPOINT_DISTANCE', 'checkpoint_distance'],
    ['checkpoint-timeout', 'checkpoint_timeout'],
    ['gc_horizen', 'gc_horizon'],
    ['pitr_intreval', 'pitr_interval'],
    ['remote_storge', 'remote_storage'],
    ['page_cache_pages', 'page_cache_size'],
    ['redo_workers', 'wal_redo_workers'],
  ])('%s -> %s', (typo, key) => {
    expect(closestKey(typo, KNOWN_KEYS)).toBe(key)
  })

  it('suggests nothing for unrelated or huge keys', () => {
    expect(closestKey('bananas', KNOWN_KEYS)).toBeNull()
    expect(closestKey('x', KNOWN_KEYS)).toBeNull()
    expect(closestKey('a'.repeat(10_000), KNOWN_KEYS)).toBeNull()
  })
})
