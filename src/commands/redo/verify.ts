/**
 * `pageserver redo verify`: check our WAL redo, through the redo worker pool, against the page images that
 * `wal_consistency_checking=all` wrote into the WAL (core/app/redo-verify.ts).
 *
 * Output: a table per record type (blocks checked, mismatches, records skipped as unsupported), the first
 * mismatches (LSN, record type, relation, fork, block, first differing offset after masking) and the first
 * redo errors; a spinner with progress on a terminal. With --json, one object (the contract):
 *   {blocksChecked, mismatches, unsupported, byRecordType: {"Heap/INSERT": {checked, mismatches}}, firstMismatches:
 *    [{lsn, type, rel, fork, blk, offset}] (at most 20, in WAL order), recordsRead, noBase, basesDropped, unsupportedByType,
 *    errors: [{lsn, type, rel, fork, blk, code, message}], hintBitsLogged, hintBitsSource,
 *    wal: {firstRecordLsn, endLsn, reason, message}}
 * Exit codes: 0 no mismatch (records without redo are skipped and counted, not failures); 5 (corruption
 * class) on any mismatch or redo error, after printing the report; 3 missing WAL path; 2 bad flags or
 * nothing verified (no record read, or no block image among the records).
 */
import { setMaxListeners } from 'node:events'
import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { lsnFlag } from '../../cli/flags.js'
import { renderTable, startProgress } from '../../cli/render.js'
import { runRedoVerify, type RedoVerifyResult } from '../../core/app/redo-verify.js'
import { redoPoolSettings } from '../../core/app/redo-pool.js'
import { EXIT_CODES } from '../../core/lib/errors.js'
import { formatLsn } from '../../core/pg/lsn.js'
import type { VerifyError, VerifyMismatch } from '../../core/redo/verify.js'

/** Listeners on the command's abort signal: one per redo request the pool may hold, with room to spare. */
const ABORT_LISTENERS_MAX = 4096

export interface RedoVerifyJson {
  blocksChecked: number
  mismatches: number
  unsupported: number
  byRecordType: Record<string, { checked: number; mismatches: number }>
  firstMismatches: VerifyMismatch[]
  recordsRead: number
  noBase: number
  /** pages forgotten to keep memory bounded (their next image counts in noBase) */
  basesDropped: number
  unsupportedByType: Record<string, number>
  errors: VerifyError[]
  hintBitsLogged: boolean
  hintBitsSource: string
  wal: { firstRecordLsn: string | null; endLsn: string | null; reason: string | null; message: string | null }
  /**
   * Why the command exits non-zero, null when it exits 0: REDO_MISMATCH (exit 5) or NOTHING_VERIFIED (exit 2),
   * so that a script reading the JSON sees the verdict, not only the exit code.
   */
  problem: { code: 'REDO_MISMATCH' | 'NOTHING_VERIFIED'; message: string; hint: string } | null
}

export function redoVerifyJson(r: RedoVerifyResult): RedoVerifyJson {
  const rep = r.report
  const byRecordType: Record<string, { checked: number; mismatches: number }> = {}
  for (const k of Object.keys(rep.byRecordType).sort()) byRecordType[k] = rep.byRecordType[k]!
  return {
    blocksChecked: rep.blocksChecked,
    mismatches: rep.mismatches,
    unsupported: rep.unsupported,
    byRecordType,
    firstMismatches: rep.firstMismatches,
    recordsRead: rep.recordsRead,
    noBase: rep.noBase,
    basesDropped: rep.basesDropped,
    unsupportedByType: rep.unsupportedByType,
    errors: rep.errors,
    hintBitsLogged: r.hintBits.value,
    hintBitsSource: r.hintBits.source,
    wal: {
      firstRecordLsn: r.firstRecordLsn === null ? null : formatLsn(r.firstRecordLsn),
      endLsn: r.walEnd === null ? null : formatLsn(r.walEnd.endLsn),
      reason: r.walEnd?.reason ?? null,
      message: r.walEnd?.message ?? null,
    },
    problem: verdictProblem(r),
  }
}

