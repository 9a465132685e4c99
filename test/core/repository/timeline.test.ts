import { describe, expect, it } from 'vitest'
import { readdirSync, renameSync, rmSync, writeFileSync, copyFileSync, mkdirSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'
import { Timeline } from '../../../src/core/repository/timeline.js'
import { readMetadata, writeMetadata } from '../../../src/core/repository/metadata.js'
import { CorruptionError } from '../../../src/core/lib/errors.js'
import { tempDirs, testTimelineMetadata } from '../../support/timeline-fixture.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import { keyFromFields, type Key } from '../../../src/core/model/key.js'
import { encodeValue, imageValue, recordValue } from '../../../src/core/model/value.js'
import { lsn, type Lsn } from '../../../src/core/pg/lsn.js'

const newDir = tempDirs('ps-tl-')

const meta = testTimelineMetadata

const opts = { noSync: true, waitLsnTimeoutMs: 2000 }
const k = (n: number): Key => keyFromFields({ field1: 0, field2: 1663, field3: 5, field4: 16384, field5: 0, field6: n })
const img = (s: string) => encodeValue(imageValue(Buffer.from(s)))
const rec = (s: string, willInit = false) => encodeValue(recordValue(Buffer.from(s), willInit))

function history(tl: Timeline, key: Key, at: Lsn) {
  const h = tl.getKeyHistory(key, at)
  return { image: h.image?.data.toString() ?? null, records: h.records.map((r) => r.raw.toString()), missing: h.missing }
}

/**
 * A timeline whose key 1 has an image at 0x108 and a record at 0x110 in an L0 file, a record at 0x118 in a
 * frozen layer and one at 0x120 in the open layer; key 2 a will-init record at 0x120.
 */
async function layered(dir: string): Promise<Timeline> {
  const tl = await Timeline.create(dir, generateTenantId(), generateTimelineId(), meta(), null, opts)
  tl.put(k(1), lsn(0x108), img('base'))
  tl.put(k(1), lsn(0x110), rec('r1'))
  tl.finishRecords(lsn(0x110), lsn(0x108))
  await tl.checkpoint()
  expect(tl.diskConsistentLsn).toBe(lsn(0x110))
  tl.put(k(1), lsn(0x118), rec('r2'))
  tl.finishRecords(lsn(0x118), lsn(0x110))
  tl.freeze()
  tl.put(k(1), lsn(0x120), rec('r3'))
  tl.put(k(2), lsn(0x120), rec('init', true))
  tl.finishRecords(lsn(0x120), lsn(0x118))
  return tl
}

describe('Timeline', () => {
  it('reads images and records across open, frozen and flushed layers, at any LSN', async () => {
    const dir = newDir()
    const tl = await layered(dir)
    expect(history(tl, k(1), lsn(0x120))).toEqual({ image: 'base', records: ['r1', 'r2', 'r3'], missing: false })
    expect(history(tl, k(1), lsn(0x117))).toEqual({ image: 'base', records: ['r1'], missing: false })
    expect(history(tl, k(1), lsn(0x108))).toEqual({ image: 'base', records: [], missing: false })
    expect(history(tl, k(1), lsn(0x107)).missing).toBe(true)
    expect(history(tl, k(2), lsn(0x120))).toEqual({ image: null, records: ['init'], missing: false })
    expect(history(tl, k(3), lsn(0x120)).missing).toBe(true)
    await tl.checkpoint()
    expect(tl.diskConsistentLsn).toBe(lsn(0x120))
    expect(tl.layerFiles().length).toBe(3)
    await tl.close()

    const again = await Timeline.load(dir, tl.tenantId, tl.timelineId, null, opts)
    expect(again.lastRecordLsn).toBe(lsn(0x120))
    expect(again.prevRecordLsn).toBe(lsn(0x118))
    expect(history(again, k(1), lsn(0x120))).toEqual({ image: 'base', records: ['r1', 'r2', 'r3'], missing: false })
    expect(history(again, k(1), lsn(0x111))).toEqual({ image: 'base', records: ['r1'], missing: false })
    await again.close()
  })

  it('loses nothing that was flushed; a layer from a flush that did not reach the metadata is moved aside, then deleted once flushed past', async () => {
    const dir = newDir()
    const tl = await Timeline.create(dir, generateTenantId(), generateTimelineId(), meta(), null, opts)
    tl.put(k(1), lsn(0x108), img('v1'))
    tl.finishRecords(lsn(0x108), null)
    await tl.checkpoint()
    const metaAfterFirst = join(dir, 'metadata')
    const saved = join(dir, 'metadata.saved')
    copyFileSync(metaAfterFirst, saved)
    tl.put(k(1), lsn(0x110), img('v2'))
    tl.finishRecords(lsn(0x110), lsn(0x108))
    await tl.checkpoint()
    await tl.close()
    // Simulate a crash between the layer file and the metadata of the second flush.
    copyFileSync(saved, metaAfterFirst)
    rmSync(saved)
    writeFileSync(join(dir, 'ephemeral-7'), 'junk')
    writeFileSync(join(dir, 'somelayer___temp'), 'junk')
    const futureName = tl.layerFiles().map((l) => l.desc.name).find((n) => n.endsWith('-0000000000000111'))!
    expect(futureName).toBeDefined()
    // A read-only load leaves the directory as it is and reads without the file.
    const reader = await Timeline.load(dir, tl.tenantId, tl.timelineId, null, { ...opts, readOnly: true })
    expect(reader.layersMovedAside).toEqual([])
    expect(history(reader, k(1), lsn(0x110)).image).toBe('v1')
    await reader.close()
    expect(readdirSync(dir)).toContain(futureName)

    const again = await Timeline.load(dir, tl.tenantId, tl.timelineId, null, opts)
    expect(again.diskConsistentLsn).toBe(lsn(0x108))
    expect(again.layerFiles().length).toBe(1)
    // Aside, not deleted: with metadata restored from an older backup it would be the only copy of its WAL.
    expect(again.layersMovedAside).toEqual([futureName])
    expect([...again.leftoversRemoved].sort()).toEqual(['ephemeral-7', 'somelayer___temp'])
    expect(readdirSync(dir).sort()).toEqual(['future-layers', 'metadata', again.layerFiles()[0]!.desc.name].sort())
    expect(readdirSync(join(dir, 'future-layers'))).toEqual([futureName])
    expect(history(again, k(1), lsn(0x108)).image).toBe('v1')
    // WAL above disk_consistent_lsn is ingested again; once flushed past, the file aside is redundant and goes.
    again.put(k(1), lsn(0x110), img('v2'))
    again.finishRecords(lsn(0x110), lsn(0x108))
    expect(history(again, k(1), lsn(0x110)).image).toBe('v2')
    await again.checkpoint()
    expect(readdirSync(dir)).not.toContain('future-layers')
    await again.close()
    const third = await Timeline.load(dir, tl.tenantId, tl.timelineId, null, opts)
    expect(third.layersMovedAside).toEqual([])
    expect(history(third, k(1), lsn(0x110)).image).toBe('v2')
    await third.close()
  })

  it('refuses to load without a layer file its metadata lists, or with one it does not (never older pages instead)', async () => {
    const dir = newDir()
    const tl = await layered(dir)
    await tl.checkpoint()
    const names = tl.layerFiles().map((l) => l.desc.name)
    expect(names).toHaveLength(3)
    await tl.close()
    expect(readMetadata(join(dir, 'metadata')).layers).toEqual([...names].sort())
    const load = () => Timeline.load(dir, tl.tenantId, tl.timelineId, null, opts)

    // The middle one gone: reads at 0x118 would otherwise find r1 and miss r2.
    const middle = names.find((n) => n.includes('0000000000000111-0000000000000119'))!
    const kept = join(dir, 'kept')
    renameSync(join(dir, middle), kept)
    const missing = await load().catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(CorruptionError)
    expect(missing).toMatchObject({ code: 'LAYER_MISSING', exitCode: 5 })
    expect((missing as CorruptionError).message).toContain(`${join(dir, middle)} of timeline ${tl.timelineId} is missing`)
    // Something else in its place is named for what it is.
    mkdirSync(join(dir, middle))
    await expect(load()).rejects.toMatchObject({ code: 'LAYER_MISSING', message: expect.stringContaining(`${join(dir, middle)} of timeline ${tl.timelineId} is a directory, not a file`) })
    rmdirSync(join(dir, middle))

    // Back, plus a file the metadata does not list (a copy of another layer under another valid name).
    renameSync(kept, join(dir, middle))
    const stray = middle.replace('0000000000000111-0000000000000119', '0000000000000111-0000000000000112')
    copyFileSync(join(dir, middle), join(dir, stray))
    await expect(load()).rejects.toMatchObject({ code: 'LAYER_NOT_LISTED' })
    rmSync(join(dir, stray))

    // Metadata written before the list existed: the L0 files must follow each other up to disk_consistent_lsn,
    // else a missing one would have pages rebuilt from older versions (the middle one, or the last).
    const m = readMetadata(join(dir, 'metadata'))
    await writeMetadata(join(dir, 'metadata'), { ...m, layers: undefined }, { noSync: true })
    const last = names.find((n) => n.endsWith('-0000000000000121'))!
    for (const gone of [middle, last]) {
      renameSync(join(dir, gone), kept)
      const gap = await load().catch((e: unknown) => e)
      expect(gap, gone).toMatchObject({ code: 'LAYER_MISSING', exitCode: 5 })
      expect((gap as CorruptionError).message).toContain(gone === middle ? 'from 0/111 to 0/118' : 'from 0/119 to 0/120')
      renameSync(kept, join(dir, gone))
    }
    const old = await load()
    expect(old.layerFiles()).toHaveLength(3)
    old.put(k(1), lsn(0x128), rec('r4'))
    old.finishRecords(lsn(0x128), lsn(0x120))
    await old.checkpoint()
    await old.close()
    expect(readMetadata(join(dir, 'metadata')).layers).toHaveLength(4)
  })

  it('a branch reads its ancestor below the branch point and its own writes above', async () => {
    const root = newDir()
    const parent = await Timeline.create(root, generateTenantId(), generateTimelineId(), meta(), null, opts)
    parent.put(k(1), lsn(0x108), img('p1'))
    parent.finishRecords(lsn(0x108), null)
    parent.put(k(1), lsn(0x110), img('p2'))
    parent.finishRecords(lsn(0x110), lsn(0x108))
    const childDir = newDir()
    const child = await Timeline.create(
      childDir,
      parent.tenantId,
      generateTimelineId(),
      meta({ diskConsistentLsn: lsn(0x108), lastRecordLsn: lsn(0x108), ancestorTimeline: parent.timelineId, ancestorLsn: lsn(0x108) }),
      parent,
      opts,
    )
    expect(history(child, k(1), lsn(0x120)).image).toBe('p1')
    child.put(k(1), lsn(0x118), rec('c1'))
    child.finishRecords(lsn(0x118), lsn(0x108))
    expect(history(child, k(1), lsn(0x118))).toEqual({ image: 'p1', records: ['c1'], missing: false })
    expect(history(parent, k(1), lsn(0x118)).image).toBe('p2')
    await child.close()
    await parent.close()
  })

  it('gives the records above a known version, reading no layer below it, across layers and a branch', async () => {
    const above = (tl: Timeline, key: Key, at: Lsn, base: Lsn) => tl.getKeyRecordsAbove(key, at, base)?.map((r) => r.raw.toString()) ?? null
    const tl = await layered(newDir())
    tl.put(k(1), lsn(0x128), img('newer'))
    tl.put(k(1), lsn(0x130), rec('r4'))
    tl.finishRecords(lsn(0x130), lsn(0x120))
    expect(above(tl, k(1), lsn(0x120), lsn(0x108))).toEqual(['r1', 'r2', 'r3']) // from the image version
    expect(above(tl, k(1), lsn(0x120), lsn(0x110))).toEqual(['r2', 'r3']) // from a record version, in the L0
    expect(above(tl, k(1), lsn(0x120), lsn(0x118))).toEqual(['r3']) // in the frozen layer
    expect(above(tl, k(1), lsn(0x120), lsn(0x120))).toEqual([]) // the newest version itself
    expect(above(tl, k(1), lsn(0x11f), lsn(0x110))).toEqual(['r2'])
    expect(above(tl, k(1), lsn(0x120), lsn(0x111))).toBeNull() // no version at that LSN
    expect(above(tl, k(1), lsn(0x130), lsn(0x118))).toBeNull() // an image above it: the whole history is needed
    expect(above(tl, k(1), lsn(0x130), lsn(0x128))).toEqual(['r4'])
    expect(above(tl, k(3), lsn(0x130), lsn(0x108))).toBeNull() // a key with no versions
    // The history itself is unchanged by the floor machinery.
    expect(history(tl, k(1), lsn(0x120))).toEqual({ image: 'base', records: ['r1', 'r2', 'r3'], missing: false })
    // A branch at 0x118: its own records above, the ancestor's below.
    const child = await Timeline.create(
      newDir(),
      tl.tenantId,
      generateTimelineId(),
      meta({ diskConsistentLsn: lsn(0x118), lastRecordLsn: lsn(0x118), ancestorTimeline: tl.timelineId, ancestorLsn: lsn(0x118) }),
      tl,
      opts,
    )
    child.put(k(1), lsn(0x140), rec('c1'))
    child.finishRecords(lsn(0x140), lsn(0x118))
    expect(above(child, k(1), lsn(0x140), lsn(0x110))).toEqual(['r2', 'c1'])
    expect(above(child, k(1), lsn(0x140), lsn(0x118))).toEqual(['c1'])
    expect(above(child, k(1), lsn(0x140), lsn(0x120))).toBeNull() // the parent's 0x120 is not on the branch
    await child.close()
    await tl.close()
  })

  it('waits for WAL and times out with the LSNs in the message', async () => {
    const tl = await Timeline.create(newDir(), generateTenantId(), generateTimelineId(), meta(), null, { ...opts, waitLsnTimeoutMs: 200 })
    const waiting = tl.waitForLsn(lsn(0x200), 5000)
    setTimeout(() => tl.finishRecords(lsn(0x200), lsn(0x1f0)), 50)
    await expect(waiting).resolves.toBeUndefined()
    await expect(tl.waitForLsn(lsn(0x300))).rejects.toThrow(/Timed out while waiting for WAL record at LSN 0\/300 to arrive, last_record_lsn 0\/200/)
    await tl.close()
  })
})

describe('Timeline after close', () => {
  it('holds no in-memory layer, refuses puts and metadata updates, and keeps an update asked for before the close', async () => {
    const dir = newDir()
    const tl = await layered(dir)
    expect(tl.inMemoryBytes).toBeGreaterThan(0)
    const before = tl.updateMetadata({ latestGcCutoffLsn: lsn(0x108) })
    await tl.close()
    await before
    expect(readMetadata(join(dir, 'metadata')).latestGcCutoffLsn).toBe(lsn(0x108))
    expect(tl.inMemoryBytes).toBe(0)
    expect(() => tl.put(k(1), lsn(0x128), rec('late'))).toThrow(/closed timeline/)
    await expect(tl.updateMetadata({ latestGcCutoffLsn: lsn(0x110) })).rejects.toMatchObject({ code: 'TIMELINE_CLOSED' })
    expect(readMetadata(join(dir, 'metadata')).latestGcCutoffLsn).toBe(lsn(0x108))
  })
})

describe('Timeline closed with WAL not yet durable', () => {
  it('refuses a checkpoint or flush, and its metadata keeps the old disk_consistent_lsn (the WAL streams again)', async () => {
    const dir = newDir()
    const tl = await Timeline.create(dir, generateTenantId(), generateTimelineId(), meta(), null, opts)
    const durable = tl.diskConsistentLsn
    tl.put(k(1), lsn(0x108), img('lost if declared durable'))
    tl.finishRecords(lsn(0x108), null)
    await tl.close()
    await expect(tl.checkpoint()).rejects.toMatchObject({ code: 'TIMELINE_CLOSED' })
    tl.freeze()
    await expect(tl.flush()).rejects.toMatchObject({ code: 'TIMELINE_CLOSED' })
    expect(readMetadata(join(dir, 'metadata')).diskConsistentLsn).toBe(durable)
    const again = await Timeline.load(dir, tl.tenantId, tl.timelineId, null, opts)
    expect(again.diskConsistentLsn).toBe(durable)
    await again.close()
  })
})
