/**
 * `pageserver wal dump`: decode WAL segment files and print one line per record, in the spirit of
 * pg_waldump (with --json, one object per line; the fields are a contract, see core/pg/wal-format.ts).
 *
 * Output streams: records are printed as they are decoded, a chunk of the files at a time, never collected.
 * The end of valid WAL is not an error: where and why reading stopped goes to stderr (text) or a final
 * `{"end": {...}}` line (--json). Corrupt WAL prints everything decoded before the fault, then the error with
 * its LSN (`{"error": {...}}` as the last line under --json) and exits 5. A closed stdout (`| head`) ends the
 * command quietly with exit 0.
 */
import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { toUserFacing } from '../../cli/errors.js'
import { StdoutSink } from '../../cli/stdout-sink.js'
import { lsnFlag } from '../../cli/flags.js'
import { UsageError } from '../../core/lib/errors.js'
import { formatLsn } from '../../core/pg/lsn.js'
import { RM_MAX_BUILTIN_ID, rmgrName } from '../../core/pg/rmgr.js'
import { WalFileReader, type WalReadEnd } from '../../core/pg/wal-files.js'
import { formatRecordLine, recordToJson } from '../../core/pg/wal-format.js'

const RMGR_NAMES = Array.from({ length: RM_MAX_BUILTIN_ID + 1 }, (_, i) => rmgrName(i))

export default class WalDump extends BaseCommand<typeof WalDump> {
  static override summary = 'Decode PostgreSQL 15 WAL segment files, one line per record (like pg_waldump).'

  static override description =
    'Reads a pg_wal directory or a list of WAL segment files (they must be contiguous, on one timeline) and ' +
    'prints each record: rmgr, lengths (rec/tot, rec excluding full-page images), xid, start LSN, previous LSN, ' +
    'end LSN, record type as pg_waldump names it, main-data length and every block reference (relation, fork, ' +
    'block, will-init, full-page image with its hole and compression). Every page header and record CRC is ' +
    'checked. Reading stops at the end of valid WAL (zero record length, or a zeroed or recycled page), which ' +
    'is reported on stderr. With --json, each record is one JSON object per line with the fields lsn, endLsn, ' +
    'prevLsn, rmgr, type, xid, totalLength, mainDataLength and blocks [{id, rel, fork, blk, image, apply, ' +
    'willInit, holeOffset, holeLength, compression}], followed by {"end": {...}} or, on corrupt WAL, ' +
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
    end: lsnFlag({ summary: 'Last LSN: print only records ending at or before it.' }),
    rmgr: Flags.string({
      summary: 'Only records of this resource manager (repeatable), e.g. Heap, Heap2, Btree, XLOG, Transaction.',
      multiple: true,
      multipleNonGreedy: true,
    }),
    limit: Flags.integer({ summary: 'Stop after printing this many records.', min: 1 }),
  }

  public async run(): Promise<void> {
    const json = this.jsonEnabled()
    const out = new StdoutSink()
    let printed = 0
    let endReport: WalReadEnd | null = null
    try {
      const { argv } = await this.parse(WalDump)
      const rmgrFilter = this.rmgrFilter()
      const limit = this.flags.limit ?? Infinity
      // Each batch is formatted into text before the next is asked for, so read buffers can be reused.
      const reader = await WalFileReader.open(argv as string[], { startLsn: this.flags.start ?? null, endLsn: this.flags.end ?? null, reuseBuffers: true })
      const batches = reader.recordBatches()
      for (;;) {
        const r = await batches.next()
        if (r.done) {
          endReport = r.value
          break
        }
        let text = ''
        for (const rec of r.value) {
          if (rmgrFilter !== null && !rmgrFilter.has(rec.xl_rmid)) continue
          if (json) out.writeJsonLine(recordToJson(rec))
          else text += formatRecordLine(rec) + '\n'
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
    if (json) {
      out.writeJsonLine({
        end: {
          records: printed,
          lastRecordLsn: end?.lastRecordLsn != null ? formatLsn(end.lastRecordLsn) : null,
          endLsn: end ? formatLsn(end.endLsn) : null,
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
