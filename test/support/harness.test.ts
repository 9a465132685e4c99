import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PgCluster } from './pg-cluster.js'
import { formatLsn } from '../../src/core/pg/lsn.js'

describe('PgCluster harness', () => {
  let pg: PgCluster
  beforeAll(async () => {
    pg = await PgCluster.start({ checksums: true, walCompression: 'lz4', name: 'harness' })
  })
  afterAll(async () => {
    await pg?.destroy()
  })

  it('runs SQL, reports settings and LSNs between workload steps', async () => {
    expect(await pg.sql('SHOW data_checksums')).toBe('on')
    expect(await pg.sql('SHOW wal_compression')).toBe('lz4')
    expect(await pg.sql('SHOW wal_level')).toBe('replica')
    const steps = await pg.runWorkload([
      { name: 'create', sql: 'CREATE TABLE t (id int primary key, v text)' },
      { name: 'insert', sql: "INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 1000) g" },
    ])
    expect(steps.map((s) => s.name)).toEqual(['create', 'insert'])
    for (const s of steps) expect(s.lsnAfter > s.lsnBefore).toBe(true)
    expect(steps[1]!.lsnBefore >= steps[0]!.lsnAfter).toBe(true)
    expect(formatLsn(steps[1]!.lsnAfter)).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
    expect(await pg.sql('SELECT count(*) FROM t')).toBe('1000')
  })

  it('runs pgbench', async () => {
    await pg.pgbench(['-i', '-s', '1', '-q'])
    const r = await pg.pgbench(['-c', '2', '-t', '20', '-n'])
    expect(r.stdout).toMatch(/number of transactions actually processed: 40/)
  })

  it('accepts SCRAM-authenticated TCP connections only with the password', async () => {
    const scram = await PgCluster.start({ auth: 'scram-sha-256', password: 's3cret', name: 'scram' })
    try {
      const { runPgTool } = await import('../../src/core/postgres/install.js')
      const ok = await runPgTool(scram.inst, 'psql', ['-X', '-A', '-t', '-c', 'select 42', scram.connUrl()], {})
      expect(ok.stdout.trim()).toBe('42')
      await expect(runPgTool(scram.inst, 'psql', ['-X', '-w', '-c', 'select 1', scram.connUrl({ password: 'wrong' })])).rejects.toThrow(
        /password authentication failed/,
      )
    } finally {
      await scram.destroy()
    }
  })
})
