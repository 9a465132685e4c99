/**
 * Use case `redo replay`: rebuild one page at one LSN from WAL files through the redo worker pool, and explain
 * it: the chain of records that built it (core/redo/replay-chain.ts), a summary of the result
 * (core/redo/page-summary.ts), and optionally a masked comparison with a page taken from PostgreSQL.
 *
 * The WAL is read once, up to the records that end at or before the LSN. The chain starts at the last
 * full-page write or page initialisation, or from a caller's base page file. hintBitsLogged comes from the
 * caller, else it is on when the WAL read shows evidence of it (all of it is read before redo starts) or
 * pg_control beside a pg_wal directory says so; it changes masked bytes only.
 *
 * Masked comparison: with the mask of the last resource manager in the chain that has one (heap_mask for
 * heap pages, btree_mask ...), else by page kind; visibility-map pages and pages of no known kind by LSN and
 * checksum only (as the verifier does). Files: base and verify pages must be regular files of exactly 8192
 * bytes, and a base must look like a page from at or before the LSN (checkBasePage); `outFile` receives
 * exactly the 8192 bytes of the page.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isNotFoundFsError, NotFoundError, UnsupportedError, UsageError } from '../lib/errors.js'
import { formatLsn, type Lsn } from '../pg/lsn.js'
import { forkName, formatRelFileNode, ForkNumber, type BufferTag } from '../pg/reltag.js'
import { RM } from '../pg/rmgr.js'
import { decodeControlFile } from '../pg/controlfile.js'
import { WalFileReader, type WalReadEnd } from '../pg/wal-files.js'
import { BLCKSZ } from '../pg/wal-record.js'
import { hasMask, maskPage, maskPageLsnAndChecksum, maskVmPage } from '../redo/mask/index.js'
import { getPdFlags, getPdLower, getPdSpecial, getPdUpper, maxalign, PD_VALID_FLAG_BITS, pageGetLsn } from '../redo/page/page.js'
import { classifyPage, summarizePage, type PageKind, type PageSummary } from '../redo/page-summary.js'
import { describeStart, REPLAY_CHAIN_BYTES_MAX, REPLAY_CHAIN_RECORDS_MAX, ReplayChainCollector, type ReplayChain } from '../redo/replay-chain.js'
import { hintBitsEvidence } from '../redo/verify-wal.js'
import { firstDifference } from '../redo/verify.js'
import { inputPathFailed, statRegularFile } from '../storage/input-file.js'
import { writeOutputFile } from '../storage/output-file.js'
import { RedoPools, type RedoPoolSettings } from './redo-pool.js'

export interface RedoReplayInput {
  walPaths: readonly string[]
  tag: BufferTag
  lsn: Lsn
  /** A page file to start from instead of the last full-page image. */
  baseFile?: string | null
  /** Write the resulting page here (exactly 8192 bytes). */
  outFile?: string | null
  /** Compare with this page (taken from PostgreSQL), masked. */
  verifyFile?: string | null
  hintBitsLogged?: boolean
  pool: RedoPoolSettings
  signal?: AbortSignal
}

export interface ReplayVerify {
  file: string
  /** Which mask was applied to both pages. */
  mask: string
  equal: boolean
  /** First differing offset after masking, or -1. */
  offset: number
}

export interface RedoReplayResult {
  tag: BufferTag
  lsn: Lsn
  chain: ReplayChain
  page: Buffer
  summary: PageSummary
  hintBitsLogged: boolean
  verify: ReplayVerify | null
  walEnd: WalReadEnd | null
}

