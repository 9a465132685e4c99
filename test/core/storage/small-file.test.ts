// readSmallFile: every failure is a typed error naming the file (a script gets a code and exit code, not
// INTERNAL): missing, too large, and anything else the OS refuses (here a directory: EISDIR, which root
// gets too, where a permission test would not fail as root).
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readSmallFile } from '../../../src/core/storage/small-file.js'

const dir = mkdtempSync(join(tmpdir(), 'ps-small-file-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function failure(path: string, max = 1024): unknown {
  try {
    readSmallFile(path, max, 'timeline metadata')
  } catch (e) {
    return e
  }
  throw new Error('expected a failure')
}

describe('readSmallFile', () => {
  it('reads a file within its bound', () => {
    writeFileSync(join(dir, 'ok'), 'hello')
    expect(readSmallFile(join(dir, 'ok'), 5).toString()).toBe('hello')
  })

  it('missing: FILE_MISSING (exit 3); too large: FILE_TOO_LARGE (exit 5); unreadable: IO_ERROR naming the file', () => {
    expect(failure(join(dir, 'nope'))).toMatchObject({ code: 'FILE_MISSING', exitCode: 3 })
    writeFileSync(join(dir, 'big'), Buffer.alloc(2000))
    expect(failure(join(dir, 'big'))).toMatchObject({ code: 'FILE_TOO_LARGE', exitCode: 5, details: { path: join(dir, 'big') } })
    mkdirSync(join(dir, 'a-directory'))
    const e = failure(join(dir, 'a-directory'), 1 << 20) as { code: string; message: string; details: { path: string } }
    expect(e).toMatchObject({ code: 'IO_ERROR', details: { path: join(dir, 'a-directory') } })
    expect(e.message).toContain(`reading timeline metadata ${join(dir, 'a-directory')} failed`)
    expect(e.message).toMatch(/EISDIR/)
  })
})