function verdictProblem(r: RedoVerifyResult): RedoVerifyJson['problem'] {
  const rep = r.report
  if (rep.mismatches > 0) {
    return {
      code: 'REDO_MISMATCH',
      message: `${rep.mismatches} of ${rep.blocksChecked} checked blocks do not match PostgreSQL's images`,
      hint: 'The first mismatches are listed with their LSN and block; `pageserver redo replay` shows the chain of one of them.',
    }
  }
  if (rep.blocksChecked > 0) return null
  // A verification that compared nothing must not read as a pass to a script, whether it read records
  // without images or no record at all (a start past the valid WAL, an end before the first record).
  if (rep.recordsRead === 0) {
    const end = r.walEnd === null ? '' : ` (${r.walEnd.reason} at ${formatLsn(r.walEnd.endLsn)}: ${r.walEnd.message})`
    return {
      code: 'NOTHING_VERIFIED',
      message: `nothing was verified: no WAL record was read${end}`,
      hint: 'Check --start and --end against the WAL the files hold (pageserver wal dump shows it).',
    }
  }
  return {
    code: 'NOTHING_VERIFIED',
    message: 'nothing was verified: no record carries a consistency-check image of a block we redo',
    hint: 'Write the WAL with wal_consistency_checking = all (or the resource managers to check) on the primary.',
  }
}

export default class RedoVerify extends BaseCommand<typeof RedoVerify> {
  static override summary = 'Verify WAL redo against the page images of wal_consistency_checking, through the redo worker pool.'

  static override description =
    'Reads WAL written with wal_consistency_checking=all (a pg_wal directory or segment files). Every record of a ' +
    'maskable resource manager then carries the primary\'s image of each block it changed. For each image, the ' +
    'previous image of that page plus the records since (our redo, in the redo worker pool, many requests in ' +
    'flight) must give the same page after masking as PostgreSQL\'s consistency check masks it; visibility-map ' +
    'pages, changed implicitly by heap records, are compared with only LSN and checksum masked. Prints blocks ' +
    'checked and mismatches per record type, the records skipped because we have no redo for them, and for each ' +
    'of the first mismatches its LSN, record type, block and first differing byte. SLRU pages carry no images ' +
    'and are not checked here. hintBitsLogged (data checksums or wal_log_hints on the primary) is taken from ' +
    '--data-checksums, else from pg_control when the directory is a data directory\'s pg_wal, else from the WAL ' +
    '(XLOG/FPI_FOR_HINT, PARAMETER_CHANGE); it only changes masked bytes. Pool size and timeouts come from the ' +
    'config (wal_redo_workers, wal_redo_timeout, wal_redo_command). Exit codes: 0 no mismatch, 5 any mismatch ' +
    'or redo error, 3 WAL path not found, 2 bad flags or nothing verified (no WAL record read, or records read but ' +
    'no block image to compare with: WAL written without wal_consistency_checking). With --json, `problem` ' +
    '({code, message, hint}: REDO_MISMATCH or NOTHING_VERIFIED; null on success) says why it exits non-zero, ' +
    'beside blocksChecked, mismatches, unsupported, byRecordType, firstMismatches, recordsRead, noBase, basesDropped (pages forgotten to keep memory within 256 MiB; their next image counts in noBase), ' +
    'unsupportedByType, errors, hintBitsLogged, hintBitsSource and wal {firstRecordLsn, endLsn, reason, message}.'

  static override examples = [
    { description: 'Verify the WAL of a test cluster.', command: '<%= config.bin %> <%= command.id %> $PGDATA/pg_wal' },
    { description: 'As one JSON object, with four redo workers.', command: '<%= config.bin %> <%= command.id %> ./pg_wal --json -c wal_redo_workers=4' },
    { description: 'Only a range of the WAL.', command: '<%= config.bin %> <%= command.id %> ./pg_wal --start 0/3000000 --end 0/5000000' },
  ]

  static override strict = false // any number of paths

  static override args = {
    paths: Args.string({ description: 'A pg_wal directory, or WAL segment files (000000010000000000000001 ...).', required: true }),
  }