/** Reads the page file given as --base or --verify (`what`): a regular file of exactly one page. */
async function readPageFile(path: string, what: 'base' | 'verify'): Promise<Buffer> {
  const extractHint = 'Extract one page, e.g. dd if=<relation file> bs=8192 skip=<blk> count=1 of=page.bin.'
  try {
    // Checked first: a directory would fail the read with EISDIR, a FIFO would block it forever.
    const st = await statRegularFile(path, `--${what} page file`)
    if (st.size !== BLCKSZ) {
      throw new UsageError('REPLAY_BAD_PAGE_FILE', `${what} file ${path} has ${st.size} bytes, a page has ${BLCKSZ}`, { hint: extractHint })
    }
    const b = await readFile(path)
    if (b.length !== BLCKSZ) throw new UsageError('REPLAY_BAD_PAGE_FILE', `${what} file ${path} changed while it was read`, { hint: extractHint })
    return b
  } catch (e) {
    if (isNotFoundFsError(e)) throw new NotFoundError('REPLAY_FILE_NOT_FOUND', `${what} file ${path} does not exist`, { hint: `Give an existing ${what} page file.` })
    throw inputPathFailed('reading', path, e)
  }
}

/**
 * Refuses a --base page that redo cannot start from: one that is not a page at all (PostgreSQL's
 * PageIsVerifiedExtended header checks: only known pd_flags bits, pd_lower <= pd_upper <= pd_special <=
 * BLCKSZ, pd_special MAXALIGNed; an all-zero page passes as a new page), or one from after `lsn` (its
 * pd_lsn is later: the records up to `lsn` cannot take it back, and printing it as the page at `lsn` would
 * be wrong).
 */
function checkBasePage(page: Buffer, path: string, lsn: Lsn): void {
  const special = getPdSpecial(page)
  const sane =
    (getPdFlags(page) & ~PD_VALID_FLAG_BITS) === 0 &&
    getPdLower(page) <= getPdUpper(page) &&
    getPdUpper(page) <= special &&
    special <= BLCKSZ &&
    special === maxalign(special)
  if (!sane && !page.every((b) => b === 0)) {
    throw new UsageError(
      'REPLAY_BAD_BASE_PAGE',
      `base file ${path} is not a PostgreSQL page: its header fails the checks (pd_lower ${getPdLower(page)}, pd_upper ${getPdUpper(page)}, pd_special ${special}, pd_flags 0x${getPdFlags(page).toString(16)})`,
      { hint: 'Give one 8192-byte page of a relation file, e.g. dd if=<relation file> bs=8192 skip=<blk> count=1 of=page.bin.' },
    )
  }
  const baseLsn = pageGetLsn(page)
  if (baseLsn > lsn) {
    throw new UsageError('REPLAY_BASE_AFTER_LSN', `base file ${path} has pd_lsn ${formatLsn(baseLsn)}, after the requested LSN ${formatLsn(lsn)}`, {
      hint: `Give a base page from at or before ${formatLsn(lsn)}, or an --lsn at or after ${formatLsn(baseLsn)}.`,
    })
  }
}

async function hintBitsFromControlFile(paths: readonly string[]): Promise<boolean | null> {
  if (paths.length !== 1) return null
  try {
    const cf = decodeControlFile(await readFile(join(paths[0]!, '..', 'global', 'pg_control')))
    return cf.data_checksum_version !== 0 || cf.wal_log_hints
  } catch {
    return null // no data directory around the WAL, or not a PostgreSQL 15 one: use the WAL's evidence
  }
}

const KIND_RMGR: Partial<Record<PageKind, number>> = { heap: RM.HEAP, btree: RM.BTREE, sequence: RM.SEQ }

/** Masks both pages alike; returns the mask's name and the first difference. */
export function compareMasked(ours: Buffer, theirs: Buffer, tag: BufferTag, chain: ReplayChain): { mask: string; offset: number } {
  const a = Buffer.from(ours)
  const b = Buffer.from(theirs)
  if (tag.forkNum === ForkNumber.VisibilityMap) {
    maskVmPage(a)
    maskVmPage(b)
    return { mask: 'vm (LSN and checksum)', offset: firstDifference(a, b) }
  }
  let rmid: number | undefined
  for (let i = chain.entries.length - 1; i >= 0 && rmid === undefined; i--) {
    const e = chain.entries[i]!
    if (!e.implicit && hasMask(e.rmid)) rmid = e.rmid
  }
  rmid ??= KIND_RMGR[classifyPage(ours, tag.forkNum)]
  if (rmid === undefined) {
    maskPageLsnAndChecksum(a)
    maskPageLsnAndChecksum(b)
    return { mask: 'LSN and checksum', offset: firstDifference(a, b) }
  }
  const name = rmid === RM.HEAP || rmid === RM.HEAP2 ? 'heap' : rmid === RM.BTREE ? 'btree' : rmid === RM.SEQ ? 'seq' : `rmgr ${rmid}`
  return { mask: name, offset: firstDifference(maskPage(rmid, a, tag.blkno, { inPlace: true }), maskPage(rmid, b, tag.blkno, { inPlace: true })) }
}

