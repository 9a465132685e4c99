/**
 * PageCache: admission on the second offer, validity by LSN (hit, extension proved by the timeline, miss
 * above last_record_lsn or below the version), the byte bound with CLOCK eviction, bypass; and a reader with
 * the cache serving exactly what a reader without it serves through random ingest, freezes and flushes.
 */
import { describe, expect, it } from 'vitest'
import { ENTRY_OVERHEAD_BYTES, PageCache, type VersionOracle } from '../../../src/core/datadir/page-cache.js'
import { DatadirReader, type RedoService } from '../../../src/core/datadir/read.js'
import { encodeBlockCount, encodeRelDir, relBlockKey, relDirKey, relSizeKey } from '../../../src/core/datadir/mapping.js'
import { Timeline } from '../../../src/core/repository/timeline.js'
import { tempDirs, testTimelineMetadata } from '../../support/timeline-fixture.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import type { Key } from '../../../src/core/model/key.js'
import { encodeValue, imageValue, recordValue } from '../../../src/core/model/value.js'
import { lsn, type Lsn } from '../../../src/core/pg/lsn.js'
import type { RelTag } from '../../../src/core/pg/reltag.js'
import { prng, randInt } from '../layer/helpers.js'

const K = (n: number) => `K${n}` as Key

class FakeOracle implements VersionOracle {
  lastRecordLsn = lsn(0x1000)
  unchanged = true
  asked = 0
  unchangedBetween(): boolean {
    this.asked++
    return this.unchanged
  }
}

describe('PageCache', () => {
  it('admits on the second offer and answers by LSN', () => {
    const c = new PageCache(1 << 20)
    const o = new FakeOracle()
    const s = c.space(o)
    const page = Buffer.alloc(8192, 1)
    s.offer(K(1), lsn(0x100), lsn(0x200), page)
    expect(s.get(K(1), lsn(0x200))).toBeNull()
    s.offer(K(1), lsn(0x100), lsn(0x200), page)
    const cached = s.get(K(1), lsn(0x200))!
    expect(cached).toEqual(page)
    expect(cached).not.toBe(page) // a copy of its own, not a view that keeps a larger read buffer alive
    expect(cached.buffer.byteLength).toBe(8192)
    expect(s.get(K(1), lsn(0x100))).toEqual(page)
    expect(s.get(K(1), lsn(0xff))).toBeNull() // below the version
    expect(o.asked).toBe(0)
    expect(s.get(K(1), lsn(0x300))).toEqual(page) // extended: the oracle says nothing changed
    expect(o.asked).toBe(1)
    expect(s.get(K(1), lsn(0x250))).toEqual(page) // now known up to 0x300
    expect(o.asked).toBe(1)
    o.unchanged = false
    expect(s.get(K(1), lsn(0x400))).toBeNull()
    expect(s.get(K(1), lsn(0x1001))).toBeNull() // above last_record_lsn
    // A newer read replaces the entry at once; an older one does not.
    const newer = Buffer.alloc(8192, 2)
    s.offer(K(1), lsn(0x380), lsn(0x400), newer)
    expect(s.get(K(1), lsn(0x400))).toEqual(newer)
    s.offer(K(1), lsn(0x100), lsn(0x200), page)
    expect(s.get(K(1), lsn(0x390))).toEqual(newer)
    expect(s.get(K(1), lsn(0x200))).toBeNull()
    c.bypass = true
    expect(s.get(K(1), lsn(0x400))).toBeNull()
    c.bypass = false
    expect(s.get(K(1), lsn(0x400))).toEqual(newer)
    c.drop(s)
    expect(c.entries + c.sizeBytes).toBe(0)
  })

  it('stays within its bound, evicting the unreferenced first', () => {
    const slot = 8192 + ENTRY_OVERHEAD_BYTES
    const c = new PageCache(3 * slot)
    const s = c.space(new FakeOracle())
    const put = (n: number) => {
      s.offer(K(n), lsn(1), lsn(2), Buffer.alloc(8192, n))
      s.offer(K(n), lsn(1), lsn(2), Buffer.alloc(8192, n))
    }
    put(1)
    put(2)
    put(3)
    expect(s.get(K(1), lsn(2))![0]).toBe(1) // referenced
    put(4)
    expect(c.entries).toBe(3)
    expect(c.sizeBytes).toBe(3 * slot)
    expect(s.get(K(2), lsn(2))).toBeNull()
    expect(s.get(K(1), lsn(2))).not.toBeNull()
    c.resize(0)
    expect(c.entries + c.sizeBytes).toBe(0)
    put(5)
    expect(c.entries).toBe(0)
  })

  it('keeps nothing offered after its space was dropped (a redo that finishes after its timeline closed)', () => {
    const c = new PageCache(1 << 20)
    const s = c.space(new FakeOracle())
    s.offer(K(1), lsn(1), lsn(2), Buffer.alloc(8192, 1)) // a ghost
    c.drop(s)
    s.offer(K(2), lsn(1), lsn(2), Buffer.alloc(8192, 2), true) // an SLRU page: admitted at once
    s.offer(K(3), lsn(1), lsn(2), Buffer.alloc(8192, 3))
    s.offer(K(3), lsn(1), lsn(2), Buffer.alloc(8192, 3)) // a relation page offered twice
    expect(c.entries + c.sizeBytes + s.map.size + s.ghosts.size).toBe(0)
    // Nor does the ghost ring hold the dropped space (it would keep the closed timeline reachable).
    const ring = c as unknown as { ghostSpaces: unknown[] }
    expect(ring.ghostSpaces.filter((x) => x === s)).toHaveLength(0)
  })
})

