/**
 * ImageCache (bounds, private copies) and Timeline.getImageCached, which must always answer exactly what
 * getImage answers: checked against it after every step of random ingest (puts, record ends, freezes,
 * flushes) with reads at the latest LSN, at older LSNs and above last_record_lsn, on a timeline and on a
 * branch of it.
 */
import { describe, expect, it } from 'vitest'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { ImageCache, IMAGE_CACHE_ENTRY_OVERHEAD_BYTES, IMAGE_CACHE_VALUE_BYTES_MAX } from '../../../src/core/repository/image-cache.js'
import { Timeline } from '../../../src/core/repository/timeline.js'
import { tempDirs, testTimelineMetadata } from '../../support/timeline-fixture.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import { keyFromFields, type Key } from '../../../src/core/model/key.js'
import { encodeValue, imageValue } from '../../../src/core/model/value.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import { prng, randInt } from '../layer/helpers.js'

const newDir = tempDirs('ps-imgcache-')

const meta = testTimelineMetadata

const opts = { noSync: true, waitLsnTimeoutMs: 2000 }
const k = (n: number): Key => keyFromFields({ field1: 0, field2: 1663, field3: 5, field4: 16384, field5: 1, field6: n })
const img = (s: string) => encodeValue(imageValue(Buffer.from(s)))
const text = (b: Buffer | null) => (b === null ? null : b.toString())

describe('ImageCache', () => {
  it('keeps private copies, bounded by entries and bytes, oldest dropped first', () => {
    const O = IMAGE_CACHE_ENTRY_OVERHEAD_BYTES
    const c = new ImageCache(3, 3 * O + 100)
    const v = Buffer.from('abc')
    const stored = c.set(k(1), v, lsn(5), lsn(9))
    v[0] = 0x7a
    expect(stored!.toString()).toBe('abc')
    expect(c.get(k(1))).toMatchObject({ versionLsn: lsn(5), knownUpToLsn: lsn(9) })
    c.set(k(2), null, lsn(0), lsn(9))
    c.set(k(3), Buffer.alloc(10), lsn(1), lsn(9))
    c.set(k(4), Buffer.alloc(10), lsn(1), lsn(9)) // 4 entries > 3: k(1) goes
    expect(c.get(k(1))).toBeUndefined()
    expect(c.size).toBe(3)
    // Values plus the per-entry overhead: with 95 more bytes, k(2) (no value) and k(3) go.
    c.set(k(5), Buffer.alloc(95), lsn(1), lsn(9))
    expect(c.valueBytes).toBeLessThanOrEqual(3 * O + 100)
    expect(c.size).toBe(2)
    expect(c.get(k(5))!.value!.length).toBe(95)
    expect(c.set(k(6), Buffer.alloc(2 * O + 101), lsn(1), lsn(9))!.length).toBe(2 * O + 101) // too big: returned, not kept
    expect(c.get(k(6))).toBeUndefined()
    const big = new ImageCache()
    big.set(k(7), Buffer.alloc(IMAGE_CACHE_VALUE_BYTES_MAX + 1), lsn(1), lsn(2))
    expect(big.size).toBe(0)
    c.clear()
    expect(c.size + c.valueBytes).toBe(0)
  })
})

