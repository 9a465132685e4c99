import { afterEach, describe, expect, it } from 'vitest'
import { Socket, connect, createServer, type Server } from 'node:net'
import { once } from 'node:events'
import { adoptWithReadBuffer, newReadBuffer } from '../../../src/core/lib/socket-read-buffer.js'

const servers: Server[] = []
const clients: Socket[] = []

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy()
  for (const s of servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()))
})

/** A server whose accepted sockets are adopted; resolves each adopted socket and what it received. */
async function harness(readBuffer = newReadBuffer()) {
  const accepted: Array<{ socket: Socket; chunks: Buffer[] }> = []
  const waiters: Array<() => void> = []
  const server = createServer({ pauseOnConnect: true }, (raw) => {
    const entry = { socket: null as unknown as Socket, chunks: [] as Buffer[] }
    entry.socket = adoptWithReadBuffer(raw, readBuffer, (bytes) => {
      entry.chunks.push(bytes)
      for (const w of waiters.splice(0)) w()
    })
    entry.socket.on('error', () => undefined)
    accepted.push(entry)
    for (const w of waiters.splice(0)) w()
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const changed = () => new Promise<void>((resolve) => waiters.push(resolve))
  const dial = async (): Promise<Socket> => {
    const c = connect(port, '127.0.0.1')
    clients.push(c)
    await once(c, 'connect')
    return c
  }
  /** A client connected, and its adopted server side (resumed unless asked not to). */
  const connected = async (resume = true) => {
    const before = accepted.length
    const c = await dial()
    await until(() => accepted.length > before, changed)
    const s = accepted[before]!
    if (resume) s.socket.resume()
    return { c, s }
  }
  return { accepted, changed, dial, connected, readBuffer }
}

async function until(cond: () => boolean, changed: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 5_000
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await Promise.race([changed(), new Promise((r) => setTimeout(r, 20))])
  }
}

describe('adoptWithReadBuffer', () => {
  it('delivers every byte in order, each read as a copy the shared buffer does not overwrite', async () => {
    const h = await harness()
    const { c, s } = await h.connected()
    c.write(Buffer.from('first'))
    await until(() => s.chunks.length >= 1, h.changed)
    const first = s.chunks[0]!
    expect(first.toString()).toBe('first')
    expect(first.buffer).not.toBe(h.readBuffer.buffer)
    c.write(Buffer.from('second read'))
    await until(() => Buffer.concat(s.chunks).length === 'firstsecond read'.length, h.changed)
    expect(Buffer.concat(s.chunks).toString()).toBe('firstsecond read')
    expect(first.toString()).toBe('first') // the shared buffer was reused, the copy kept
  })

  it('writes go out on the adopted socket, and the peer sees its end', async () => {
    const h = await harness()
    const { c, s } = await h.connected()
    const got: Buffer[] = []
    c.on('data', (b: Buffer) => got.push(b))
    s.socket.end(Buffer.from('bye'))
    await once(c, 'end')
    expect(Buffer.concat(got).toString()).toBe('bye')
  })

  it('reads nothing while paused, then everything once resumed', async () => {
    const h = await harness()
    const { c, s } = await h.connected(false)
    // Adopted sockets start paused: bytes stay in the kernel.
    c.write(Buffer.alloc(1000, 1))
    await new Promise((r) => setTimeout(r, 100))
    expect(s.chunks.length).toBe(0)
    s.socket.resume()
    await until(() => Buffer.concat(s.chunks).length === 1000, h.changed)
    s.socket.pause()
    c.write(Buffer.alloc(500, 2))
    await new Promise((r) => setTimeout(r, 100))
    expect(Buffer.concat(s.chunks).length).toBe(1000)
    s.socket.resume()
    await until(() => Buffer.concat(s.chunks).length === 1500, h.changed)
    expect(Buffer.concat(s.chunks).subarray(1000).equals(Buffer.alloc(500, 2))).toBe(true)
  })

  it('emits end and close when the peer closes', async () => {
    const h = await harness()
    const { c, s } = await h.connected()
    const closed = once(s.socket, 'close')
    const ended = once(s.socket, 'end')
    c.end()
    await ended
    await closed
    expect(s.socket.destroyed).toBe(true)
  })

  it('one read buffer serves several sockets', async () => {
    const h = await harness()
    const a = await h.dial()
    const b = await h.dial()
    await until(() => h.accepted.length === 2, h.changed)
    for (const e of h.accepted) e.socket.resume()
    a.write('from a')
    b.write('from b')
    await until(() => h.accepted.every((e) => e.chunks.length > 0), h.changed)
    expect(h.accepted.map((e) => Buffer.concat(e.chunks).toString()).sort()).toEqual(['from a', 'from b'])
  })

  it('falls back to data events for a socket without a handle', () => {
    const plain = new Socket()
    const seen: Buffer[] = []
    const s = adoptWithReadBuffer(plain, newReadBuffer(), (b) => seen.push(b))
    expect(s).toBe(plain)
    plain.emit('data', Buffer.from('x'))
    expect(seen.map(String)).toEqual(['x'])
    plain.destroy()
  })
})
