// ClockCache: admission on the second offer within the ghost ring (a key admitted, evicted and offered
// again keeps its new ghost when the ring passes its old slot), the byte bound with CLOCK second chances,
// and drop.
import { describe, expect, it } from 'vitest'
import { ClockCache, ClockSpace, type ClockEntry } from '../../../src/core/lib/clock-cache.js'

type E = ClockEntry<string>

function put(cache: ClockCache<string, E>, space: ClockSpace<string, E>, key: string, bytes = 10): boolean {
  if (!cache.admit(space, key)) return false
  cache.insert({ space, key, bytes, referenced: false })
  return true
}

describe('ClockCache', () => {
  it('admits on the second offer, and a ghost re-made after an eviction survives its old slot', () => {
    const cache = new ClockCache<string, E>('test cache', 1000, 4)
    const s = new ClockSpace<string, E>()
    expect(put(cache, s, 'a')).toBe(false) // ghost in slot 0
    expect(put(cache, s, 'a')).toBe(true) // admitted
    cache.resize(0) // evicts it
    cache.resize(1000)
    expect(s.map.size).toBe(0)
    expect(put(cache, s, 'a')).toBe(false) // ghost again, slot 1
    for (const k of ['b', 'c', 'd']) expect(put(cache, s, k)).toBe(false) // slots 2, 3, then 0 (a's old slot)
    expect(put(cache, s, 'a')).toBe(true) // still a ghost: admitted
    // The ring moves on: b's slot (2) is not reached yet, 'e' takes slot 1 (a's, admitted since).
    expect(put(cache, s, 'e')).toBe(false)
    expect(put(cache, s, 'b')).toBe(true)
  })

  it('keeps within its byte bound, gives referenced entries a second chance, and drops a space', () => {
    const cache = new ClockCache<string, E>('test cache', 30, 16)
    const s = new ClockSpace<string, E>()
    for (const k of ['a', 'b', 'c']) {
      put(cache, s, k)
      put(cache, s, k)
    }
    expect(cache.entries).toBe(3)
    cache.hit(s.map.get('a')!)
    put(cache, s, 'd')
    put(cache, s, 'd') // evicts b (a was referenced)
    expect([...s.map.keys()].sort()).toEqual(['a', 'c', 'd'])
    expect(cache.sizeBytes).toBe(30)
    cache.drop(s)
    expect(cache.entries + cache.sizeBytes + s.map.size + s.ghosts.size).toBe(0)
  })
})