describe('Timeline.getImageCached', () => {
  it('answers what getImage answers through random ingest, freezes and flushes, on a timeline and its branch', async () => {
    const root = newDir()
    const tenantId = generateTenantId()
    const parentDir = join(root, 'parent')
    mkdirSync(parentDir)
    const parent = await Timeline.create(parentDir, tenantId, generateTimelineId(), meta(), null, opts)
    const rng = prng(7)
    const KEYS = 6
    let at = 0x100
    let branch: Timeline | null = null
    let checks = 0

    const check = (tl: Timeline, floor: number) => {
      const last = Number(tl.lastRecordLsn)
      const lsns = [last, last, randInt(rng, floor, last), randInt(rng, floor, last), last + randInt(rng, 1, 40)]
      for (const l of lsns) {
        for (let key = 0; key < KEYS; key++) {
          const want = text(tl.getImage(k(key), lsn(l)))
          expect(text(tl.getImageCached(k(key), lsn(l))), `key ${key} at ${l.toString(16)}`).toBe(want)
          checks++
        }
      }
    }
    const ingest = (tl: Timeline, steps: number, tag: string) => {
      for (let s = 0; s < steps; s++) {
        const end = (at += randInt(rng, 1, 24))
        const writes = randInt(rng, 0, 2)
        for (let w = 0; w < writes; w++) tl.put(k(randInt(rng, 0, KEYS - 1)), lsn(end), img(`${tag}@${end.toString(16)}#${w}`))
        tl.finishRecords(lsn(end), null)
        if (rng() < 0.5) check(tl, 0x100)
      }
    }

    try {
      for (let round = 0; round < 12; round++) {
        ingest(parent, 10, 'p')
        if (round % 3 === 1) parent.freeze()
        if (round % 4 === 2) await parent.checkpoint()
        check(parent, 0x100)
      }
      // A branch at the parent's last record: reads below the branch point come from the parent.
      const branchAt = parent.lastRecordLsn
      const branchDir = join(root, 'branch')
      mkdirSync(branchDir)
      branch = await Timeline.create(
        branchDir,
        tenantId,
        generateTimelineId(),
        meta({ diskConsistentLsn: branchAt, lastRecordLsn: branchAt, ancestorTimeline: parent.timelineId, ancestorLsn: branchAt, minReadableLsn: branchAt }),
        parent,
        opts,
      )
      check(branch, Number(branchAt))
      for (let round = 0; round < 8; round++) {
        ingest(branch, 10, 'b')
        if (round % 3 === 2) await branch.checkpoint()
        check(branch, Number(branchAt))
      }
      expect(checks).toBeGreaterThan(1000)
      // The cache did serve: most reads at a stable latest LSN are hits.
      expect(parent.imageCacheStats.hits).toBeGreaterThan(parent.imageCacheStats.misses)
    } finally {
      await branch?.close()
      await parent.close()
    }
  })

  it('sees a version written after a cached read, in the open layer and after it is flushed', async () => {
    const tl = await Timeline.create(newDir(), generateTenantId(), generateTimelineId(), meta(), null, opts)
    try {
      tl.put(k(1), lsn(0x110), img('one'))
      tl.finishRecords(lsn(0x110), null)
      expect(text(tl.getImageCached(k(1), lsn(0x110)))).toBe('one')
      expect(text(tl.getImageCached(k(2), lsn(0x110)))).toBeNull() // missing, cached as such
      tl.put(k(9), lsn(0x118), img('other key'))
      tl.finishRecords(lsn(0x118), null)
      // Nothing new for k(1) or k(2): served from the cache, extended to 0x118.
      const before = tl.imageCacheStats.hits
      expect(text(tl.getImageCached(k(1), lsn(0x118)))).toBe('one')
      expect(text(tl.getImageCached(k(2), lsn(0x118)))).toBeNull()
      expect(tl.imageCacheStats.hits).toBe(before + 2)
      tl.put(k(1), lsn(0x120), img('two'))
      tl.put(k(2), lsn(0x120), img('born'))
      tl.finishRecords(lsn(0x120), null)
      expect(text(tl.getImageCached(k(1), lsn(0x120)))).toBe('two')
      expect(text(tl.getImageCached(k(2), lsn(0x120)))).toBe('born')
      expect(text(tl.getImageCached(k(1), lsn(0x11f)))).toBe('one') // an older read still answers right
      await tl.checkpoint()
      tl.put(k(1), lsn(0x130), img('three'))
      tl.finishRecords(lsn(0x130), null)
      expect(text(tl.getImageCached(k(1), lsn(0x130)))).toBe('three')
      await tl.checkpoint()
      tl.put(k(3), lsn(0x140), img('x'))
      tl.finishRecords(lsn(0x140), null)
      // The entry is known up to 0x130 = disk_consistent_lsn now: extended through the in-memory layers.
      expect(text(tl.getImageCached(k(1), lsn(0x140)))).toBe('three')
      // Above last_record_lsn: not settled, never cached, still answered.
      tl.put(k(1), lsn(0x150), img('half-ingested'))
      expect(text(tl.getImageCached(k(1), lsn(0x150)))).toBe('half-ingested')
      tl.finishRecords(lsn(0x150), null)
      expect(text(tl.getImageCached(k(1), lsn(0x150)))).toBe('half-ingested')
      expect(text(tl.getImageCached(k(1), lsn(0x140)))).toBe('three')
    } finally {
      await tl.close()
    }
  })
})
