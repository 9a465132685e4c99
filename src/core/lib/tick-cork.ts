/**
 * TickCorkedWriter: writes to a stream corked until the end of the current tick, so everything written in
 * one tick leaves in one gathered write (writev): pipelined page service responses (a frame head and its
 * page), a client's pipelined requests, the redo requests of one tick to a worker's stdin.
 *
 * Bytes written while corked go out later in this tick: callers must not change a buffer after writing it.
 */
import type { Writable } from 'node:stream'

export class TickCorkedWriter {
  private corked = false

  constructor(private readonly stream: Writable) {}

  write(bytes: Uint8Array): void {
    if (!this.corked) {
      this.corked = true
      this.stream.cork()
      process.nextTick(flushLater, this)
    }
    this.stream.write(bytes)
  }

  /** Sends what this tick wrote now (called on the next tick after the first write). */
  flush(): void {
    if (!this.corked) return
    this.corked = false
    this.stream.uncork()
  }
}

function flushLater(w: TickCorkedWriter): void {
  w.flush()
}
