/**
 * Where a WAL source's password comes from (no PostgreSQL here: the real connections are in
 * source-password-real.test.ts): the string, the password given to this process, PGPASSWORD, the password file.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AppContext } from '../../../src/core/app/context.js'
import { explainPasswordError, recordSourceConnString, sourceConnection } from '../../../src/core/app/source-password.js'
import { passwordRequired } from '../../../src/core/protocol/auth.js'
import { errorFromServer } from '../../../src/core/walreceiver/pg-errors.js'
import { PageserverError, UnavailableError } from '../../../src/core/lib/errors.js'

type Logged = Array<{ level: string; message: string }>

/** A context with only what the resolver reads: the environment and a log. */
function contextWith(env: NodeJS.ProcessEnv, logged: Logged = []): AppContext {
  return { config: undefined as never, env, log: (level, message) => logged.push({ level, message }) }
}

describe('the password of a recorded WAL source', () => {
  const dirs: string[] = []
  const passFile = (text: string, mode = 0o600): string => {
    const d = mkdtempSync(join(tmpdir(), 'ps-srcpw-'))
    dirs.push(d)
    const p = join(d, 'pgpass')
    writeFileSync(p, text)
    chmodSync(p, mode)
    return p
  }
  /** A HOME without a .pgpass, so a developer's own file cannot answer. */
  const emptyHome = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'ps-home-'))
    dirs.push(d)
    return d
  }
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })

  const stored = 'host=127.0.0.1 port=5433 user=replicator dbname=postgres'

  it('records the string without its password, and gives the password back to the same context only', () => {
    const ctx = contextWith({ HOME: emptyHome() })
    const r = recordSourceConnString(ctx, `${stored} password='s3cret pw'`)
    expect(r.connString).toBe(stored)
    expect(r.passwordOmitted).toBe(true)
    expect(r.notes).toHaveLength(1)
    expect(r.notes[0]).toMatch(/not stored/)
    expect(r.notes[0]).toContain('PGPASSWORD')
    expect(r.notes[0]).toContain('127.0.0.1:5433:replication:replicator:<password>')
    expect(r.notes[0]).not.toContain('s3cret')
    const same = sourceConnection(ctx, r.connString)
    expect(same.params.password).toBe('s3cret pw')
    expect(same.passwordFrom).toBe('given to this process')
    const other = sourceConnection(contextWith({ HOME: emptyHome() }), r.connString)
    expect(other.params.password).toBeUndefined()
    expect(other.passwordFrom).toBe('none')
  })

  it('says nothing when the string had no password', () => {
    const r = recordSourceConnString(contextWith({}), stored)
    expect(r).toEqual({ connString: stored, passwordOmitted: false, notes: [] })
  })

  it('takes the string first, then PGPASSWORD, then the password file (libpq order)', () => {
    const file = passFile('127.0.0.1:5433:replication:replicator:from-file\n')
    const env = { PGPASSWORD: 'from-env', PGPASSFILE: file, HOME: emptyHome() }
    const fromString = sourceConnection(contextWith(env), `${stored} password=old`)
    expect([fromString.params.password, fromString.passwordFrom]).toEqual(['old', 'connection string'])
    const fromEnv = sourceConnection(contextWith(env), stored)
    expect([fromEnv.params.password, fromEnv.passwordFrom]).toEqual(['from-env', 'PGPASSWORD'])
    const fromFile = sourceConnection(contextWith({ ...env, PGPASSWORD: '' }), stored)
    expect([fromFile.params.password, fromFile.passwordFrom, fromFile.passFile]).toEqual(['from-file', 'password file', file])
  })

  it('finds the file in passfile=, else PGPASSFILE, else HOME/.pgpass; the line must name the replication database', () => {
    const home = emptyHome()
    writeFileSync(join(home, '.pgpass'), '*:*:replication:*:home\n', { mode: 0o600 })
    const viaEnv = passFile('*:*:replication:*:env-file\n')
    const viaKey = passFile('*:*:replication:*:key-file\n')
    expect(sourceConnection(contextWith({ HOME: home }), stored).params.password).toBe('home')
    expect(sourceConnection(contextWith({ HOME: home, PGPASSFILE: viaEnv }), stored).params.password).toBe('env-file')
    expect(sourceConnection(contextWith({ HOME: home, PGPASSFILE: viaEnv }), `${stored} passfile=${viaKey}`).params.password).toBe('key-file')
    const postgresOnly = passFile('127.0.0.1:5433:postgres:replicator:wrong-db\n')
    expect(sourceConnection(contextWith({ HOME: home, PGPASSFILE: postgresOnly }), stored).passwordFrom).toBe('none')
  })

  it('ignores a password file group or others may read, with a warning, and says so when the server asks for a password', () => {
    const logged: Logged = []
    const file = passFile('*:*:*:*:exposed\n', 0o644)
    const conn = sourceConnection(contextWith({ PGPASSFILE: file }, logged), stored)
    expect(conn.passwordFrom).toBe('none')
    expect(conn.params.password).toBeUndefined()
    expect(conn.passFileIgnored).toMatch(/group or world access/)
    expect(logged).toEqual([{ level: 'warn', message: expect.stringMatching(new RegExp(`password file ${file} has group or world access.*ignored`)) }])
    const e = explainPasswordError(passwordRequired('SCRAM-SHA-256'), conn) as PageserverError
    expect(e.code).toBe('PG_PASSWORD_REQUIRED')
    expect(e.exitCode).toBe(2)
    expect(e.hint).toContain(`the password file ${file} was ignored`)
    expect(e.hint).toContain('chmod 0600')
  })

  it('explains a missing password: where it was looked for, and the line to add', () => {
    const conn = sourceConnection(contextWith({ HOME: emptyHome() }), stored)
    const e = explainPasswordError(passwordRequired('MD5'), conn) as PageserverError
    expect(e.message).toMatch(/no password was given/)
    expect(e.hint).toMatch(/stored without its password/)
    expect(e.hint).toMatch(/there is no password file .*\.pgpass/)
    expect(e.hint).toMatch(/PGPASSWORD/)
    expect(e.hint).toContain('`pageserver serve`')
    expect(e.hint).toContain('`pageserver timeline sync`')
    expect(e.hint).toContain('127.0.0.1:5433:replication:replicator:<password>')
    expect(e.details).toMatchObject({ passwordFrom: 'none' })
  })

  it('names where a rejected password came from, and leaves other errors alone', () => {
    const file = passFile('*:*:*:*:stale\n')
    const conn = sourceConnection(contextWith({ PGPASSFILE: file }), stored)
    const rejected = errorFromServer({ code: '28P01', message: 'password authentication failed for user "replicator"' }, 'startup')
    const e = explainPasswordError(rejected, conn) as PageserverError
    expect(e.code).toBe('PG_AUTH_FAILED')
    expect(e.hint).toContain(`The password used came from the password file ${file}.`)
    const down = new UnavailableError('PG_UNAVAILABLE', 'the database system is starting up')
    expect(explainPasswordError(down, conn)).toBe(down)
  })
})
