/**
 * What the WalFileReader tests share: reading every record of some paths, and a pg_wal copy of a real
 * workload that spans several segments, an XLOG_SWITCH among them (a stopped cluster; the caller destroys
 * it and removes `scratch`).
 */
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PgCluster } from '../../support/pg-cluster.js'
import { WalFileReader, type WalReadEnd, type WalReadOptions } from '../../../src/core/pg/wal-files.js'
import type { DecodedRecord } from '../../../src/core/pg/wal-record.js'

export async function readAll(paths: string[], opts: WalReadOptions = {}): Promise<{ records: DecodedRecord[]; end: WalReadEnd; reader: WalFileReader }> {
  const reader = await WalFileReader.open(paths, opts)
  const records: DecodedRecord[] = []
  const gen = reader.records()
  for (;;) {
    const r = await gen.next()
    if (r.done) return { records, end: r.value, reader }
    records.push(r.value)
  }
}

export interface WorkloadWal {
  readonly pg: PgCluster
  readonly scratch: string
  /** `<scratch>/pg_wal`: copies of the cluster's segments. */
  readonly walDir: string
  readonly segs: string[]
  /** A new empty directory under `scratch`. */
  freshDir(): string
  /** A new directory under `scratch` with copies of the named segments of `walDir`. */
  dirWith(names: string[]): string
}

/** A table of `rows` rows of ~200 bytes, a WAL switch, one more insert and a checkpoint; then the copy. */
export async function workloadWal(name: string, rows: number): Promise<WorkloadWal> {
  const pg = await PgCluster.start({ name })
  await pg.runWorkload([
    { name: 'fill', sql: `CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, ${rows}) g;` },
    { name: 'switch', sql: 'SELECT pg_switch_wal();' },
    { name: 'after', sql: "INSERT INTO t VALUES (0, 'after the switch'); CHECKPOINT;" },
  ])
  await pg.stop()
  const scratch = mkdtempSync(join(tmpdir(), `ps-${name}-`))
  const walDir = join(scratch, 'pg_wal')
  mkdirSync(walDir)
  const segs = pg.walSegments()
  for (const s of segs) copyFileSync(join(pg.walDir, s), join(walDir, s))
  let n = 0
  const freshDir = (): string => {
    const d = join(scratch, `d${++n}`)
    mkdirSync(d)
    return d
  }
  const dirWith = (names: string[]): string => {
    const d = freshDir()
    for (const s of names) copyFileSync(join(walDir, s), join(d, s))
    return d
  }
  return { pg, scratch, walDir, segs, freshDir, dirWith }
}
