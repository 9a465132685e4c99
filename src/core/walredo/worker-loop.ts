/**
 * The loop of a redo worker: reads walredo protocol messages, keeps the state of the request in progress,
 * calls the redo function on GetPage and writes exactly one 8192-byte page per GetPage or Ping.
 *
 * Separate from the process entry (worker-main.ts) so that tests drive it in-process with streams and a fake
 * redo function. It has no error channel of its own: it throws, and the entry turns the error into the
 * `pageserver-redo-error:` stderr line and exits (errors are not in-band in Neon's protocol).
 *
 * Request grammar, enforced: `B [P] A* G` or `H` between requests. P must directly follow B, and the tags of
 * B, P and G must match, so a desynchronised stream fails loudly instead of redoing the wrong page.
 * Bounds: the decoder checks every length field before buffering the body; the per-request record count and
 * record bytes are checked before a record is kept. EOF on input ends the loop normally (the parent closed
 * the pipe or died), even in the middle of a request: no one is left to read a reply.
 */
import { once } from 'node:events'
import type { Writable } from 'node:stream'
import { CorruptionError, PageserverError, UnsupportedError } from '../lib/errors.js'
import { formatLsn } from '../pg/lsn.js'
import type { BufferTag } from '../pg/reltag.js'
import type { RedoOptions, RedoRecord } from '../redo/engine.js'
import { bufferTagEquals, formatRedoTag } from './buffer-tag-codec.js'
import {
  MESSAGE_MAX_BYTES,
  PAGE_BYTES,
  REQUEST_RECORD_BYTES_MAX,
  REQUEST_RECORDS_MAX,
  RedoMessageDecoder,
  recordProblem,
  type RedoMessage,
} from './protocol.js'

/** The engine's contract (src/core/redo/engine.ts `redoBlock`). */
export type RedoFn = (tag: BufferTag, base: Buffer | null, records: RedoRecord[], opts: RedoOptions) => Buffer

export interface WorkerLimits {
  /** Largest length field accepted (an ApplyRecord with the largest record). */
  messageMaxBytes: number
  requestRecordsMax: number
  requestRecordBytesMax: number
}

export const DEFAULT_WORKER_LIMITS: Readonly<WorkerLimits> = Object.freeze({
  messageMaxBytes: MESSAGE_MAX_BYTES,
  requestRecordsMax: REQUEST_RECORDS_MAX,
  requestRecordBytesMax: REQUEST_RECORD_BYTES_MAX,
})

export interface WorkerLoopOptions {
  hintBitsLogged: boolean
  limits?: Partial<WorkerLimits>
}

export interface WorkerRunSummary {
  requests: number
  pings: number
  /** Input ended in the middle of a message or request. */
  truncated: boolean
}

const ZERO_PAGE = Buffer.alloc(PAGE_BYTES)

const ORDER_HINT = 'The redo request stream is out of order; check that the page server and the redo worker are the same version.'

interface RequestInProgress {
  tag: BufferTag
  base: Buffer | null
  records: RedoRecord[]
  recordBytes: number
}

function outOfOrder(message: string, details: Record<string, unknown> = {}): CorruptionError {
  return new CorruptionError('WALREDO_OUT_OF_ORDER', message, { hint: ORDER_HINT, details })
}

/** Runs until input ends (resolves) or a request cannot be served (rejects with the reason). */
export async function runWorker(
  input: AsyncIterable<Buffer | string>,
  output: Writable,
  redoFn: RedoFn,
  opts: WorkerLoopOptions,
): Promise<WorkerRunSummary> {
  const limits: WorkerLimits = { ...DEFAULT_WORKER_LIMITS, ...opts.limits }
  const redoOptions: RedoOptions = { hintBitsLogged: opts.hintBitsLogged }
  const decoder = new RedoMessageDecoder(limits.messageMaxBytes)
  const summary: WorkerRunSummary = { requests: 0, pings: 0, truncated: false }
  let current: RequestInProgress | null = null

  const write = async (page: Buffer): Promise<void> => {
    if (!output.write(page)) await once(output, 'drain')
  }

  const handle = async (msg: RedoMessage): Promise<void> => {
    switch (msg.type) {
      case 'B':
        if (current !== null) throw outOfOrder(`BeginRedoForBlock for ${formatRedoTag(msg.tag)} inside the request for ${formatRedoTag(current.tag)}`)
        current = { tag: msg.tag, base: null, records: [], recordBytes: 0 }
        return
      case 'P':
        if (current === null) throw outOfOrder('PushPage outside a request')
        if (current.base !== null || current.records.length > 0) throw outOfOrder(`PushPage for ${formatRedoTag(msg.tag)} after the request began`)
        if (!bufferTagEquals(current.tag, msg.tag)) throw outOfOrder(`PushPage for ${formatRedoTag(msg.tag)} inside the request for ${formatRedoTag(current.tag)}`)
        current.base = msg.page
        return
      case 'A': {
        if (current === null) throw outOfOrder('ApplyRecord outside a request')
        const problem = recordProblem(msg.record)
        if (problem !== null) {
          throw new CorruptionError('WALREDO_BAD_RECORD', `the WAL record ending at ${formatLsn(msg.endLsn)} is malformed: ${problem}`, {
            hint: 'The stored WAL record is corrupt or was cut; it must be the whole XLogRecord.',
            details: { lsn: formatLsn(msg.endLsn), tag: formatRedoTag(current.tag) },
          })
        }
        if (current.records.length >= limits.requestRecordsMax || current.recordBytes + msg.record.length > limits.requestRecordBytesMax) {
          throw new UnsupportedError('WALREDO_REQUEST_TOO_LARGE', `the redo request for ${formatRedoTag(current.tag)} exceeds ${limits.requestRecordsMax} records or ${limits.requestRecordBytesMax} bytes`, {
            hint: 'Create image layers more often (compaction) so that page chains stay shorter.',
            details: { records: current.records.length + 1, recordBytes: current.recordBytes + msg.record.length },
          })
        }
        current.records.push({ endLsn: msg.endLsn, raw: msg.record })
        current.recordBytes += msg.record.length
        return
      }
      case 'G': {
        if (current === null) throw outOfOrder('GetPage outside a request')
        if (!bufferTagEquals(current.tag, msg.tag)) throw outOfOrder(`GetPage for ${formatRedoTag(msg.tag)} inside the request for ${formatRedoTag(current.tag)}`)
        const req: RequestInProgress = current
        current = null
        const page = redoFn(req.tag, req.base, req.records, redoOptions)
        if (!Buffer.isBuffer(page) || page.length !== PAGE_BYTES) {
          throw new PageserverError('internal', 'WALREDO_BAD_PAGE_SIZE', `the redo engine returned ${Buffer.isBuffer(page) ? `${page.length} bytes` : typeof page} for ${formatRedoTag(req.tag)}, not an ${PAGE_BYTES}-byte page`, {
            hint: 'This is a bug in the redo engine; please report it.',
          })
        }
        summary.requests++
        await write(page)
        return
      }
      case 'H':
        if (current !== null) throw outOfOrder(`Ping inside the request for ${formatRedoTag(current.tag)}`)
        summary.pings++
        await write(ZERO_PAGE)
        return
    }
  }

  for await (const chunk of input) {
    decoder.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk)
    for (let msg = decoder.next(); msg !== null; msg = decoder.next()) await handle(msg)
  }
  summary.truncated = current !== null || decoder.bufferedBytes > 0
  return summary
}
