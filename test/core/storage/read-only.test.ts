// A workdir on a read-only file system is named as such (exit 2), by `init` (its code stays WORKDIR_UNUSABLE) and
// by the workdir lock every writer takes (READ_ONLY_FILE_SYSTEM): Node's recursive mkdir says ENOENT there, and a bare EROFS from the lock's
// temporary file came out as an internal error. Needs a read-only mount: made with `mount --bind` when the test
// runs as root and may mount, skipped otherwise.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initWorkdir } from '../../../src/core/config/index.js'
import { WorkdirLock } from '../../../src/core/storage/workdir-lock.js'
import { readOnlyFileSystemError } from '../../../src/core/storage/io-errors.js'

function tryReadOnlyMount(src: string, at: string): boolean {
  if (process.getuid?.() !== 0) return false
  try {
    execFileSync('mount', ['--bind', src, at], { stdio: 'ignore' })
  } catch {
    return false
  }
  try {
    execFileSync('mount', ['-o', 'remount,bind,ro', at], { stdio: 'ignore' })
    return true
  } catch {
    execFileSync('umount', [at], { stdio: 'ignore' })
    return false
  }
}

describe('a workdir on a read-only file system', () => {
  const root = mkdtempSync(join(tmpdir(), 'ps-ro-'))
  const src = join(root, 'src')
  const ro = join(root, 'ro')
  mkdirSync(join(src, 'existing'), { recursive: true })
  mkdirSync(ro)
  let mounted = false
  beforeAll(() => {
    mounted = tryReadOnlyMount(src, ro)
  })
  afterAll(() => {
    if (mounted) execFileSync('umount', [ro])
    rmSync(root, { recursive: true, force: true })
  })

  it('init says the file system is read-only, not ENOENT', async (t) => {
    if (!mounted) t.skip()
    await expect(initWorkdir({ workdir: join(ro, 'new', '.neon') })).rejects.toMatchObject({ code: 'WORKDIR_UNUSABLE', exitCode: 2, message: expect.stringContaining('read-only (EROFS)') })
  })

  it('the workdir lock says so too', (t) => {
    if (!mounted) t.skip()
    expect(() => WorkdirLock.acquire(join(ro, 'existing'), 'test')).toThrow(expect.objectContaining({ code: 'READ_ONLY_FILE_SYSTEM' }))
  })

  it('a writable place with a missing parent is not called read-only', () => {
    expect(readOnlyFileSystemError(join(root, 'missing', 'x'), Object.assign(new Error('ENOENT'), { code: 'ENOENT' }))).toBeNull()
  })
})
