// Shared helpers of the layer tests: a seeded PRNG, keys, encoded values, and a brute-force reference
// of getValues over a sorted list of entries (the oracle the layer readers are compared against).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { keyFromFields, type Key } from '../../../src/core/model/key.js'
import type { Lsn } from '../../../src/core/pg/lsn.js'
import type { TenantId, TimelineId } from '../../../src/core/model/ids.js'

export const TENANT = '0123456789abcdef0123456789abcdef' as TenantId
export const TIMELINE = 'fedcba9876543210fedcba9876543210' as TimelineId

export { mulberry32 as prng, randInt } from '../../support/prng.js'

/** A relation-block-like key: rel `rel`, block `blk`. */
export function blockKey(rel: number, blk: number): Key {
  return keyFromFields({ field1: 0, field2: 1663, field3: 5, field4: rel, field5: 0, field6: blk })
}

/** An encoded value (value.ts layout): kind byte, flags byte, then `payloadLen` bytes. */
export function makeValue(rng: () => number, payloadLen: number, willInit: boolean, compressible = false): Buffer {
  const b = Buffer.allocUnsafe(2 + payloadLen)
  const image = willInit && rng() < 0.5
  b[0] = image ? 0 : 1
  b[1] = !image && willInit ? 1 : 0
  if (compressible) {
    b.fill(0, 2)
    for (let i = 2; i < b.length; i += 64) b[i] = Math.floor(rng() * 256)
  } else {
    for (let i = 2; i < b.length; i++) b[i] = Math.floor(rng() * 256)
  }
  return b
}

export interface Entry {
  key: Key
  lsn: Lsn
  value: Buffer
  willInit: boolean
}

export function compareEntry(a: Entry, b: Entry): number {
  if (a.key !== b.key) return a.key < b.key ? -1 : 1
  return a.lsn < b.lsn ? -1 : a.lsn > b.lsn ? 1 : 0
}

/** Reference getValues over sorted entries: newest first, floor..ceil, stop after will-init. */
export function refGetValues(sorted: Entry[], key: Key, ceil: Lsn, floor: Lsn = 0n as Lsn): { values: Array<{ lsn: Lsn; value: Buffer }>; complete: boolean } {
  const values: Array<{ lsn: Lsn; value: Buffer }> = []
  const mine = sorted.filter((e) => e.key === key && e.lsn <= ceil && e.lsn >= floor)
  for (let i = mine.length - 1; i >= 0; i--) {
    values.push({ lsn: mine[i]!.lsn, value: mine[i]!.value })
    if (mine[i]!.willInit) return { values, complete: true }
  }
  return { values, complete: false }
}

export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
