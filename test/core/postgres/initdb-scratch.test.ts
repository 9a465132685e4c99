// initdb's scratch directories (`pageserver-initdb-<pid>-*`): a run killed during initdb cannot remove its
// own (~40 MB each), so the next run removes those whose process is gone, and only those. A scratch directory
// is private (0700, owned by the user initdb runs as), so no other local user can swap what initdb wrote.
import { describe, expect, it } from 'vitest'
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { removeAbandonedScratch, runInitdb } from '../../../src/core/postgres/initdb.js'
import { findPostgres, isRoot } from '../../../src/core/postgres/install.js'
import { lookupOsUser } from '../../../src/core/storage/os-user.js'
import { InterruptedError } from '../../../src/core/lib/errors.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { pgAvailable } from '../../support/pg-cluster.js'
import { processesNaming } from '../../support/processes.js'

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

describe.skipIf(!pgAvailable())('runInitdb', () => {
  it('writes into a private scratch directory, owned by the user initdb runs as', async () => {
    const scratch = newDir()
    chmodSync(scratch, 0o755) // as the OS temp directory lets everyone in (only the scratch directory itself is private)
    const r = await runInitdb(findPostgres(undefined, process.env), { dataChecksums: false, scratchDir: scratch })
    try {
      const parent = statSync(dirname(r.dataDir))
      expect(parent.mode & 0o777).toBe(0o700)
      const owner = isRoot() ? lookupOsUser('postgres')!.uid : process.getuid!()
      expect(parent.uid).toBe(owner)
      expect(statSync(join(r.dataDir, 'global', 'pg_control')).uid).toBe(owner)
    } finally {
      r.cleanup()
    }
    expect(readdirSync(scratch)).toEqual([])
  })

  it('an abort stops initdb: InterruptedError, no process left running on the scratch directory, nothing left in it', async () => {
    const scratch = newDir()
    chmodSync(scratch, 0o755)
    const abort = new AbortController()
    const run = runInitdb(findPostgres(undefined, process.env), { dataChecksums: false, scratchDir: scratch, signal: abort.signal })
    const outcome = run.then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    )
    // Abort once initdb has begun writing its data directory (its global/ appears early).
    const deadline = Date.now() + 60_000
    let started = false
    while (!started && Date.now() < deadline) {
      started = readdirSync(scratch).some((d) => existsSync(join(scratch, d, 'pgdata', 'global')))
      if (!started) await new Promise((r) => setTimeout(r, 10))
    }
    expect(started).toBe(true)
    abort.abort()
    const o = await outcome
    if (o.ok) o.r.cleanup()
    expect(o.ok).toBe(false)
    expect((o as { e: unknown }).e).toBeInstanceOf(InterruptedError)
    expect(readdirSync(scratch)).toEqual([])
    expect(processesNaming(scratch)).toEqual([])
  }, 90_000)
})
