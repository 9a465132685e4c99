// ClockCache: admission on the second offer within the ghost ring (a key admitted, evicted and offered
// again keeps its new ghost when the ring passes its old slot), the byte bound with CLOCK second chances,
// and drop; eviction order checked against a plain model of CLOCK over many random operations.
import { describe, expect, it } from 'vitest'
import { ClockCache, ClockSpace, type ClockEntry } from '../../../src/core/lib/clock-cache.js'

type E = ClockEntry<string>

function put(cache: ClockCache<string, E>, space: ClockSpace<string, E>, key: string, bytes = 10): boolean {
  if (!cache.admit(space, key)) return false
  cache.insert({ space, key, bytes, referenced: false, prev: null, next: null })
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

  it('drop clears the space from the ghost ring, keys since admitted included (a dropped timeline stays unreachable)', () => {
    const cache = new ClockCache<string, E>('test cache', 1000, 8)
    const gone = new ClockSpace<string, E>()
    const kept = new ClockSpace<string, E>()
    put(cache, gone, 'a')
    put(cache, gone, 'a') // admitted: no longer among its space's ghosts, still in its ring slot
    put(cache, gone, 'b') // a ghost
    put(cache, kept, 'c')
    cache.drop(gone)
    const ring = cache as unknown as { ghostSpaces: Array<ClockSpace<string, E> | null>; ghostKeys: Array<string | null> }
    expect(ring.ghostSpaces.filter((x) => x === gone)).toHaveLength(0)
    expect(ring.ghostSpaces.filter((x) => x === kept)).toHaveLength(1)
    expect(put(cache, kept, 'c')).toBe(true) // the other space's ghost survives
  })

  it('evicts in CLOCK order: random inserts, hits, removals and resizes agree with a model (an array queue)', () => {
    let seed = 7
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed % n
    }
    const cache = new ClockCache<string, E>('test cache', 400, 1)
    const spaces = [new ClockSpace<string, E>(), new ClockSpace<string, E>()]
    // The model: entries oldest first, with their bits.
    let model: Array<{ key: string; space: number; bytes: number; referenced: boolean }> = []
    let bound = 400
    const modelBytes = (): number => model.reduce((a, e) => a + e.bytes, 0)
    const modelEvict = (incoming: number): void => {
      while (model.length > 0 && modelBytes() + incoming > bound) {
        const e = model.shift()!
        if (e.referenced) model.push({ ...e, referenced: false })
      }
    }
    for (let step = 0; step < 20_000; step++) {
      const op = rand(10)
      const sp = rand(2)
      const key = `k${rand(60)}`
      const have = spaces[sp]!.map.get(key)
      if (op < 5 && have === undefined) {
        const bytes = 5 + rand(40)
        modelEvict(bytes)
        model.push({ key, space: sp, bytes, referenced: false })
        cache.insert({ space: spaces[sp]!, key, bytes, referenced: false, prev: null, next: null })
      } else if (op < 8 && have !== undefined) {
        cache.hit(have)
        model.find((e) => e.key === key && e.space === sp)!.referenced = true
      } else if (op === 8 && have !== undefined) {
        cache.remove(have)
        cache.remove(have) // twice: the second is a no-op
        model = model.filter((e) => !(e.key === key && e.space === sp))
      } else if (op === 9 && rand(20) === 0) {
        bound = 100 + rand(500)
        cache.resize(bound)
        modelEvict(0)
      }
      if (step % 97 === 0) {
        const cached = spaces.flatMap((s, i) => [...s.map.values()].map((e) => `${i}:${e.key}`)).sort()
        expect(cached).toEqual(model.map((e) => `${e.space}:${e.key}`).sort())
        expect(cache.sizeBytes).toBe(modelBytes())
        expect(cache.entries).toBe(model.length)
      }
    }
    // Order matters too: shrinking to nothing evicts everything; what is left to compare is none.
    cache.resize(0)
    expect(cache.entries + cache.sizeBytes).toBe(0)
  })
})