export async function runRedoReplay(input: RedoReplayInput): Promise<RedoReplayResult> {
  const { tag, lsn } = input
  const where = `${formatRelFileNode(tag)} ${forkName(tag.forkNum)} blk ${tag.blkno}`
  const base = input.baseFile ? await readPageFile(input.baseFile, 'base') : null
  if (base !== null) checkBasePage(base, input.baseFile!, lsn)
  const theirs = input.verifyFile ? await readPageFile(input.verifyFile, 'verify') : null
  const reader = await WalFileReader.open(input.walPaths, { endLsn: lsn })
  const collector = new ReplayChainCollector(tag, base === null ? null : pageGetLsn(base))
  let evidence = false
  // for-await closes the reader (its file, its hold on the CRC thread) when left early: an abort, a failure.
  if (!input.signal?.aborted) {
    for await (const batch of reader.recordBatches()) {
      for (const rec of batch) {
        if (!evidence && hintBitsEvidence(rec) !== null) evidence = true
        collector.add(rec)
      }
      if (input.signal?.aborted) break
    }
  }
  const walEnd = reader.endReport
  if (walEnd !== null && walEnd.endLsn < lsn && walEnd.reason !== 'end-lsn') {
    throw new NotFoundError('REPLAY_LSN_BEYOND_WAL', `the WAL ends at ${formatLsn(walEnd.endLsn)}, before the requested LSN ${formatLsn(lsn)}`, {
      hint: `Give an LSN at or before ${formatLsn(walEnd.endLsn)}, or pass the later WAL segments too.`,
    })
  }
  const chain = collector.result()
  if (chain.overflowed) {
    throw new UnsupportedError('REPLAY_CHAIN_TOO_LONG', `more than ${REPLAY_CHAIN_RECORDS_MAX} records (or ${REPLAY_CHAIN_BYTES_MAX} bytes) change ${where} after its last full-page image`, {
      hint: 'Pass --base with a copy of the page from closer to the LSN.',
    })
  }
  if (chain.start === null) {
    if (chain.recordsBeforeStart === 0) {
      throw new NotFoundError('REPLAY_NO_RECORDS', `no WAL record up to ${formatLsn(lsn)} changes ${where}`, {
        hint: 'Check the relation (pg_relation_filepath()), fork and block, or pass --base to print a page file as it is.',
      })
    }
    throw new NotFoundError('REPLAY_NO_BASE', `${chain.recordsBeforeStart} records change ${where} but none of them gives the whole page (no full-page image, no page initialisation)`, {
      hint: 'Pass --base with a copy of the page from before the first of these records, or WAL that starts earlier.',
    })
  }
  const hintBitsLogged = input.hintBitsLogged ?? (evidence || ((await hintBitsFromControlFile(input.walPaths)) ?? false))
  let page: Buffer
  if (chain.entries.length === 0) {
    page = Buffer.from(base!)
  } else {
    const pools = new RedoPools({ ...input.pool, workers: 1 })
    try {
      page = await pools.manager(hintBitsLogged).redo(
        { tag, base, records: chain.entries.map((e) => e.record) },
        input.signal === undefined ? {} : { signal: input.signal },
      )
    } finally {
      await pools.close()
    }
  }
  if (input.outFile) await writeOutputFile(input.outFile, page)
  let verify: ReplayVerify | null = null
  if (theirs !== null) {
    const { mask, offset } = compareMasked(page, theirs, tag, chain)
    verify = { file: input.verifyFile!, mask, equal: offset < 0, offset }
  }
  return { tag, lsn, chain, page, summary: summarizePage(page, tag.blkno, tag.forkNum), hintBitsLogged, verify, walEnd }
}

export { describeStart }
