// Output files the user names: written whole; a path that cannot be written (missing directory, a directory,
// permission denied) is OUTPUT_NOT_WRITABLE (usage, exit 2) naming the path and the OS reason; other
// failures (a full disk) stay IO_ERROR. Permission errors are built by hand: the tests may run as root.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { PageserverError } from '../../../src/core/lib/errors.js'
import { outputFailed, writeOutputFile } from '../../../src/core/storage/output-file.js'
import { withTempDir } from '../layer/helpers.js'

/** An error shaped as Node's fs errors are. */
function fsError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, syscall: 'open' })
}

async function rejection(p: Promise<unknown>): Promise<PageserverError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(PageserverError)
  return e as PageserverError
}

describe('writeOutputFile / outputFailed', () => {
  it('writes the bytes, replacing a file', async () => {
    await withTempDir('ps-output-', async (dir) => {
      const p = join(dir, 'page.bin')
      await writeFile(p, 'old and longer than the page')
      await writeOutputFile(p, Buffer.from([1, 2, 3]))
      expect(await readFile(p)).toEqual(Buffer.from([1, 2, 3]))
    })
  })

  it('a missing directory, a directory, a file as a directory: OUTPUT_NOT_WRITABLE with the path and reason', async () => {
    await withTempDir('ps-output-', async (dir) => {
      const missing = join(dir, 'nope', 'page.bin')
      const e1 = await rejection(writeOutputFile(missing, Buffer.alloc(1)))
      expect([e1.code, e1.kind, e1.exitCode]).toEqual(['OUTPUT_NOT_WRITABLE', 'usage', 2])
      expect(e1.message).toBe(`cannot write ${missing}: no such file or directory (ENOENT)`)
      expect(e1.hint).toMatch(/existing directory/)

      const e2 = await rejection(writeOutputFile(dir, Buffer.alloc(1)))
      expect(e2.code).toBe('OUTPUT_NOT_WRITABLE')
      expect(e2.message).toBe(`cannot write ${dir}: illegal operation on a directory (EISDIR)`)

      await writeFile(join(dir, 'f'), 'x')
      const e3 = await rejection(writeOutputFile(join(dir, 'f', 'page.bin'), Buffer.alloc(1)))
      expect(e3.message).toBe(`cannot write ${join(dir, 'f', 'page.bin')}: not a directory (ENOTDIR)`)
    })
  })

  it('permission denied is OUTPUT_NOT_WRITABLE; a full disk is DISK_FULL, as for any other write', () => {
    const denied = outputFailed('/root/page.bin', fsError('EACCES', "EACCES: permission denied, open '/root/page.bin'"))
    expect([denied.code, denied.exitCode, denied.message]).toEqual(['OUTPUT_NOT_WRITABLE', 2, 'cannot write /root/page.bin: permission denied (EACCES)'])
    expect(denied.hint).toMatch(/permissions/)
    const full = outputFailed('/x/page.bin', fsError('ENOSPC', 'ENOSPC: no space left on device, write'))
    expect([full.code, full.kind, full.exitCode]).toEqual(['DISK_FULL', 'unavailable', 6])
    expect(full.message).toContain('/x/page.bin')
    expect(full.hint).toContain('df /x')
  })
})
