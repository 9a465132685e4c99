/**
 * Compares our pages with a PostgreSQL primary's data files: for every relation fork (the free-space map
 * aside: it is not WAL-logged) of the given databases, every block read through our repository at `lsn`
 * must equal, after masking, the page in the primary's files after a CHECKPOINT taken with no writes since
 * that LSN.
 */
import { openSync, readSync, closeSync, fstatSync } from 'node:fs'
import { join } from 'node:path'
import type { PgCluster } from './pg-cluster.js'
import type { DatadirReader } from '../../src/core/datadir/read.js'
import type { Lsn } from '../../src/core/pg/lsn.js'
import { ForkNumber, type RelTag } from '../../src/core/pg/reltag.js'
import { maskPageLsnAndChecksum, maskPageHintBits, maskUnusedSpace, heapMask, btreeMask, hashMask, gistMask, seqMask } from '../../src/core/redo/mask/index.js'

const FORK_SUFFIX = ['', '_fsm', '_vm', '_init']

export interface CompareReport {
  relations: number
  blocks: number
  mismatches: Array<{ rel: string; blk: number; offset: number }>
  sizeMismatches: Array<{ rel: string; ours: number; theirs: number }>
}

function relFile(pg: PgCluster, r: RelTag, segment: number): string {
  const base = r.spcNode === 1664 ? join(pg.dataDir, 'global', String(r.relNode)) : join(pg.dataDir, 'base', String(r.dbNode), String(r.relNode))
  return base + FORK_SUFFIX[r.forkNum] + (segment > 0 ? `.${segment}` : '')
}

/** The masks PostgreSQL's consistency check would apply, chosen from the page itself (no rmgr known here). */
export function maskForCompare(page: Buffer, blkno: number, forkNum: number): Buffer {
  const p = Buffer.from(page)
  if (p.readUInt16LE(14) === 0) return p // new (all-zero header) page
  if (forkNum === ForkNumber.VisibilityMap) {
    maskPageLsnAndChecksum(p)
    return p
  }
  const special = p.readUInt16LE(16)
  const specialSize = 8192 - special
  const pageId = specialSize >= 2 ? p.readUInt16LE(8190) : 0
  if (specialSize === 0) heapMask(p, blkno)
  else if (specialSize === 16 && pageId === 0xff80) hashMask(p, blkno)
  else if (specialSize === 16 && pageId === 0xff81) gistMask(p, blkno)
  else if (specialSize === 16) btreeMask(p, blkno)
  else if (specialSize === 8 && p.readUInt32LE(special) === 0x1717) seqMask(p, blkno)
  else {
    maskPageLsnAndChecksum(p)
    maskPageHintBits(p)
    maskUnusedSpace(p)
  }
  return p
}

export async function comparePages(pg: PgCluster, reader: DatadirReader, lsn: Lsn, dbs: Array<{ spc: number; db: number }>): Promise<CompareReport> {
  const report: CompareReport = { relations: 0, blocks: 0, mismatches: [], sizeMismatches: [] }
  const page = Buffer.alloc(8192)
  for (const { spc, db } of dbs) {
    for (const rel of reader.relations(spc, db, lsn)) {
      if (rel.forkNum === ForkNumber.Fsm) continue
      report.relations++
      const ours = reader.relSize(rel, lsn)
      let theirs = 0
      for (let seg = 0; ; seg++) {
        let fd: number
        try {
          fd = openSync(relFile(pg, rel, seg), 'r')
        } catch {
          break
        }
        try {
          const size = fstatSync(fd).size
          const n = size / 8192
          for (let i = 0; i < n; i++) {
            readSync(fd, page, 0, 8192, i * 8192)
            const blk = seg * 131072 + i
            if (blk >= ours) continue
            const mine = await reader.getRelPage(rel, blk, lsn)
            report.blocks++
            const a = maskForCompare(mine, blk, rel.forkNum)
            const b = maskForCompare(page, blk, rel.forkNum)
            if (!a.equals(b)) {
              let off = 0
              while (a[off] === b[off]) off++
              if (process.env.PS_DEBUG_COMPARE) console.log('MISMATCH', rel, blk, off, 'ours', mine.subarray(0, 40).toString('hex'), 'theirs', page.subarray(0, 40).toString('hex'))
              report.mismatches.push({ rel: `${rel.spcNode}/${rel.dbNode}/${rel.relNode}${FORK_SUFFIX[rel.forkNum]}`, blk, offset: off })
            }
          }
          theirs += n
        } finally {
          closeSync(fd)
        }
      }
      if (theirs !== ours) report.sizeMismatches.push({ rel: `${rel.spcNode}/${rel.dbNode}/${rel.relNode}${FORK_SUFFIX[rel.forkNum]}`, ours, theirs })
    }
  }
  return report
}
