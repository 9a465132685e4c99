/**
 * basebackup / fullbackup over CopyOut: wait for the LSN (if one was asked for), check it against the GC
 * cutoff, then CopyOutResponse, the tar as CopyData messages (gzip at level 1, "fastest", with --gzip),
 * and CopyDone. The caller writes CommandComplete "SELECT 1" + ReadyForQuery on success, or an
 * ErrorResponse (which also ends a COPY in progress) + ReadyForQuery on failure. Failures are typed
 * (PageserverError) so that the ErrorResponse carries their kind, code and hint (error-wire.ts).
 *
 * Back-pressure: after each CopyData the writer waits for the socket to drain when its buffer is above
 * the high-water mark, so a slow client slows the tar producer instead of filling memory. Each CopyData
 * carries at most `copyDataBytesMax` bytes (large producer chunks are split).
 *
 * Fairness: pages from caches and image layers are read synchronously, and while the kernel takes every
 * write the producer's promises all resolve at once, so a backup would run as one long chain of microtasks
 * and hold the event loop (measured: other connections' GetPage round trips of 100–160 ms while a 70 MB
 * fullbackup streamed to a fast reader). After each CopyData the stream yields to the event loop
 * (`setImmediate`: I/O of other connections runs first), so no one waits longer than one CopyData's work.
 */
import { withEitherSignal } from '../lib/abort.js'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import { createGzip, constants as zlibConstants } from 'node:zlib'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { TimeoutError, UnavailableError, UsageError } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { copyDataHeader, copyDone, copyOutResponse } from '../protocol/pg-backend-messages.js'
import type { PageServiceTimeline } from './backend.js'
import { lsnTimeoutMessage } from './lsn-rules.js'

export interface CopyOutSink {
  write(bytes: Buffer): void
  /** Resolves when the socket's write buffer is below its high-water mark (or the socket closed). */
  drained(): Promise<void>
  /** Aborted when the connection closes: everything stops. */
  readonly signal: AbortSignal
  /** Ends only the wait for the LSN (a graceful shutdown: a backup already streaming is let finish). */
  readonly waitSignal?: AbortSignal
}

export interface BackupRequest {
  readonly lsn: Lsn | null
  readonly prevLsn: Lsn | null
  readonly full: boolean
  readonly gzip: boolean
  readonly replica: boolean
}

/** Code of a backup whose LSN did not arrive within wait_lsn_timeout (the client's code before codes were sent). */
const BACKUP_LSN_TIMEOUT_CODE = 'PAGE_SERVICE_LSN_TIMEOUT'

export async function streamBackup(
  sink: CopyOutSink,
  timeline: PageServiceTimeline,
  req: BackupRequest,
  limits: { readonly waitLsnTimeoutMs: number; readonly copyDataBytesMax: number },
): Promise<void> {
  if (req.lsn !== null) {
    try {
      const waitSignal = sink.waitSignal
      await (waitSignal === undefined
        ? timeline.waitForLsn(req.lsn, limits.waitLsnTimeoutMs, sink.signal)
        : withEitherSignal(sink.signal, waitSignal, (either) => timeline.waitForLsn(req.lsn!, limits.waitLsnTimeoutMs, either)))
    } catch (err) {
      if (err instanceof TimeoutError) {
        throw new TimeoutError(BACKUP_LSN_TIMEOUT_CODE, lsnTimeoutMessage(timeline, req.lsn), {
          hint: 'The page server has not received WAL up to that LSN yet; ask for an earlier LSN or check the WAL receiver.',
        })
      }
      throw err
    }
    const cutoff = timeline.gcCutoffLsn()
    if (req.lsn < cutoff) {
      throw new UsageError(
        'BACKUP_LSN_BEFORE_GC_CUTOFF',
        `invalid basebackup lsn: LSN ${formatLsn(req.lsn)} is earlier than latest GC cutoff ${formatLsn(cutoff)} (we might've already garbage collected needed data)`,
        { hint: `Ask for an LSN at or after the GC cutoff ${formatLsn(cutoff)}, or leave the LSN out for the latest.` },
      )
    }
  }
  const backup = await timeline.basebackup({ lsn: req.lsn, prevLsn: req.prevLsn, full: req.full, replica: req.replica, signal: sink.signal })
  sink.write(copyOutResponse())

  const send = async (chunk: Uint8Array): Promise<void> => {
    for (let off = 0; off < chunk.length; off += limits.copyDataBytesMax) {
      const piece = chunk.subarray(off, Math.min(chunk.length, off + limits.copyDataBytesMax))
      sink.write(copyDataHeader(piece.length))
      sink.write(Buffer.from(piece.buffer, piece.byteOffset, piece.length))
      await sink.drained()
      await yieldToEventLoop()
      if (sink.signal.aborted) {
        throw new UnavailableError('PAGE_SERVICE_CONNECTION_CLOSED', 'the connection closed during the backup', { hint: 'The client closed its connection before the backup ended; run the backup again.' })
      }
    }
  }

  // fullbackup is never compressed (Neon: "TODO Compress in that case too").
  if (req.gzip && !req.full) {
    const gz = createGzip({ level: zlibConstants.Z_BEST_SPEED })
    const feeding = pipeline(Readable.from(backup.tar, { objectMode: false }), gz)
    try {
      for await (const chunk of gz) await send(chunk as Buffer)
    } catch (err) {
      gz.destroy()
      await feeding.catch(() => undefined)
      throw err
    }
    await feeding
  } else {
    for await (const chunk of backup.tar) await send(chunk)
  }
  sink.write(copyDone())
}
