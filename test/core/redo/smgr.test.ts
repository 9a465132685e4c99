/**
 * Storage TRUNCATE redo: the last VM page and the last FSM leaf page, against a real primary.
 *
 * A table of ~117 pages is frozen (VM bits set), checkpointed (FSM base copied), its last ~50 pages deleted
 * whole, and VACUUMed: VACUUM marks the emptied pages all-visible, then truncates the heap, which logs
 * Storage/TRUNCATE. After a checkpoint:
 *  - VM: the last VM image before the TRUNCATE (wal_consistency_checking image, or the full-page write
 *    PostgreSQL logs with checksums on) + TRUNCATE through our engine == the VM fork's block 0;
 *  - FSM: the checkpointed leaf page + TRUNCATE == the FSM fork's leaf page (LSN and checksum masked);
 *  - the heap is then re-extended part of the way and VACUUMed again: the verifier chains the TRUNCATE into
 *    the VM page and compares at the next Heap2/VISIBLE image (without the TRUNCATE, stale bits of the
 *    truncated blocks would remain: negative control);
 *  - fork sizes agree with fsmTruncation / vmTruncation.
 * Plus unit tests of the parsers and FSM page routines on hand-built pages.
 */
import { describe, expect, it } from 'vitest'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { PgCluster } from '../../support/pg-cluster.js'
import { readWalRecords, summarize } from '../../support/wal-verify.js'
import { decodeRecord, restoreBlockImage, type DecodedRecord } from '../../../src/core/pg/wal-record.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import { ForkNumber } from '../../../src/core/pg/reltag.js'
import { RM } from '../../../src/core/pg/rmgr.js'
import { redoBlock } from '../../../src/core/redo/engine.js'
import { implicitTargets, recordLabel } from '../../../src/core/redo/rmgr-redo.js'
import { RedoVerifier } from '../../../src/core/redo/verify.js'
import { pageInit, pageIsNew, pageSetLsn } from '../../../src/core/redo/page/page.js'
import {
  FSM_NEXT_SLOT_OFFSET,
  FSM_NODES_OFFSET,
  FSM_NON_LEAF_NODES_PER_PAGE,
  SLOTS_PER_FSM_PAGE,
  SMGR_TRUNCATE_ALL,
  SMGR_TRUNCATE_FSM,
  SMGR_TRUNCATE_HEAP,
  SMGR_TRUNCATE_VM,
  fsmGetAvail,
  fsmLogicalToPhysical,
  fsmRebuildPage,
  fsmTruncateAvail,
  fsmTruncation,
  parseSmgrCreate,
  parseSmgrTruncate,
} from '../../../src/core/redo/smgr.js'
import { buildRecord } from './heap/record-builder.js'

const PAGE = 8192

function block(file: string, blkno: number): Buffer {
  return Buffer.from(readFileSync(file).subarray(blkno * PAGE, (blkno + 1) * PAGE))
}

/** LSN and checksum zeroed: what a truncation must reproduce exactly besides them. */
function maskLsnChecksum(p: Buffer): Buffer {
  const c = Buffer.from(p)
  c.fill(0, 0, 10)
  return c
}

function isTruncate(r: DecodedRecord): boolean {
  return r.xl_rmid === RM.SMGR && r.rmgrInfo === 0x20
}

async function runVerifier(records: DecodedRecord[], hintBitsLogged: boolean) {
  const v = new RedoVerifier({ redo: (tag, base, recs) => redoBlock(tag, base, recs, { hintBitsLogged }) })
  for (const r of records) await v.addRecord(r)
  return v.report()
}

