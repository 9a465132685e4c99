/**
 * A request to a page server for data at an LSN it has not received yet waits for that WAL (up to the
 * server's wait_lsn_timeout, 5 minutes by default). A command that would look hung meanwhile says on
 * stderr, once, what it waits for (also with --json: stdout stays the result's).
 */

/** How long a request to a server may take before the command says what it may be waiting for. */
export const WAIT_NOTICE_MS = 2000

/** Writes `message` to stderr unless `cancel()` comes within WAIT_NOTICE_MS. */
export function waitNotice(message: string): { cancel(): void } {
  const timer = setTimeout(() => process.stderr.write(`pageserver: ${message}\n`), WAIT_NOTICE_MS)
  timer.unref()
  return { cancel: () => clearTimeout(timer) }
}
