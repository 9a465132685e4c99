/**
 * `pageserver redo replay`: rebuild one page at one LSN from WAL files and explain it — the operator's tool
 * for "why does this page look like this" (core/app/redo-replay.ts).
 *
 * Prints the chain (LSN, end LSN, record type, what each record does to the block), then either writes the
 * page (--out, exactly 8192 bytes) or prints a page summary (header, line pointers; heap tuples' xmin, xmax,
 * infomask; btree opaque data). --verify FILE compares with a page taken from PostgreSQL after masking and
 * reports the first difference. With --json, one object:
 *   {rel, fork, blk, lsn, start: {kind, lsn} , recordsBeforeStart, chain: [{lsn, endLsn, type, action, implicit}],
 *    hintBitsLogged, out, page: <summary>, verify: {file, mask, equal, offset} | null}
 * Exit codes: 0 ok; 5 when --verify finds a difference (after printing); 3 WAL, file, records or base not
 * found; 2 bad flags, a page file that is not 8192 bytes, or an --out path that cannot be written.
 */
import { setMaxListeners } from 'node:events'
import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { blockFlag, forkFlag, lsnFlag, relFlag } from '../../cli/flags.js'
import { redoPoolSettings } from '../../core/app/redo-pool.js'
import { describeStart, runRedoReplay, type RedoReplayResult } from '../../core/app/redo-replay.js'
import { EXIT_CODES } from '../../core/lib/errors.js'
import { formatLsn } from '../../core/pg/lsn.js'
import { forkName, formatRelFileNode } from '../../core/pg/reltag.js'
import { renderPageSummary, columns } from '../../cli/page-render.js'
import type { PageSummary } from '../../core/redo/page-summary.js'

/** Listeners on the command's abort signal: one per redo request the pool may hold, with room to spare. */
const ABORT_LISTENERS_MAX = 4096

export interface RedoReplayJson {
  rel: string
  fork: string
  blk: number
  lsn: string
  start: { kind: string; lsn: string } | null
  recordsBeforeStart: number
  chain: Array<{ lsn: string; endLsn: string; type: string; action: string; implicit: boolean }>
  hintBitsLogged: boolean
  out: string | null
  page: PageSummary
  verify: { file: string; mask: string; equal: boolean; offset: number } | null
}

export function redoReplayJson(r: RedoReplayResult, out: string | null): RedoReplayJson {
  return {
    rel: formatRelFileNode(r.tag),
    fork: forkName(r.tag.forkNum),
    blk: r.tag.blkno,
    lsn: formatLsn(r.lsn),
    start: r.chain.start === null ? null : { kind: r.chain.start.kind, lsn: formatLsn(r.chain.start.lsn) },
    recordsBeforeStart: r.chain.recordsBeforeStart,
    chain: r.chain.entries.map((e) => ({ lsn: formatLsn(e.lsn), endLsn: formatLsn(e.endLsn), type: e.type, action: e.action, implicit: e.implicit })),
    hintBitsLogged: r.hintBitsLogged,
    out,
    page: r.summary,
    verify: r.verify,
  }
}

export default class RedoReplay extends BaseCommand<typeof RedoReplay> {
  static override summary = 'Rebuild one page at an LSN from WAL files and show the records that built it.'

  static override description =
    'Reads the WAL up to the records that end at or before --lsn, keeps those that change the block (block ' +
    'references, and visibility-map bits cleared by heap records), starting at the last full-page image or page ' +
    'initialisation (or at --base, a page file, keeping the records after its pd_lsn), prints that chain with ' +
    'what each record does to the block, and replays it through a redo worker. Then writes the page to --out ' +
    '(exactly 8192 bytes) or prints a summary of it: pd_lsn, checksum (stored, and computed for this block), ' +
    'flags, lower/upper/special, every line pointer (offset, flags, length) with, on heap pages, each tuple\'s ' +
    'xmin, xmax, infomask and ctid, and on btree pages the opaque data. --verify compares the page with one ' +
    'taken from PostgreSQL (e.g. dd of the relation file after a CHECKPOINT) after masking as PostgreSQL\'s ' +
    'consistency check does, and reports the first differing byte. Exit codes: 0 ok, 5 --verify found a ' +
    'difference, 3 WAL/file/records not found, 2 bad flags or an --out path that cannot be written ' +
    '(OUTPUT_NOT_WRITABLE). With --json: {rel, fork, blk, lsn, start {kind: image, init or base, lsn} ' +
    '(where the chain begins; null when no record fixes the page\'s content), recordsBeforeStart, chain [{lsn, endLsn, type, action, implicit}], ' +
    'hintBitsLogged, out (the file written, or null), page (the summary above), verify}.'

