/**
 * ChunkQueue: a single-consumer async queue of WAL chunks between a socket callback and an async iterator.
 *
 * The producer (the socket's data callback) pushes synchronously; the consumer awaits `next()`. The queue
 * counts the bytes it holds so the producer can pause the socket above a high-water mark and resume below
 * a low one: memory stays bounded by `bytesMax` plus one network read, however slow the consumer is.
 *
 * Invariants: after `end()` or `fail()` nothing more is accepted; items queued before the end are still
 * delivered, then the end (or the error) is reported once to every later `next()`.
 */
import { assert } from '../lib/errors.js'

export class ChunkQueue<T extends { readonly data: Buffer }> {
  private items: T[] = []
  private head = 0
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined
  private finished = false
  private failure: unknown = undefined
  private queuedBytes = 0

  constructor(
    /** Above this many queued bytes `overHighWater` turns true (the producer pauses). */
    readonly bytesMax: number,
    private readonly onDrain: () => void = () => {},
  ) {}

  get bytes(): number {
    return this.queuedBytes
  }

  get overHighWater(): boolean {
    return this.queuedBytes > this.bytesMax
  }

  get closed(): boolean {
    return this.finished
  }

  push(item: T): void {
    if (this.finished) return
    if (this.waiter) {
      const w = this.waiter
      this.waiter = undefined
      w.resolve({ value: item, done: false })
      return
    }
    this.items.push(item)
    this.queuedBytes += item.data.length
  }

  /** Normal end: queued items are still delivered. */
  end(): void {
    if (this.finished) return
    this.finished = true
    this.settleWaiter()
  }

  /** Failure: queued items are still delivered, then `err` is thrown. */
  fail(err: unknown): void {
    if (this.finished) return
    this.finished = true
    this.failure = err
    this.settleWaiter()
  }

  /** Drops everything queued and ends (the consumer went away). */
  discard(): void {
    this.items = []
    this.head = 0
    this.queuedBytes = 0
    this.end()
  }

  private settleWaiter(): void {
    if (!this.waiter || this.head < this.items.length) return
    const w = this.waiter
    this.waiter = undefined
    if (this.failure !== undefined) w.reject(this.failure)
    else w.resolve({ value: undefined, done: true })
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head < this.items.length) {
      const item = this.items[this.head]!
      this.items[this.head++] = undefined as unknown as T
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head)
        this.head = 0
      }
      this.queuedBytes -= item.data.length
      // Low-water mark: the producer resumes a paused socket (a no-op when it is not paused).
      if (this.queuedBytes <= this.bytesMax / 2) this.onDrain()
      return Promise.resolve({ value: item, done: false })
    }
    if (this.finished) {
      if (this.failure !== undefined) return Promise.reject(this.failure)
      return Promise.resolve({ value: undefined, done: true })
    }
    assert(this.waiter === undefined, 'ChunkQueue has a single consumer')
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject }
    })
  }
}
