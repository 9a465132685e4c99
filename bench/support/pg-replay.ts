/**
 * PostgreSQL's own replay of a stretch of WAL, as a benchmark baseline: a copy of a base backup
 * (pg_basebackup -X none, so it holds a backup_label) is given the WAL segments and started; crash
 * recovery from the label's redo point runs the same single-process redo loop a streaming standby runs.
 *
 * Figures come from the server's own log lines (log_line_prefix '%m' gives millisecond timestamps):
 * - "redo starts at X" / "redo done at Y system usage: CPU: user: U s, system: S s, elapsed: E s": the range
 *   replayed, the redo loop's wall time E (10 ms resolution) and the startup process's CPU time U + S;
 * - the time from "redo starts" to "database system is ready to accept connections": the redo loop plus
 *   the end-of-recovery checkpoint that writes and fsyncs every page replayed (fsync=on is forced here),
 *   i.e. the point where the replayed WAL is durable in the data files: the fair mate of an ingest that
 *   ends with durable layer files.
 * The copy runs with the backup's postgresql.conf (shared_buffers as configured there) plus fsync=on.
 */
import { chmodSync, cpSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { runPgTool, type PgInstallation } from '../../src/core/postgres/install.js'
import { parseLsn, type Lsn } from '../../src/core/pg/lsn.js'
import { freePort } from '../../test/support/pg-cluster.js'

export interface PgReplay {
  startLsn: Lsn
  endLsn: Lsn
  /** The redo loop's elapsed time (startup process's own figure). */
  elapsedS: number
  /** CPU user + system of the startup process during the redo loop. */
  cpuS: number
  /** From "redo starts" to "ready to accept connections": redo + end-of-recovery checkpoint (fsync on). */
  durableS: number
}

/** Seconds since midnight of a "%m" log prefix (YYYY-MM-DD HH:MM:SS.mmm TZ). */
function logSeconds(line: string): number {
  const m = /(\d{2}):(\d{2}):(\d{2})\.(\d{3})/.exec(line)
  if (!m) throw new Error(`no timestamp in log line: ${line}`)
  return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000
}

function lineWith(text: string, re: RegExp): { line: string; m: RegExpExecArray } {
  for (const line of text.split('\n')) {
    const m = re.exec(line)
    if (m) return { line, m }
  }
  throw new Error(`no line matching ${re} in the recovery log:\n${text}`)
}

/**
 * Replays `walDir`'s segments on a copy of `backupDir` made in `work/replay-<n>`; returns the figures and
 * the recovered data directory (stopped; the caller removes it).
 */
export async function pgReplay(inst: PgInstallation, backupDir: string, walDir: string, work: string, n: number): Promise<{ replay: PgReplay; dataDir: string }> {
  const dataDir = join(work, `replay-${n}`)
  cpSync(backupDir, dataDir, { recursive: true, verbatimSymlinks: true })
  for (const f of readdirSync(walDir).filter((x) => /^[0-9A-F]{24}$/.test(x))) cpSync(join(walDir, f), join(dataDir, 'pg_wal', f))
  chmodSync(dataDir, 0o700)
  if (process.getuid?.() === 0) execFileSync('chown', ['-R', 'postgres:postgres', dataDir])
  const port = await freePort()
  const log = join(work, `replay-${n}.log`)
  const opts = `-p ${port} -k ${work} -c log_min_messages=log -c log_line_prefix='%m ' -c log_checkpoints=on -c listen_addresses='' -c fsync=on -c wal_consistency_checking=''`
  await runPgTool(inst, 'pg_ctl', ['-D', dataDir, '-l', log, '-w', '-t', '1200', '-o', opts, 'start'], { asPostgresUser: true, timeoutMs: 1_260_000 })
  await runPgTool(inst, 'pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '300', 'stop'], { asPostgresUser: true, timeoutMs: 360_000, okCodes: [1] })
  const text = readFileSync(log, 'utf8')
  const starts = lineWith(text, /redo starts at ([0-9A-F]+\/[0-9A-F]+)/)
  const done = lineWith(text, /redo done at ([0-9A-F]+\/[0-9A-F]+) system usage: CPU: user: ([\d.]+) s, system: ([\d.]+) s, elapsed: ([\d.]+) s/)
  const ready = lineWith(text, /database system is ready to accept connections/)
  let durableS = logSeconds(ready.line) - logSeconds(starts.line)
  if (durableS < 0) durableS += 86400 // crossed midnight
  return {
    replay: {
      startLsn: parseLsn(starts.m[1]!),
      endLsn: parseLsn(done.m[1]!),
      cpuS: Number(done.m[2]) + Number(done.m[3]),
      elapsedS: Number(done.m[4]),
      durableS,
    },
    dataDir,
  }
}
