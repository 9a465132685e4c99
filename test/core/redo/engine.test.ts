/**
 * The engine's framework around the redo bodies: the record CRC check and its off switch, building the page
 * in a caller's buffer (garbage in it must never leak into the result), and the page-LSN rule ("already
 * applied") at the boundary and above 2^53, where the double fast path must hand over to bigints.
 */
import { describe, expect, it } from 'vitest'
import { CorruptionError } from '../../../src/core/lib/errors.js'
import { errorOf } from '../../support/errors.js'
import { lsn, type Lsn } from '../../../src/core/pg/lsn.js'
import { ForkNumber, type BufferTag, type RelFileNode } from '../../../src/core/pg/reltag.js'
import { RM } from '../../../src/core/pg/rmgr.js'
import { redoBlock } from '../../../src/core/redo/engine.js'
import { pageGetLsn, pageSetLsn } from '../../../src/core/redo/page/page.js'
import { buildRecord, le } from './heap/record-builder.js'

const REL: RelFileNode = { spcNode: 1663, dbNode: 5, relNode: 16384 }
const HEAP: BufferTag = { ...REL, forkNum: ForkNumber.Main, blkno: 0 }
const VM: BufferTag = { ...REL, forkNum: ForkNumber.VisibilityMap, blkno: 0 }
const OPTS = { hintBitsLogged: false }
const XLH_INSERT_ALL_VISIBLE_CLEARED = 0x01

function tuple(body: string): Buffer {
  return Buffer.concat([le([2, 2], [0x0802, 2], [24, 1]), Buffer.from([0]), Buffer.from(body)])
}

/** Heap INSERT (+INIT for offset 1) of `body` at `offnum`. */
function insert(offnum: number, body: string, flags = 0): Buffer {
  return buildRecord({
    rmid: RM.HEAP,
    info: offnum === 1 ? 0x80 : 0x00,
    xid: 1000,
    blocks: [{ id: 0, rel: REL, fork: ForkNumber.Main, blkno: 0, data: tuple(body), willInit: offnum === 1 }],
    main: le([offnum, 2], [flags, 1]),
  })
}

