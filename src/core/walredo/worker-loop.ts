/**
 * The loop of a redo worker: feeds walredo protocol input to a WorkerSession (worker-session.ts), which
 * redoes a page per GetPage, and writes its replies: exactly one 8192-byte page per GetPage or Ping.
 *
 * Two drivers over the same session:
 * - `runWorkerOnFds` (the worker process, worker-main.ts): blocking reads straight into the session's arena
 *   and one gathered, blocking write (writev) of all the replies to what one read delivered. The worker has
 *   nothing else to do, so blocking is its back-pressure: while the page server does not read its replies it
 *   stops reading requests, and memory stays bounded by the arena and one batch of replies. Reply pages are
 *   reused once written. No event loop, stream, promise or per-read buffer is involved.
 * - `runWorker` (tests, and any stream pair): async iteration over the input, replies written with the
 *   stream's back-pressure.
 *
 * A page the engine cannot redo is answered with an error page when the options carry a mark
 * (redo-error-page.ts). Any other error is thrown, and the entry turns it into the `pageserver-redo-error:`
 * stderr line and exits (errors are not in-band in Neon's protocol). Replies of the requests served before
 * the failing one are written first. EOF on input ends the loop normally (the parent
 * closed the pipe or died), even in the middle of a request: no one is left to read a reply.
 */
import { readSync, writevSync } from 'node:fs'
import { once } from 'node:events'
import type { Writable } from 'node:stream'
import { WorkerSession, type RedoFn, type WorkerLoopOptions, type WorkerRunSummary } from './worker-session.js'

export { DEFAULT_WORKER_LIMITS, type RedoFn, type WorkerLimits, type WorkerLoopOptions, type WorkerRunSummary } from './worker-session.js'

/** Sleep between retries when a descriptor is unexpectedly non-blocking (EAGAIN): a poll, for odd setups only. */
const EAGAIN_SLEEP_MS = 1
const sleeper = new Int32Array(new SharedArrayBuffer(4))

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code
}

function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms)
}

/** One blocking read; 0 at EOF. A reset connection is EOF too (the parent is gone). */
function readSome(fd: number, buf: Buffer, offset: number, length: number): number {
  for (;;) {
    try {
      return readSync(fd, buf, offset, length, null)
    } catch (err) {
      const code = errnoCode(err)
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') sleepSync(EAGAIN_SLEEP_MS)
      else if (code === 'EINTR') continue
      else if (code === 'ECONNRESET') return 0
      else throw err
    }
  }
}

/** Writes every byte of `bufs`, in order, with as few writev calls as the descriptor allows. */
export function writeAllSync(fd: number, bufs: Buffer[]): void {
  let pending = bufs
  for (;;) {
    let written: number
    try {
      written = writevSync(fd, pending)
    } catch (err) {
      const code = errnoCode(err)
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
        sleepSync(EAGAIN_SLEEP_MS)
        continue
      }
      if (code === 'EINTR') continue
      throw err
    }
    // Skip what was written; a partial buffer continues from its first unwritten byte.
    let i = 0
    while (i < pending.length && written >= pending[i]!.length) written -= pending[i++]!.length
    if (i === pending.length) return
    pending = i === 0 && written === 0 ? pending : [pending[i]!.subarray(written), ...pending.slice(i + 1)]
  }
}

/** Serves requests from `inFd` to `outFd` until EOF (returns) or a request cannot be served (throws). */
export function runWorkerOnFds(inFd: number, outFd: number, redoFn: RedoFn, opts: WorkerLoopOptions): WorkerRunSummary {
  const session = new WorkerSession(redoFn, opts, (replies) => writeAllSync(outFd, replies), true)
  for (;;) {
    session.reserve()
    const n = readSome(inFd, session.buffer, session.writeOffset, session.writeRoom)
    if (n === 0) break
    session.commit(n)
    session.process()
    session.flushReplies()
  }
  return session.finish()
}

/** Runs until input ends (resolves) or a request cannot be served (rejects with the reason). */
export async function runWorker(
  input: AsyncIterable<Buffer | string>,
  output: Writable,
  redoFn: RedoFn,
  opts: WorkerLoopOptions,
): Promise<WorkerRunSummary> {
  const pending: Buffer[] = []
  const session = new WorkerSession(redoFn, opts, (replies) => pending.push(...replies), false)
  const drain = async (): Promise<void> => {
    while (pending.length > 0) {
      if (!output.write(pending.shift())) await once(output, 'drain')
    }
  }
  try {
    for await (const chunk of input) {
      session.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk)
      session.process()
      session.flushReplies()
      await drain()
    }
  } catch (err) {
    // Replies of the requests served before the failure go out first.
    await drain()
    throw err
  }
  return session.finish()
}
