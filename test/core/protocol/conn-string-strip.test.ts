import { describe, expect, it } from 'vitest'
import { stripPassword } from '../../../src/core/protocol/conn-string-strip.js'
import { parseConnString } from '../../../src/core/protocol/conn-string.js'
import { UsageError } from '../../../src/core/lib/errors.js'

/** Stripping keeps every other parameter: the parse of the result equals the parse of the input minus its password. */
function expectSameWithoutPassword(input: string, stripped: string): void {
  expect(parseConnString(stripped)).toEqual({ ...parseConnString(input), password: undefined })
}

describe('stripPassword: key=value strings', () => {
  it('removes the password and keeps the rest as written', () => {
    const input = 'host=db  port=5433 user=rep password=secret dbname=postgres'
    const r = stripPassword(input)
    expect(r).toEqual({ connString: 'host=db  port=5433 user=rep dbname=postgres', password: 'secret' })
    expectSameWithoutPassword(input, r.connString)
  })

  it('removes quoted values with blanks, escaped quotes and backslashes, and blanks around "="', () => {
    const input = "user=rep password = 'it\\'s a \\\\ secret' host='db host'"
    const r = stripPassword(input)
    expect(r.password).toBe("it's a \\ secret")
    expect(r.connString).toBe("user=rep host='db host'")
    expect(r.connString).not.toContain('secret')
    expectSameWithoutPassword(input, r.connString)
  })

  it('removes an unquoted value with backslash escapes whole (an escaped blank does not end it)', () => {
    const r = stripPassword('password=a\\ b\\ c user=u')
    expect(r).toEqual({ connString: 'user=u', password: 'a b c' })
  })

  it('leaves nothing when the password is the only key, and removes the blanks around the last key', () => {
    expect(stripPassword("password='x y'")).toEqual({ connString: '', password: 'x y' })
    expect(stripPassword('  password=x  ')).toEqual({ connString: '', password: 'x' })
    expect(stripPassword('host=h password=x')).toEqual({ connString: 'host=h', password: 'x' })
  })

  it('removes every duplicate and reports the last one (the one libpq uses)', () => {
    const r = stripPassword('password=first host=h password=second')
    expect(r).toEqual({ connString: 'host=h', password: 'second' })
  })

  it('does not touch keys that merely contain "password" (sslpassword, a value that says password=)', () => {
    const input = "sslpassword=k host='password=x' user=u"
    expect(stripPassword(input)).toEqual({ connString: input, password: undefined })
  })

  it('returns a string without a password unchanged, and counts an empty password as none', () => {
    const input = '  host=127.0.0.1 port=5432 user=postgres '
    expect(stripPassword(input)).toEqual({ connString: input, password: undefined })
    expect(stripPassword("host=h password=''")).toEqual({ connString: 'host=h', password: undefined })
  })

  it('rejects what the parser rejects', () => {
    expect(() => stripPassword("password='unterminated")).toThrow(UsageError)
    expect(() => stripPassword('password')).toThrow(/missing "="/)
  })
})

describe('stripPassword: postgresql:// URLs', () => {
  it('removes user:password@, percent-decoding the password it reports', () => {
    const input = 'postgresql://rep:s%40cr%3At%20x@db:5432/postgres'
    const r = stripPassword(input)
    expect(r).toEqual({ connString: 'postgresql://rep@db:5432/postgres', password: 's@cr:t x' })
    expectSameWithoutPassword(input, r.connString)
  })

  it('removes an unencoded @ in the password (the user info ends at the last @)', () => {
    const r = stripPassword('postgres://rep:p@ss@db/postgres')
    expect(r).toEqual({ connString: 'postgres://rep@db/postgres', password: 'p@ss' })
  })

  it('removes ?password= (however its key is encoded) and keeps the other parameters in order', () => {
    const input = 'postgresql://rep@db/postgres?application_name=ps&pass%77ord=x%26y&sslmode=disable'
    const r = stripPassword(input)
    expect(r).toEqual({ connString: 'postgresql://rep@db/postgres?application_name=ps&sslmode=disable', password: 'x&y' })
    expectSameWithoutPassword(input, r.connString)
    expect(stripPassword('postgresql://db?password=x')).toEqual({ connString: 'postgresql://db', password: 'x' })
  })

  it('removes both forms at once; the query one is reported (it wins when parsed)', () => {
    const r = stripPassword('postgresql://rep:a@db?password=b')
    expect(r).toEqual({ connString: 'postgresql://rep@db', password: 'b' })
  })

  it('drops an @ left with no user, and an empty password', () => {
    expect(stripPassword('postgresql://:pw@db:5432')).toEqual({ connString: 'postgresql://db:5432', password: 'pw' })
    expect(stripPassword('postgresql://rep:@db')).toEqual({ connString: 'postgresql://rep@db', password: undefined })
  })

  it('returns a URL without a password unchanged (IPv6 host, socket path, empty query)', () => {
    for (const input of ['postgresql://rep@[::1]:5432/postgres', 'postgresql://%2Ftmp/postgres', 'postgresql://db/postgres?', ' postgres://db ']) {
      expect(stripPassword(input)).toEqual({ connString: input, password: undefined })
    }
  })

  it('rejects a password with bad percent-encoding', () => {
    expect(() => stripPassword('postgresql://rep:%zz@db')).toThrow(UsageError)
  })
})