const meta = () => testTimelineMetadata({ dataChecksums: true })

const newDir = tempDirs('ps-pagecache-')

describe('DatadirReader with a page cache', () => {
  it('serves what a reader without one serves, through random ingest, freezes and flushes', async () => {
    const dir = newDir()
    const tl = await Timeline.create(dir, generateTenantId(), generateTimelineId(), meta(), null, { noSync: true, waitLsnTimeoutMs: 1000 })
    // A model of redo that composes as redo does (a page redone with k records, then with the rest, equals
    // the page redone with all of them): the cached reader may start from a page it cached.
    const redo: RedoService = { redo: async (req) => Buffer.alloc(8192, ((req.base?.[100] ?? 0) + req.records.length) & 0xff) }
    const cache = new PageCache(1 << 24)
    const cached = new DatadirReader(tl, redo, { dataChecksums: true, pageCache: cache })
    const plain = new DatadirReader(tl, redo, { dataChecksums: true, pageCache: null })
    const rel: RelTag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0 }
    const BLOCKS = 8
    const rng = prng(3)
    const page = (tag: number) => {
      const p = Buffer.alloc(8192, tag & 0xff)
      p.writeUInt16LE(24, 12)
      p.writeUInt16LE(8000, 14)
      p.writeUInt16LE(8192, 16)
      return encodeValue(imageValue(p))
    }
    let at = 0x110
    tl.put(relDirKey(1663, 5), lsn(at), encodeValue(imageValue(encodeRelDir([{ relNode: rel.relNode, forkNum: 0 }]))))
    tl.put(relSizeKey(rel), lsn(at), encodeValue(imageValue(encodeBlockCount(BLOCKS))))
    for (let b = 0; b < BLOCKS; b++) tl.put(relBlockKey(rel, b), lsn(at), page(b))
    tl.finishRecords(lsn(at), null)
    let compared = 0
    try {
      for (let step = 0; step < 300; step++) {
        at += randInt(rng, 1, 16)
        const writes = randInt(rng, 0, 2)
        for (let w = 0; w < writes; w++) {
          const b = randInt(rng, 0, BLOCKS - 1)
          const v = rng() < 0.3 ? encodeValue(recordValue(Buffer.from('r'), false)) : page(at + w)
          tl.put(relBlockKey(rel, b), lsn(at), v)
        }
        tl.finishRecords(lsn(at), null)
        if (step % 37 === 36) tl.freeze()
        if (step % 53 === 52) await tl.checkpoint()
        const last = Number(tl.lastRecordLsn)
        for (const l of [last, last, randInt(rng, 0x110, last)]) {
          for (let b = 0; b < BLOCKS; b++) {
            const want = await plain.getRelPage(rel, b, lsn(l) as Lsn)
            const got = await cached.getRelPage(rel, b, lsn(l) as Lsn)
            expect(got.equals(want), `block ${b} at ${l.toString(16)}`).toBe(true)
            compared++
          }
        }
      }
      expect(compared).toBe(300 * 3 * BLOCKS)
      expect(cache.hits).toBeGreaterThan(1000)
      expect(cache.entries).toBeGreaterThan(0)
    } finally {
      await tl.close()
    }
    // The timeline's pages leave the cache with it.
    expect(cache.entries).toBe(0)
    expect(cache.sizeBytes).toBe(0)
  })
})
