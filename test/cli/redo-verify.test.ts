/**
 * `pageserver redo verify` through the built CLI (npm run build first), on a synthetic WAL segment (one
 * shutdown checkpoint record, zeros after it): a run that read no record at all must not pass (exit 2),
 * whatever the reason, and says why. The full suite on real PostgreSQL WAL is test/e2e/redo-verify-suite.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../support/cli.js'
import type { CheckPoint } from '../../src/core/pg/controlfile.js'
import { formatLsn, lsn } from '../../src/core/pg/lsn.js'
import { segmentBytes, shutdownCheckpointWal } from '../../src/core/pg/synthetic-wal.js'
import { testCheckPoint } from '../support/checkpoint-fixture.js'

const SEG = 16 * 1024 * 1024
const CHECKPOINT: CheckPoint = testCheckPoint(lsn(0x3000028))

describe('pageserver redo verify: nothing read is not a pass', () => {
  let dir: string
  let wal: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ps-cli-redo-verify-'))
    const built = shutdownCheckpointWal({ lsn: lsn(3 * SEG + 0x100), systemId: 7400000000000000123n, checkpoint: CHECKPOINT, prevLsn: lsn(0), segSizeBytes: SEG })
    wal = join(dir, built.segments[0]!.fileName)
    writeFileSync(wal, segmentBytes(built.segments[0]!))
  })
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('exits 2 saying no WAL record was read when --start is past the valid WAL', async () => {
    const start = formatLsn(lsn(3 * SEG + 0x100000))
    const r = await runCli(['redo', 'verify', wal, '--start', start, '-D', join(dir, 'wd')])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('nothing was verified: no WAL record was read (zeroed-page at ')
    const j = await runCli(['redo', 'verify', wal, '--start', start, '--json', '-D', join(dir, 'wd')])
    expect(j.code).toBe(2)
    expect(j.json()).toMatchObject({ recordsRead: 0, blocksChecked: 0, wal: { reason: 'zeroed-page' }, problem: { code: 'NOTHING_VERIFIED' } })
    expect(j.json().problem.message).toContain('no WAL record was read (zeroed-page at ')
    expect(j.json().problem.hint).toContain('--start and --end')
  })

  it('still exits 2 for records without consistency-check images', async () => {
    const r = await runCli(['redo', 'verify', wal, '-D', join(dir, 'wd')])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('no record carries a consistency-check image')
    const j = await runCli(['redo', 'verify', wal, '--json', '-D', join(dir, 'wd')])
    expect(j.code).toBe(2)
    expect(j.json().problem).toMatchObject({ code: 'NOTHING_VERIFIED', hint: expect.stringContaining('wal_consistency_checking') })
  })
})
