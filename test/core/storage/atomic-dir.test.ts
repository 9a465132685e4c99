// createDirAtomically / removeAbandonedTempDirs within one process: a cleanup (which a running server does on
// every timeline listing) never removes the temporary directory of a creation still in progress here, while
// it does remove the leftovers of creations that crashed.
import { describe, expect, it } from 'vitest'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createDirAtomically, creationsUnderway, removeAbandonedTempDirs, TEMP_DIR_PREFIX, tombstoneDir } from '../../../src/core/storage/atomic-dir.js'
import { tempDirs } from '../../support/timeline-fixture.js'

const newDir = tempDirs('ps-atomic-')

describe('createDirAtomically and removeAbandonedTempDirs in one process', () => {
  it('a cleanup while a creation is populating removes the crashed leftovers only', async () => {
    const parent = newDir()
    const leftover = join(parent, `${TEMP_DIR_PREFIX}crashed-abc123`)
    mkdirSync(leftover)
    let removedMidway: string[] = []
    const made = await createDirAtomically(parent, 'obj', 'object obj', async (tmp) => {
      writeFileSync(join(tmp, 'first'), '1')
      removedMidway = await removeAbandonedTempDirs(parent)
      writeFileSync(join(tmp, 'second'), '2')
    })
    expect(removedMidway).toEqual([`${TEMP_DIR_PREFIX}crashed-abc123`])
    expect(existsSync(leftover)).toBe(false)
    expect(readdirSync(made).sort()).toEqual(['first', 'second'])
    expect(readFileSync(join(made, 'second'), 'utf8')).toBe('2')
    // Done: its temporary name is gone, and nothing is left to clean.
    expect(readdirSync(parent)).toEqual(['obj'])
    expect(await removeAbandonedTempDirs(parent)).toEqual([])
  })

  it('a failed creation leaves nothing, and its name is no longer protected', async () => {
    const parent = newDir()
    await expect(
      createDirAtomically(parent, 'obj', 'object obj', async () => {
        throw new Error('populate failed')
      }),
    ).rejects.toThrow('populate failed')
    expect(readdirSync(parent)).toEqual([])
  })
})

describe('creationsUnderway', () => {
  it("names the objects whose creation has a temporary directory (this process's or a dead one's), never a deletion's tombstone", async () => {
    const parent = newDir()
    mkdirSync(join(parent, 'old'))
    await tombstoneDir(parent, 'old', 'object old')
    mkdirSync(join(parent, `${TEMP_DIR_PREFIX}crashed-0123456789ab`))
    mkdirSync(join(parent, `${TEMP_DIR_PREFIX}not-a-creation`))
    let seen: Array<{ name: string }> = []
    await createDirAtomically(parent, 'obj', 'object obj', async (tmp) => {
      seen = await creationsUnderway(parent)
      expect(seen.find((c) => c.name === 'obj')).toEqual({ name: 'obj', tmpDir: tmp })
    })
    expect(seen.map((c) => c.name)).toEqual(['crashed', 'obj'])
    expect((await creationsUnderway(parent)).map((c) => c.name)).toEqual(['crashed'])
    expect(await creationsUnderway(join(parent, 'missing'))).toEqual([])
  })
})
