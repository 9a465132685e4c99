/**
 * TickCorkedWriter: writes to a stream corked until the end of the current tick, so everything written in
 * one tick leaves in one gathered write (writev): pipelined page service responses (a frame head and its
 * page), a client's pipelined requests, the redo requests of one tick to a worker's stdin.
 *
 * A caller that knows where its burst of writes ends (the page service, handling one read of the socket)
 * brackets it with hold() / release(): the writes then leave at release(), in the same gathered write,
 * without waiting for the tick's end (no nextTick per burst).
 *
 * Bytes written while corked go out later: callers must not change a buffer after writing it.
 */
import type { Writable } from 'node:stream'

export class TickCorkedWriter {
  private corked = false
  /** hold() depth: while positive, writes wait for the outermost release() instead of the tick's end. */
  private holds = 0

  constructor(private readonly stream: Writable) {}

  write(bytes: Uint8Array): void {
    if (!this.corked) {
      this.corked = true
      this.stream.cork()
      if (this.holds === 0) process.nextTick(flushLater, this)
    }
    this.stream.write(bytes)
  }

  /** Writes from now until the matching release() leave together at that release(). */
  hold(): void {
    this.holds++
  }

  /** Ends a hold(); the outermost one sends what was written (in one gathered write). */
  release(): void {
    if (--this.holds === 0) this.flush()
  }

  /** Sends what was corked now (also called on the next tick after the first write outside a hold). */
  flush(): void {
    if (!this.corked) return
    this.corked = false
    this.stream.uncork()
  }
}

function flushLater(w: TickCorkedWriter): void {
  w.flush()
}
