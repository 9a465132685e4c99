/**
 * Runs a workload on a real PostgreSQL 15 primary with wal_consistency_checking, then verifies our redo
 * record by record against the primary's own page images (src/core/redo/verify.ts), in-process.
 *
 * Used by the redo tests of every resource manager: each asserts zero mismatches and that its record types
 * were actually exercised (report.byRecordType).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PgCluster, type ClusterOptions, type WorkloadStep } from './pg-cluster.js'
import { WalStreamDecoder } from '../../src/core/pg/wal-decoder.js'
import { lsn, type Lsn } from '../../src/core/pg/lsn.js'
import type { DecodedRecord } from '../../src/core/pg/wal-record.js'
import { redoBlock } from '../../src/core/redo/engine.js'
import { RedoVerifier, type VerifyReport } from '../../src/core/redo/verify.js'

const SEG = 16 * 1024 * 1024

/** Every record in pg_wal from the segment holding `from` up to `to` (exclusive), in order. */
export function readWalRecords(walDir: string, segments: string[], from: Lsn, to: Lsn): DecodedRecord[] {
  const segStart = Number(from) - (Number(from) % SEG)
  const dec = new WalStreamDecoder({ startLsn: lsn(segStart) })
  const out: DecodedRecord[] = []
  const first = Math.floor(segStart / SEG)
  for (const name of segments) {
    const segno = parseInt(name.slice(8, 16), 16) * 256 + parseInt(name.slice(16, 24), 16)
    if (segno < first) continue
    dec.feed(readFileSync(join(walDir, name)))
    for (let r = dec.next(); r; r = dec.next()) {
      if (r.lsn >= to) return out
      if (r.lsn >= from) out.push(r)
    }
    if (dec.end) break
  }
  return out
}

export interface VerifiedWorkload {
  report: VerifyReport
  records: DecodedRecord[]
}

/**
 * Starts a cluster (wal_consistency_checking=all unless overridden), runs `setup` (not verified, but its
 * WAL seeds page images), then `steps`, and verifies every record from the start of `setup`.
 */
export async function verifyWorkload(
  steps: WorkloadStep[],
  opts: ClusterOptions & { setup?: WorkloadStep[] } = {},
): Promise<VerifiedWorkload> {
  const pg = await PgCluster.start({ walConsistencyChecking: 'all', ...opts })
  try {
    const start = await pg.insertLsn()
    if (opts.setup) await pg.runWorkload(opts.setup)
    await pg.runWorkload(steps)
    const end = await pg.insertLsn()
    await pg.sql('SELECT pg_switch_wal()')
    const records = readWalRecords(pg.walDir, pg.walSegments(), start, end)
    const hintBitsLogged = opts.checksums === true
    const verifier = new RedoVerifier({ redo: (tag, base, recs) => redoBlock(tag, base, recs, { hintBitsLogged }) })
    for (const r of records) await verifier.addRecord(r)
    return { report: verifier.report(), records }
  } finally {
    await pg.destroy()
  }
}

/** A readable summary for assertion messages. */
export function summarize(report: VerifyReport): string {
  return JSON.stringify(
    { mismatches: report.mismatches, first: report.firstMismatches.slice(0, 5), errors: report.errors.slice(0, 5), unsupported: report.unsupportedByType },
    null,
    1,
  )
}