  static override flags = {
    start: lsnFlag({ summary: 'Verify records starting at or after this LSN (earlier images are not seen: the first image of each page is only a base).' }),
    end: lsnFlag({ summary: 'Verify only records ending at or before this LSN.' }),
    'data-checksums': Flags.boolean({
      summary: 'The primary had data checksums or wal_log_hints on (--no-data-checksums: neither). Default: detect.',
      allowNo: true,
      aliases: ['hint-bits-logged'],
    }),
  }

  public async run(): Promise<void> {
    const { argv } = await this.parse(RedoVerify)
    const json = this.jsonEnabled()
    const cfg = await this.loadConfig()
    const progress = await startProgress('verifying WAL redo...', json)
    const abort = new AbortController()
    // Every request in flight in the redo pool listens on this signal.
    setMaxListeners(ABORT_LISTENERS_MAX, abort.signal)
    const onSigint = (): void => abort.abort()
    process.once('SIGINT', onSigint)
    let result: RedoVerifyResult
    try {
      result = await runRedoVerify({
        paths: argv as string[],
        startLsn: this.flags.start ?? null,
        endLsn: this.flags.end ?? null,
        ...(this.flags['data-checksums'] === undefined ? {} : { hintBitsLogged: this.flags['data-checksums'] }),
        pool: redoPoolSettings(cfg),
        signal: abort.signal,
        onProgress: (p) =>
          progress.update(
            `verifying WAL redo: ${p.recordsRead} records, ${p.blocksChecked} blocks checked, ${p.mismatches} mismatches` +
              (p.lsn === null ? '' : ` (at ${formatLsn(p.lsn)})`),
          ),
        logger: (level, message, fields) => {
          if (level === 'warn' || level === 'error') process.stderr.write(`pageserver: ${level}: ${message} ${JSON.stringify(fields ?? {})}\n`)
        },
      })
    } catch (e) {
      progress.fail()
      throw e
    } finally {
      process.off('SIGINT', onSigint)
    }
    progress.stop()
    const out = redoVerifyJson(result)
    if (json) this.logJson(out)
    else process.stdout.write(await renderText(out))
    if (out.problem !== null) {
      if (!json) process.stderr.write(`pageserver: ${out.problem.message}. ${out.problem.hint}\n`)
      this.exit(out.problem.code === 'REDO_MISMATCH' ? EXIT_CODES.corruption : EXIT_CODES.usage)
    }
  }
}

async function renderText(o: RedoVerifyJson): Promise<string> {
  const types = new Set([...Object.keys(o.byRecordType), ...Object.keys(o.unsupportedByType)])
  const rows = [...types].sort().map((t) => [t, o.byRecordType[t]?.checked ?? 0, o.byRecordType[t]?.mismatches ?? 0, o.unsupportedByType[t] ?? 0])
  let s = ''
  s += `WAL: ${o.recordsRead} records` + (o.wal.firstRecordLsn === null ? '' : ` from ${o.wal.firstRecordLsn}`) + (o.wal.endLsn === null ? '' : ` to ${o.wal.endLsn} (${o.wal.reason})`) + '\n'
  s += `hint bits WAL-logged: ${o.hintBitsLogged ? 'yes' : 'no'} (${o.hintBitsSource})\n`
  if (rows.length > 0) s += (await renderTable(['record type', 'blocks checked', 'mismatches', 'unsupported'], rows)) + '\n'
  s += `blocks checked: ${o.blocksChecked}, mismatches: ${o.mismatches}, skipped as unsupported: ${o.unsupported}, images without an earlier image (bases only): ${o.noBase}\n`
  if (o.basesDropped > 0) s += `pages forgotten to keep memory bounded (their next image had no base): ${o.basesDropped}\n`
  if (o.firstMismatches.length > 0) {
    s += 'first mismatches:\n'
    s += (await renderTable(['LSN', 'record type', 'rel', 'fork', 'blk', 'offset'], o.firstMismatches.map((m) => [m.lsn, m.type, m.rel, m.fork, m.blk, m.offset]))) + '\n'
  }
  if (o.errors.length > 0) {
    s += 'redo errors:\n'
    for (const e of o.errors) s += `  ${e.lsn} ${e.type} ${e.rel} ${e.fork} blk ${e.blk}: ${e.code}: ${e.message}\n`
  }
  return s
}
