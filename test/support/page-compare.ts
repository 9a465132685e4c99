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
  /**
   * Sequence pages are not compared: PostgreSQL WAL-logs a sequence 32 values ahead of its buffer (a
   * standby's page, rebuilt from WAL, differs from the primary's by design). The redo suite checks them
   * byte for byte against wal_consistency_checking images instead.
   */
  sequencePagesSkipped: number
  mismatches: Array<{ rel: string; blk: number; offset: number }>
  sizeMismatches: Array<{ rel: string; ours: number; theirs: number }>
}

function relFile(dataDir: string, r: RelTag, segment: number): string {
  const base = r.spcNode === 1664 ? join(dataDir, 'global', String(r.relNode)) : join(dataDir, 'base', String(r.dbNode), String(r.relNode))
  return base + FORK_SUFFIX[r.forkNum] + (segment > 0 ? `.${segment}` : '')
}

function isSequencePage(p: Buffer): boolean {
  const special = p.readUInt16LE(16)
  return p.readUInt16LE(14) !== 0 && special === 8192 - 8 && p.readUInt32LE(special) === 0x1717
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

/**
 * `source` is a running cluster (its data directory) or the path of a copy of a data directory taken
 * right after a CHECKPOINT at `lsn` (only base/ and global/ are read).
 */
export interface CompareOptions {
  /**
   * Databases whose visibility-map forks are not compared: PostgreSQL 15 writes the pages it copies for
   * CREATE DATABASE ... STRATEGY wal_log with log_newpage_buffer(page_std = true), and a VM page's whole bitmap
   * lies in the "hole" between pd_lower and pd_upper, so the WAL carries no VM bits: every standby (and we)
   * rebuild those pages with zero bits while the primary keeps its own.
   */
  skipVmOfDbs?: ReadonlySet<number>
}

export async function comparePages(source: PgCluster | string, reader: DatadirReader, lsn: Lsn, dbs: Array<{ spc: number; db: number }>, opts: CompareOptions = {}): Promise<CompareReport> {
  const dataDir = typeof source === 'string' ? source : source.dataDir
  const report: CompareReport = { relations: 0, blocks: 0, sequencePagesSkipped: 0, mismatches: [], sizeMismatches: [] }
  const page = Buffer.alloc(8192)
  for (const { spc, db } of dbs) {
    for (const rel of reader.relations(spc, db, lsn)) {
      if (rel.forkNum === ForkNumber.Fsm) continue
      if (rel.forkNum === ForkNumber.VisibilityMap && opts.skipVmOfDbs?.has(rel.dbNode)) continue
      report.relations++
      const ours = reader.relSize(rel, lsn)
      let theirs = 0
      for (let seg = 0; ; seg++) {
        let fd: number
        try {
          fd = openSync(relFile(dataDir, rel, seg), 'r')
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
            if (rel.forkNum === ForkNumber.Main && isSequencePage(page) && isSequencePage(mine)) {
              report.sequencePagesSkipped++
              continue
            }
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
