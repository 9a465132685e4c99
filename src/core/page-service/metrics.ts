/**
 * Counters of the page service, exported by GET /metrics (app/metrics.ts).
 * One object per server, mutated by its connections; readers take a snapshot with `{...metrics}`.
 */
export interface PageServiceMetrics {
  connectionsAccepted: number
  /** Refused because `connectionsMax` connections were live. */
  connectionsRefused: number
  /** Connections still logging in that were closed to make room for a new one at `connectionsMax`. */
  handshakesEvicted: number
  connectionsLive: number
  /** Errors of the listening socket after listen (e.g. EMFILE on accept); the listener keeps running. */
  acceptErrors: number
  /** Startup packets that were CancelRequests (closed without an answer). */
  cancelRequests: number
  /** Logins refused (bad token, wrong auth method). */
  authFailures: number
  /** Connections ended because of a protocol violation (bad framing, oversized message, unknown type). */
  protocolErrors: number
  /** Pagestream requests decoded / answered (in-band errors included). */
  requestsStarted: number
  requestsCompleted: number
  /** Requests answered with an in-band Error response. */
  requestErrors: number
  /** basebackup / fullbackup commands that started streaming. */
  backupsStarted: number
  /** Most bytes ever waiting in one connection's socket write buffer (back-pressure check). */
  writeBufferedBytesPeak: number
  /** Most bytes ever read from one connection and not yet taken as messages (read-ahead bound check). */
  readBufferedBytesPeak: number
}

export function newPageServiceMetrics(): PageServiceMetrics {
  return {
    connectionsAccepted: 0,
    connectionsRefused: 0,
    handshakesEvicted: 0,
    connectionsLive: 0,
    acceptErrors: 0,
    cancelRequests: 0,
    authFailures: 0,
    protocolErrors: 0,
    requestsStarted: 0,
    requestsCompleted: 0,
    requestErrors: 0,
    backupsStarted: 0,
    writeBufferedBytesPeak: 0,
    readBufferedBytesPeak: 0,
  }
}