describe.each([{ checksums: false }, { checksums: true }])('Storage TRUNCATE against the primary (checksums $checksums)', ({ checksums }) => {
  it('edits the last VM page and the FSM leaf page exactly as PostgreSQL', async () => {
    // full_page_writes off: otherwise the first VISIBLE after the checkpoint carries a real full-page write of
    // the VM page, which would hide the chain through the TRUNCATE from the verifier.
    const pg = await PgCluster.start({ checksums, walConsistencyChecking: 'all', name: 'smgr', settings: { full_page_writes: false } })
    try {
      await pg.sql(`CREATE TABLE tr (id int, pad text) WITH (autovacuum_enabled = off);
        INSERT INTO tr SELECT g, repeat('x', 100) FROM generate_series(1, 7000) g;
        VACUUM (FREEZE) tr;`)
      const relPath = join(pg.dataDir, await pg.sql(`SELECT pg_relation_filepath('tr')`))
      const nblocksBefore = Number(await pg.sql(`SELECT pg_relation_size('tr') / 8192`))
      const keep = nblocksBefore - 50
      await pg.checkpoint()
      const start = await pg.insertLsn()
      const fsmBase = block(`${relPath}_fsm`, 2)
      await pg.sql(`DELETE FROM tr WHERE (ctid::text::point)[0] >= ${keep}; VACUUM tr;`)
      await pg.checkpoint()
      const afterTruncate = await pg.insertLsn()
      const vmFinal = block(`${relPath}_vm`, 0)
      const fsmFinal = block(`${relPath}_fsm`, 2)
      const heapBlocks = statSync(relPath).size / PAGE
      const fsmBlocks = statSync(`${relPath}_fsm`).size / PAGE
      const vmBlocks = statSync(`${relPath}_vm`).size / PAGE
      // Re-extend part of the way, then VACUUM: Heap2/VISIBLE images of VM block 0 check the chain.
      await pg.sql(`INSERT INTO tr SELECT g, repeat('y', 100) FROM generate_series(1, 600) g; VACUUM tr;`)
      const end = await pg.insertLsn()
      await pg.sql('SELECT pg_switch_wal()')
      const records = readWalRecords(pg.walDir, pg.walSegments(), start, end)

      const truncates = records.filter(isTruncate)
      expect(truncates.length).toBe(1)
      const trunc = truncates[0]!
      const t = parseSmgrTruncate(trunc.mainData())
      expect(t.flags).toBe(SMGR_TRUNCATE_ALL)
      expect(t.blkno).toBe(keep)
      expect(heapBlocks).toBe(keep)
      expect(fsmBlocks).toBe(fsmTruncation(keep).newFsmBlocks)
      expect(vmBlocks).toBe(1)
      const targets = implicitTargets(trunc).map((x) => [x.tag.forkNum, x.tag.blkno])
      expect(targets).toEqual([
        [ForkNumber.Fsm, 2],
        [ForkNumber.VisibilityMap, 0],
      ])
      const vmTag = { ...t.rnode, forkNum: ForkNumber.VisibilityMap, blkno: 0 }
      const fsmTag = { ...t.rnode, forkNum: ForkNumber.Fsm, blkno: 2 }

      // VM: the last image of VM block 0 before the TRUNCATE is the base.
      let vmBase: Buffer | null = null
      for (const r of records) {
        if (r === trunc) break
        for (const b of r.blocks) {
          if (b.hasImage && b.forkNum === ForkNumber.VisibilityMap && b.blkno === 0 && b.rel.relNode === t.rnode.relNode) {
            vmBase = restoreBlockImage(r, b, Buffer.alloc(PAGE))
            if (!pageIsNew(vmBase)) pageSetLsn(vmBase, r.endLsn)
          }
        }
      }
      expect(vmBase).not.toBeNull()
      const vmOurs = redoBlock(vmTag, vmBase, [{ endLsn: trunc.endLsn, raw: trunc.raw }], { hintBitsLogged: checksums })
      expect(maskLsnChecksum(vmOurs)).toEqual(maskLsnChecksum(vmFinal))
      if (!checksums) {
        // The truncation had bits to clear: the base differs from the final page.
        expect(maskLsnChecksum(vmBase!)).not.toEqual(maskLsnChecksum(vmFinal))
      }

      // FSM leaf page: the checkpointed page + TRUNCATE.
      const fsmOurs = redoBlock(fsmTag, fsmBase, [{ endLsn: trunc.endLsn, raw: trunc.raw }], { hintBitsLogged: checksums })
      expect(maskLsnChecksum(fsmOurs)).toEqual(maskLsnChecksum(fsmFinal))
      for (let s = keep; s < SLOTS_PER_FSM_PAGE; s += 97) expect(fsmGetAvail(fsmFinal, s)).toBe(0)

      // The verifier chain: the TRUNCATE sits in VM block 0's queue until the next VISIBLE image.
      const report = await runVerifier(records, checksums)
      expect(report.mismatches, summarize(report)).toBe(0)
      const visibleAfter = records.filter(
        (r) => r.lsn > afterTruncate && recordLabel(r) === 'Heap2/VISIBLE' && r.blocks.some((b) => b.forkNum === ForkNumber.VisibilityMap),
      )
      expect(visibleAfter.length).toBeGreaterThan(0)
      expect(report.byRecordType['Heap2/VISIBLE']?.checked ?? 0).toBeGreaterThan(0)
      if (!checksums) {
        const without = await runVerifier(
          records.filter((r) => !isTruncate(r)),
          checksums,
        )
        expect(without.mismatches).toBeGreaterThan(0)
        expect(without.firstMismatches.some((m) => m.fork === 'vm')).toBe(true)
      }
    } finally {
      await pg.destroy()
    }
  })
})

