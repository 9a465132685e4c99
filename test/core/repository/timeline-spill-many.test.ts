// Several timelines (a root, a branch of it, an unrelated root) ingesting interleaved batches into one tiny
// shared SlabPool with a small checkpoint distance: every key read back at many LSNs equals a simple model,
// while layers spill, stream, freeze and flush, and after a reload; no slab is held by two layers at once;
// the pool's accounting returns to zero once everything is flushed and closed; no ephemeral file is left.
import { describe, expect, it } from 'vitest'
import { mkdirSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Timeline, type TimelineOptions } from '../../../src/core/repository/timeline.js'
import { tempDirs, testTimelineMetadata } from '../../support/timeline-fixture.js'
import { testKey } from '../../support/timeline-ingest.js'
import { SlabPool } from '../../../src/core/layer/value-slabs.js'
import { generateTenantId, generateTimelineId } from '../../../src/core/model/ids.js'
import { lsn } from '../../../src/core/pg/lsn.js'

const newDir = tempDirs('ps-tlspill-')

const KEYS = 40
const SLAB = 4096

interface Version {
  lsn: number
  image: boolean
  data: Buffer
}

/** A tiny deterministic PRNG (xorshift32). */
function rng(seed: number): () => number {
  let x = seed | 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x100000000
  }
}

interface Tl {
  name: string
  tl: Timeline
  model: Map<number, Version[]>
  parent: Tl | null
  branchLsn: number
  at: number
}

function expected(t: Tl, key: number, at: number): string {
  const versions: Version[] = []
  if (t.parent) for (const v of t.parent.model.get(key) ?? []) if (v.lsn <= Math.min(at, t.branchLsn)) versions.push(v)
  for (const v of t.model.get(key) ?? []) if (v.lsn <= at) versions.push(v)
  if (versions.length === 0) return 'missing'
  let i = versions.length - 1
  while (i >= 0 && !versions[i]!.image) i--
  const img = i >= 0 ? `${versions[i]!.lsn}:${versions[i]!.data.toString('hex')}` : '-'
  const recs = versions.slice(i + 1).map((v) => `${v.lsn}:${v.data.toString('hex')}`)
  return `${img}|${recs.join(',')}`
}

function actual(t: Tl, key: number, at: number): string {
  const h = t.tl.getKeyHistory(testKey(key), lsn(at))
  if (h.missing) return 'missing'
  const img = h.image ? `${h.image.lsn}:${h.image.data.toString('hex')}` : '-'
  return `${img}|${h.records.map((r) => `${r.lsn}:${r.raw.toString('hex')}`).join(',')}`
}

function ingestBatch(t: Tl, r: () => number, records: number): void {
  for (let i = 0; i < records; i++) {
    t.at += 0x40
    const used = new Set<number>()
    const n = 1 + Math.floor(r() * 3)
    for (let v = 0; v < n; v++) {
      const key = Math.floor(r() * KEYS)
      if (used.has(key)) continue
      used.add(key)
      const image = r() < 0.15
      const len = image ? (r() < 0.5 ? 8192 : 100 + Math.floor(r() * 3000)) : 1 + Math.floor(r() * 400)
      const data = randomBytes(len)
      if (image) {
        t.tl.reserveImage(lsn(t.at), len).set(data)
        t.tl.commitValue(testKey(key), lsn(t.at))
      } else {
        t.tl.putRecord(testKey(key), lsn(t.at), data, false)
      }
      const list = t.model.get(key) ?? []
      list.push({ lsn: t.at, image, data })
      t.model.set(key, list)
    }
    t.tl.finishRecords(lsn(t.at), lsn(t.at - 0x40))
  }
}

function verify(all: Tl[], r: () => number, samples: number): void {
  for (const t of all) {
    const lo = t.parent ? t.branchLsn : 0x100
    for (let s = 0; s < samples; s++) {
      const at = lo + Math.floor(r() * (t.at - lo + 1))
      const key = Math.floor(r() * KEYS)
      expect(actual(t, key, at), `${t.name} key ${key} at ${at.toString(16)}`).toBe(expected(t, key, at))
    }
    for (let key = 0; key < KEYS; key++) expect(actual(t, key, t.at), `${t.name} key ${key} at end`).toBe(expected(t, key, t.at))
  }
}

/** Every slab held by an in-memory layer of these timelines, or pooled: none twice. */
function checkNoSharedSlabs(all: Tl[], pool: SlabPool): void {
  const seen = new Map<SharedArrayBuffer, string>()
  const note = (s: SharedArrayBuffer | null | undefined, who: string): void => {
    if (!s) return
    const prev = seen.get(s)
    expect(prev, `slab held by ${who} and ${prev}`).toBeUndefined()
    seen.set(s, who)
  }
  for (const s of (pool as unknown as { free: SharedArrayBuffer[] }).free) note(s, 'pool')
  let held = 0
  for (const t of all) {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const layers = (t.tl as any).layers
    const ls = [layers.open, ...layers.frozen.map((f: { layer: unknown }) => f.layer)].filter((l) => l)
    ls.forEach((l: { slabs: { slabs: SharedArrayBuffer[]; reloadSlabs: SharedArrayBuffer[] } }, i: number) => {
      for (const s of l.slabs.slabs) {
        note(s, `${t.name}/layer${i}`)
        if (s) held += s.byteLength
      }
      for (const s of l.slabs.reloadSlabs) {
        note(s, `${t.name}/layer${i}/reload`)
        if (s) held += s.byteLength
      }
    })
  }
  expect(pool.residentBytes).toBe(held)
}