describe('redoBlock', () => {
  it('a record it cannot redo fails naming rmgr, type, end LSN and page, and no start LSN the request does not carry', () => {
    const hash = buildRecord({ rmid: RM.HASH, info: 0x10, xid: 1000, blocks: [{ id: 0, rel: REL, fork: ForkNumber.Main, blkno: 0, data: Buffer.alloc(8) }], main: Buffer.alloc(4) })
    const e = errorOf(() => redoBlock(HEAP, Buffer.alloc(8192), [{ endLsn: lsn(0x1000100n), raw: hash }], OPTS))
    expect(e).toMatchObject({ code: 'REDO_UNSUPPORTED_RECORD', details: { rmgr: 'Hash', endLsn: '0/1000100', rel: '1663/5/16384', blk: 0 } })
    // The walredo protocol gives end LSNs only: "0/0" would name no record.
    expect(e.details).not.toHaveProperty('lsn')
  })

  it('checks each record CRC unless checkRecordCrc is false', () => {
    const good = insert(1, 'first')
    const bad = Buffer.from(good)
    bad.writeUInt32LE((bad.readUInt32LE(20) ^ 1) >>> 0, 20)
    const records = (raw: Buffer) => [{ endLsn: lsn(0x2000n), raw }]
    expect(errorOf(() => redoBlock(HEAP, null, records(bad), OPTS)).code).toBe('REDO_BAD_RECORD_CRC')
    expect(errorOf(() => redoBlock(HEAP, null, records(bad), { ...OPTS, checkRecordCrc: true })).code).toBe('REDO_BAD_RECORD_CRC')
    const page = redoBlock(HEAP, null, records(bad), { ...OPTS, checkRecordCrc: false })
    expect(page.equals(redoBlock(HEAP, null, records(good), OPTS))).toBe(true)
  })

  it('builds the page in the caller buffer, never touching the base, whatever the buffer held', () => {
    const first = redoBlock(HEAP, null, [{ endLsn: lsn(0x2000n), raw: insert(1, 'first') }], OPTS)
    const baseCopy = Buffer.from(first)
    const chain = [
      { endLsn: lsn(0x3000n), raw: insert(2, 'second') },
      { endLsn: lsn(0x4000n), raw: insert(3, 'third', XLH_INSERT_ALL_VISIBLE_CLEARED) },
    ]
    const expected = redoBlock(HEAP, first, chain, OPTS)
    const out = Buffer.alloc(8192, 0xab)
    expect(redoBlock(HEAP, first, chain, OPTS, out)).toBe(out)
    expect(out.equals(expected)).toBe(true)
    expect(first.equals(baseCopy)).toBe(true)

    // No base, dirty buffer: an INIT record and an implicit VM clear must start from zeros, not garbage.
    const dirty = Buffer.alloc(8192, 0xcd)
    expect(redoBlock(HEAP, null, [{ endLsn: lsn(0x2000n), raw: insert(1, 'first') }], OPTS, dirty).equals(first)).toBe(true)
    const vmFresh = redoBlock(VM, null, [chain[1]!], OPTS)
    dirty.fill(0xcd)
    expect(redoBlock(VM, null, [chain[1]!], OPTS, dirty).equals(vmFresh)).toBe(true)
    expect(vmFresh.subarray(24).every((b) => b === 0)).toBe(true)

    expect(() => redoBlock(HEAP, first, chain, OPTS, first)).toThrow(/separate 8192-byte buffer/)
    expect(() => redoBlock(HEAP, first, chain, OPTS, Buffer.alloc(100))).toThrow(/separate 8192-byte buffer/)
    expect(errorOf(() => redoBlock(HEAP, null, [], OPTS, Buffer.alloc(8192))).code).toBe('REDO_NO_PAGE')
  })

  it('a chain redone in steps, each result the next base, gives the page redone at once (the manager splits long chains)', () => {
    const recs = [{ endLsn: lsn(0x2000n), raw: insert(1, 'first') }]
    for (let i = 2; i <= 40; i++) recs.push({ endLsn: lsn(BigInt(0x2000 + i * 0x100)), raw: insert(i, `tuple ${i}`, i % 3 === 0 ? XLH_INSERT_ALL_VISIBLE_CLEARED : 0) })
    for (const tag of [HEAP, VM]) {
      const mine = tag === HEAP ? recs : recs.filter((_, i) => (i + 1) % 3 === 0)
      const whole = redoBlock(tag, null, mine, OPTS)
      for (const step of [1, 2, 7]) {
        let page: Buffer | null = null
        for (let i = 0; i < mine.length; i += step) page = redoBlock(tag, page, mine.slice(i, i + step), OPTS)
        expect(page!.equals(whole), `${tag.forkNum} in steps of ${step}`).toBe(true)
      }
    }
  })

  it('skips a record ending at or below pd_lsn, also for LSNs above 2^53', () => {
    const base = redoBlock(HEAP, null, [{ endLsn: lsn(0x2000n), raw: insert(1, 'first') }], OPTS)
    for (const pd of [0x5000n, 2n ** 53n + 0x5000n, 0xffff_ffff_0000_5000n]) {
      const page = Buffer.from(base)
      pageSetLsn(page, pd)
      expect(pageGetLsn(page)).toBe(pd)
      const at = (d: bigint): Lsn => lsn(pd + d)
      // At pd_lsn and below: already applied, the page comes back unchanged.
      for (const d of [0n, -8n]) expect(redoBlock(HEAP, page, [{ endLsn: at(d), raw: insert(2, 'x') }], OPTS).equals(page)).toBe(true)
      // Above: applied, and pd_lsn becomes the record's end LSN, exactly.
      const after = redoBlock(HEAP, page, [{ endLsn: at(8n), raw: insert(2, 'x') }], OPTS)
      expect(after.equals(page)).toBe(false)
      expect(pageGetLsn(after)).toBe(pd + 8n)
    }
  })

  it('stamps pd_lsn as two little-endian words, high first, on both sides of 2^32 and 2^53', () => {
    const page = Buffer.alloc(8192)
    for (const v of [0n, 0xffff_ffffn, 0x1_0000_0000n, 0x16b3748n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 64n - 1n]) {
      pageSetLsn(page, v)
      expect(page.readUInt32LE(0)).toBe(Number(v >> 32n))
      expect(page.readUInt32LE(4)).toBe(Number(v & 0xffff_ffffn))
    }
    expect(() => redoBlock(HEAP, null, [{ endLsn: lsn(1n), raw: Buffer.alloc(10) }], OPTS)).toThrow(CorruptionError)
  })
})
