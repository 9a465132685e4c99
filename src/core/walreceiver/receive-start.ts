/**
 * Where a diagnostic `wal receive` starts, decided from what the primary says about itself.
 *
 * `probePrimary` opens one replication connection (retrying like the receiver does), runs IDENTIFY_SYSTEM,
 * SHOW wal_segment_size and, with a slot name, READ_REPLICATION_SLOT. `chooseStart` then picks:
 *   --start given              -> that LSN (it must be a page boundary or an 8-aligned offset past the page
 *                                  header, i.e. could be a record boundary; otherwise a usage error)
 *   the slot exists            -> its restart_lsn: streaming begins at the start of that WAL page and records
 *                                  that begin before restart_lsn are skipped (a standby may have reported a
 *                                  mid-record position, and the decoder needs a page or record boundary)
 *   otherwise                  -> the start of the segment holding IDENTIFY_SYSTEM's xlogpos (a segment still
 *                                  on the primary, and a page boundary), as PostgreSQL's walreceiver does
 */
import { UnavailableError, UsageError, messageOf } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { SizeOfXLogLongPHD, SizeOfXLogShortPHD, XLOG_BLCKSZ } from '../pg/wal-page.js'
import type { ConnParams } from '../protocol/conn-string.js'
import { backoffDefaults, backoffDelayMs, sleep, type BackoffOptions } from './backoff.js'
import type { ReplicationConnectionOptions } from './connection-options.js'
import { isRetryable } from './pg-errors.js'
import { ReplicationConnection, type SlotInfo, type SystemIdentity } from './replication-connection.js'
import { parseSegmentSizeSetting } from './segment-size.js'
import type { ReceiverLogEvent } from './wal-receiver.js'
import { readReplicationSlot } from './replication-slots.js'

export interface PrimaryInfo {
  readonly system: SystemIdentity
  readonly segmentSizeBytes: number
  /** null without a slot name or when the slot does not exist. */
  readonly slot: SlotInfo | null
  readonly serverVersion: string | undefined
}

export interface StartChoice {
  /** Where streaming begins (page boundary or record boundary). */
  readonly startLsn: Lsn
  /** Records that begin before this LSN are not shown. */
  readonly skipBeforeLsn: Lsn
  readonly source: 'flag' | 'slot' | 'segment'
}

export async function probePrimary(
  conn: ConnParams,
  options: {
    slotName?: string | undefined
    attemptsMax: number
    backoff?: Partial<BackoffOptions> | undefined
    connection?: Omit<ReplicationConnectionOptions, 'signal'> | undefined
    signal?: AbortSignal | undefined
    logger?: ((e: ReceiverLogEvent) => void) | undefined
  },
): Promise<PrimaryInfo> {
  const backoff = { ...backoffDefaults, ...options.backoff }
  for (let attempt = 1; ; attempt++) {
    options.logger?.({ level: 'info', event: 'connecting', message: 'connecting to read the primary\'s position', attempt })
    let c: ReplicationConnection | undefined
    try {
      c = await ReplicationConnection.connect(conn, { ...options.connection, signal: options.signal })
      const system = await c.identifySystem()
      const segmentSizeBytes = parseSegmentSizeSetting(await c.show('wal_segment_size'))
      const slot = options.slotName !== undefined ? await readReplicationSlot(c, options.slotName) : null
      return { system, segmentSizeBytes, slot, serverVersion: c.parameter('server_version') }
    } catch (e) {
      if (!isRetryable(e) || options.signal?.aborted) throw e
      if (attempt > options.attemptsMax) {
        throw new UnavailableError('WAL_RECEIVER_GAVE_UP', `cannot reach the primary: ${messageOf(e)}`, {
          hint: `Check that the primary is running and reachable${options.attemptsMax > 0 ? `; the connection was tried ${attempt} times, with backoff` : ''}.`,
          cause: e,
          details: { attempts: attempt },
        })
      }
      const delayMs = backoffDelayMs(attempt, backoff)
      options.logger?.({ level: 'warn', event: 'retry', message: `retrying in ${delayMs} ms after: ${messageOf(e)}`, attempt, delayMs })
      await sleep(delayMs, options.signal)
    } finally {
      await c?.close()
    }
  }
}

export function chooseStart(info: PrimaryInfo, startFlag: Lsn | undefined): StartChoice {
  if (startFlag !== undefined) {
    const off = Number(startFlag % BigInt(XLOG_BLCKSZ))
    const headerBytes = startFlag % BigInt(info.segmentSizeBytes) < BigInt(XLOG_BLCKSZ) ? SizeOfXLogLongPHD : SizeOfXLogShortPHD
    if (off !== 0 && (off < headerBytes || off % 8 !== 0)) {
      throw new UsageError('BAD_START_LSN', `--start ${formatLsn(startFlag)} is neither a WAL page boundary nor a possible record start`, {
        hint: 'Give a record start LSN (e.g. from pg_current_wal_lsn()) or a page boundary (a multiple of 0x2000).',
      })
    }
    return { startLsn: startFlag, skipBeforeLsn: startFlag, source: 'flag' }
  }
  const restart = info.slot?.restartLsn
  if (restart != null) {
    const page = (restart - (restart % BigInt(XLOG_BLCKSZ))) as Lsn
    return { startLsn: page, skipBeforeLsn: restart, source: 'slot' }
  }
  const seg = BigInt(info.segmentSizeBytes)
  const start = ((info.system.xlogPos / seg) * seg) as Lsn
  return { startLsn: start, skipBeforeLsn: start, source: 'segment' }
}