describe('Storage records and FSM pages (hand-built)', () => {
  const rnode = { spcNode: 1663, dbNode: 5, relNode: 16400 }
  const truncMain = (blkno: number, flags: number) => {
    const m = Buffer.alloc(20)
    m.writeUInt32LE(blkno, 0)
    m.writeUInt32LE(rnode.spcNode, 4)
    m.writeUInt32LE(rnode.dbNode, 8)
    m.writeUInt32LE(rnode.relNode, 12)
    m.writeInt32LE(flags, 16)
    return m
  }
  const truncRec = (blkno: number, flags: number) => buildRecord({ rmid: RM.SMGR, info: 0x20, xid: 0, main: truncMain(blkno, flags) })

  it('parses CREATE and TRUNCATE', () => {
    const c = Buffer.alloc(16)
    c.writeUInt32LE(1663, 0)
    c.writeUInt32LE(5, 4)
    c.writeUInt32LE(16400, 8)
    c.writeInt32LE(2, 12)
    expect(parseSmgrCreate(c)).toEqual({ rnode, forkNum: 2 })
    c.writeInt32LE(7, 12)
    expect(() => parseSmgrCreate(c)).toThrow(/fork 7/)
    expect(parseSmgrTruncate(truncMain(10000, 7))).toEqual({ blkno: 10000, rnode, flags: 7 })
    expect(() => parseSmgrTruncate(Buffer.alloc(19))).toThrow(/expected 20/)
    const create = buildRecord({ rmid: RM.SMGR, info: 0x10, xid: 0, main: Buffer.alloc(16) })
    expect(implicitTargets(decodeRecord(create))).toEqual([])
  })

  it('maps FSM pages depth first (fsm_logical_to_physical)', () => {
    expect(SLOTS_PER_FSM_PAGE).toBe(4069)
    expect(fsmLogicalToPhysical(2, 0)).toBe(0)
    expect(fsmLogicalToPhysical(1, 0)).toBe(1)
    expect(fsmLogicalToPhysical(0, 0)).toBe(2)
    expect(fsmLogicalToPhysical(0, 4068)).toBe(4070)
    expect(fsmLogicalToPhysical(1, 1)).toBe(4071)
    expect(fsmLogicalToPhysical(0, 4069)).toBe(4072)
    expect(fsmTruncation(10000)).toEqual({ leafBlock: 4, firstRemovedSlot: 1862, newFsmBlocks: 5 })
    expect(fsmTruncation(8138)).toEqual({ leafBlock: 4, firstRemovedSlot: 0, newFsmBlocks: 4 })
  })

  it('targets only the pages a partial cut edits, per flag', () => {
    const t = (blkno: number, flags: number) => implicitTargets(decodeRecord(truncRec(blkno, flags))).map((x) => [x.tag.forkNum, x.tag.blkno])
    expect(t(10000, SMGR_TRUNCATE_ALL)).toEqual([
      [ForkNumber.Fsm, 4],
      [ForkNumber.VisibilityMap, 0],
    ])
    expect(t(10000, SMGR_TRUNCATE_HEAP)).toEqual([])
    expect(t(10000, SMGR_TRUNCATE_VM)).toEqual([[ForkNumber.VisibilityMap, 0]])
    expect(t(8138, SMGR_TRUNCATE_ALL)).toEqual([[ForkNumber.VisibilityMap, 0]]) // FSM slot 0: whole page dropped
    expect(t(32672, SMGR_TRUNCATE_ALL)).toEqual([[ForkNumber.Fsm, fsmTruncation(32672).leafBlock]]) // VM page boundary
    expect(t(0, SMGR_TRUNCATE_ALL)).toEqual([])
  })

  it('zeroes the truncated FSM slots, rebuilds the tree, resets fp_next_slot', () => {
    const page = Buffer.alloc(PAGE)
    pageInit(page, 0)
    page.writeInt32LE(1234, FSM_NEXT_SLOT_OFFSET)
    for (let s = 0; s < SLOTS_PER_FSM_PAGE; s++) page[FSM_NODES_OFFSET + FSM_NON_LEAF_NODES_PER_PAGE + s] = (s * 37) % 251
    fsmRebuildPage(page)
    expect(page[FSM_NODES_OFFSET]).toBe(250)
    const raw = truncRec(8138 + 100, SMGR_TRUNCATE_FSM)
    const out = redoBlock({ ...rnode, forkNum: ForkNumber.Fsm, blkno: 4 }, page, [{ endLsn: lsn(5000), raw }], { hintBitsLogged: false })
    expect(out.readInt32LE(FSM_NEXT_SLOT_OFFSET)).toBe(0)
    for (let s = 0; s < 100; s++) expect(fsmGetAvail(out, s)).toBe((s * 37) % 251)
    for (let s = 100; s < SLOTS_PER_FSM_PAGE; s++) expect(fsmGetAvail(out, s)).toBe(0)
    // The root is the max of the kept slots; every inner node is the max of its children.
    expect(out[FSM_NODES_OFFSET]).toBe(Math.max(...Array.from({ length: 100 }, (_, s) => (s * 37) % 251)))
    for (let n = 0; n < FSM_NON_LEAF_NODES_PER_PAGE; n++) {
      const l = 2 * n + 1
      const kids = [l, l + 1].filter((c) => c < 8164).map((c) => out[FSM_NODES_OFFSET + c]!)
      expect(out[FSM_NODES_OFFSET + n]).toBe(Math.max(0, ...kids))
    }
    expect(out.readBigUInt64LE(0)).toBe(0n) // pd_lsn untouched (FSM pages are not LSN-stamped)
    // a new page is PageInit-ed; nothing else changes
    const fresh = redoBlock({ ...rnode, forkNum: ForkNumber.Fsm, blkno: 4 }, null, [{ endLsn: lsn(5000), raw }], { hintBitsLogged: false })
    const init = Buffer.alloc(PAGE)
    pageInit(init, 0)
    expect(fresh).toEqual(init)
    expect(fsmTruncateAvail(init, 5)).toBe(false)
  })

  it('clears VM bits from the cut on and leaves pd_lsn alone', () => {
    const page = Buffer.alloc(PAGE)
    pageInit(page, 0)
    page.fill(0xff, 24)
    page.writeBigUInt64LE(0x77n, 0)
    const raw = truncRec(10001, SMGR_TRUNCATE_VM)
    const out = redoBlock({ ...rnode, forkNum: ForkNumber.VisibilityMap, blkno: 0 }, page, [{ endLsn: lsn(5000), raw }], { hintBitsLogged: false })
    expect(out[24 + 2499]).toBe(0xff)
    expect(out[24 + 2500]).toBe(0x03) // heap block 10000 kept, 10001.. cleared
    expect(out.subarray(24 + 2501).every((b) => b === 0)).toBe(true)
    expect(out.readBigUInt64LE(0)).toBe(0x77n)
    expect(() => redoBlock({ ...rnode, forkNum: ForkNumber.VisibilityMap, blkno: 1 }, page, [{ endLsn: lsn(5000), raw }], { hintBitsLogged: false })).toThrow(
      /does not edit this page/,
    )
    expect(() => redoBlock({ ...rnode, relNode: 1, forkNum: ForkNumber.VisibilityMap, blkno: 0 }, page, [{ endLsn: lsn(5000), raw }], { hintBitsLogged: false })).toThrow(
      /another relation/,
    )
  })
})
