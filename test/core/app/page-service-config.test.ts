// The page service limits that pageserver.toml sets (page_service_max_connections, page_service_idle_timeout)
// reach the server `serve` runs: past the limit a connection is refused with 53300, and a silent one is
// dropped after the idle timeout, not the 10-minute default. No PostgreSQL needed.
import { describe, expect, it } from 'vitest'
import { PageServer } from '../../../src/core/app/server.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { contextFor } from '../../support/tenant-fixture.js'
import { errorCode, RawSocket } from '../page-service/support.js'
import { startupMessage } from '../../../src/core/protocol/pg-frontend-messages.js'

const newDir = tempDirs('ps-svc-config-')

describe('page service settings of pageserver.toml', () => {
  it('page_service_max_connections and page_service_idle_timeout are applied by the running server', async () => {
    const ctx = await contextFor(newDir(), [
      'listen_pg_addr="127.0.0.1:0"',
      'listen_http_addr="127.0.0.1:0"',
      'page_service_max_connections=1',
      'page_service_idle_timeout="1s"',
    ])
    const server = await PageServer.start(ctx)
    const raws: RawSocket[] = []
    try {
      const port = server.addresses.pg.port
      const first = await RawSocket.connect(port)
      raws.push(first)
      await first.login()
      const startedQuiet = Date.now()

      // One connection is the limit: the next one is told so after its startup message.
      const second = await RawSocket.connect(port)
      raws.push(second)
      second.write(startupMessage({ user: 'test', database: 'postgres' }))
      const refused = await second.closedFrames(5_000)
      expect(refused.map((f) => f.type)).toEqual(['E'])
      expect(errorCode(refused[0]!)).toBe('53300')

      // The first, silent since its login, is dropped after about a second (the default is 10 minutes).
      await first.closedFrames(10_000)
      expect(Date.now() - startedQuiet).toBeGreaterThanOrEqual(1_000)
    } finally {
      for (const r of raws) r.socket.destroy()
      await server.stop()
    }
  })
})
