// A failed page read is logged by its timeline, but a compute retrying a damaged page must not flood the log:
// one line per interval per timeline, counting the failures it stands for.
import { describe, expect, it, vi } from 'vitest'
import { PageServer } from '../../../src/core/app/server.js'
import { READ_FAILURE_LOG_INTERVAL_MS } from '../../../src/core/app/timeline-service.js'
import { CorruptionError } from '../../../src/core/lib/errors.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { contextFor, tenantWithTimelines } from '../../support/tenant-fixture.js'

const newDir = tempDirs('ps-readlog-')

describe('failed page reads in the server log', () => {
  it('one line per interval per timeline, with the number of failures since the last', async () => {
    const ctx = await contextFor(newDir(), ['listen_pg_addr="127.0.0.1:0"', 'listen_http_addr="127.0.0.1:0"'])
    const f = await tenantWithTimelines(ctx)
    const lines: Array<Record<string, unknown>> = []
    const server = await PageServer.start({ ...ctx, log: (level, msg, fields) => void (msg === 'page read failed' && lines.push({ level, ...fields })) })
    let now = 1_000_000
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => now)
    try {
      const s = server.service(f.tenantId, f.root)
      const err = new CorruptionError('LAYER_CORRUPT', 'layer file /x is corrupt')
      for (let i = 0; i < 100; i++) s.readFailed(err)
      expect(lines).toEqual([{ level: 'error', tenant: f.tenantId, timeline: f.root, code: 'LAYER_CORRUPT', message: 'layer file /x is corrupt', failuresSinceLastLine: 1 }])
      now += READ_FAILURE_LOG_INTERVAL_MS
      s.readFailed(err)
      expect(lines).toHaveLength(2)
      expect(lines[1]).toMatchObject({ failuresSinceLastLine: 100 })
      // Another timeline has its own interval.
      server.service(f.tenantId, f.branch).readFailed(new Error('disk on fire'))
      expect(lines).toHaveLength(3)
      expect(lines[2]).toMatchObject({ level: 'error', timeline: f.branch, message: 'disk on fire', failuresSinceLastLine: 1 })
    } finally {
      clock.mockRestore()
      await server.stop()
    }
  })
})
