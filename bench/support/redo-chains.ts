/**
 * Per-page redo chains of the cached benchmark WAL (`bench/wal-decode.ts` caches it), shared by
 * `redo-engine-once.ts` (the engine alone) and `redo-pool-once.ts` (the same chains through the worker pool).
 *
 * Chains: the records of each relation page (block references and implicit visibility-map targets) from
 * its last full-page image or initialisation on, other pages' images cut out as the page server's requests
 * have them (walredo/record-trim.ts); pages with no image or initialisation in the WAL are left out (no
 * base page without a backup). They are built once by a child process and cached beside the WAL
 * (`redo-chains-v1.bin`), so a timing process never holds the decoded WAL (hundreds of MB its garbage
 * collections would mark) and has never decoded WAL at all.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Lsn } from '../../src/core/pg/lsn.js'
import type { BufferTag } from '../../src/core/pg/reltag.js'
import { redoBlock, type RedoOptions, type RedoRecord } from '../../src/core/redo/engine.js'

export const DEFAULT_WAL_DIR = join(tmpdir(), 'pageserver-bench-wal-v1-off', 'pg_wal')

export interface RedoChain {
  readonly tag: BufferTag
  /** The page's records back to back. */
  readonly all: Buffer
  /** The records: views of `all`, with their end LSNs. */
  readonly records: RedoRecord[]
}

/** The chains of `walDir`'s WAL, built (in a child process) and cached on first use. */
export function loadRedoChains(walDir: string): RedoChain[] {
  const cacheFile = cacheFileOf(walDir)
  if (!existsSync(cacheFile)) {
    execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), walDir], { stdio: 'inherit' })
  }
  return parseCache(readFileSync(cacheFile))
}

/**
 * The engine over `chains` as a worker process runs it: before each page's redo its records are copied into
 * one reused arena (the worker reads a request into its arena, so the engine finds them in its cache), and
 * the page is built in one reused buffer (as the worker builds its reply).
 */
export class ArenaRedo {
  private readonly arena: Buffer
  private readonly out = Buffer.allocUnsafe(8192)
  /** The chains with their records as views of the arena. */
  private readonly inArena: RedoChain[]

  constructor(chains: readonly RedoChain[]) {
    this.arena = Buffer.allocUnsafe(chains.reduce((m, c) => Math.max(m, c.all.length), 0))
    this.inArena = chains.map((c) => {
      let off = 0
      const records = c.records.map((r) => ({ endLsn: r.endLsn, raw: this.arena.subarray(off, (off += r.raw.length)) }))
      return { tag: c.tag, all: c.all, records }
    })
  }

  /** Redoes every chain once. */
  pass(opts: RedoOptions): void {
    for (const c of this.inArena) {
      c.all.copy(this.arena)
      redoBlock(c.tag, null, c.records, opts, this.out)
    }
  }
}

function cacheFileOf(walDir: string): string {
  return join(dirname(walDir), 'redo-chains-v1.bin')
}

// Run as a script: build the cache of the WAL directory given.
if (process.argv[1] === fileURLToPath(import.meta.url)) await buildCache(process.argv[2]!)

/** Decodes the WAL into per-page chains and writes them to the cache file (in the child process). */
async function buildCache(walDir: string): Promise<void> {
  const cacheFile = cacheFileOf(walDir)
  await import('../../src/core/redo/all.js') // the rmgr registry implicitTargets reads
  const { WalFileReader } = await import('../../src/core/pg/wal-files.js')
  const { isSlruFork } = await import('../../src/core/pg/slru.js')
  const { implicitTargets } = await import('../../src/core/redo/rmgr-redo.js')
  const { trimRecords } = await import('../../src/core/walredo/record-trim.js')
  const pages = new Map<string, { tag: BufferTag; records: RedoRecord[] }>()
  const reader = await WalFileReader.open([walDir], { reuseBuffers: false, crcWorker: false })
  for await (const batch of reader.recordBatches()) {
    for (const rec of batch) {
      const r: RedoRecord = { endLsn: rec.endLsn, raw: rec.raw }
      const touch = (tag: BufferTag, fixes: boolean): void => {
        const k = `${tag.spcNode}/${tag.dbNode}/${tag.relNode}/${tag.forkNum}/${tag.blkno}`
        if (fixes) pages.set(k, { tag, records: [r] })
        else pages.get(k)?.records.push(r)
      }
      for (const b of rec.blocks) if (!isSlruFork(b.forkNum)) touch({ ...b.rel, forkNum: b.forkNum, blkno: b.blkno }, (b.hasImage && b.applyImage) || b.willInit)
      for (const t of implicitTargets(rec)) if (!isSlruFork(t.tag.forkNum)) touch(t.tag, t.willInit)
    }
  }
  // [u32 chains] then per chain: spc, db, rel, fork, blk, record count (u32 each), then per record its end
  // LSN (u32 high, u32 low) and length (u32), then the records' bytes.
  const parts: Buffer[] = [u32s([pages.size])]
  for (const { tag, records: whole } of pages.values()) {
    const records = trimRecords(whole, tag)
    parts.push(u32s([tag.spcNode, tag.dbNode, tag.relNode, tag.forkNum, tag.blkno, records.length]))
    parts.push(u32s(records.flatMap((x) => [Number(x.endLsn >> 32n), Number(x.endLsn & 0xffff_ffffn), x.raw.length])))
    for (const x of records) parts.push(x.raw)
  }
  writeFileSync(`${cacheFile}.tmp`, Buffer.concat(parts))
  renameSync(`${cacheFile}.tmp`, cacheFile)
}

function u32s(values: number[]): Buffer {
  const b = Buffer.allocUnsafe(values.length * 4)
  values.forEach((v, i) => b.writeUInt32LE(v, i * 4))
  return b
}

function parseCache(b: Buffer): RedoChain[] {
  let p = 0
  const next = (): number => {
    const v = b.readUInt32LE(p)
    p += 4
    return v
  }
  const chains: RedoChain[] = []
  for (let n = next(); n > 0; n--) {
    const tag: BufferTag = { spcNode: next(), dbNode: next(), relNode: next(), forkNum: next(), blkno: next() }
    const count = next()
    const heads = Array.from({ length: count }, () => ({ endLsn: ((BigInt(next()) << 32n) | BigInt(next())) as Lsn, len: next() }))
    const total = heads.reduce((s, h) => s + h.len, 0)
    const all = Buffer.from(b.subarray(p, p + total))
    p += total
    let off = 0
    const records = heads.map((h) => {
      const raw = all.subarray(off, off + h.len)
      off += h.len
      return { endLsn: h.endLsn, raw }
    })
    chains.push({ tag, all, records })
  }
  return chains
}
