import { describe, expect, it } from 'vitest'
import { describeConnParams, parseConnString, parseKeywordPairs } from '../../../src/core/protocol/conn-string.js'
import { UsageError } from '../../../src/core/lib/errors.js'

function usageError(fn: () => unknown): UsageError {
  try {
    fn()
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError)
    expect((e as UsageError).code).toBe('BAD_CONNECTION_STRING')
    expect((e as UsageError).hint).toMatch(/postgresql:\/\//)
    return e as UsageError
  }
  throw new Error('expected a UsageError')
}

describe('libpq key=value connection strings', () => {
  it('parses the common keys', () => {
    const p = parseConnString('host=127.0.0.1 port=5433 user=rep password=secret dbname=db application_name=ps')
    expect(p).toEqual({
      host: '127.0.0.1',
      port: 5433,
      user: 'rep',
      password: 'secret',
      dbname: 'db',
      applicationName: 'ps',
      connectTimeoutSeconds: undefined,
      sslMode: 'prefer',
      passFile: undefined,
      passFileHost: '127.0.0.1',
    })
    expect(Object.isFrozen(p)).toBe(true)
  })

  it('accepts blanks around "=", quoted values with escapes, and backslash escapes unquoted', () => {
    expect(parseKeywordPairs("  user = 'a b'   password='it\\'s \\\\ x' host=h\\ x ")).toEqual([
      ['user', 'a b'],
      ['password', "it's \\ x"],
      ['host', 'h x'],
    ])
    expect(parseConnString("password='' user=u").password).toBe('')
  })

  it('applies defaults and libpq rules (dbname defaults to the user, connect_timeout 1 becomes 2)', () => {
    const p = parseConnString('user=alice connect_timeout=1', { host: '/tmp', port: 6000, password: 'pw' })
    expect(p.host).toBe('/tmp')
    expect(p.port).toBe(6000)
    expect(p.dbname).toBe('alice')
    expect(p.password).toBe('pw')
    expect(p.connectTimeoutSeconds).toBe(2)
    expect(parseConnString('connect_timeout=0').connectTimeoutSeconds).toBeUndefined()
    expect(parseConnString('').host).toBe('localhost')
    expect(parseConnString('').user).toBe('postgres')
    expect(parseConnString('hostaddr=10.0.0.1 host=db.example').host).toBe('10.0.0.1')
  })

  it('keeps passfile, and the host a password file line names (host as written, else hostaddr)', () => {
    const p = parseConnString("hostaddr=10.0.0.1 host=db.example passfile='/etc/ps pass'")
    expect(p.host).toBe('10.0.0.1')
    expect(p.passFileHost).toBe('db.example')
    expect(p.passFile).toBe('/etc/ps pass')
    expect(parseConnString('hostaddr=10.0.0.1').passFileHost).toBe('10.0.0.1')
    expect(parseConnString('').passFileHost).toBe('localhost')
  })

  it('accepts libpq keys that do not apply here, and replication=true', () => {
    expect(parseConnString('host=h keepalives=1 client_encoding=UTF8 replication=true').host).toBe('h')
  })

  it('rejects bad input with a clear message', () => {
    expect(usageError(() => parseConnString('host')).message).toMatch(/missing "=" after "host"/)
    expect(usageError(() => parseConnString("password='open")).message).toMatch(/unterminated quoted value/)
    expect(usageError(() => parseConnString('pasword=x')).message).toMatch(/unknown connection parameter "pasword"/)
    expect(usageError(() => parseConnString('port=0')).message).toMatch(/port "0"/)
    expect(usageError(() => parseConnString('port=65536')).message).toMatch(/port/)
    expect(usageError(() => parseConnString('port=abc')).message).toMatch(/port/)
    expect(usageError(() => parseConnString('sslmode=sometimes')).message).toMatch(/sslmode/)
    expect(usageError(() => parseConnString('replication=database')).message).toMatch(/replication/)
    expect(usageError(() => parseConnString('host=a,b')).message).toMatch(/several hosts/)
    expect(usageError(() => parseConnString('=x')).message).toMatch(/empty name/)
    expect(usageError(() => parseConnString('x'.repeat(9000))).message).toMatch(/at most 8192/)
  })

  it('never echoes the password in errors', () => {
    const e = usageError(() => parseConnString('password=hunter2 port=bad'))
    expect(e.message).not.toContain('hunter2')
  })
})

describe('postgresql:// URLs', () => {
  it('parses user, password, host, port, dbname and query parameters, percent-decoded', () => {
    const p = parseConnString('postgresql://rep:s%40cret%2F@db.example:5444/my%20db?application_name=ps&connect_timeout=5')
    expect(p.user).toBe('rep')
    expect(p.password).toBe('s@cret/')
    expect(p.host).toBe('db.example')
    expect(p.port).toBe(5444)
    expect(p.dbname).toBe('my db')
    expect(p.applicationName).toBe('ps')
    expect(p.connectTimeoutSeconds).toBe(5)
  })

  it('handles postgres://, IPv6, missing parts and Unix socket hosts', () => {
    expect(parseConnString('postgres://[::1]:7000/x')).toMatchObject({ host: '::1', port: 7000, dbname: 'x' })
    expect(parseConnString('postgresql://')).toMatchObject({ host: 'localhost', port: 5432, user: 'postgres' })
    expect(parseConnString('postgresql://%2Ftmp%2Fsock/db')).toMatchObject({ host: '/tmp/sock', dbname: 'db' })
    expect(parseConnString('postgresql://u@h')).toMatchObject({ user: 'u', host: 'h', password: undefined })
    expect(parseConnString('postgresql://h?ssl=true').sslMode).toBe('require')
    expect(describeConnParams(parseConnString('postgresql://u:pw@[::1]:7000'))).toBe('u@[::1]:7000')
  })

  it('rejects bad URLs', () => {
    expect(usageError(() => parseConnString('postgresql://h/db?foo=1')).message).toMatch(/unknown connection parameter "foo"/)
    expect(usageError(() => parseConnString('postgresql://h/db?novalue')).message).toMatch(/missing "="/)
    expect(usageError(() => parseConnString('postgresql://h:99999/db')).message).toMatch(/port/)
    expect(usageError(() => parseConnString('postgresql://[::1/db')).message).toMatch(/"\]"/)
    expect(usageError(() => parseConnString('postgresql://a,b/db')).message).toMatch(/several hosts/)
    expect(usageError(() => parseConnString('postgresql://%zz@h')).message).toMatch(/percent-encoding/)
  })
})
