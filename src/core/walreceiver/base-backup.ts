/**
 * BASE_BACKUP over a replication connection (ReplicationConnection.baseBackup, replication-connection.ts):
 * the command, and BaseBackupCopy, which takes the reply apart while the backup runs.
 *
 * PostgreSQL 15's reply, between the command and ReadyForQuery: result sets, the first holding the start
 * position (LSN "X/X", timeline); CopyOutResponse, then the archive as CopyData frames, then CopyDone; then a
 * result set holding the end position. The start reaches `onStart` at CopyOutResponse (before any
 * archive byte); the positions are read from the collected rows once the command is complete.
 *
 * Shape: the connection hands every message of the reply to `onMessage` first, synchronously in the
 * socket's data callback, and handles the rest (CommandComplete, ReadyForQuery, ErrorResponse) as for any
 * command. CopyData goes from there straight to `onData`, the same number of calls as a WAL chunk takes, so
 * the archive streams at network speed. A throw in `onData` or `onStart` ends the connection with that
 * error.
 */
import type { BackendMessage } from 'pg-protocol/dist/messages.js'
import { CorruptionError, type PageserverError } from '../lib/errors.js'
import { parseLsn, type Lsn } from '../pg/lsn.js'
import { toProtocolError } from './connection-errors.js'

type AnyMessage = BackendMessage & Record<string, unknown>

/**
 * Default deadline of a whole BASE_BACKUP: it only catches a primary that stopped sending without closing;
 * 6 h streams well over a terabyte at the rates a loopback or LAN primary sends. Callers pass their own.
 */
export const BASE_BACKUP_TIMEOUT_MS_DEFAULT = 6 * 3600_000

/** Where WAL must be replayed from: the backup's redo point. */
export interface BackupStart {
  lsn: Lsn
  timeline: number
}

/** The start (redo point) and the end (pages are consistent from there on) of a base backup. */
export interface BackupPositions {
  startLsn: Lsn
  startTimeline: number
  endLsn: Lsn
  endTimeline: number
}

/** How a BaseBackupCopy ends the connection it runs on. */
export interface BaseBackupIo {
  fail(err: PageserverError): void
  /** A message that has no place in the reply at this point (PG_PROTOCOL_VIOLATION naming it). */
  protocolViolation(name: string): void
}

/**
 * PostgreSQL 15 syntax, fast checkpoint, no manifest, no WAL; quotes in the label are doubled. WAIT false:
 * the WAL comes through our replication slot, not from the archive, so the backup must not wait for the
 * archiver at its end (pg_basebackup sends the same when it fetches WAL itself). Without it, a primary with
 * archive_mode on and a failing or slow archive_command held the import for as long as archiving failed.
 */
export function baseBackupCommand(label: string): string {
  return `BASE_BACKUP ( LABEL '${label.replaceAll("'", "''")}', CHECKPOINT 'fast', MANIFEST 'no', WAIT false )`
}

export class BaseBackupCopy {
  /** Between CopyOutResponse and CopyDone: CopyData frames carry the archive. */
  private inCopy = false
  private readonly resultSets: Array<{ fields: string[]; rows: Array<Array<string | null>> }> = []

  constructor(
    private readonly io: BaseBackupIo,
    private readonly onData: (chunk: Buffer) => void,
    private readonly onStart: ((start: BackupStart) => void) | undefined,
  ) {}

  /** Takes one message of the reply; false for those the connection handles as for any command. */
  onMessage(msg: AnyMessage): boolean {
    switch (msg.name) {
      case 'rowDescription':
        this.resultSets.push({ fields: (msg.fields as Array<{ name: string }>).map((f) => f.name), rows: [] })
        return true
      case 'dataRow':
        this.resultSets[this.resultSets.length - 1]?.rows.push(msg.fields as Array<string | null>)
        return true
      case 'copyOutResponse': {
        this.inCopy = true
        const first = this.resultSets[0]?.rows[0]
        if (!first || first[0] == null) {
          this.io.protocolViolation('copyOutResponse before the start position')
          return true
        }
        try {
          this.onStart?.({ lsn: parseLsn(first[0], 'backup start'), timeline: Number(first[1]) })
        } catch (e) {
          this.io.fail(toProtocolError(e))
        }
        return true
      }
      case 'copyData':
        if (!this.inCopy) {
          this.io.protocolViolation('copyData')
          return true
        }
        try {
          this.onData(msg.chunk as Buffer)
        } catch (e) {
          // The consumer failed (corrupt archive, import error): stop everything, report that error.
          this.io.fail(toProtocolError(e))
        }
        return true
      case 'copyDone':
        this.inCopy = false
        return true
      default:
        return false
    }
  }

  /** Once the command is complete: the start from the first result set, the end from the last. */
  positions(): BackupPositions {
    const sets = this.resultSets
    const first = sets[0]?.rows[0]
    const last = sets[sets.length - 1]?.rows[0]
    if (sets.length < 2 || !first || !last || first[0] == null || last[0] == null) {
      throw new CorruptionError('PG_BAD_REPLY', 'BASE_BACKUP did not report its start and end positions', { hint: 'The server replied oddly.' })
    }
    return {
      startLsn: parseLsn(first[0], 'backup start'),
      startTimeline: Number(first[1]),
      endLsn: parseLsn(last[0], 'backup end'),
      endTimeline: Number(last[1]),
    }
  }
}
