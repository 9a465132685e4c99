import { afterEach, describe, expect, it } from 'vitest'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { passFileBytesMax, readPassFile } from '../../../src/core/storage/pgpass-file.js'

describe('reading a password file as libpq does', () => {
  const dirs: string[] = []
  const dir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'ps-pgpass-'))
    dirs.push(d)
    return d
  }
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })

  it('reads a file only its owner may access (0600, 0400)', () => {
    const p = join(dir(), '.pgpass')
    writeFileSync(p, '*:*:*:*:pw\n', { mode: 0o600 })
    expect(readPassFile(p)).toEqual({ kind: 'read', text: '*:*:*:*:pw\n' })
    chmodSync(p, 0o400)
    expect(readPassFile(p)).toEqual({ kind: 'read', text: '*:*:*:*:pw\n' })
  })

  it('ignores a file group or others may access, naming the mode and the permissions wanted', () => {
    const p = join(dir(), '.pgpass')
    writeFileSync(p, '*:*:*:*:pw\n')
    for (const mode of [0o644, 0o640, 0o604, 0o610, 0o601]) {
      chmodSync(p, mode)
      const r = readPassFile(p)
      expect(r.kind).toBe('ignored')
      expect(r.kind === 'ignored' && r.reason).toMatch(/group or world access .*permissions should be u=rw \(0600\) or less/)
    }
  })

  it('treats a missing file (or a path through a file) as absent, and ignores a directory', () => {
    const d = dir()
    expect(readPassFile(join(d, 'none'))).toEqual({ kind: 'absent' })
    writeFileSync(join(d, 'f'), '')
    expect(readPassFile(join(d, 'f', 'below'))).toEqual({ kind: 'absent' })
    mkdirSync(join(d, 'sub'), { mode: 0o700 })
    expect(readPassFile(join(d, 'sub'))).toEqual({ kind: 'ignored', reason: 'is not a plain file' })
  })

  it('ignores a file larger than a password file may be', () => {
    const p = join(dir(), '.pgpass')
    writeFileSync(p, Buffer.alloc(passFileBytesMax + 1, 0x23), { mode: 0o600 })
    const r = readPassFile(p)
    expect(r.kind === 'ignored' && r.reason).toMatch(/more than/)
  })
})
