// Key text built from byte tables and the cached relation prefixes (the ingest hot path) against an
// independent formula: the 18 key bytes written big-endian into a Buffer and hex-encoded. The cache is
// driven through colliding slots so stale entries would show.
import { describe, expect, it } from 'vitest'
import { keyFromFields, keyFromPrefix, keyPrefixFromFields, type KeyFields } from '../../../src/core/model/key.js'
import { relBlockKey, relBlockKeyCached, relDirKey, relKeyPrefix, relSizeKey } from '../../../src/core/datadir/mapping.js'
import type { RelTag } from '../../../src/core/pg/reltag.js'
import { prng } from '../layer/helpers.js'

function reference(f: KeyFields): string {
  const b = Buffer.alloc(18)
  b.writeUInt8(f.field1, 0)
  b.writeUInt32BE(f.field2, 1)
  b.writeUInt32BE(f.field3, 5)
  b.writeUInt32BE(f.field4, 9)
  b.writeUInt8(f.field5, 13)
  b.writeUInt32BE(f.field6, 14)
  return b.toString('hex').toUpperCase()
}

const u32 = (rng: () => number) => Math.floor(rng() * 2 ** 32)

describe('key text', () => {
  it('keyFromFields equals the big-endian bytes in hex, at the edges and at random', () => {
    const edges = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff]
    for (const e of edges) {
      const f = { field1: e & 0xff, field2: e, field3: e, field4: e, field5: e & 0xff, field6: e }
      expect(keyFromFields(f)).toBe(reference(f))
    }
    const rng = prng(11)
    for (let i = 0; i < 2000; i++) {
      const f = { field1: u32(rng) & 0xff, field2: u32(rng), field3: u32(rng), field4: u32(rng), field5: u32(rng) & 0xff, field6: u32(rng) }
      expect(keyFromFields(f)).toBe(reference(f))
      expect(keyFromPrefix(keyPrefixFromFields(f.field1, f.field2, f.field3, f.field4, f.field5), f.field6)).toBe(reference(f))
    }
  })

  it('relation directory keys stay right through their cache\'s collisions', () => {
    const rng = prng(13)
    const dbs = Array.from({ length: 500 }, () => ({ spc: [1663, 1664, u32(rng)][Math.floor(rng() * 3)]!, db: u32(rng) % 5000 }))
    for (let round = 0; round < 3; round++) {
      for (const { spc, db } of dbs) {
        expect(relDirKey(spc, db)).toBe(reference({ field1: 0, field2: spc, field3: db, field4: 0, field5: 0, field6: 1 }))
      }
    }
  })

  it('relation block and size keys stay right through prefix-cache collisions', () => {
    const rng = prng(12)
    // Few distinct dbNode/forkNum values and many relNodes: many relations share each of the 256 slots.
    const rels: RelTag[] = Array.from({ length: 3000 }, () => ({
      spcNode: rng() < 0.5 ? 1663 : 1664,
      dbNode: [0, 5, 16384][Math.floor(rng() * 3)]!,
      relNode: u32(rng),
      forkNum: Math.floor(rng() * 4),
    }))
    for (let round = 0; round < 3; round++) {
      for (const rel of rels) {
        const blk = u32(rng) % 0xffff_ffff
        const f = { field1: 0, field2: rel.spcNode, field3: rel.dbNode, field4: rel.relNode, field5: rel.forkNum }
        // The size key first in some rounds: it must not come from a slot another relation filled.
        if (round === 1) expect(relSizeKey(rel)).toBe(reference({ ...f, field6: 0xffff_ffff }))
        expect(relBlockKey(rel, blk)).toBe(reference({ ...f, field6: blk }))
        expect(relSizeKey(rel)).toBe(reference({ ...f, field6: 0xffff_ffff }))
        expect(relKeyPrefix(rel)).toBe(reference({ ...f, field6: 0 }).slice(0, 28))
      }
    }
    // Two relations differing only in one field never share a prefix.
    const a: RelTag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0 }
    for (const b of [{ ...a, spcNode: 1664 }, { ...a, dbNode: 6 }, { ...a, relNode: 16385 }, { ...a, forkNum: 1 }]) {
      expect(relKeyPrefix(b)).not.toBe(relKeyPrefix(a))
      expect(relKeyPrefix(a)).toBe(reference({ field1: 0, field2: 1663, field3: 5, field4: 16384, field5: 0, field6: 0 }).slice(0, 28))
    }
  })

  it('served block keys stay right through both caches\' collisions, and repeat as the same string', () => {
    const rng = prng(14)
    // Relations crowding the prefix slots and blocks crowding the block-key slots, in rounds that revisit them.
    const rels: RelTag[] = Array.from({ length: 600 }, () => ({ spcNode: 1663, dbNode: [0, 5][Math.floor(rng() * 2)]!, relNode: u32(rng), forkNum: Math.floor(rng() * 3) }))
    const asks = Array.from({ length: 40_000 }, () => ({ rel: rels[Math.floor(rng() * rels.length)]!, blk: rng() < 0.5 ? Math.floor(rng() * 64) : u32(rng) }))
    for (let round = 0; round < 2; round++) {
      for (const { rel, blk } of asks) {
        expect(relBlockKeyCached(rel, blk)).toBe(reference({ field1: 0, field2: rel.spcNode, field3: rel.dbNode, field4: rel.relNode, field5: rel.forkNum, field6: blk }))
      }
    }
    // Asked twice in a row, a block gets its key back from the cache: equal, and the same text relBlockKey builds.
    const rel: RelTag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0 }
    for (const blk of [0, 1, 7, 0xffff_fffe, 0xffff_ffff]) {
      const first = relBlockKeyCached(rel, blk)
      expect(relBlockKeyCached(rel, blk)).toBe(first)
      expect(first).toBe(relBlockKey(rel, blk))
    }
  })
})
