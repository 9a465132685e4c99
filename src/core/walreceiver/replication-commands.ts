/**
 * The walsender's replication commands as text, and their results, parsed from their text rows into typed
 * values.
 *
 *   IDENTIFY_SYSTEM        -> systemid (u64 as decimal text), timeline (int4), xlogpos ("X/X"), dbname (null)
 *   READ_REPLICATION_SLOT  -> slot_type, restart_lsn, restart_tli; a row of nulls when the slot is missing
 *   START_REPLICATION      -> after the server ends a timeline's stream: next_tli (int8), next_tli_startpos
 *
 * Slot names are checked before they are spliced into a command: PostgreSQL allows only lower-case
 * letters, digits and underscores, at most 63 bytes (NAMEDATALEN - 1), so nothing else can reach SQL.
 * Setting names and timelines are checked as well before they are spliced in.
 */
import { CorruptionError, UsageError, type PageserverError } from '../lib/errors.js'
import { formatLsn, parseLsn, type Lsn } from '../pg/lsn.js'

export interface QueryResult {
  readonly fields: string[]
  readonly rows: Array<Array<string | null>>
  readonly tags: string[]
}

/** A reply being collected; the server's error waits for ReadyForQuery, which ends the command either way. */
export interface QueryReply {
  fields: string[]
  rows: Array<Array<string | null>>
  tags: string[]
  error: PageserverError | undefined
}

export function emptyReply(): QueryReply {
  return { fields: [], rows: [], tags: [], error: undefined }
}

export interface SystemIdentity {
  readonly systemId: bigint
  /** PostgreSQL's TimeLineID of the primary. */
  readonly timeline: number
  /** The primary's current WAL flush position. */
  readonly xlogPos: Lsn
  readonly dbname: string | null
}

export interface SlotInfo {
  readonly slotType: 'physical'
  /** null when the slot has not reserved WAL yet. */
  readonly restartLsn: Lsn | null
  readonly restartTimeline: number | null
}

export const slotNameLengthMax = 63

export function validateSlotName(name: string): void {
  if (name.length === 0 || name.length > slotNameLengthMax || !/^[a-z0-9_]+$/.test(name)) {
    throw new UsageError('BAD_SLOT_NAME', `"${name}" is not a valid replication slot name`, {
      hint: `Use 1 to ${slotNameLengthMax} lower-case letters, digits and underscores, e.g. pageserver_1.`,
    })
  }
}

function badReply(what: string, detail: string): CorruptionError {
  return new CorruptionError('PG_BAD_REPLY', `unexpected reply to ${what}: ${detail}`, { hint: 'Check that the server is PostgreSQL 15.' })
}

export function parseSystemRow(r: QueryResult): SystemIdentity {
  const row = r.rows[0]
  if (r.rows.length !== 1 || row === undefined || row.length < 3) throw badReply('IDENTIFY_SYSTEM', `${r.rows.length} rows`)
  const [sysid, tli, xlogpos] = row
  if (sysid == null || !/^\d{1,20}$/.test(sysid)) throw badReply('IDENTIFY_SYSTEM', `system id "${sysid}"`)
  const systemId = BigInt(sysid)
  if (systemId > 0xffff_ffff_ffff_ffffn) throw badReply('IDENTIFY_SYSTEM', `system id "${sysid}" exceeds 64 bits`)
  if (tli == null || !/^\d{1,10}$/.test(tli) || Number(tli) < 1 || Number(tli) > 0xffff_ffff) throw badReply('IDENTIFY_SYSTEM', `timeline "${tli}"`)
  if (xlogpos == null) throw badReply('IDENTIFY_SYSTEM', 'no xlogpos')
  return { systemId, timeline: Number(tli), xlogPos: parseLsn(xlogpos, 'IDENTIFY_SYSTEM xlogpos'), dbname: row[3] ?? null }
}

/** One line of a timeline history file: timeline `tli` ended (was switched away from) at `end`. */
export interface TimelineHistoryEntry {
  readonly tli: number
  readonly end: Lsn
}

