// createDirAtomically / removeAbandonedTempDirs within one process: a cleanup (which a running server does on
// every timeline listing) never removes the temporary directory of a creation still in progress here, while
// it does remove the leftovers of creations that crashed.
import { describe, expect, it } from 'vitest'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createDirAtomically, removeAbandonedTempDirs, TEMP_DIR_PREFIX } from '../../../src/core/storage/atomic-dir.js'
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
