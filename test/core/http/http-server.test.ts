// The management API's HTTP server frees a connection whose request is not received in time (a stalled or
// slow sender: 408), while a handler may take longer than that once the request is in.
import { describe, expect, it } from 'vitest'
import { connect } from 'node:net'
import { JsonHttpServer } from '../../../src/core/http/http-server.js'

describe('JsonHttpServer receive deadline', () => {
  it('answers 408 to a body that stops coming, and lets a slow handler finish', async () => {
    const server = new JsonHttpServer(undefined, { requestTimeoutMs: 400 })
    server.route('POST', '/slow', async () => {
      await new Promise((r) => setTimeout(r, 900))
      return { json: { ok: true } }
    })
    await server.listen('127.0.0.1', 0)
    const port = server.address.port
    try {
      const slow = await fetch(`http://127.0.0.1:${port}/slow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
      expect(slow.status).toBe(200)
      expect(await slow.json()).toEqual({ ok: true })

      const t0 = Date.now()
      const answer = await new Promise<string>((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () => s.write('POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"'))
        let got = ''
        s.on('data', (d) => (got += d.toString('latin1')))
        s.on('close', () => resolve(got))
        s.on('error', reject)
      })
      expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout')
      expect(Date.now() - t0).toBeLessThan(5_000)
    } finally {
      await server.close()
    }
  })
})
