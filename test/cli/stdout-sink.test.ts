import { PassThrough, Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { StdoutSink } from '../../src/cli/stdout-sink.js'

function epipe(): NodeJS.ErrnoException {
  return Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })
}

describe('StdoutSink', () => {
  it('writes text and JSON lines (bigints as strings) until the reader goes away', () => {
    const stream = new PassThrough()
    const sink = new StdoutSink(stream as unknown as NodeJS.WriteStream)
    sink.write('a\n')
    sink.writeJsonLine({ lsn: 22n, n: 1 })
    expect(stream.read()?.toString()).toBe('a\n{"lsn":"22","n":1}\n')
    stream.emit('error', epipe())
    expect(sink.closed).toBe(true)
    sink.write('dropped\n')
    expect(stream.read()).toBeNull()
    sink.dispose()
    expect(stream.listenerCount('error')).toBe(0)
  })

  it('turns a synchronous EPIPE into closed and rethrows other write errors', () => {
    let fail: NodeJS.ErrnoException = epipe()
    const stream = new Writable({ write: (_c, _e, cb) => cb() })
    stream.write = (() => {
      throw fail
    }) as typeof stream.write
    const sink = new StdoutSink(stream as unknown as NodeJS.WriteStream)
    sink.write('x')
    expect(sink.closed).toBe(true)
    const other = new StdoutSink(stream as unknown as NodeJS.WriteStream)
    fail = Object.assign(new Error('disk full'), { code: 'ENOSPC' })
    expect(() => other.write('x')).toThrow('disk full')
    sink.dispose()
    other.dispose()
  })

  it('reports an ending error as the last JSON line and returns its exit code', async () => {
    const stream = new PassThrough()
    const sink = new StdoutSink(stream as unknown as NodeJS.WriteStream)
    const code = await sink.reportError({ code: 'CORRUPT_WAL', message: 'bad CRC at 0/16B3D48', hint: 'Check the file.', exitCode: 5, stack: undefined }, true, false)
    expect(code).toBe(5)
    expect(JSON.parse(stream.read().toString())).toEqual({ error: { code: 'CORRUPT_WAL', message: 'bad CRC at 0/16B3D48', hint: 'Check the file.' } })
    sink.dispose()
  })

  it('drained() resolves at once when the stream is gone', async () => {
    const stream = new Writable({ highWaterMark: 1, write: () => {} })
    const sink = new StdoutSink(stream as unknown as NodeJS.WriteStream)
    sink.write('fills the buffer')
    const waiting = sink.drained()
    stream.destroy()
    await waiting
    sink.dispose()
  })
})