describe('several timelines spilling into one tiny slab pool', () => {
  it.each([
    { ceiling: 6 * SLAB, distance: 0x40 * 25, rounds: 60, seed: 12345 },
    { ceiling: 400 * 1024, distance: 0x40 * 400, rounds: 150, seed: 777 },
    { ceiling: 300 * 1024, distance: 0x40 * 100, rounds: 150, seed: 4242 },
    { ceiling: 300 * 1024, distance: 0x40 * 100, rounds: 150, seed: 99, deleteAt: 70 },
    { ceiling: 24 * SLAB, distance: 0x40 * 300, rounds: 150, seed: 5, deleteAt: 33 },
  ])('reads back every version, before and after flushes and a reload; the pool returns to zero (%o)', async ({ ceiling, distance, rounds, seed, deleteAt }) => {
    const base = newDir()
    const tenant = generateTenantId()
    const pool = new SlabPool({ slabBytes: SLAB, residentBytesMax: ceiling })
    const opts: TimelineOptions = { noSync: true, waitLsnTimeoutMs: 2000, slabPool: pool }
    const mk = async (name: string, parent: Tl | null): Promise<Tl> => {
      const dir = join(base, name)
      mkdirSync(dir)
      const branchLsn = parent ? parent.at : 0x100
      const meta = parent ? testTimelineMetadata({ ancestorTimeline: parent.tl.timelineId, ancestorLsn: lsn(branchLsn), diskConsistentLsn: lsn(branchLsn), lastRecordLsn: lsn(branchLsn), minReadableLsn: lsn(branchLsn) }) : testTimelineMetadata()
      const tl = await Timeline.create(dir, tenant, generateTimelineId(), meta, parent ? parent.tl : null, opts)
      return { name, tl, model: new Map(), parent, branchLsn, at: branchLsn }
    }
    const r = rng(seed)
    const p = await mk('parent', null)
    const c = await mk('other', null)
    ingestBatch(p, r, 30)
    ingestBatch(c, r, 30)
    const b = await mk('branch', p)
    const all = [p, c, b]
    const flushes: Array<Promise<void>> = []
    let maxResident = 0
    for (let round = 0; round < rounds; round++) {
      if (round === deleteAt) {
        // Delete the unrelated root while the others ingest (tenant.deleteTimeline: close, then remove its directory).
        const i = all.indexOf(c)
        all.splice(i, 1)
        const unflushed = c.tl.inMemoryBytes
        expect(unflushed).toBeGreaterThan(0)
        await c.tl.close()
        expect(readdirSync(c.tl.dir).filter((n) => n.startsWith('ephemeral-') || n.endsWith('___temp'))).toEqual([])
        rmSync(c.tl.dir, { recursive: true })
        checkNoSharedSlabs(all, pool)
      }
      for (const t of [...all].sort(() => r() - 0.5)) {
        ingestBatch(t, r, 1 + Math.floor(r() * 12))
        maxResident = Math.max(maxResident, pool.residentBytes + pool.pooledBytes)
        const open = t.tl.openLayerWalBytes
        if (open >= BigInt(distance)) {
          t.tl.freeze()
          flushes.push(t.tl.flush())
        }
      }
      // The server's ceiling rule (server.ts tick): the open layer holding the oldest unflushed WAL is frozen.
      let total = 0
      for (const t of all) total += t.tl.inMemoryBytes
      if (total >= ceiling) {
        let oldest: Tl | null = null
        for (const t of all) {
          const l = t.tl.openLayerStartLsn
          if (l === null || t.tl.openLayerWalBytes === 0n) continue
          if (oldest === null || l < oldest.tl.openLayerStartLsn!) oldest = t
        }
        if (oldest) {
          oldest.tl.freeze()
          flushes.push(oldest.tl.flush())
        }
      }
      checkNoSharedSlabs(all, pool)
      if (round % 7 === 0) verify(all, r, 40)
      if (round % 5 === 0) await new Promise((res) => setImmediate(res))
      if (round % 11 === 0) await Promise.all(flushes.splice(0))
    }
    expect(pool.stats.spilled).toBeGreaterThan(5)
    verify(all, r, 200)
    await Promise.all(flushes.splice(0))
    verify(all, r, 200)
    for (const t of all) await t.tl.checkpoint()
    verify(all, r, 200)
    for (const t of all) expect(readdirSync(t.tl.dir).filter((n) => n.startsWith('ephemeral-'))).toEqual([])
    expect(pool.residentBytes).toBe(0)
    for (const t of [b, c, p]) await t.tl.close()
    expect(pool.residentBytes).toBe(0)
    // reload from disk
    const pl = await Timeline.load(p.tl.dir, tenant, p.tl.timelineId, null, opts)
    const bl = await Timeline.load(b.tl.dir, tenant, b.tl.timelineId, pl, opts)
    if (all.includes(c)) c.tl = await Timeline.load(c.tl.dir, tenant, c.tl.timelineId, null, opts)
    p.tl = pl
    b.tl = bl
    verify(all, r, 300)
    for (const t of [b, c, p]) await t.tl.close()
    expect(pool.residentBytes).toBe(0)
  }, 60_000)
})
