/**
 * Timeouts and limits of a replication connection, with the reason for each default, and the kind of
 * walsender it asks for.
 */

/**
 * What the connection asks the server for at startup:
 *   'physical' (replication=true): a physical walsender. Replication commands only (IDENTIFY_SYSTEM,
 *              CREATE/DROP_REPLICATION_SLOT, START_REPLICATION, BASE_BACKUP); pg_hba.conf matches it by its
 *              `replication` lines.
 *   'database' (replication=database): a logical walsender connected to the connection string's dbname. It
 *              runs the same replication commands (a physical slot can be dropped with it) and plain SQL as
 *              well (PostgreSQL 10+), which listing slots needs (pg_replication_slots, pg_current_wal_*).
 *              pg_hba.conf matches it as a normal connection to that database, and the role still needs the
 *              REPLICATION attribute (or superuser), as for any walsender.
 */
export type ReplicationMode = 'physical' | 'database'

export interface ReplicationConnectionOptions {
  /** Whole startup (TCP connect, authentication, ReadyForQuery). */
  connectTimeoutMs?: number
  /** Each replication command (IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT, ...). */
  commandTimeoutMs?: number
  /** Status updates at least this often while streaming (must stay below the primary's wal_sender_timeout). */
  statusIntervalMs?: number
  /** Nothing received for this long while streaming (and not paused by us) -> the connection is dead. */
  silenceTimeoutMs?: number
  /** Largest backend message accepted. */
  messageBytesMax?: number
  /** WAL bytes queued for a slow consumer before the socket is paused. */
  queuedBytesMax?: number
  /** How long close() waits for the server to acknowledge CopyDone. */
  closeTimeoutMs?: number
  /** setDurable() reports within this delay (coalescing calls made per record into one message). */
  durableReportDelayMs?: number
  applicationName?: string
  /** The walsender asked for; 'physical' unless SQL is needed (see ReplicationMode). */
  replicationMode?: ReplicationMode
  /** Aborts connecting. */
  signal?: AbortSignal
}

export type ResolvedConnectionOptions = Required<Omit<ReplicationConnectionOptions, 'signal'>>

export const replicationConnectionDefaults: Readonly<ResolvedConnectionOptions> = Object.freeze({
  connectTimeoutMs: 10_000,
  commandTimeoutMs: 30_000,
  // PostgreSQL's own walreceiver uses wal_receiver_status_interval = 10 s against wal_sender_timeout = 60 s.
  statusIntervalMs: 10_000,
  // A status update asks for a reply after statusIntervalMs of quiet, so a live primary answers well within this.
  silenceTimeoutMs: 45_000,
  // The largest expected message is XLogData: 128 KiB of WAL + 25-byte header. Four MiB leaves room for long
  // error texts and DataRows and still refuses garbage lengths from a port that is not PostgreSQL.
  messageBytesMax: 4 * 1024 * 1024,
  // 128 XLogData messages: enough to ride out a consumer's pause (a layer flush) without stalling the socket.
  queuedBytesMax: 16 * 1024 * 1024,
  closeTimeoutMs: 2_000,
  durableReportDelayMs: 100,
  applicationName: 'pageserver',
  replicationMode: 'physical',
})

/** Defaults overlaid with the options that are set; `connect_timeout` from the connection string counts. */
export function resolveConnectionOptions(options: ReplicationConnectionOptions, connectTimeoutSeconds: number | undefined): ResolvedConnectionOptions {
  const { signal: _signal, ...rest } = options
  const defined = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Partial<ResolvedConnectionOptions>
  const resolved = { ...replicationConnectionDefaults, ...defined }
  if (connectTimeoutSeconds !== undefined && options.connectTimeoutMs === undefined) resolved.connectTimeoutMs = connectTimeoutSeconds * 1000
  return resolved
}
