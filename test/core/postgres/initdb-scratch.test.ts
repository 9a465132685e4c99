// initdb's scratch directories (`pageserver-initdb-<pid>-*`): a run killed during initdb cannot remove its
// own (~40 MB each), so the next run removes those whose process is gone, and only those. A scratch directory
// is private (0700, owned by the user initdb runs as), so no other local user can swap what initdb wrote.
import { describe, expect, it } from 'vitest'
import { chmodSync, chownSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { removeAbandonedScratch, runInitdb } from '../../../src/core/postgres/initdb.js'
import { findPostgres, isRoot } from '../../../src/core/postgres/install.js'
import { lookupOsUser } from '../../../src/core/storage/os-user.js'
import { InterruptedError } from '../../../src/core/lib/errors.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { pgAvailable } from '../../support/pg-cluster.js'
import { initdbStartedIn, pidNamespaceTag, processesNaming } from '../../support/processes.js'

const newDir = tempDirs('ps-initdb-scratch-')

describe('removeAbandonedScratch', () => {
  it("removes the scratch directories of dead processes of this pid namespace; keeps live ones, other namespaces', young untagged ones and anything else", () => {
    const scratch = newDir()
    const ns = pidNamespaceTag()
    // A pid that existed and is gone: a child that has exited and been reaped.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!
    const mk = (name: string): string => {
      mkdirSync(join(scratch, name, 'pgdata'), { recursive: true })
      return name
    }
    const deadHere = mk(`pageserver-initdb-${dead}-${ns}-abc123`)
    const live = mk(`pageserver-initdb-${process.pid}-${ns}-def456`)
    const otherNamespace = mk(`pageserver-initdb-${dead}-n1-ghi789`) // that pid may be alive in its own namespace
    const untaggedYoung = mk(`pageserver-initdb-${dead}-jkl012`) // an older run's: its namespace unknown
    const untaggedOld = mk(`pageserver-initdb-${dead}-mno345`)
    const hourAgo = new Date(Date.now() - 2 * 60 * 60 * 1000)
    utimesSync(join(scratch, untaggedOld), hourAgo, hourAgo)
    writeFileSync(join(scratch, `pageserver-initdb-${dead}-${ns}-file`), '') // not a directory
    mkdirSync(join(scratch, 'pageserver-initdb-notapid'))
    mkdirSync(join(scratch, 'unrelated'))
    expect(removeAbandonedScratch(scratch).sort()).toEqual([deadHere, untaggedOld].sort())
    expect(readdirSync(scratch).sort()).toEqual(
      [live, otherNamespace, untaggedYoung, `pageserver-initdb-${dead}-${ns}-file`, 'pageserver-initdb-notapid', 'unrelated'].sort(),
    )
    expect(removeAbandonedScratch(join(scratch, 'missing'))).toEqual([])
  })

  it('leaves a directory it may not remove (another user\'s) and goes on', () => {
    const scratch = newDir()
    const ns = pidNamespaceTag()
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!
    const other = `pageserver-initdb-${dead}-${ns}-other`
    mkdirSync(join(scratch, other))
    // Owned by someone else: not ours to touch (as root, owned by nobody; otherwise it is ours and removed).
    const nobody = lookupOsUser('nobody')
    if (isRoot() && nobody !== null) {
      chownSync(join(scratch, other), nobody.uid, nobody.gid)
      expect(removeAbandonedScratch(scratch)).toEqual([])
      expect(readdirSync(scratch)).toEqual([other])
    } else {
      expect(removeAbandonedScratch(scratch)).toEqual([other])
    }
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
    // Abort once initdb has begun writing its data directory.
    expect(await initdbStartedIn(scratch, 60_000)).toBe(true)
    abort.abort()
    const o = await outcome
    if (o.ok) o.r.cleanup()
    expect(o.ok).toBe(false)
    expect((o as { e: unknown }).e).toBeInstanceOf(InterruptedError)
    expect(readdirSync(scratch)).toEqual([])
    expect(processesNaming(scratch)).toEqual([])
  }, 90_000)
})
