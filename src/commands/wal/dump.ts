/**
 * `pageserver wal dump`: decode WAL segment files and print one line per record, in the spirit of
 * pg_waldump (with --json, one object per line; the fields are a contract, see core/pg/wal-format.ts).
 *
 * Output streams: records are printed as they are decoded, a chunk of the files at a time, never collected.
 * The end of valid WAL is not an error: where and why reading stopped goes to stderr (text) or a final
 * `{"end": {...}}` line (--json). A --start inside a record is noted as pg_waldump notes it ("first record is
 * after X, at Y, skipping over N bytes"): on stderr, or as `firstRecordLsn` in the end line. Corrupt WAL
 * prints everything decoded before the fault, then the error with its LSN and segment file (`{"error": {...}}`
 * as the last line under --json) and exits 5. A closed stdout (`| head`) ends the command quietly with exit 0.
 */
import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { toUserFacing } from '../../cli/errors.js'
import { StdoutSink } from '../../cli/stdout-sink.js'
import { lsnFlag } from '../../cli/flags.js'
import { PageserverError, UsageError } from '../../core/lib/errors.js'
import { formatLsn, type Lsn } from '../../core/pg/lsn.js'
import { RM_MAX_BUILTIN_ID, rmgrName } from '../../core/pg/rmgr.js'
import { WalFileReader, type WalReadEnd } from '../../core/pg/wal-files.js'
import { formatRecordLine, recordToJson } from '../../core/pg/wal-format.js'

const RMGR_NAMES = Array.from({ length: RM_MAX_BUILTIN_ID + 1 }, (_, i) => rmgrName(i))

export default class WalDump extends BaseCommand<typeof WalDump> {
  static override jsonLines = true
  static override summary = 'Decode PostgreSQL 15 WAL segment files, one line per record (like pg_waldump).'

  static override description =
    'Reads a pg_wal directory or a list of WAL segment files (they must be contiguous, on one timeline: --timeline ' +
    'picks one from a directory that holds two, as after a promotion) and ' +
    'prints each record: rmgr, lengths (rec/tot, rec excluding full-page images), xid, start LSN, previous LSN, ' +
    'end LSN, record type as pg_waldump names it, main-data length and every block reference (relation, fork, ' +
    'block, will-init, full-page image with its hole and compression). Every page header and record CRC is ' +
    'checked. Reading stops at the end of valid WAL (zero record length, or a zeroed or recycled page), which ' +
    'is reported on stderr. With --json, each record is one JSON object per line with the fields lsn, endLsn, ' +
    'prevLsn, rmgr, type, xid, totalLength, mainDataLength and blocks [{id, rel, fork, blk, image, apply, ' +
    'willInit, holeOffset, holeLength, compression}], followed by {"end": {...}} (with firstRecordLsn, the first ' +
    'record at or after --start) or, on corrupt WAL, ' +
    '{"error": {...}} as the last line.'

  static override examples = [
    { description: 'Every record in a data directory\'s WAL.', command: '<%= config.bin %> <%= command.id %> $PGDATA/pg_wal' },
    {
      description: 'Records of one range, as JSON lines.',
      command: '<%= config.bin %> <%= command.id %> $PGDATA/pg_wal --start 0/1A00000 --end 0/1B00000 --json',
    },
    {
      description: 'Only heap and btree records of two segments, at most 20.',
      command: '<%= config.bin %> <%= command.id %> 000000010000000000000003 000000010000000000000004 --rmgr Heap --rmgr Btree --limit 20',
    },
  ]

  static override strict = false // any number of paths

  static override args = {
    paths: Args.string({ description: 'A pg_wal directory, or WAL segment files (000000010000000000000001 ...).', required: true }),
  }

  static override flags = {
    start: lsnFlag({ summary: 'First LSN: print records starting at or after it (default: the first record of the first segment).' }),
    end: lsnFlag({ summary: 'Last LSN: print only records whose bytes end at or before it (as pg_waldump --end).' }),
    rmgr: Flags.string({
      summary: 'Only records of this resource manager (repeatable), e.g. Heap, Heap2, Btree, XLOG, Transaction.',
      multiple: true,
      multipleNonGreedy: true,
    }),
    limit: Flags.integer({ summary: 'Stop after printing this many records.', min: 1 }),
    timeline: Flags.integer({
      summary: 'Read only the segments of this PostgreSQL timeline (like pg_waldump -t), e.g. 2 for 00000002...; needed when a pg_wal holds several.',
      min: 1,
      max: 0xffff_ffff,
    }),
  }

