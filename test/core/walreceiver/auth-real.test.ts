/**
 * Authentication against real PostgreSQL 15 servers: SCRAM-SHA-256, MD5 and cleartext, right and wrong.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PgCluster } from '../../support/pg-cluster.js'
import { parseConnString } from '../../../src/core/protocol/conn-string.js'
import { ReplicationConnection } from '../../../src/core/walreceiver/replication-connection.js'
import { PageserverError, UsageError } from '../../../src/core/lib/errors.js'

async function connectError(connString: string): Promise<PageserverError> {
  try {
    const c = await ReplicationConnection.connect(parseConnString(connString), { connectTimeoutMs: 10_000 })
    await c.close()
  } catch (e) {
    expect(e).toBeInstanceOf(PageserverError)
    return e as PageserverError
  }
  throw new Error('expected the connection to fail')
}

for (const [auth, method] of [
  ['scram-sha-256', 'scram-sha-256'],
  ['md5', 'md5'],
  ['password', 'cleartext'],
] as const) {
  describe(`auth ${auth} against PostgreSQL 15`, () => {
    let pg: PgCluster
    beforeAll(async () => {
      pg = await PgCluster.start({ auth, password: 'c0rrect horse', name: `auth-${auth}` })
    })
    afterAll(async () => {
      await pg?.destroy()
    })

    it('connects with the right password (key=value and URL forms) and runs IDENTIFY_SYSTEM', async () => {
      for (const cs of [`${pg.connString()}`.replace('password=c0rrect horse', "password='c0rrect horse'"), pg.connUrl()]) {
        const conn = await ReplicationConnection.connect(parseConnString(cs))
        try {
          expect(conn.authMethod).toBe(method)
          const sys = await conn.identifySystem()
          expect(String(sys.systemId)).toBe(await pg.systemId())
        } finally {
          await conn.close()
        }
      }
    })

    it('fails clearly with a wrong password and without one', async () => {
      const wrong = await connectError(`host=${pg.host} port=${pg.port} user=postgres password=wrong`)
      expect(wrong).toBeInstanceOf(UsageError)
      expect(wrong.code).toBe('PG_AUTH_FAILED')
      expect(wrong.message).toMatch(/password authentication failed for user "postgres"/)
      expect(wrong.hint).toMatch(/password/)
      const none = await connectError(`host=${pg.host} port=${pg.port} user=postgres`)
      expect(none.code).toBe('PG_PASSWORD_REQUIRED')
      expect(none.exitCode).toBe(2)
    })
  })
}
