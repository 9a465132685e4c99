/**
 * The request_lsn / not_modified_since rules of a pagestream request, exactly as Neon's
 * `effective_request_lsn` and `wait_or_get_last_lsn` (pageserver/src/page_service.rs; reference section 15).
 *
 *   1. request_lsn < not_modified_since           -> BadRequest
 *      request_lsn == 0                           -> BadRequest "invalid LSN(0) in request"
 *   2. request_lsn < applied GC cutoff            -> BadRequest "tried to request a page version that was
 *                                                    garbage collected. requested at X gc cutoff Y"
 *   3. effective = not_modified_since             if not_modified_since > last_record_lsn
 *                = min(last_record_lsn, request_lsn) otherwise
 *   4. effective > last_record_lsn                -> wait for not_modified_since (not request_lsn!)
 *   5. read at effective.
 *
 * Worked example: last_record_lsn 0/2000, a primary asks (request_lsn = Lsn.MAX, not_modified_since =
 * 0/1800): effective = min(0/2000, MAX) = 0/2000, no wait. A replica asks (0/2400, 0/2400): effective =
 * 0/2400 > 0/2000, so it waits until 0/2400 has arrived, then reads at 0/2400. A request (0/2400, 0/1000)
 * reads at 0/2000 right away: the client promised nothing changed after 0/1000.
 *
 * LSN leases (which exempt a request below the cutoff) are not implemented yet.
 */
import { UsageError } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import type { PagestreamRequestHeader } from '../protocol/pagestream.js'
import type { PageServiceTimeline } from './backend.js'

/** A refusal that goes back in-band as "Bad request: <message>"; the stream continues. */
export class PagestreamBadRequest extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'PagestreamBadRequest'
  }
}

export interface EffectiveLsn {
  readonly lsn: Lsn
  /** The LSN to wait for before reading, or null when it has arrived already. */
  readonly waitFor: Lsn | null
}

/** Steps 1 to 4 without waiting: which LSN to read at, and whether to wait first. Throws PagestreamBadRequest. */
export function effectiveRequestLsn(timeline: PageServiceTimeline, hdr: PagestreamRequestHeader): EffectiveLsn {
  const { request_lsn, not_modified_since } = hdr
  if (request_lsn < not_modified_since) {
    throw new PagestreamBadRequest(`invalid request with request LSN ${formatLsn(request_lsn)} and not_modified_since ${formatLsn(not_modified_since)}`)
  }
  if (request_lsn === 0n) throw new PagestreamBadRequest('invalid LSN(0) in request')
  const cutoff = timeline.gcCutoffLsn()
  if (request_lsn < cutoff) {
    throw new PagestreamBadRequest(`tried to request a page version that was garbage collected. requested at ${formatLsn(request_lsn)} gc cutoff ${formatLsn(cutoff)}`)
  }
  const last = timeline.lastRecordLsn()
  if (not_modified_since > last) return { lsn: not_modified_since, waitFor: not_modified_since }
  return { lsn: request_lsn < last ? request_lsn : last, waitFor: null }
}

/**
 * LSN_BEFORE_START: `lsn` is below the first LSN the timeline can serve (an imported timeline's pages start at
 * the end of its base backup). The same refusal offline (app/pages.ts) and through the page service, so a
 * script sees one code and exit code either way.
 */
export function lsnBeforeStart(lsn: Lsn, minReadableLsn: Lsn, lastRecordLsn: Lsn): UsageError {
  return new UsageError('LSN_BEFORE_START', `LSN ${formatLsn(lsn)} is before the first readable LSN ${formatLsn(minReadableLsn)} of this timeline`, {
    hint:
      lsn >= lastRecordLsn
        ? `The timeline's WAL has not reached ${formatLsn(minReadableLsn)} yet: stream it (\`pageserver timeline sync\`, or \`serve\`).`
        : 'An imported timeline serves pages from the end of its base backup on; a branch from its branch point on.',
  })
}

/** Neon's text for a wait that ran out of time (timeline.rs wait_lsn), prefixed by the caller. */
export function lsnTimeoutMessage(timeline: PageServiceTimeline, lsn: Lsn): string {
  const dcl = timeline.diskConsistentLsn?.()
  const status = timeline.walReceiverStatus?.() ?? 'unknown'
  return (
    `Timed out while waiting for WAL record at LSN ${formatLsn(lsn)} to arrive, last_record_lsn ${formatLsn(timeline.lastRecordLsn())} ` +
    `disk consistent LSN=${dcl === undefined ? 'unknown' : formatLsn(dcl)}, WalReceiver status: ${status}`
  )
}
