/**
 * The graceful shutdown of a running server (PageServer.stop runs it once, after stopping its own clocks):
 * stop accepting management requests (those in progress get a share of the deadline to finish and be
 * answered), stop the page service, stop the WAL receivers, flush every timeline, close the repository (its
 * redo workers), release the workdir lock; all within a deadline.
 * Invariant: the workdir lock is released only when nothing can write into the workdir any more. When a
 * management request is still running, or the flush overran the deadline, the lock is kept and the caller
 * must exit the process (the lock goes with it); the next start cleans up as after a crash. What is not
 * flushed is not lost: the replication slot keeps the WAL above disk_consistent_lsn.
 */
import { messageOf, PageserverError } from '../lib/errors.js'
import type { PageServiceServer } from '../page-service/server.js'
import type { Repository } from '../repository/repository.js'
import type { WorkdirLock } from '../storage/workdir-lock.js'
import type { JsonHttpServer } from '../http/http-server.js'
import { formatLsn } from '../pg/lsn.js'
import type { AppContext } from './context.js'
import type { ServedTimelines } from './server-timelines.js'

/**
 * At shutdown, how long management requests in progress may take to finish and be answered (at most a third
 * of the shutdown deadline): a bootstrap (a few seconds) completes and is answered; a longer import is
 * answered 503 and the process exits under it (see shutDownServer).
 */
const HTTP_SHUTDOWN_GRACE_MS = 10_000

/** What the shutdown stops, closes and releases: the parts of a PageServer. */
export interface ShutdownParts {
  readonly ctx: AppContext
  readonly http: JsonHttpServer | null
  readonly pageService: PageServiceServer
  readonly served: ServedTimelines
  readonly repo: Repository
  readonly lock: WorkdirLock
  /** Aborted when the grace for management requests ends: stops what can be stopped (initdb). */
  readonly shutdownAbort: AbortController
}

/**
 * Shuts down within `deadlineMs` (whatever is not flushed by then is re-streamed at the next start). Returns
 * whether the process must exit now (work still running, the workdir lock kept; see the header).
 */
export async function shutDownServer(p: ShutdownParts, deadlineMs: number): Promise<{ exitRequired: boolean }> {
  const deadline = new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref())
  const work = (async () => {
    // Management requests in progress get a share of the deadline to finish and be answered.
    await p.http?.close(Math.min(HTTP_SHUTDOWN_GRACE_MS, deadlineMs / 3))
    p.shutdownAbort.abort()
    await p.pageService.close()
    await Promise.all([...p.served.values()].map((s) => s.stopWal()))
    await flushAll(p.ctx, p.served)
  })()
  const finished = await Promise.race([work.then(() => true), deadline.then(() => false)])
  // Past the deadline the repository is not closed: its close waits for the flush still running (a slow
  // or hung disk), which the deadline is there to cut short. The process exits under it (below).
  if (finished) await p.repo.close().catch(() => {})
  const running = p.http?.handlersRunning ?? 0
  let exitRequired = false
  if (running > 0 || !finished) {
    // Work still going on (a handler: an import's base backup, a wal_source change; or the shutdown's own
    // flush past the deadline) would go on writing into the workdir: keep the lock, so nothing else takes
    // the workdir, and have the process exit (serve does; the lock goes with the process). The next start
    // cleans up what it left (a half-made timeline directory, an import's slot, a half-written layer), as
    // after a crash.
    exitRequired = true
    p.ctx.log?.(
      'warn',
      running > 0
        ? 'page server stopped with management requests still running: exiting under them, with the workdir lock held to the end'
        : 'page server stopped at the shutdown deadline with its flush still running: exiting under it, with the workdir lock held to the end',
      { requests: running },
    )
  } else {
    p.lock.release()
  }
  p.ctx.log?.('info', 'page server stopped', {})
  return { exitRequired }
}

/** The final flush of every served timeline; one that fails is logged, and the others are still flushed. */
async function flushAll(ctx: AppContext, served: ServedTimelines): Promise<void> {
  for (const s of served.values()) {
    try {
      await s.driver.checkpoint()
    } catch (e) {
      // Nothing is lost: the slot keeps the WAL above disk_consistent_lsn, streamed again at the next start.
      ctx.log?.('error', 'flush at shutdown failed; the WAL not flushed streams again from the replication slot at the next start', {
        tenant: s.tenant.id,
        timeline: s.timeline.timelineId,
        code: e instanceof PageserverError ? e.code : 'INTERNAL',
        message: messageOf(e),
        notFlushedFrom: formatLsn(s.timeline.diskConsistentLsn),
        notFlushedTo: formatLsn(s.timeline.lastRecordLsn),
      })
    }
  }
}
