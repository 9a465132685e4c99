import { Flags } from '@oclif/core'
import { BaseCommand } from '../cli/base-command.js'
import { blockFlag, forkFlag, lsnFlag, relFlag, tenantIdFlag, timelineIdFlag } from '../cli/flags.js'
import { getPageFromServer } from '../cli/getpage-server.js'
import { renderPageSummary } from '../cli/page-render.js'
import { StdoutSink } from '../cli/stdout-sink.js'
import { getPage, type GetPageResult } from '../core/app/pages.js'
import { summarizePage, type PageSummary } from '../core/redo/page-summary.js'
import { writeOutputFile } from '../core/storage/output-file.js'
import { formatLsn } from '../core/pg/lsn.js'
import { waitNotice } from '../cli/wait-notice.js'

/** The result of getPage with a summary in place of the page bytes, and where it came from. */
interface GetPageJson extends Omit<GetPageResult, 'page'> {
  source: 'offline' | 'server'
  out: string | null
  page: PageSummary
}

export default class GetPage extends BaseCommand<typeof GetPage> {
  static override summary = 'Read one page of a relation at an LSN on a timeline.'
  static override description =
    'Offline it reads the layer files of the workdir and rebuilds the page with the redo workers. With --server ' +
    '(or by default when `pageserver serve` runs on this workdir) it asks the page server over the pagestream ' +
    'protocol, as a compute would, and sees WAL the server has not flushed yet. With --out the ' +
    'page is written to that file as exactly 8192 bytes. Otherwise, when stdout is not a terminal ' +
    '(`getpage ... > page.bin`, a pipe), the raw 8192 bytes of the page go to stdout; on a terminal a summary ' +
    '(header, line pointers) is printed; --json prints the result (rel as "spc/db/rel", the fork apart) with a ' +
    'summary of the page. A block past the end of the relation reads as zeros.'
  static override examples = [
    '<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210 --rel 1663/5/16384 --blk 0',
    '<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210 --rel 1663/5/16384 --fork vm --blk 0 --lsn 0/16B3748 --out page.bin',
    '<%= config.bin %> <%= command.id %> --server 127.0.0.1:64000 --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210 --rel 1663/5/16384 --blk 3',
  ]
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
    timeline: timelineIdFlag({ summary: 'The timeline.', required: true }),
    rel: relFlag({ summary: 'The relation as tablespace/database/relfilenode oids (pg_relation_filepath).', required: true }),
    fork: forkFlag({ summary: 'The fork.', default: 0 }),
    blk: blockFlag({ summary: 'The block number.', required: true }),
    lsn: lsnFlag({ summary: "The page as of this LSN (default: the timeline's last record)." }),
    out: Flags.string({ summary: 'Write the page (exactly 8192 bytes) to this file.' }),
    server: Flags.string({ summary: 'Ask a running page server at HOST:PORT (its listen_pg_addr) instead of reading the workdir.' }),
    token: Flags.string({ summary: 'JWT for a page server with NeonJWT auth.', env: 'NEON_AUTH_TOKEN' }),
    offline: Flags.boolean({ summary: 'Read the layer files even when a server runs on this workdir (its unflushed WAL is not seen).', default: false }),
  }

  async run(): Promise<GetPageJson> {
    const f = this.flags
    let r: GetPageResult
    let source: GetPageJson['source'] = 'offline'
    // A server running on this workdir holds WAL not yet flushed: ask it rather than the files.
    const running = f.server === undefined && !f.offline ? (await this.serverClient())?.server.pgAddr : undefined
    const serverAddr = f.server ?? running
    if (serverAddr !== undefined) {
      source = 'server'
      // A page at an LSN the server has not received yet waits for that WAL (up to its wait_lsn_timeout):
      // say so rather than look hung.
      const at = f.lsn === undefined ? '' : ` at ${formatLsn(f.lsn)}`
      const notice = waitNotice(`still waiting for ${serverAddr}: a page${at} whose WAL the server has not received yet is answered when that WAL arrives, or fails after its wait_lsn_timeout`)
      let s: Awaited<ReturnType<typeof getPageFromServer>>
      try {
        s = await getPageFromServer({ server: serverAddr, tenant: f.tenant, timeline: f.timeline, rel: f.rel, fork: f.fork, block: f.blk, lsn: f.lsn, token: f.token })
      } finally {
        notice.cancel()
      }
      r = { tenantId: s.tenantId, timelineId: s.timelineId, rel: s.rel, fork: s.fork, blk: s.block, lsn: s.requestLsn, nblocks: s.nblocks, pastEnd: s.pastEnd, page: s.page }
    } else {
      r = await getPage(await this.appContext(), { tenantId: f.tenant, timelineId: f.timeline, rel: { ...f.rel, forkNum: f.fork }, blkno: f.blk, lsn: f.lsn })
    }
    const summary = summarizePage(r.page, r.blk, f.fork)
    const where = `${r.rel}${r.fork === 'main' ? '' : ` ${r.fork}`} blk ${r.blk} at ${r.lsn}`
    if (f.out !== undefined) {
      await writeOutputFile(f.out, r.page)
      this.log(`wrote ${where} (8192 bytes) to ${f.out}`)
    } else if (!this.jsonEnabled() && !process.stdout.isTTY) {
      // Redirected or piped (`getpage ... > page.bin`): the page itself, as bytes.
      await writeRawPage(r.page)
    } else if (!this.jsonEnabled()) {
      this.log(`page ${where} (relation has ${r.nblocks} blocks${r.pastEnd ? '; past the end: zeros' : ''})`)
      process.stdout.write(renderPageSummary(summary))
    }
    return { ...r, source, out: f.out ?? null, page: summary }
  }
}

/**
 * Writes the page to stdout and waits until the OS has taken it: a process that exits right after a write to
 * a pipe can lose what the pipe had not taken yet. A reader that went away (`| head -c 100`) ends it quietly.
 */
async function writeRawPage(page: Buffer): Promise<void> {
  const out = new StdoutSink()
  try {
    out.write(page)
    await out.flush()
  } finally {
    out.dispose()
  }
}
