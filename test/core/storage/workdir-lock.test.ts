// The workdir lock's view of its holder: a live process holds it; a dead one, one that exited and was not
// yet reaped by its parent (a zombie still answers signal 0), or a live process that is not the one that wrote
// the lock (its pid reused, e.g. after a reboot: another start identity) leaves a stale lock that the next taker
// removes. A lock of an older version, without the identity, is judged by liveness alone.
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LOCK_FILE, WorkdirLock, liveLockHolder, removeStaleLock } from '../../../src/core/storage/workdir-lock.js'
import { isSameProcess, processStartId } from '../../../src/core/storage/process-identity.js'

describe('WorkdirLock holders', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ps-lock-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  const holdAs = (pid: number) => writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid, command: 'serve', startedAt: new Date().toISOString() }) + '\n')

  it('a live holder keeps it; a zombie holder does not, and the lock is taken over', async () => {
    // `sh` starts a short child and execs into `sleep`, which never reaps it: a zombie once it exits.
    const parent = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] })
    try {
      const zombie = Number(await new Promise<string>((resolve) => createInterface({ input: parent.stdout! }).once('line', resolve)))
      holdAs(parent.pid!)
      expect(liveLockHolder(dir)?.pid).toBe(parent.pid)
      expect(() => WorkdirLock.acquire(dir, 'test')).toThrow(expect.objectContaining({ code: 'WORKDIR_LOCKED' }))
      const deadline = Date.now() + 5_000
      while (!readFileSync(`/proc/${zombie}/stat`, 'latin1').includes(') Z ') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      expect(() => process.kill(zombie, 0)).not.toThrow() // still answers signal 0
      holdAs(zombie)
      expect(liveLockHolder(dir)).toBeNull()
      const lock = WorkdirLock.acquire(dir, 'test')
      expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid)
      lock.release()
    } finally {
      parent.kill('SIGKILL')
    }
  })

  it('a live pid that is not the process that wrote the lock is stale; a lock without the identity is judged by liveness', () => {
    const other = spawn('sleep', ['30'], { stdio: 'ignore' })
    try {
      const pid = other.pid!
      const own = processStartId(pid)
      expect(own).toMatch(/^.+\/\d+$/)
      // What a `serve` that ran before a reboot recorded: the same pid, another boot (and start tick).
      const before = { pid, processStart: 'a-boot-before-the-reboot/4242', command: 'serve', startedAt: '2026-01-01T00:00:00.000Z', httpAddr: '127.0.0.1:1' }
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify(before) + '\n')
      expect(isSameProcess(pid, before.processStart)).toBe(false)
      expect(liveLockHolder(dir)).toBeNull()
      const lock = WorkdirLock.acquire(dir, 'test')
      const mine = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))
      expect(mine).toMatchObject({ pid: process.pid, processStart: processStartId(process.pid) })
      lock.release()
      // The identity it really has: held.
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ ...before, processStart: own }) + '\n')
      expect(liveLockHolder(dir)?.pid).toBe(pid)
      expect(() => WorkdirLock.acquire(dir, 'test')).toThrow(expect.objectContaining({ code: 'WORKDIR_LOCKED' }))
      // A lock from before identities were recorded: a live pid holds it, as it always did.
      const { processStart: _, ...old } = before
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify(old) + '\n')
      expect(liveLockHolder(dir)?.pid).toBe(pid)
    } finally {
      other.kill('SIGKILL')
    }
  })

  it("a copy of a locked workdir (cp -a while serve ran) is not held by the original's live server; a moved one still is", () => {
    const other = spawn('sleep', ['30'], { stdio: 'ignore' })
    try {
      const pid = other.pid!
      // The live holder's lock as the original workdir has it, naming that directory.
      const original = { pid, processStart: processStartId(pid)!, command: 'serve', startedAt: new Date().toISOString(), httpAddr: '127.0.0.1:1' }
      const held = { ...original, workdirId: `${statSync(dir).dev}:${statSync(dir).ino}` }
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify(held) + '\n')
      expect(liveLockHolder(dir)?.pid).toBe(pid)
      expect(() => WorkdirLock.acquire(dir, 'test')).toThrow(expect.objectContaining({ code: 'WORKDIR_LOCKED' }))
      // Moved: the same directory (inode), still held.
      const moved = `${dir}-moved`
      renameSync(dir, moved)
      try {
        expect(liveLockHolder(moved)?.pid).toBe(pid)
      } finally {
        renameSync(moved, dir)
      }
      // Copied: another directory with the same lock file is not held; its commands work on it alone.
      const copy = mkdtempSync(join(tmpdir(), 'ps-lock-copy-'))
      try {
        writeFileSync(join(copy, LOCK_FILE), JSON.stringify(held) + '\n')
        expect(liveLockHolder(copy)).toBeNull()
        const lock = WorkdirLock.acquire(copy, 'test')
        expect(JSON.parse(readFileSync(join(copy, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid, workdirId: `${statSync(copy).dev}:${statSync(copy).ino}` })
        lock.release()
      } finally {
        rmSync(copy, { recursive: true, force: true })
      }
    } finally {
      other.kill('SIGKILL')
    }
  })

  it('two takers of one stale lock: the slower one does not remove the lock the faster one just took', () => {
    const stale = { pid: 999_999_999, command: 'serve', startedAt: '2026-01-01T00:00:00.000Z' }
    // What the slower taker read: the stale holder. What is there now: the faster taker's live lock.
    const live = { pid: process.ppid, command: 'timeline create', startedAt: new Date().toISOString() }
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify(live) + '\n')
    removeStaleLock(join(dir, LOCK_FILE), stale)
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toEqual(live)
    expect(readdirSync(dir)).toEqual([LOCK_FILE])
    // The stale lock itself is moved out of the way.
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify(stale) + '\n')
    removeStaleLock(join(dir, LOCK_FILE), stale)
    expect(readdirSync(dir)).toEqual([])
  })

  it("taking the lock deletes temporaries of dead processes (killed between writing one and removing it), not a live one's", () => {
    const other = spawn('sleep', ['5'], { stdio: 'ignore' })
    try {
      writeFileSync(join(dir, `${LOCK_FILE}.999999999.tmp`), '{}')
      writeFileSync(join(dir, `${LOCK_FILE}.${other.pid}.tmp`), '{}')
      writeFileSync(join(dir, `${LOCK_FILE}.notapid.tmp`), '{}')
      const lock = WorkdirLock.acquire(dir, 'test')
      expect(readdirSync(dir).sort()).toEqual([LOCK_FILE, `${LOCK_FILE}.${other.pid}.tmp`, `${LOCK_FILE}.notapid.tmp`].sort())
      lock.release()
    } finally {
      other.kill('SIGKILL')
    }
  })
})
