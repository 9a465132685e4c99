import { describe, expect, it } from 'vitest'
import { passFileField, passwordFromPassFile, replicationDbName } from '../../../src/core/protocol/pgpass.js'

const key = { host: '127.0.0.1', port: 5432, dbname: replicationDbName, user: 'replicator' }

describe('password file lines (libpq passwordFromFile)', () => {
  it('takes the first matching line, skipping comments and blank lines', () => {
    const text = ['# hostname:port:database:username:password', '', '127.0.0.1:5432:replication:replicator:first', '*:*:*:*:second'].join('\n')
    expect(passwordFromPassFile(text, key)).toBe('first')
    expect(passwordFromPassFile(text, { ...key, user: 'other' })).toBe('second')
  })

  it('matches each field exactly or by a whole-field *', () => {
    expect(passwordFromPassFile('127.0.0.1:5432:postgres:replicator:no', key)).toBeUndefined() // a normal connection's line
    expect(passwordFromPassFile('127.0.0.1:5433:replication:replicator:no', key)).toBeUndefined()
    expect(passwordFromPassFile('127.0.0.2:5432:replication:replicator:no', key)).toBeUndefined()
    expect(passwordFromPassFile('127.0.0.1:5432:replication:replicator2:no', key)).toBeUndefined()
    expect(passwordFromPassFile('127.0.0.1:5432:replication:replicato:no', key)).toBeUndefined()
    expect(passwordFromPassFile('127.0.0.*:5432:replication:replicator:no', key)).toBeUndefined() // * only as a whole field
    expect(passwordFromPassFile('*:*:replication:*:yes', key)).toBe('yes')
  })

  it('reads \\: and \\\\ as : and \\ in fields and in the password, which ends at an unescaped :', () => {
    const v6 = { ...key, host: '::1' }
    expect(passwordFromPassFile('\\:\\:1:5432:replication:replicator:a\\:b\\\\c:ignored', v6)).toBe('a:b\\c')
    // libpq's quirk, kept: a `:` the token itself has at that place matches unescaped too.
    expect(passwordFromPassFile('::1:5432:replication:replicator:x', v6)).toBe('x')
    expect(passwordFromPassFile('\:\:1:5432:replication:replicator:y', { ...key, host: '::2' })).toBeUndefined()
    expect(passwordFromPassFile('*:*:*:back\\\\slash:pw', { ...key, user: 'back\\slash' })).toBe('pw')
    expect(passwordFromPassFile('*:*:*:*:ends with \\', key)).toBe('ends with \\')
  })

  it('needs all five fields; an empty password field gives ""', () => {
    expect(passwordFromPassFile('127.0.0.1:5432:replication:replicator', key)).toBeUndefined()
    expect(passwordFromPassFile('127.0.0.1:5432:replication:replicator:', key)).toBe('')
  })

  it('ignores CR LF line ends, and # only at the start of a line', () => {
    expect(passwordFromPassFile('#127.0.0.1:5432:replication:replicator:no\r\n*:*:*:*:crlf\r\n', key)).toBe('crlf')
    expect(passwordFromPassFile(' #*:*:*:*:x', key)).toBeUndefined() // a host " #*" does not match
  })

  it('matches localhost for no host and for the default socket directory /tmp', () => {
    const line = 'localhost:5432:replication:replicator:local'
    expect(passwordFromPassFile(line, { ...key, host: '' })).toBe('local')
    expect(passwordFromPassFile(line, { ...key, host: '/tmp' })).toBe('local')
    expect(passwordFromPassFile(line, { ...key, host: '/var/run/postgresql' })).toBeUndefined()
  })

  it('escapes fields for a line to write', () => {
    expect(passFileField('::1')).toBe('\\:\\:1')
    expect(passFileField('a\\b')).toBe('a\\\\b')
    expect(passwordFromPassFile(`${passFileField('::1')}:5432:replication:replicator:ok`, { ...key, host: '::1' })).toBe('ok')
  })
})
