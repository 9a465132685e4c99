/**
 * The redo engine alone, in this thread, over the pages of cached benchmark WAL: for profiling and for
 * comparing engine changes without PostgreSQL or a worker pool (`bench/redo.ts` builds its chains from a
 * fresh pgbench run each time, minutes per run; this reuses the WAL that `bench/wal-decode.ts` caches).
 *
 * Chains: the records of each relation page (block references and implicit visibility-map targets) from
 * its last full-page image or initialisation on, other pages' images cut out as the page server's requests
 * have them (walredo/record-trim.ts); pages with no image or initialisation in the WAL are left out (no
 * base page without a backup). They are built once by a child process and cached next to the WAL
 * (`redo-chains-v1.bin`), so the timed process has never decoded WAL: decoding the WAL first (LSNs as
 * numbers) and redo records (LSNs as bigints) in one process leaves the shared decoder with mixed type
 * feedback, which the worker process, which only redoes, never has.
 *
 * Every chain is redone `REDO_ONCE_PASSES` times (default 7): its records are first copied into one reused
 * arena (the worker process reads a request into its arena, so the engine finds them in its cache), then
 * redone into one reused page (as the worker builds its reply). Prints one JSON line: each pass's
 * milliseconds, the median of the passes after the first two, their CPU time, and records per second.
 *
 *   node --import tsx bench/support/redo-engine-once.ts [pg_wal dir]   (add --cpu-prof to profile)
 * Default WAL: $TMPDIR/pageserver-bench-wal-v1-off/pg_wal. env: REDO_ONCE_PASSES, REDO_ONCE_HINT_BITS (0/1,
 * default 1: the cached WAL comes from a cluster with data checksums).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Lsn } from '../../src/core/pg/lsn.js'
import type { BufferTag } from '../../src/core/pg/reltag.js'
import { redoBlock, type RedoRecord } from '../../src/core/redo/engine.js'
import { median } from './stats.js'

const walDir = process.argv[2] ?? join(tmpdir(), 'pageserver-bench-wal-v1-off', 'pg_wal')
const cacheFile = join(dirname(walDir), 'redo-chains-v1.bin')
const PASSES = Number(process.env.REDO_ONCE_PASSES ?? 7)
const opts = { hintBitsLogged: process.env.REDO_ONCE_HINT_BITS !== '0', checkRecordCrc: false }
/** The largest page's records must fit (a page's chain in one request). */
const ARENA_BYTES = 8 << 20

interface Chain {
  readonly tag: BufferTag
  /** The page's records back to back. */
  readonly all: Buffer
  /** Views of the arena where `all` is copied before each redo. */
  readonly records: RedoRecord[]
}

if (process.env.REDO_ONCE_BUILD === '1') {
  await buildCache()
  process.exit(0)
}
if (!existsSync(cacheFile)) {
  execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), walDir], { env: { ...process.env, REDO_ONCE_BUILD: '1' }, stdio: 'inherit' })
}
const arena = Buffer.allocUnsafe(ARENA_BYTES)
const chains = loadCache(readFileSync(cacheFile))
const recordCount = chains.reduce((s, c) => s + c.records.length, 0)
const out = Buffer.allocUnsafe(8192)
const passesMs: number[] = []
let cpuMs = 0
for (let p = 0; p < PASSES; p++) {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  for (const c of chains) {
    c.all.copy(arena)
    redoBlock(c.tag, null, c.records, opts, out)
  }
  passesMs.push(performance.now() - t0)
  if (p >= 2) {
    const c = process.cpuUsage(c0)
    cpuMs += (c.user + c.system) / 1000
  }
}
const steady = median(passesMs.slice(2))
console.log(
  JSON.stringify({
    pages: chains.length,
    records: recordCount,
    passesMs: passesMs.map((m) => Math.round(m)),
    medianMs: Math.round(steady),
    cpuMsPerPass: Math.round(cpuMs / Math.max(1, PASSES - 2)),
    recordsPerS: Math.round(recordCount / (steady / 1000)),
  }),
)

/** Decodes the WAL into per-page chains and writes them to the cache file (in the child process). */
async function buildCache(): Promise<void> {
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

function loadCache(b: Buffer): Chain[] {
  let p = 0
  const next = (): number => {
    const v = b.readUInt32LE(p)
    p += 4
    return v
  }
  const chains: Chain[] = []
  for (let n = next(); n > 0; n--) {
    const tag: BufferTag = { spcNode: next(), dbNode: next(), relNode: next(), forkNum: next(), blkno: next() }
    const count = next()
    const heads = Array.from({ length: count }, () => ({ endLsn: ((BigInt(next()) << 32n) | BigInt(next())) as Lsn, len: next() }))
    const total = heads.reduce((s, h) => s + h.len, 0)
    if (total > ARENA_BYTES) throw new Error(`a page's records take ${total} bytes, more than the ${ARENA_BYTES}-byte arena`)
    const all = Buffer.from(b.subarray(p, p + total))
    p += total
    let off = 0
    const records = heads.map((h) => {
      const raw = arena.subarray(off, off + h.len)
      off += h.len
      return { endLsn: h.endLsn, raw }
    })
    chains.push({ tag, all, records })
  }
  return chains
}
