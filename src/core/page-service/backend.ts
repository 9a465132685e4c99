/**
 * What the page service needs from the repository: the one seam between the protocol layer and storage.
 *
 * The page service owns the protocol rules (request_lsn / not_modified_since, the GC cutoff check,
 * waiting for WAL up to `wait_lsn_timeout`, in-order responses); the backend owns the data rules: a block
 * past the end of a relation is an all-zero page, Nblocks of a missing FSM / VM fork is 0 while a missing
 * main fork is an error, DbSize sums the relations of (1663, dbnode). Every read takes the effective LSN
 * the page service computed; the backend never sees Lsn.MAX.
 *
 * Errors the backend throws and what the client sees (Neon's classes, section 13 of the reference):
 * - `timeline()`: NotFoundError for an unknown tenant or timeline -> ErrorResponse at command start.
 * - `waitForLsn`: TimeoutError when `timeoutMs` passes -> in-band "LSN timeout: Timed out while waiting
 *   for WAL record at LSN ..." (the page service writes the text); an aborted `signal` ends it early.
 * - reads: UsageError -> in-band "Bad request: ..."; any other error -> in-band "Read error: ..." (refined
 *   by kind: "Read error: not found: ...", "Read error: unsupported: ..."); an error with code SHUTTING_DOWN
 *   -> ErrorResponse 57P01 and the connection closes.
 * - basebackup: a typed error -> ErrorResponse with its kind as SQLSTATE, its code and hint.
 * Typed errors keep their code and hint on the way to the client (error-wire.ts): throw what the offline
 * path throws, and the client sees the same kind, code, exit code and hint.
 * The lead's repository implements this; tests use a fake (test/core/page-service/fake-backend.ts).
 */
import type { Lsn } from '../pg/lsn.js'
import type { RelTag } from '../pg/reltag.js'
import type { TenantId, TimelineId } from '../model/ids.js'

export interface PageServiceBackend {
  /** The timeline to serve; throws NotFoundError for an unknown tenant or timeline. */
  timeline(tenantId: TenantId, timelineId: TimelineId): PageServiceTimeline
}

export interface BasebackupOptions {
  /** LSN of the backup; null = the last record LSN. The page service has already waited for it. */
  readonly lsn: Lsn | null
  /** fullbackup: include all relation data. */
  readonly full: boolean
  /** fullbackup's optional `prev_lsn` (the xl_prev of the first record a compute writes). */
  readonly prevLsn: Lsn | null
  /** basebackup --replica: a control file for hot standby. */
  readonly replica: boolean
  /** Aborted when the client goes away or the server shuts down. */
  readonly signal: AbortSignal
}

export interface BasebackupStream {
  /** The LSN the backup is taken at. */
  readonly lsn: Lsn
  /** The tar bytes, uncompressed; the page service gzips them for `--gzip`. */
  readonly tar: AsyncIterable<Uint8Array>
}

export interface PageServiceTimeline {
  lastRecordLsn(): Lsn
  /** The applied GC cutoff: requests with request_lsn below it are refused (BadRequest). */
  gcCutoffLsn(): Lsn
  minReadableLsn(): Lsn
  /** For the LSN-timeout message (Neon prints it); optional. */
  diskConsistentLsn?(): Lsn
  /** For the LSN-timeout message ("WalReceiver status: ..."); optional. */
  walReceiverStatus?(): string
  /**
   * Whether the timeline was deleted (or its tenant) since the session began: its requests are then refused
   * and the connection ends, rather than reading files that are gone. Optional (never, when absent).
   */
  deleted?(): boolean
  /**
   * A read failed with `err` (answered in-band as "Read error: ..."): for the server's log, where an
   * operator looks for damaged files and failing redo. Optional.
   */
  readFailed?(err: unknown): void
  /** Resolves once last_record_lsn >= lsn; TimeoutError after `timeoutMs`; rejects when `signal` aborts. */
  waitForLsn(lsn: Lsn, timeoutMs: number, signal: AbortSignal): Promise<void>
  /**
   * The reads below may answer at once (a value, or a synchronous throw) when nothing has to be waited for,
   * such as a page from the page cache or an image layer; the page service then writes the response
   * without a promise round. A promise is answered when it settles. Either way responses go in order.
   */
  relExists(rel: RelTag, lsn: Lsn): boolean | Promise<boolean>
  /** Missing FSM / VM fork -> 0; missing main fork -> NotFoundError. */
  relSize(rel: RelTag, lsn: Lsn): number | Promise<number>
  /** Exactly 8192 bytes; a block past the end is an all-zero page. Written to the socket as is: not changed after. */
  getPage(rel: RelTag, blkno: number, lsn: Lsn): Uint8Array | Promise<Uint8Array>
  /** Bytes (sum of nblocks * 8192) of the relations of (1663, dbNode). */
  dbSize(dbNode: number, lsn: Lsn): Promise<bigint>
  /** n * 8192 bytes (n <= 32), CLOG timestamp suffixes already stripped. */
  slruSegment(kind: 0 | 1 | 2, segno: number, lsn: Lsn): Promise<Uint8Array>
  basebackup(opts: BasebackupOptions): Promise<BasebackupStream>
}

/** Code of a backend error that means "the server is stopping": ErrorResponse 57P01, connection closed. */
export const SHUTTING_DOWN_CODE = 'SHUTTING_DOWN'