/**
 * TIMELINE_HISTORY's reply: one row (file name, file content). The content is the history file PostgreSQL
 * writes at a promotion: `<parent tli>\t<switch point>\t<reason>` per line, oldest first, `#` comments.
 */
export function parseTimelineHistory(r: QueryResult): TimelineHistoryEntry[] {
  const row = r.rows[0]
  if (r.rows.length !== 1 || row === undefined || row.length < 2 || row[1] == null) throw badReply('TIMELINE_HISTORY', `${r.rows.length} rows`)
  const out: TimelineHistoryEntry[] = []
  for (const line of row[1].split('\n')) {
    const t = line.trim()
    if (t === '' || t.startsWith('#')) continue
    const [tli, end] = t.split(/\s+/)
    if (tli === undefined || !/^\d{1,10}$/.test(tli) || end === undefined) throw badReply('TIMELINE_HISTORY', `line "${t}"`)
    out.push({ tli: Number(tli), end: parseLsn(end, 'TIMELINE_HISTORY switch point') })
  }
  return out
}

/**
 * The timeline holding `lsn` on a server now on `current`, given `current`'s history: the first earlier
 * timeline that ended after `lsn` (a timeline's WAL runs up to, not including, its switch point), else
 * `current`. What PostgreSQL's walreceiver asks to stream from, so that a resume point before a promotion is
 * read from the old timeline's files (asked on the new one, the server has no such segment).
 */
export function timelineOfLsn(history: readonly TimelineHistoryEntry[], current: number, lsn: Lsn): number {
  for (const e of history) if (lsn < e.end) return e.tli
  return current
}

/** SHOW name: the name is spliced into the command, so only what a setting name is made of may pass. */
export function showCommand(name: string): string {
  if (!/^[a-z_][a-z0-9_.]*$/i.test(name)) throw new UsageError('BAD_SETTING_NAME', `"${name}" is not a setting name`, { hint: 'Use a PostgreSQL setting name such as wal_segment_size.' })
  return `SHOW ${name}`
}

/** SHOW's reply: one row holding the setting's value as text (e.g. wal_segment_size -> "16MB"). */
export function parseShowValue(r: QueryResult, name: string): string {
  const v = r.rows[0]?.[0]
  if (v === undefined || v === null) throw new CorruptionError('PG_BAD_REPLY', `SHOW ${name} returned no value`, { hint: 'The server replied oddly.' })
  return v
}

/** START_REPLICATION [SLOT s] PHYSICAL X/X TIMELINE n, its slot name and timeline checked before they are spliced in. */
export function startReplicationCommand(slot: string | undefined, startLsn: Lsn, timeline: number): string {
  if (slot !== undefined) validateSlotName(slot)
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > 0xffff_ffff) {
    throw new UsageError('BAD_TIMELINE', `timeline ${timeline} is not a PostgreSQL timeline id`, { hint: 'Use the timeline from IDENTIFY_SYSTEM.' })
  }
  return `START_REPLICATION ${slot !== undefined ? `SLOT ${slot} ` : ''}PHYSICAL ${formatLsn(startLsn)} TIMELINE ${timeline}`
}

/** START_REPLICATION's result row after a timeline switch; undefined when it names no next timeline. */
export function parseNextTimeline(row: Array<string | null>): { tli: number; lsn: Lsn } | undefined {
  if (row[0] == null || row[1] == null) return undefined
  return { tli: Number(row[0]), lsn: parseLsn(row[1], 'next timeline start') }
}

export function parseSlotRow(r: QueryResult): SlotInfo | null {
  const row = r.rows[0]
  if (r.rows.length !== 1 || row === undefined || row.length < 3) throw badReply('READ_REPLICATION_SLOT', `${r.rows.length} rows`)
  const [type, restart, tli] = row
  if (type == null) return null
  if (type !== 'physical') throw badReply('READ_REPLICATION_SLOT', `slot type "${type}"`)
  return {
    slotType: 'physical',
    restartLsn: restart == null ? null : parseLsn(restart, 'READ_REPLICATION_SLOT restart_lsn'),
    restartTimeline: tli == null ? null : Number(tli),
  }
}