  public async run(): Promise<void> {
    const json = this.jsonEnabled()
    const out = new StdoutSink()
    let printed = 0
    let endReport: WalReadEnd | null = null
    /** Start and end of the last record printed (the end line's LSNs when --limit stops the dump). */
    let lastPrinted: { lsn: Lsn; endLsn: Lsn } | null = null
    let reader: WalFileReader | null = null
    try {
      const { argv } = await this.parse(WalDump)
      const rmgrFilter = this.rmgrFilter()
      const limit = this.flags.limit ?? Infinity
      // Each batch is formatted into text before the next is asked for, so read buffers can be reused.
      const start = this.flags.start ?? null
      reader = await openReader(argv as string[], { startLsn: start, endLsn: this.flags.end ?? null, reuseBuffers: true, timeline: this.flags.timeline ?? null, endByRecordBytes: true })
      const batches = reader.recordBatches()
      let noticed = json // under --json the first record is reported in the end line
      for (;;) {
        const r = await batches.next()
        if (r.done) {
          endReport = r.value
          break
        }
        if (!noticed && start !== null && reader.firstRecordLsn !== null) {
          noticed = true
          const skipped = skippedNotice(start, reader.firstRecordLsn, reader.segmentSizeBytes)
          if (skipped !== null) process.stderr.write(`pageserver: ${skipped}\n`)
        }
        let text = ''
        for (const rec of r.value) {
          if (rmgrFilter !== null && !rmgrFilter.has(rec.xl_rmid)) continue
          if (json) out.writeJsonLine(recordToJson(rec))
          else text += formatRecordLine(rec) + '\n'
          lastPrinted = { lsn: rec.lsn, endLsn: rec.endLsn }
          if (++printed >= limit) break
        }
        out.write(text)
        await out.drained() // a slow reader slows us down instead of filling memory
        if (out.closed || printed >= limit) {
          await batches.return(undefined as never)
          break
        }
      }
    } catch (err) {
      if (out.closed) return
      this.exit(await out.reportError(toUserFacing(err), json, Boolean(process.env.PAGESERVER_DEBUG)))
    } finally {
      out.dispose()
    }
    if (out.closed) return
    const end = endReport
    // Where the WAL ended; stopped by --limit, where the last printed record starts and ends.
    const lastLsn = end !== null ? end.lastRecordLsn : (lastPrinted?.lsn ?? null)
    const endLsn = end !== null ? end.endLsn : (lastPrinted?.endLsn ?? null)
    if (json) {
      out.writeJsonLine({
        end: {
          records: printed,
          firstRecordLsn: reader?.firstRecordLsn != null ? formatLsn(reader.firstRecordLsn) : null,
          lastRecordLsn: lastLsn != null ? formatLsn(lastLsn) : null,
          endLsn: endLsn !== null ? formatLsn(endLsn) : null,
          reason: end ? end.reason : 'limit',
          message: end ? end.message : `stopped after ${printed} records (--limit)`,
        },
      })
    } else if (end === null) {
      process.stderr.write(`pageserver: stopped after ${printed} records (--limit)\n`)
    } else {
      process.stderr.write(`pageserver: ${printed} records; WAL ends at ${formatLsn(end.endLsn)} (${end.reason}): ${end.message}\n`)
    }
  }

  private rmgrFilter(): Set<number> | null {
    const names = this.flags.rmgr
    if (names === undefined || names.length === 0) return null
    const ids = new Set<number>()
    for (const n of names) {
      const id = RMGR_NAMES.findIndex((r) => r.toLowerCase() === n.toLowerCase())
      if (id < 0) {
        throw new UsageError('BAD_RMGR', `"${n}" is not a resource manager`, { hint: `Use one of: ${RMGR_NAMES.join(', ')}.` })
      }
      ids.add(id)
    }
    return ids
  }
}

/**
 * pg_waldump's note for a start inside a record, or null when the first record is at the start or the start
 * is a segment's first byte (as pg_waldump, which says nothing of the long page header it steps over there).
 */
function skippedNotice(start: Lsn, first: Lsn, segmentSizeBytes: number): string | null {
  if (first === start || start % BigInt(segmentSizeBytes) === 0n) return null
  return `first record is after ${formatLsn(start)}, at ${formatLsn(first)}, skipping over ${first - start} bytes`
}

/** WalFileReader.open, with the flag that resolves several timelines named in the hint (core names no flags). */
async function openReader(paths: string[], opts: Parameters<typeof WalFileReader.open>[1]): Promise<WalFileReader> {
  try {
    return await WalFileReader.open(paths, opts)
  } catch (e) {
    const timelines = e instanceof PageserverError && e.code === 'WAL_MULTIPLE_TIMELINES' ? e.details?.['timelines'] : undefined
    if (!(e instanceof UsageError) || !Array.isArray(timelines) || timelines.length === 0) throw e
    const newest = timelines[timelines.length - 1] as number
    throw new UsageError(e.code, e.message, {
      hint: `Choose one with --timeline: --timeline ${newest} for the newest (after a promotion, pg_wal holds both the old timeline and the new one); found: ${timelines.join(', ')}.`,
      cause: e.cause,
      details: e.details,
    })
  }
}
