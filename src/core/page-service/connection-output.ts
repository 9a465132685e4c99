/**
 * ConnectionOutput: the write side of one page service connection's socket, and the count of its traffic
 * that the idle timeout watches.
 *
 * - Writes made in one tick are corked into one syscall (pipelined responses, CopyData header + body); those
 *   answering one read of the socket leave as soon as that read is handled (`hold` / `release`).
 * - `endAfterFlush` sends what is buffered, then closes our side, and keeps reading so that the peer gets our
 *   last message instead of a reset; a socket still open `lingerMs` later is destroyed.
 * - `drained()` is a backup's back-pressure: it resolves once the write buffer is below its high-water mark;
 *   the connection wakes the waiters on 'drain' and when it closes.
 * - Reads and writes are counted; the server's idle sweep drops a connection whose count stays the same for
 *   idleTimeoutMs (`idle`). Counting here replaces the socket's own timeout, which Node re-arms (a timer-list
 *   insert) on every read and write.
 *
 * Shape: the connection owns this object and the state machine; it writes nothing once it has closed, and
 * this object writes nothing once the socket is destroyed. No allocation per write.
 */
import type { Socket } from 'node:net'
import { TickCorkedWriter } from '../lib/tick-cork.js'
import type { PageServiceMetrics } from './metrics.js'

export class ConnectionOutput {
  /** Writes of one tick leave in one writev (pipelined messages, a frame head and its page). */
  private readonly out: TickCorkedWriter
  private drainWaiters: Array<() => void> = []
  /** Reads and writes so far, and what the server's idle sweep last saw of them (`idle`). */
  private activity = 0
  private activitySeen = -1
  private quietSinceMs = 0

  constructor(
    private readonly socket: Socket,
    private readonly metrics: PageServiceMetrics,
  ) {
    this.out = new TickCorkedWriter(socket)
  }

  /** A read from the socket: counts as traffic. */
  countRead(): void {
    this.activity++
  }

  /** Counts as traffic without any (the server is working on the client's request). */
  countActivity(): void {
    this.activity++
  }

  /** Writes from now until the matching release() leave together at that release(). */
  hold(): void {
    this.out.hold()
  }

  release(): void {
    this.out.release()
  }

  write(bytes: Uint8Array): void {
    if (this.socket.destroyed) return
    this.activity++
    this.out.write(bytes)
    const pending = this.socket.writableLength
    if (pending > this.metrics.writeBufferedBytesPeak) this.metrics.writeBufferedBytesPeak = pending
  }

  /** Resolves once the write buffer is below its high-water mark (or the waiters are woken: a close). */
  drained(): Promise<void> {
    if (!this.socket.writableNeedDrain) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }

  wakeDrainWaiters(): void {
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w()
  }

  /** Ends our side once what is buffered is sent; the socket is destroyed `lingerMs` later if still open. */
  endAfterFlush(lingerMs: number): void {
    this.socket.end()
    // Keep consuming input so the peer gets our last message instead of a reset.
    this.socket.resume()
    setTimeout(() => this.socket.destroy(), lingerMs).unref()
  }

  /**
   * One sweep of the server's (at most a quarter of idleTimeoutMs apart): whether no byte was read or written
   * for `idleMs` (to within one sweep period).
   */
  idle(nowMs: number, idleMs: number): boolean {
    if (this.activity !== this.activitySeen) {
      this.activitySeen = this.activity
      this.quietSinceMs = nowMs
      return false
    }
    return nowMs - this.quietSinceMs >= idleMs
  }
}
