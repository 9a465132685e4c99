/**
 * A call to the redo worker pool as the manager (manager.ts) tracks it: the Job across its attempts, and the
 * SendOptions of a redo request.
 */
import type { BufferTag } from '../pg/reltag.js'
import { formatRedoTag } from './buffer-tag-codec.js'
import type { WorkerFailure, WorkerFailureReason } from './worker-failure.js'
import type { RequestHandler, SendOptions } from './worker-process.js'

/** How a job reports back to its manager (one object per manager, so no closures per request). */
export interface JobHooks {
  reply(job: Job, page: Buffer): void
  failure(job: Job, failure: WorkerFailure): void
}

/**
 * One redo() or ping() call, across its attempts: the promise its caller holds, and what the retry policy
 * needs. It is the handler the worker calls back, exactly once per attempt written to it.
 */
export class Job implements RequestHandler {
  settled = false
  attempt = 1
  /** Failures this request caused itself (a retry is spent on each). */
  attributed = 0
  readonly reasons: WorkerFailureReason[] = []
  queueTimer: NodeJS.Timeout | undefined = undefined
  onAbort: (() => void) | undefined = undefined
  readonly promise: Promise<Buffer>
  resolve!: (page: Buffer) => void
  reject!: (err: unknown) => void

  constructor(
    private readonly hooks: JobHooks,
    readonly chunks: readonly Buffer[],
    readonly opts: SendOptions,
    /** Retry after a worker failure (redo requests); pings fail at once. */
    readonly retry: boolean,
    readonly signal: AbortSignal | undefined,
  ) {
    this.promise = new Promise<Buffer>((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
  }

  onReply(page: Buffer): void {
    this.hooks.reply(this, page)
  }

  onFailure(failure: WorkerFailure): void {
    this.hooks.failure(this, failure)
  }
}

/**
 * SendOptions of a redo request; the page is named only when a message needs it. A class, not an object
 * literal with a getter: the literal defines an accessor on every request (measured ≈ 0.6 µs each).
 */
export class RedoSendOptions implements SendOptions {
  readonly kind = 'redo'
  constructor(
    private readonly tag: BufferTag,
    readonly timeoutMs: number,
  ) {}

  get what(): string {
    return formatRedoTag(this.tag)
  }
}
