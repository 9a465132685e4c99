// Timeline write side with the flush worker thread and slab spills: frozen layers flush in order and
// disk_consistent_lsn follows each durable L0; reads answer from a frozen layer while its L0 is written;
// a failed flush advances nothing, keeps the layer readable, and a retry succeeds; with a slab budget far
// below the data, values spill to ephemeral files and everything reads back, before and after the flush
// and after a reload; puts encoded in place read back as encodeValue's; the worker and inline flushes
// write the same files.
import { describe, expect, it } from 'vitest'
import { mkdirSync, readFileSync, readdirSync, renameSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'
import { METADATA_FILE, Timeline, type TimelineOptions } from '../../../src/core/repository/timeline.js'
import { TEMP_SUFFIX } from '../../../src/core/storage/durable-file.js'
import { tempDirs, testTimelineMetadata } from '../../support/timeline-fixture.js'
import { ingestTestRecords, keyHistorySnapshot, testKey, testPage } from '../../support/timeline-ingest.js'
import { SlabPool } from '../../../src/core/layer/value-slabs.js'
import { generateTenantId, generateTimelineId, type TenantId, type TimelineId } from '../../../src/core/model/ids.js'
import { encodeValue, imageValue } from '../../../src/core/model/value.js'
import { lsn, type Lsn } from '../../../src/core/pg/lsn.js'

const newDir = tempDirs('ps-tlf-')

const meta = () => testTimelineMetadata()

const k = testKey
const page = testPage
const ingest = ingestTestRecords
const snapshot = keyHistorySnapshot

async function create(dir: string, opts: Partial<TimelineOptions> = {}, ids?: { t: TenantId; tl: TimelineId }): Promise<Timeline> {
  return Timeline.create(dir, ids?.t ?? generateTenantId(), ids?.tl ?? generateTimelineId(), meta(), null, { noSync: true, waitLsnTimeoutMs: 2000, ...opts })
}

/** A new timeline with 100 records over 20 keys ingested from 0/100 and frozen, and its keys' history. */
async function frozenTimeline(): Promise<{ dir: string; tl: Timeline; end: number; before: string[] }> {
  const dir = newDir()
  const tl = await create(dir)
  const end = ingest(tl, 0x100, 100, 2, 20)
  const before = snapshot(tl, 20, end)
  tl.freeze()
  return { dir, tl, end, before }
}

describe('Timeline flush through the worker thread', () => {
  it('flushes frozen layers in order, each L0 durable before disk_consistent_lsn names it, reads answering meanwhile', async () => {
    const dir = newDir()
    const tl = await create(dir)
    const durable: Lsn[] = []
    tl.onDurable = (l) => durable.push(l)
    const end1 = ingest(tl, 0x100, 300, 3, 50)
    tl.freeze()
    const end2 = ingest(tl, end1, 300, 3, 50)
    tl.freeze()
    const end3 = ingest(tl, end2, 10, 3, 50)
    const before = snapshot(tl, 50, end3)
    const atEnd1 = snapshot(tl, 50, end1)
    const flushing = tl.flush()
    await new Promise((resolve) => setImmediate(resolve))
    // the worker writes the L0s; this thread still reads the frozen layers
    expect(snapshot(tl, 50, end3)).toEqual(before)
    expect(snapshot(tl, 50, end1)).toEqual(atEnd1)
    expect(tl.diskConsistentLsn).toBe(lsn(0x100))
    await flushing
    expect(durable).toEqual([lsn(end1), lsn(end2)])
    expect(tl.diskConsistentLsn).toBe(lsn(end2))
    expect(tl.layerFiles().map((f) => f.desc.lsnRange)).toEqual([
      { start: lsn(0x101), end: lsn(end1 + 1) },
      { start: lsn(end1 + 1), end: lsn(end2 + 1) },
    ])
    expect(snapshot(tl, 50, end3)).toEqual(before)
    expect(snapshot(tl, 50, end1)).toEqual(atEnd1)
    await tl.checkpoint()
    expect(tl.diskConsistentLsn).toBe(lsn(end3))
    await tl.close()
    const again = await Timeline.load(dir, tl.tenantId, tl.timelineId, null, { noSync: true, waitLsnTimeoutMs: 2000 })
    expect(snapshot(again, 50, end3)).toEqual(before)
    await again.close()
  })

  it('a failed flush advances nothing and keeps the layer readable; a retry writes it', async () => {
    const { dir, tl, end, before } = await frozenTimeline()
    // The timeline directory disappears under the flush: the worker cannot create the L0.
    const away = `${dir}.away`
    renameSync(dir, away)
    let err: unknown
    try {
      await tl.flush()
    } catch (e) {
      err = e
    } finally {
      renameSync(away, dir)
    }
    expect(err).toMatchObject({ kind: 'not_found' })
    expect(tl.diskConsistentLsn).toBe(lsn(0x100))
    expect(tl.frozenLayerCount).toBe(1)
    expect(snapshot(tl, 20, end)).toEqual(before)
    await tl.flush()
    expect(tl.diskConsistentLsn).toBe(lsn(end))
    expect(tl.frozenLayerCount).toBe(0)
    expect(snapshot(tl, 20, end)).toEqual(before)
    await tl.close()
  })

  it('a metadata write failing after the L0 is durable advances nothing; a retry writes only the metadata', async () => {
    const { dir, tl, end, before } = await frozenTimeline()
    // A directory where the metadata's temporary file goes: the L0 is written, the metadata write fails.
    const blocker = join(dir, `${METADATA_FILE}${TEMP_SUFFIX}`)
    mkdirSync(blocker)
    const err = await tl.flush().catch((e: unknown) => e)
    expect(err).toMatchObject({ kind: 'unavailable' })
    expect(tl.diskConsistentLsn).toBe(lsn(0x100))
    expect(tl.frozenLayerCount).toBe(1)
    expect(tl.layerFiles().length).toBe(1)
    expect(snapshot(tl, 20, end)).toEqual(before)
    rmdirSync(blocker)
    await tl.flush()
    expect(tl.diskConsistentLsn).toBe(lsn(end))
    expect(tl.frozenLayerCount).toBe(0)
    expect(tl.layerFiles().length).toBe(1) // not written twice
    expect(snapshot(tl, 20, end)).toEqual(before)
    // Later layers flush as usual.
    const end2 = ingest(tl, end, 10, 2, 20)
    await tl.checkpoint()
    expect(tl.diskConsistentLsn).toBe(lsn(end2))
    await tl.close()
    const again = await Timeline.load(dir, tl.tenantId, tl.timelineId, null, { noSync: true, waitLsnTimeoutMs: 2000 })
    expect(again.diskConsistentLsn).toBe(lsn(end2))
    expect(snapshot(again, 20, end)).toEqual(before)
    await again.close()
  })

  it('with a slab budget far below the data, spills to ephemeral files and reads everything back', async () => {
    const dir = newDir()
    const pool = new SlabPool({ slabBytes: 64 * 1024, residentBytesMax: 256 * 1024 })
    const tl = await create(dir, { slabPool: pool })
    const end1 = ingest(tl, 0x100, 400, 4, 300) // ~1.6 MB of values
    tl.freeze()
    const end2 = ingest(tl, end1, 400, 4, 300)
    expect(pool.stats.spilled).toBeGreaterThan(10)
    expect(readdirSync(dir).filter((n) => n.startsWith('ephemeral-')).length).toBe(2)
    expect(pool.residentBytes + pool.pooledBytes).toBeLessThanOrEqual(256 * 1024)
    const before = snapshot(tl, 300, end2)
    const mid = snapshot(tl, 300, end1)
    await tl.checkpoint()
    expect(tl.diskConsistentLsn).toBe(lsn(end2))
    expect(readdirSync(dir).filter((n) => n.startsWith('ephemeral-'))).toEqual([])
    expect(snapshot(tl, 300, end2)).toEqual(before)
    expect(snapshot(tl, 300, end1)).toEqual(mid)
    expect(pool.residentBytes).toBe(0)
    await tl.close()
    const again = await Timeline.load(dir, tl.tenantId, tl.timelineId, null, { noSync: true, waitLsnTimeoutMs: 2000 })
    expect(snapshot(again, 300, end2)).toEqual(before)
    await again.close()
  })

  it('values put in place read back as encodeValue writes them; worker (streamed) and inline flushes write the same files', async () => {
    const ids = { t: generateTenantId(), tl: generateTimelineId() }
    const files: Array<Map<string, Buffer>> = []
    for (const flushThread of ['worker', 'inline'] as const) {
      const dir = newDir()
      // Small slabs: the worker's layers are written slab by slab while they fill (L0 streams), the inline
      // ones at the flush; the files are the same.
      const tl = await create(dir, { flushThread, slabPool: new SlabPool({ slabBytes: 1024 }) }, ids)
      tl.reserveImage(lsn(0x108), 100).set(page(7, 100))
      tl.commitValue(k(1), lsn(0x108))
      tl.putRecord(k(1), lsn(0x110), Buffer.from('r1'), false)
      tl.put(k(2), lsn(0x110), encodeValue(imageValue(page(9, 8192))))
      tl.finishRecords(lsn(0x110), lsn(0x108))
      const h = tl.getKeyHistory(k(1), lsn(0x110))
      expect(h.image?.data.equals(page(7, 100))).toBe(true)
      expect(h.records.map((r) => [r.raw.toString(), r.willInit])).toEqual([['r1', false]])
      ingest(tl, 0x110, 200, 3, 40)
      await tl.checkpoint()
      await tl.close()
      files.push(new Map(readdirSync(dir).map((n) => [n, readFileSync(join(dir, n))])))
    }
    expect([...files[0]!.keys()].sort()).toEqual([...files[1]!.keys()].sort())
    for (const [name, bytes] of files[0]!) if (name !== 'metadata') expect(bytes.equals(files[1]!.get(name)!)).toBe(true)
  })
})
