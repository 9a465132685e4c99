// The serve logger: a reader of its output that stops must not grow the process by the log rate.
import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLogger } from '../../src/cli/logger.js'

describe('createLogger', () => {
  it('drops lines beyond the queued bound while the output is not read, then says how many', () => {
    const taken: string[] = []
    const callbacks: Array<() => void> = []
    // A pipe whose reader stopped: nothing written completes until `callbacks` are called.
    const stream = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, cb) {
        taken.push(chunk.toString())
        callbacks.push(cb)
      },
    })
    const log = createLogger({ json: true, stream: stream as unknown as NodeJS.WriteStream, queuedBytesMax: 64 * 1024 })
    const lines = 2000
    for (let i = 0; i < lines; i++) log('warn', 'page read failed', { i, message: 'x'.repeat(200) })
    // Before: every line queued (about 500 KiB here; without bound for a server logging while nobody reads).
    expect(stream.writableLength).toBeLessThan(64 * 1024 + 1024)
    const kept = stream.writableLength
    // The reader comes back: the queue empties, and the next line is preceded by the count of lines dropped.
    let n = 0
    while (callbacks.length > 0 && n++ < 10_000) callbacks.shift()!()
    expect(stream.writableLength).toBe(0)
    log('info', 'after')
    while (callbacks.length > 0) callbacks.shift()!()
    const out = taken.join('').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; dropped?: number; i?: number })
    const notice = out.at(-2)!
    expect(notice.msg).toBe('log lines dropped: the log output was not being read')
    expect(notice.dropped! + out.filter((l) => l.i !== undefined).length).toBe(lines)
    expect(out.at(-1)!.msg).toBe('after')
    expect(kept).toBeGreaterThan(0)
  })
})
