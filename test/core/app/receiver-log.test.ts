// A served timeline whose WAL source keeps failing the same way logs the failure once, not once per retry:
// later reconnect attempts are debug lines and identical failures are counted until the next line (at most
// one per RECEIVER_REPEAT_LOG_INTERVAL_MS). A scale audit saw 500 such timelines write 8,000 lines a minute.
import { describe, expect, it } from 'vitest'
import { PageServer } from '../../../src/core/app/server.js'
import { tempDirs } from '../../support/timeline-fixture.js'
import { contextFor, tenantWithTimelines } from '../../support/tenant-fixture.js'

const newDir = tempDirs('ps-receiver-log-')

describe('WAL receiver logging of a failing source', () => {
  it('logs a repeated failure once; reconnect attempts after the first are debug', async () => {
    const base = await contextFor(newDir(), ['listen_pg_addr="127.0.0.1:0"', 'listen_http_addr="127.0.0.1:0"'])
    const lines: Array<{ level: string; message: string; fields: Record<string, unknown> }> = []
    const ctx = { ...base, log: (level: string, message: string, fields: Record<string, unknown> = {}) => void lines.push({ level, message, fields }) }
    const t = await tenantWithTimelines(ctx, 'host=127.0.0.1 port=1 user=nobody') // nobody listens on port 1
    const server = await PageServer.start(ctx)
    try {
      const service = server.service(t.tenantId, t.root)
      const receiverLines = () => lines.filter((l) => l.message === 'wal receiver' && l.fields.timeline === t.root)
      const attempts = () => receiverLines().filter((l) => l.fields.event === 'connecting').length
      for (const until = Date.now() + 15_000; attempts() < 5 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 50))
      expect(attempts()).toBeGreaterThanOrEqual(5)
      expect(service.walReceiverRetrying).toBe(true)
      const retries = receiverLines().filter((l) => l.fields.event === 'retry')
      expect(retries.map((l) => l.level)).toEqual(['warn'])
      expect(String((retries[0]!.fields.error as { message: string }).message)).toMatch(/ECONNREFUSED/)
      const connecting = receiverLines().filter((l) => l.fields.event === 'connecting')
      expect(connecting[0]!.level).toBe('info')
      expect(connecting.slice(1).every((l) => l.level === 'debug')).toBe(true)
    } finally {
      await server.stop()
    }
  })
})