  static override examples = [
    {
      description: 'Show block 0 of a relation at an LSN.',
      command: '<%= config.bin %> <%= command.id %> --wal $PGDATA/pg_wal --rel 1663/5/16384 --blk 0 --lsn 0/1A2B3C8',
    },
    {
      description: 'Write the page and compare it with the page on disk.',
      command:
        '<%= config.bin %> <%= command.id %> --wal ./pg_wal --rel 1663/5/16384 --blk 3 --lsn 0/1A2B3C8 --out page.bin --verify disk-page.bin',
    },
  ]

  static override flags = {
    wal: Flags.string({ summary: 'A pg_wal directory or a WAL segment file (repeatable).', required: true, multiple: true, multipleNonGreedy: true }),
    rel: relFlag({ summary: 'The relation, as tablespace/database/relfilenode oids.', required: true }),
    fork: forkFlag({ summary: 'The fork.', default: 0 }),
    blk: blockFlag({ summary: 'The block number.', required: true }),
    lsn: lsnFlag({ summary: 'The page as of this LSN: records ending at or before it are applied.', required: true }),
    base: Flags.string({ summary: 'Start from this page file (8192 bytes) instead of the last full-page image.' }),
    out: Flags.string({ summary: 'Write the resulting page (8192 bytes) to this file instead of printing its summary.' }),
    verify: Flags.string({ summary: 'Compare, masked, with this page file (8192 bytes) taken from PostgreSQL; exit 5 on a difference.' }),
    'data-checksums': Flags.boolean({
      summary: 'The primary had data checksums or wal_log_hints on (--no-data-checksums: neither). Default: detect.',
      allowNo: true,
      aliases: ['hint-bits-logged'],
    }),
  }

  public async run(): Promise<void> {
    const json = this.jsonEnabled()
    const f = this.flags
    const cfg = await this.loadConfig()
    const abort = new AbortController()
    // Every request in flight in the redo pool listens on this signal.
    setMaxListeners(ABORT_LISTENERS_MAX, abort.signal)
    const onSigint = (): void => abort.abort()
    process.once('SIGINT', onSigint)
    let result: RedoReplayResult
    try {
      result = await runRedoReplay({
        walPaths: f.wal,
        tag: { ...f.rel, forkNum: f.fork, blkno: f.blk },
        lsn: f.lsn,
        baseFile: f.base ?? null,
        outFile: f.out ?? null,
        verifyFile: f.verify ?? null,
        ...(f['data-checksums'] === undefined ? {} : { hintBitsLogged: f['data-checksums'] }),
        pool: redoPoolSettings(cfg),
        signal: abort.signal,
      })
    } finally {
      process.off('SIGINT', onSigint)
    }
    const out = redoReplayJson(result, f.out ?? null)
    if (json) this.logJson(out)
    else process.stdout.write(await renderText(out, result))
    if (out.verify !== null && !out.verify.equal) {
      if (!json) process.stderr.write(`pageserver: the page differs from ${out.verify.file} at offset ${out.verify.offset} (after the ${out.verify.mask} mask)\n`)
      this.exit(EXIT_CODES.corruption)
    }
  }
}

async function renderText(o: RedoReplayJson, r: RedoReplayResult): Promise<string> {
  let s = `page ${o.rel} ${o.fork} blk ${o.blk} at ${o.lsn}\n`
  s += `chain: ${o.chain.length} records from the ${describeStart(r.chain.start)}`
  s += o.recordsBeforeStart > 0 ? ` (${o.recordsBeforeStart} earlier records of this page do not matter)\n` : '\n'
  if (o.chain.length > 0) {
    s += columns(['LSN', 'END LSN', 'RECORD TYPE', 'WHAT IT DOES TO THE BLOCK'], o.chain.map((c) => [c.lsn, c.endLsn, c.type, c.action]))
  }
  if (o.out !== null) {
    s += `wrote the page (8192 bytes) to ${o.out}\n`
  } else {
    s += renderPageSummary(o.page)
  }
  if (o.verify !== null) {
    s += o.verify.equal
      ? `verify: equal to ${o.verify.file} after the ${o.verify.mask} mask\n`
      : `verify: differs from ${o.verify.file} at offset ${o.verify.offset} after the ${o.verify.mask} mask\n`
  }
  return s
}
