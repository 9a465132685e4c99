// findPostgres: an explicit pg_distrib_dir (plain bin directory or Neon's v15/bin layout) or PGBIN is the
// only place looked at; one that holds no PostgreSQL 15 is an error naming the setting (and any other major
// version found there), never a silent fall-back to the installed one; with neither set, the installed one.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { findPostgres } from '../../../src/core/postgres/install.js'
import { NotFoundError } from '../../../src/core/lib/errors.js'
import { pgAvailable } from '../../support/pg-cluster.js'
import { errorOf } from '../../support/errors.js'

const scratch = mkdtempSync(join(tmpdir(), 'ps-install-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** The POSTGRES_NOT_FOUND that `f` throws. */
function refusal(f: () => unknown): NotFoundError {
  const e = errorOf(f)
  expect(e).toBeInstanceOf(NotFoundError)
  expect(e.code).toBe('POSTGRES_NOT_FOUND')
  return e as NotFoundError
}

describe.skipIf(!pgAvailable())('findPostgres', () => {
  const installed = findPostgres(undefined, process.env)

  it('finds the installed PostgreSQL 15 with nothing set, and through a pg_distrib_dir in either layout', () => {
    expect(installed.version).toMatch(/^15\.\d+$/)
    expect(findPostgres(installed.binDir, {}).binDir).toBe(installed.binDir)
    const neon = join(scratch, 'neon-layout')
    mkdirSync(join(neon, 'v15'), { recursive: true })
    symlinkSync(installed.binDir, join(neon, 'v15', 'bin'))
    expect(findPostgres(neon, {}).binDir).toBe(join(neon, 'v15', 'bin'))
  })

  it('refuses a pg_distrib_dir without PostgreSQL 15 instead of falling back to the installed one', () => {
    const missing = join(scratch, 'nonexistent')
    const e = refusal(() => findPostgres(missing, { PGBIN: installed.binDir }))
    expect(e.message).toContain('pg_distrib_dir')
    expect(e.message).toContain(missing)
    expect(e.hint).toContain('pg_distrib_dir')
    // Another major version there is named.
    const v16 = join(scratch, 'v16-bin')
    mkdirSync(v16)
    writeFileSync(join(v16, 'postgres'), '#!/bin/sh\necho "postgres (PostgreSQL) 16.4"\n')
    chmodSync(join(v16, 'postgres'), 0o755)
    expect(refusal(() => findPostgres(v16, {})).message).toContain(`found PostgreSQL 16.4 in ${v16}`)
  })

  it('refuses a PGBIN without PostgreSQL 15, naming it', () => {
    const e = refusal(() => findPostgres(undefined, { PGBIN: join(scratch, 'no-bin') }))
    expect(e.message).toContain(`PGBIN (${join(scratch, 'no-bin')})`)
    expect(e.hint).toContain('PGBIN')
  })
})
