// A full file system, for real: a small tmpfs (root only: mounting needs it; skipped where mount is refused)
// filled to the last byte. Writes fail as DISK_FULL naming the file (exit 6), never as a bug report: taking
// the workdir lock (no temporary file left behind), updating its addresses (the lock stays as it was), `init`,
// and a durable file write, which leaves the previous content in place. Once space is freed, each works.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { WorkdirLock, LOCK_FILE } from '../../../src/core/storage/workdir-lock.js'
import { writeFileDurablySync } from '../../../src/core/storage/durable-file.js'
import { initWorkdir } from '../../../src/core/config/index.js'
import { createDirAtomically } from '../../../src/core/storage/atomic-dir.js'
import { mkdir } from 'node:fs/promises'
import { errorOf } from '../../support/errors.js'

const mountPoint = mkdtempSync(join(tmpdir(), 'ps-diskfull-'))
function tryMount(): boolean {
  if (process.getuid?.() !== 0) return false
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
const mounted = tryMount()
afterAll(() => {
  if (mounted) execFileSync('umount', [mountPoint])
  rmdirSync(mountPoint)
})

/** Fills the file system to the last byte (one filler file per call); returns a function that frees it. */
function fill(name: string): () => void {
  const path = join(mountPoint, name)
  const free = Number(statfsSync(mountPoint).bavail) * Number(statfsSync(mountPoint).bsize)
  try {
    writeFileSync(path, Buffer.alloc(free))
  } catch {
    // ENOSPC at the very end: what is there fills it
  }
  // tmpfs may keep a few bytes in a last partial page: top up byte by byte until nothing more fits.
  for (let i = 0; i < 64; i++) {
    try {
      writeFileSync(join(mountPoint, `${name}.${i}`), Buffer.alloc(4096))
    } catch {
      break
    }
  }
  return () => {
    for (const f of readdirSync(mountPoint)) if (f.startsWith(name)) rmSync(join(mountPoint, f))
  }
}

describe.skipIf(!mounted)('a full file system', () => {
  it('taking the workdir lock, or adding its addresses: DISK_FULL naming the file, nothing left behind', () => {
    const wd = join(mountPoint, 'wd-lock')
    mkdirSync(wd)
    const freeAll = fill('filler-lock')
    try {
      const e = errorOf(() => WorkdirLock.acquire(wd, 'test'))
      expect([e.code, e.kind, e.exitCode]).toEqual(['DISK_FULL', 'unavailable', 6])
      expect(e.message).toContain(join(wd, LOCK_FILE))
      expect(e.hint).toContain(`df ${wd}`)
      expect(readdirSync(wd)).toEqual([])
    } finally {
      freeAll()
    }
    const lock = WorkdirLock.acquire(wd, 'test')
    try {
      const before = readFileSync(join(wd, LOCK_FILE), 'utf8')
      const freeAgain = fill('filler-lock2')
      try {
        const e = errorOf(() => lock.updateInfo({ pgAddr: '127.0.0.1:1', httpAddr: '127.0.0.1:2' }))
        expect(e.code).toBe('DISK_FULL')
        expect(readFileSync(join(wd, LOCK_FILE), 'utf8')).toBe(before)
        expect(readdirSync(wd)).toEqual([LOCK_FILE])
      } finally {
        freeAgain()
      }
      lock.updateInfo({ pgAddr: '127.0.0.1:1', httpAddr: '127.0.0.1:2' })
      expect(JSON.parse(readFileSync(join(wd, LOCK_FILE), 'utf8'))).toMatchObject({ pgAddr: '127.0.0.1:1', httpAddr: '127.0.0.1:2' })
    } finally {
      lock.release()
    }
  })

  it('a durable write keeps the previous content; init says DISK_FULL, not a usage error', async () => {
    const path = join(mountPoint, 'metadata')
    writeFileDurablySync(path, Buffer.from('previous'))
    const freeAll = fill('filler-durable')
    try {
      const e = errorOf(() => writeFileDurablySync(path, Buffer.alloc(64 * 1024, 1)))
      expect(e.code).toBe('DISK_FULL')
      expect(readFileSync(path, 'utf8')).toBe('previous')
      expect(readdirSync(mountPoint).filter((f) => f.startsWith('metadata'))).toEqual(['metadata'])
      await expect(initWorkdir({ workdir: join(mountPoint, 'wd-init') })).rejects.toMatchObject({ code: 'DISK_FULL', exitCode: 6 })
    } finally {
      freeAll()
    }
    writeFileDurablySync(path, Buffer.from('next'))
    expect(readFileSync(path, 'utf8')).toBe('next')
    rmSync(join(mountPoint, 'wd-init'), { recursive: true, force: true })
    await initWorkdir({ workdir: join(mountPoint, 'wd-init') })
  })
})

// A file system out of inodes: a directory cannot be made. Mounted apart (tmpfs with few inodes), root only.
const inodeMount = mkdtempSync(join(tmpdir(), 'ps-noinodes-'))
function tryMountFewInodes(): boolean {
  if (process.getuid?.() !== 0) return false
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,nr_inodes=32', 'tmpfs', inodeMount], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
const inodesMounted = tryMountFewInodes()
afterAll(() => {
  if (inodesMounted) execFileSync('umount', [inodeMount])
  rmdirSync(inodeMount)
})

describe.skipIf(!inodesMounted)('a file system out of inodes', () => {
  it('creating a tenant or timeline directory: DISK_FULL naming the directory, not a bug report; nothing left behind', async () => {
    const parent = join(inodeMount, 'tenants')
    mkdirSync(parent)
    const fillers: string[] = []
    for (let i = 0; i < 64; i++) {
      try {
        writeFileSync(join(inodeMount, `f${i}`), '')
        fillers.push(join(inodeMount, `f${i}`))
      } catch {
        break
      }
    }
    try {
      const e = await createDirAtomically(parent, 'obj', 'tenant obj', async () => {}).catch((err: unknown) => err)
      expect(e).toMatchObject({ code: 'DISK_FULL', exitCode: 6 })
      expect((e as Error).message).toContain(parent)
      // A populate failing on a raw mkdir (as `tenant create` makes its timelines/ directory) is named too.
      rmSync(fillers.pop()!)
      const e2 = await createDirAtomically(parent, 'obj', 'tenant obj', async (tmp) => {
        await mkdir(join(tmp, 'timelines'))
      }).catch((err: unknown) => err)
      expect(e2).toMatchObject({ code: 'DISK_FULL', exitCode: 6 })
      expect((e2 as Error).message).toContain(join('.tmp-obj-'))
      expect(readdirSync(parent)).toEqual([])
    } finally {
      for (const f of fillers) rmSync(f)
    }
    await createDirAtomically(parent, 'obj', 'tenant obj', async (tmp) => {
      await mkdir(join(tmp, 'timelines'))
    })
    expect(readdirSync(parent)).toEqual(['obj'])
  })
})
