/**
 * TickCorkedWriter: the writes of one tick leave together at its end, as one gathered write; between
 * hold() and release() they leave together at the release, before the tick ends; a write made earlier in
 * the tick joins them, and the tick's own flush then has nothing left to send.
 */
import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { TickCorkedWriter } from '../../../src/core/lib/tick-cork.js'

/** A stream recording each call that reaches it: the chunks of one writev together. */
function recorder(): { stream: Writable; calls: string[][] } {
  const calls: string[][] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      calls.push([chunk.toString()])
      cb()
    },
    writev(chunks, cb) {
      calls.push(chunks.map((c) => (c.chunk as Buffer).toString()))
      cb()
    },
  })
  return { stream, calls }
}

const tick = () => new Promise<void>((resolve) => process.nextTick(resolve))

describe('TickCorkedWriter', () => {
  it('sends the writes of one tick together at its end', async () => {
    const { stream, calls } = recorder()
    const w = new TickCorkedWriter(stream)
    w.write(Buffer.from('a'))
    w.write(Buffer.from('b'))
    expect(calls).toEqual([])
    await tick()
    expect(calls).toEqual([['a', 'b']])
    w.write(Buffer.from('c'))
    await tick()
    expect(calls).toEqual([['a', 'b'], ['c']])
  })

  it('between hold() and release(), sends at the release, with what the tick wrote before', async () => {
    const { stream, calls } = recorder()
    const w = new TickCorkedWriter(stream)
    w.hold()
    w.write(Buffer.from('a'))
    w.write(Buffer.from('b'))
    expect(calls).toEqual([])
    w.release()
    expect(calls).toEqual([['a', 'b']])

    w.write(Buffer.from('c')) // outside a hold: waits for the tick
    w.hold()
    w.hold() // nested: only the outermost release sends
    w.write(Buffer.from('d'))
    w.release()
    expect(calls).toEqual([['a', 'b']])
    w.release()
    expect(calls).toEqual([['a', 'b'], ['c', 'd']])
    await tick()
    expect(calls).toEqual([['a', 'b'], ['c', 'd']])
    w.hold()
    w.release() // nothing written: nothing sent
    await tick()
    expect(calls).toEqual([['a', 'b'], ['c', 'd']])
  })
})
