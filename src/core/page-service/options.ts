/**
 * Options and named limits of the page service. Defaults follow Neon where it has a value (10-minute
 * idle read timeout, 300 s wait_lsn_timeout, pipelining batch of 32) and PostgreSQL where it has one
 * (10,000-byte startup packet, 60 s authentication_timeout).
 */
import { assert } from '../lib/errors.js'
import { STARTUP_PACKET_BYTES_MAX } from '../protocol/pg-frames.js'
import type { JwtAuth } from './auth.js'

export interface PageServiceOptions {
  /** `trust` (default) or Neon's `NeonJWT`: a JWT as the cleartext password, verified with `jwtAuth`. */
  readonly authType?: 'trust' | 'jwt'
  readonly jwtAuth?: JwtAuth
  /** Live connections beyond this are refused with ErrorResponse 53300. */
  readonly connectionsMax?: number
  /** Largest frontend message body. A pagestream request is < 64 bytes, a query a few hundred. */
  readonly messageBytesMax?: number
  readonly startupPacketBytesMax?: number
  /** From accept to ReadyForQuery (PostgreSQL's authentication_timeout is 60 s). */
  readonly handshakeTimeoutMs?: number
  /**
   * A connection with no traffic for this long is dropped (Neon: 10 minutes; computes reconnect); not while
   * the server still works on its request (a wait for WAL), with nothing left unread.
   */
  readonly idleTimeoutMs?: number
  /** How long a request waits for WAL it asks for (Neon's wait_lsn_timeout, 300 s). */
  readonly waitLsnTimeoutMs?: number
  /**
   * Pagestream requests in flight per connection (decoded, not yet written). It also bounds the responses
   * written but not yet sent: reading stops at about this many pages of both together.
   */
  readonly inFlightMax?: number
  /** basebackup tar bytes per CopyData message. */
  readonly copyDataBytesMax?: number
  /** `close()` lets connections finish for this long, then destroys them. */
  readonly closeDeadlineMs?: number
}

export interface ResolvedPageServiceOptions {
  readonly authType: 'trust' | 'jwt'
  readonly jwtAuth: JwtAuth | null
  readonly connectionsMax: number
  readonly messageBytesMax: number
  readonly startupPacketBytesMax: number
  readonly handshakeTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly waitLsnTimeoutMs: number
  readonly inFlightMax: number
  readonly copyDataBytesMax: number
  readonly closeDeadlineMs: number
}

export const PAGE_SERVICE_DEFAULTS = {
  connectionsMax: 1000,
  messageBytesMax: 1024 * 1024,
  startupPacketBytesMax: STARTUP_PACKET_BYTES_MAX,
  handshakeTimeoutMs: 60_000,
  idleTimeoutMs: 10 * 60_000,
  waitLsnTimeoutMs: 300_000,
  inFlightMax: 32,
  copyDataBytesMax: 256 * 1024,
  closeDeadlineMs: 5_000,
} as const

export function resolvePageServiceOptions(o: PageServiceOptions): ResolvedPageServiceOptions {
  const authType = o.authType ?? 'trust'
  assert(authType === 'trust' || o.jwtAuth !== undefined, 'JWT auth needs jwtAuth (the validation keys)')
  const r: ResolvedPageServiceOptions = {
    authType,
    jwtAuth: authType === 'jwt' ? o.jwtAuth! : null,
    connectionsMax: o.connectionsMax ?? PAGE_SERVICE_DEFAULTS.connectionsMax,
    messageBytesMax: o.messageBytesMax ?? PAGE_SERVICE_DEFAULTS.messageBytesMax,
    startupPacketBytesMax: o.startupPacketBytesMax ?? PAGE_SERVICE_DEFAULTS.startupPacketBytesMax,
    handshakeTimeoutMs: o.handshakeTimeoutMs ?? PAGE_SERVICE_DEFAULTS.handshakeTimeoutMs,
    idleTimeoutMs: o.idleTimeoutMs ?? PAGE_SERVICE_DEFAULTS.idleTimeoutMs,
    waitLsnTimeoutMs: o.waitLsnTimeoutMs ?? PAGE_SERVICE_DEFAULTS.waitLsnTimeoutMs,
    inFlightMax: o.inFlightMax ?? PAGE_SERVICE_DEFAULTS.inFlightMax,
    copyDataBytesMax: o.copyDataBytesMax ?? PAGE_SERVICE_DEFAULTS.copyDataBytesMax,
    closeDeadlineMs: o.closeDeadlineMs ?? PAGE_SERVICE_DEFAULTS.closeDeadlineMs,
  }
  for (const [k, v] of Object.entries(r)) {
    if (typeof v === 'number') assert(Number.isSafeInteger(v) && v > 0, `page service option ${k} must be a positive integer, got ${v}`)
  }
  return r
}
