/**
 * The L0 flush alone, in-thread: 1,000,000 puts (1/64 8 KiB images, the rest 100-byte records) over 100,000
 * keys in random order into an InMemoryLayer, then `writeL0` of it, three times with one slab pool. Prints
 * the CPU time of the puts and of the flush: a quick check of flush changes without PostgreSQL.
 * Run: node --import tsx bench/support/ingest-flushbench.ts  (or with --cpu-prof to profile; FB_SYNC=1 fsyncs).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { InMemoryLayer } from '../../src/core/layer/inmemory-layer.js'
import { writeL0 } from '../../src/core/layer/l0-flush.js'
import { SlabPool } from '../../src/core/layer/value-slabs.js'
import { keyFromFields, type Key } from '../../src/core/model/key.js'
import type { Lsn } from '../../src/core/pg/lsn.js'
const PUTS = 1_000_000
const key = (blk: number): Key => keyFromFields({ field1: 0, field2: 1663, field3: 5, field4: 16384, field5: 0, field6: blk })
const vals = Array.from({ length: 512 }, (_, i) => { const v = Buffer.alloc(i % 64 === 0 ? 8194 : 102, 7); v[0] = i % 64 === 0 ? 0 : 1; return v })
const keysN = PUTS / 10
const keys = Array.from({ length: keysN }, (_, i) => key(i))
const dir = mkdtempSync(join(tmpdir(), 'fb-'))
const pool = new SlabPool({ residentBytesMax: 2 ** 31 })
for (let r = 0; r < 3; r++) {
  const layer = InMemoryLayer.create({ dir, fileId: r, startLsn: 1n as Lsn, pool })
  let c0 = process.cpuUsage()
  for (let i = 0; i < PUTS; i++) layer.put(keys[(i * 7919) % keysN]!, BigInt(16 + i * 8) as Lsn, vals[i % vals.length]!)
  let c = process.cpuUsage(c0)
  const putMs = (c.user + c.system) / 1000
  layer.freeze(BigInt(16 + PUTS * 8 + 1) as Lsn)
  c0 = process.cpuUsage()
  const w0 = performance.now()
  const fin = await writeL0({ layer: layer.beginFlush(), dir, tenantId: '0123456789abcdef0123456789abcdef' as never, timelineId: 'fedcba9876543210fedcba9876543210' as never, noSync: process.env.FB_SYNC ? false : true })
  const wallMs = performance.now() - w0
  c = process.cpuUsage(c0)
  console.log('put cpu ms', putMs.toFixed(0), 'flush cpu ms', ((c.user + c.system) / 1000).toFixed(0), 'user', (c.user / 1000).toFixed(0), 'MB', (fin.sizeBytes / 1e6).toFixed(0), 'wall ms', wallMs.toFixed(0))
  layer.delete()
  rmSync(fin.path)
}
rmSync(dir, { recursive: true })
