// Whether the local PostgreSQL runs is read from its postmaster.pid, and only a pid that is this data
// directory's postmaster counts: after a reboot the recorded pid often belongs to another process, which must
// be neither taken for PostgreSQL (start would skip starting it) nor signalled (stop would try to stop it).
// A postmaster killed and not yet reaped (a zombie) is waited for before a start, which PostgreSQL would refuse
// while its pid exists. A real postmaster is checked by test/e2e/local.test.ts.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { runningPostmaster, waitUntilPostmasterReaped } from '../../../src/core/app/local-postgres.js'

/** postmaster.pid as PostgreSQL 15 writes it: pid, data directory, start time, port, socket dir, listen address, shmem key, status. */
function writePostmasterPid(dataDir: string, pid: number, port: number): void {
  writeFileSync(join(dataDir, 'postmaster.pid'), [pid, dataDir, '1767225600', port, dataDir, '127.0.0.1', '  5432001    196608', 'ready   ', ''].join('\n'))
}

describe('runningPostmaster', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ps-postmaster-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('a postmaster.pid naming a live process that is not postgres is stale', () => {
    const other = spawn('sleep', ['30'], { stdio: 'ignore' })
    try {
      writePostmasterPid(dir, other.pid!, 55432)
      expect(runningPostmaster(dir)).toBeNull()
      writePostmasterPid(dir, process.pid, 55432) // node
      expect(runningPostmaster(dir)).toBeNull()
    } finally {
      other.kill('SIGKILL')
    }
  })

  it('no file, a dead pid or a torn file: not running', () => {
    expect(runningPostmaster(dir)).toBeNull()
    writePostmasterPid(dir, 999_999_999, 55432)
    expect(runningPostmaster(dir)).toBeNull()
    writeFileSync(join(dir, 'postmaster.pid'), '')
    expect(runningPostmaster(dir)).toBeNull()
  })

  it('waits for a zombie named by postmaster.pid to be reaped, up to the deadline', async () => {
    expect(await waitUntilPostmasterReaped(dir, 0)).toBe(true) // no file
    // `sleep 0 &` exits at once; its parent then execs a sleep that never waits for it: a zombie until the
    // parent exits and init reaps it.
    const zombieOf = (parentSeconds: number) =>
      new Promise<{ pid: number; parent: ReturnType<typeof spawn> }>((done) => {
        const parent = spawn('sh', ['-c', `sleep 0 & echo $!; exec sleep ${parentSeconds}`], { stdio: ['ignore', 'pipe', 'ignore'] })
        parent.stdout!.once('data', (b: Buffer) => done({ pid: Number(b.toString().trim()), parent }))
      })
    const isZombieNow = (pid: number) => /\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'latin1'))
    // The long one first, and the short parent given 3 s: under load, spawning took long enough that a 1 s
    // parent had exited and its zombie been reaped before it was looked at (a CI run).
    const long = await zombieOf(30)
    const short = await zombieOf(3)
    try {
      await new Promise((r) => setTimeout(r, 200))
      expect(isZombieNow(short.pid)).toBe(true)
      writePostmasterPid(dir, short.pid, 55432)
      const t0 = Date.now()
      expect(await waitUntilPostmasterReaped(dir, 10_000)).toBe(true)
      expect(Date.now() - t0).toBeGreaterThan(300) // it did wait for the reaping
      writePostmasterPid(dir, long.pid, 55432)
      expect(isZombieNow(long.pid)).toBe(true)
      expect(await waitUntilPostmasterReaped(dir, 300)).toBe(false)
    } finally {
      short.parent.kill('SIGKILL')
      long.parent.kill('SIGKILL')
    }
  })
})
