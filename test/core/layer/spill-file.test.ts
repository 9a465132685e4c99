/**
 * SpillFile: created on the first append and never before (a layer that never spills leaves no file),
 * appends return consecutive offsets and read back exactly, a file cut short is a CorruptionError naming it,
 * a second spill file of the same name is refused, delete is idempotent, and removeEphemeralFiles clears
 * only `ephemeral-*` names.
 */
import { existsSync, readdirSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CorruptionError } from '../../../src/core/lib/errors.js'
import { SpillFile, removeEphemeralFiles } from '../../../src/core/layer/spill-file.js'
import { errorOf } from '../../support/errors.js'
import { prng, randInt, withTempDir } from './helpers.js'

describe('SpillFile', () => {
  it('appends at consecutive offsets and reads every piece back', async () => {
    await withTempDir('ps-spill-', async (dir) => {
      const f = new SpillFile(join(dir, 'ephemeral-0'))
      expect(existsSync(f.path)).toBe(false)
      f.delete() // nothing made yet: nothing to remove
      const rng = prng(3)
      const pieces: Array<{ at: number; data: Buffer }> = []
      for (let i = 0; i < 300; i++) {
        const data = Buffer.alloc(randInt(rng, 1, 20_000), i & 0xff)
        // only a prefix of the source is appended
        const src = Buffer.concat([data, Buffer.alloc(17, 0xee)])
        pieces.push({ at: f.append(src, data.length), data })
      }
      let expected = 0
      for (const p of pieces) {
        expect(p.at).toBe(expected)
        expected += p.data.length
        const out = Buffer.alloc(p.data.length)
        f.readInto(out, p.at)
        expect(out.equals(p.data)).toBe(true)
      }
      expect(f.lengthBytes).toBe(expected)
      expect(() => new SpillFile(f.path).append(Buffer.alloc(1), 1)).toThrow(/ephemeral-0/)

      truncateSync(f.path, expected - 10)
      const last = pieces[pieces.length - 1]!
      const err = errorOf(() => f.readInto(Buffer.alloc(last.data.length), last.at))
      expect(err).toBeInstanceOf(CorruptionError)
      expect(err.code).toBe('EPHEMERAL_CORRUPT')
      expect(err.message).toContain(f.path)

      f.delete()
      f.delete()
      expect(readdirSync(dir)).toEqual([])
    })
  })

  it('removeEphemeralFiles removes spill files and nothing else', async () => {
    await withTempDir('ps-spill-', async (dir) => {
      for (const n of ['ephemeral-1', 'ephemeral-22', 'metadata', 'x-ephemeral-1']) writeFileSync(join(dir, n), 'x')
      expect((await removeEphemeralFiles(dir)).sort()).toEqual(['ephemeral-1', 'ephemeral-22'])
      expect(readdirSync(dir).sort()).toEqual(['metadata', 'x-ephemeral-1'])
    })
  })
})
