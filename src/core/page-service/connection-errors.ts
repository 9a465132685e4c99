/**
 * The SQLSTATEs a page service connection answers with, and the ErrorResponses it builds from typed errors.
 *
 * - A command that fails with a typed error (PageserverError) answers with its kind as SQLSTATE, its code in
 *   the detail and its hint (error-wire.ts), so a client gets what the same command raises offline.
 * - A backup whose timeline was deleted under it fails on a closed file: it is answered with why (the
 *   timeline is gone), not with which file could not be read.
 *
 * Apart from connection.ts because query mode (query-mode.ts) answers with them too, and the server
 * (server.ts) refuses connections with the same SQLSTATEs.
 */
import { NotFoundError, type PageserverError } from '../lib/errors.js'
import { errorResponse } from '../protocol/pg-backend-messages.js'
import { detailWithCode, sqlstateOf } from './error-wire.js'

/** The SQLSTATEs a connection answers with itself (PostgreSQL's errcodes.txt). */
export const SqlState = {
  InternalError: 'XX000',
  ConnectionFailure: '08006',
  AdminShutdown: '57P01',
  TooManyConnections: '53300',
  ProtocolViolation: '08P01',
  DataCorrupted: 'XX001',
} as const

/** A typed error's ErrorResponse: SQLSTATE from its kind, its code in D, its hint in H; `message` as the client reads it. */
export function typedErrorResponse(err: PageserverError, message = err.message): Buffer {
  return errorResponse({ severity: 'ERROR', code: sqlstateOf(err), message, detail: detailWithCode(err.code), ...(err.hint === undefined ? {} : { hint: err.hint }) })
}

/** What a backup whose timeline was deleted under it fails with (not the closed file it failed to read). */
export function timelineDeletedDuringBackup(): NotFoundError {
  return new NotFoundError('TIMELINE_NOT_FOUND', 'Tenant or timeline not found: the timeline was deleted during the backup', {
    hint: 'The timeline was deleted while the backup ran; list the timelines (pageserver timeline list) and back up one that exists.',
  })
}
