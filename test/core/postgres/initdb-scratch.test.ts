// initdb's scratch directories (`pageserver-initdb-<pid>-*`): a run killed during initdb cannot remove its
// own (~40 MB each), so the next run removes those whose process is gone, and only those.
import { describe, expect, it } from 'vitest'
import { mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { removeAbandonedScratch } from '../../../src/core/postgres/initdb.js'
import { tempDirs } from '../../support/timeline-fixture.js'

const newDir = tempDirs('ps-initdb-scratch-')

describe('removeAbandonedScratch', () => {
  it('removes the scratch directories of dead processes, keeps live ones and anything else', () => {
    const scratch = newDir()
    // A pid that existed and is gone: a child that has exited and been reaped.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!
    mkdirSync(join(scratch, `pageserver-initdb-${dead}-abc123`, 'pgdata'), { recursive: true })
    mkdirSync(join(scratch, `pageserver-initdb-${process.pid}-def456`))
    mkdirSync(join(scratch, 'pageserver-initdb-notapid'))
    mkdirSync(join(scratch, 'unrelated'))
    expect(removeAbandonedScratch(scratch)).toEqual([`pageserver-initdb-${dead}-abc123`])
    expect(readdirSync(scratch).sort()).toEqual([`pageserver-initdb-${process.pid}-def456`, 'pageserver-initdb-notapid', 'unrelated'].sort())
    expect(removeAbandonedScratch(join(scratch, 'missing'))).toEqual([])
  })
})
