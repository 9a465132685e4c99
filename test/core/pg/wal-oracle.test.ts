/**
 * Oracle test: our decoder against pg_waldump --bkp-details on the WAL of a real PostgreSQL 15 running a
 * mixed workload, once per wal_compression method (checksums on in the lz4 run, so FPI_FOR_HINT appears).
 * Every record (rmgr, type, lengths, xid, LSN, prev) and every block reference (rel, fork, blk, image,
 * apply, hole, compression) must match, and every image must restore to a page whose header agrees with
 * the hole the record announced.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PgCluster, pgAvailable } from '../../support/pg-cluster.js'
import { runMixedWorkload, WORKLOAD_CLUSTER_OPTIONS } from './wal-workload.js'
import { asOracle, parseWaldump, type OracleRecord } from './waldump-oracle.js'
import { WalFileReader } from '../../../src/core/pg/wal-files.js'
import { recordToJson } from '../../../src/core/pg/wal-format.js'
import { restoreBlockImage, type DecodedRecord } from '../../../src/core/pg/wal-record.js'
import { SizeOfXLogLongPHD, SizeOfXLogShortPHD, XLOG_BLCKSZ } from '../../../src/core/pg/wal-page.js'

const SEGMENT_BYTES = 16 * 1024 * 1024
const PD_PAGESIZE_VERSION = 8192 | 4

interface Run {
  compression: 'pglz' | 'lz4' | 'zstd'
  checksums: boolean
}

const RUNS: Run[] = [
  { compression: 'pglz', checksums: false },
  { compression: 'lz4', checksums: true },
  { compression: 'zstd', checksums: false },
]

/** Problems with a restored image, judged by its own page header (empty when it looks right). */
function imageProblems(rec: DecodedRecord, page: Buffer, holeOffset: number, holeLength: number): string[] {
  if (page.every((x) => x === 0)) return holeLength === 0 ? [] : ['all-zero page with a hole']
  const problems: string[] = []
  if (page.readUInt16LE(18) !== PD_PAGESIZE_VERSION) problems.push(`pd_pagesize_version ${page.readUInt16LE(18)}`)
  const pdLsn = (BigInt(page.readUInt32LE(0)) << 32n) | BigInt(page.readUInt32LE(4))
  if (pdLsn > rec.lsn) problems.push(`pd_lsn ${pdLsn} after the record`)
  if (holeLength > 0) {
    if (page.readUInt16LE(12) !== holeOffset) problems.push(`pd_lower ${page.readUInt16LE(12)} != hole offset ${holeOffset}`)
    if (page.readUInt16LE(14) !== holeOffset + holeLength) problems.push(`pd_upper ${page.readUInt16LE(14)} != hole end`)
  }
  return problems
}

describe.skipIf(!pgAvailable())('decoder against pg_waldump on a mixed workload', () => {
  for (const run of RUNS) {
    describe(`wal_compression=${run.compression}${run.checksums ? ', checksums' : ''}`, () => {
      let pg: PgCluster
      let oracle: OracleRecord[]

      beforeAll(async () => {
        pg = await PgCluster.start({ ...WORKLOAD_CLUSTER_OPTIONS, walCompression: run.compression, checksums: run.checksums })
        await runMixedWorkload(pg)
        await pg.stop() // stable files: nothing writes WAL while we compare
        const segs = pg.walSegments()
        const dir = pg.walDir
        oracle = parseWaldump(await pg.waldump(['--bkp-details', `${dir}/${segs[0]}`, `${dir}/${segs[segs.length - 1]}`]))
      })

      afterAll(async () => {
        await pg?.destroy()
      })

      it('decodes every record and block reference exactly as pg_waldump does', async () => {
        const reader = await WalFileReader.open([pg.walDir])
        const page = Buffer.alloc(XLOG_BLCKSZ)
        const types = new Map<string, number>()
        const methods = new Map<string, number>()
        let i = 0
        let prev: DecodedRecord | null = null
        let crossPage = 0
        let imageFailures: string[] = []
        const gen = reader.records()
        let done: IteratorResult<DecodedRecord, unknown>
        while (!(done = await gen.next()).done) {
          const rec = done.value
          const expected = oracle[i]
          expect(asOracle(rec), `record #${i}`).toEqual(expected)
          i++
          const key = `${recordToJson(rec).rmgr}/${recordToJson(rec).type}`
          types.set(key, (types.get(key) ?? 0) + 1)
          for (const b of rec.blocks) {
            if (!b.hasImage) continue
            methods.set(b.compression, (methods.get(b.compression) ?? 0) + 1)
            restoreBlockImage(rec, b, page)
            const p = imageProblems(rec, page, b.holeOffset, b.holeLength)
            if (p.length > 0) imageFailures.push(`${recordToJson(rec).lsn} blk #${b.id}: ${p.join(', ')}`)
          }
          const lsn = Number(rec.lsn)
          const end = Number(rec.endLsn)
          if (Math.floor(lsn / XLOG_BLCKSZ) !== Math.floor((end - 1) / XLOG_BLCKSZ)) crossPage++
          if (prev !== null) {
            // The next record starts at the previous one's end, or after the page header there.
            const pe = Number(prev.endLsn)
            const hdr = pe % SEGMENT_BYTES === 0 ? SizeOfXLogLongPHD : SizeOfXLogShortPHD
            expect(lsn === pe || (pe % XLOG_BLCKSZ === 0 && lsn === pe + hdr), `record at ${recordToJson(rec).lsn} after end ${pe}`).toBe(true)
          }
          prev = rec
        }
        imageFailures = imageFailures.slice(0, 10)
        expect(imageFailures).toEqual([])
        expect(i).toBe(oracle.length)
        expect(i).toBeGreaterThan(20_000)
        expect(done.value).toMatchObject({ reason: 'end-of-wal' })

        // The workload reached what it was written to reach.
        for (const t of [
          'XLOG/FPI',
          'XLOG/SWITCH',
          'XLOG/CHECKPOINT_SHUTDOWN',
          'Transaction/COMMIT',
          'Transaction/ABORT',
          'Transaction/PREPARE',
          'Transaction/COMMIT_PREPARED',
          'Transaction/ABORT_PREPARED',
          'Database/CREATE_WAL_LOG',
          'Sequence/LOG',
          'LogicalMessage/MESSAGE',
          'Heap2/MULTI_INSERT+INIT',
          'Heap2/FREEZE_PAGE',
          'Heap2/VISIBLE',
          'Heap/HOT_UPDATE',
          'Btree/INSERT_LEAF',
        ]) {
          expect(types.get(t) ?? 0, t).toBeGreaterThan(0)
        }
        if (run.checksums) expect(types.get('XLOG/FPI_FOR_HINT') ?? 0).toBeGreaterThan(0)
        expect(methods.get(run.compression) ?? 0).toBeGreaterThan(100)
        expect(crossPage).toBeGreaterThan(100)
      })
    })
  }
})
